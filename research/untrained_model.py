"""Save the encoder a training run would start from: the "same encoder, untrained" row of the quality tables.

    python research/untrained_model.py --preset small --seed 42 --output runs/untrained/small-42

Every argument but ``--output`` is a ``train.py`` argument: the architecture, tokenizer and ``pooled_layers`` come
from the preset and flags, and the weights from the very calls ``train.py`` makes before its first step
(``set_seed(seed)``, then ``build_model``), so ``eval/run.py --model <output>`` scores exactly what pretraining
changed. The folder loads like any ``final_model/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from accelerate.utils import set_seed

from barcodemae.errors import check_writable_folder, report_errors
from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.training.arguments import parse_args
from barcodemae.training.builders import build_model


def save_untrained_model(training_argv: list[str], output: Path) -> dict:
    """Build the initial model of a run with these ``train.py`` arguments and save it with its tokenizer."""
    args = parse_args(training_argv)
    check_writable_folder(output)
    if any(output.iterdir()):
        raise FileExistsError(f"{output}: folder is not empty")
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer)
    set_seed(args.seed)
    model = build_model(args, tokenizer)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return {"output": str(output), "seed": args.seed, "preset": args.preset, "objective": args.objective,
            "pooled_layers": args.pooled_layers, "parameters": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, type=Path, help="new (or empty) folder to write")
    known, training_argv = parser.parse_known_args(argv)

    def run() -> int:
        print(json.dumps(save_untrained_model(training_argv, known.output), indent=2))
        return 0

    return report_errors("untrained_model.py", run)


if __name__ == "__main__":
    sys.exit(main())
