#!/usr/bin/env python
"""Pretrain BarcodeMAE / BarcodeBERT.

    python train.py                                  # embedded demo: simulate, pretrain `tiny`, export, evaluate
    python train.py --preset barcodemae --data ../shared/data/bold_coi/dev.csv.gz --output_dir runs/mae
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml train.py --preset barcodemae --data ...

Arguments: ``python train.py --help``; presets live in ``configs/`` (flags override them). The output folder
layout is described in :mod:`barcodemae.run_layout`.
"""

import sys

from barcodemae.training.command import main

if __name__ == "__main__":
    sys.exit(main())
