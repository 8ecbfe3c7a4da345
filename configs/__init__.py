"""Training presets (one ``NAME.yaml`` file each: ``python train.py --help`` lists them) and accelerate configs,
shipped as package data."""
