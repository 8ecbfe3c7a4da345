"""Training presets (``tiny``, ``barcodemae``, ``barcodebert``) and accelerate configs, shipped as package data."""
