"""Serving trained models: predict on new recordings, stream, ONNX export, external tests."""
