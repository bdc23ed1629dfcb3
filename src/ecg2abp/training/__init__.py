"""Training one variant on one fold: the job, its loop, checkpoints and validation."""
