"""How far `barcodemae identify`'s call levels can be trusted: thresholds fitted on val / val_unseen, measured on
test (species in the library) and test_unseen (species absent, genus present).

    python research/identify_calls.py --model runs/r/mlm-shift-42/final_model \\
        --data ../shared/data/bold_coi/dev.csv.gz --output research/results/identify_calls

Runs what a user runs: ``identify build --split train --calibration-split val+val_unseen`` then ``identify query
--split test+test_unseen --align N``. Reports the thresholds, and per query set (calibration, test, test_unseen,
both) the share of calls at each level and the precision of each: a call is right when the taxon it names is the
query's at that rank. ``--align 0`` (the default here) measures the calibrated similarity rule; ``--align 50`` the
percent-identity rule (``--thresholds``). A good rule calls the species for most ``test`` queries, and only the
genus (or less, or nothing) for ``test_unseen`` ones, whose species the library cannot hold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from barcodemae.cli_options import DEFAULT_IDENTITY_THRESHOLDS
from barcodemae.embedding_settings import EmbeddingSettings
from barcodemae.identify import build_reference_index, identify_file, labelled_call_report

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi" / "dev.csv.gz"


def measure(model: Path, data: Path, output: Path, *, reference_split: str, calibration_split: str,
            query_split: str, align: int = 0, thresholds: str = DEFAULT_IDENTITY_THRESHOLDS,
            progress: bool = True) -> dict[str, Any]:
    """Build a calibrated index, query ``query_split`` and report the call levels per query split."""
    settings = EmbeddingSettings(progress=progress)
    index = build_reference_index(model, data, output / "index", split=reference_split,
                                  calibration_split=calibration_split, settings=settings)
    result = identify_file(output / "index", data, output / "queries.csv", split=query_split, align=align,
                           thresholds=thresholds, settings=settings)
    splits = pd.read_csv(data, usecols=["processid", "split"], dtype=str).rename(columns={"processid": "query_id"})
    result = result.merge(splits, on="query_id", how="left")
    report: dict[str, Any] = {
        "model": str(model), "data": str(data), "reference_split": reference_split, "align": align,
        "thresholds": thresholds if align else None,
        "call_thresholds": index.info["call_thresholds"], "calibration": index.info["calibration"],
    }
    groups = {name: result[result["split"] == name] for name in sorted(result["split"].unique())}
    groups[query_split] = result
    for name, rows in groups.items():
        report[name] = labelled_call_report(rows)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="model folder (final_model/, exported)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BIOSCAN-5M format CSV")
    parser.add_argument("--output", required=True, type=Path, help="new folder for the index and the query table")
    parser.add_argument("--reference-split", default="train")
    parser.add_argument("--calibration-split", default="val+val_unseen")
    parser.add_argument("--query-split", default="test+test_unseen")
    parser.add_argument("--align", type=int, default=0, help="references aligned per query (0: similarity calls)")
    parser.add_argument("--thresholds", default=DEFAULT_IDENTITY_THRESHOLDS, help="identity calls' percent identities")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    report = measure(args.model, args.data, args.output, reference_split=args.reference_split,
                     calibration_split=args.calibration_split, query_split=args.query_split, align=args.align,
                     thresholds=args.thresholds,
                     progress=not args.no_progress)
    text = json.dumps(report, indent=2)
    (args.output / "identify_calls.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
