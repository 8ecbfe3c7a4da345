"""Training loop pieces used by train.py (arguments, checkpoints, validation)."""
