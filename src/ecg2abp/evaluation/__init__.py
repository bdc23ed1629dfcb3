"""Scoring trained models on their folds: predictions, clinical metrics, pooling."""
