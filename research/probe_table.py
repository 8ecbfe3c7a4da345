"""Markdown table of the training-time genus probe: how pretraining moves open-world genus 1-NN, step by step.

    python research/probe_table.py "tiny MAE=runs/q/mae-42" "MAE, shift 300=runs/q/shift-42" [--curve] [--plot c.png]

Each ``LABEL=FOLDER`` is a ``train.py`` output folder; its ``metrics.jsonl`` holds the probe's records (genus 1-NN
of ``--query_split`` barcodes against ``--key_split`` keys, raw cosine, per layer, the top-PC variance share and the
seen / unseen perplexities). Columns: the untrained encoder (step 0: last block and layer average), the lowest
last-block value and its step, the last step (last block, embedding layer, layer average), the top-PC share of the
model's own embedding and the perplexities at the last step; the parameter count comes from ``summary.json`` ("–"
for a run that has none: unfinished, or older than the count). ``--curve`` adds the whole last-block curve;
``--plot`` draws every run's curves (last-block genus 1-NN and top-PC share against the step: where a collapse
starts and whether it recovers). Every number is read from the files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from barcodemae.run_layout import RunLayout
from barcodemae.training.metrics_log import read_metrics


def probe_records(folder: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` that carry the genus probe, in step order (a run may still be writing)."""
    return [record for record in read_metrics(RunLayout(folder).metrics) if "genus_1nn_accuracy" in record]


def last_block_key(record: dict[str, Any]) -> str:
    """``genus_1nn_accuracy_layer_<L>`` of the last block (the headline is the model's own embedding, which may be
    the layer average); records without per-layer keys fall back to the headline."""
    prefix = "genus_1nn_accuracy_layer_"
    blocks = [int(key[len(prefix):]) for key in record if key.startswith(prefix) and key[len(prefix):].isdigit()]
    return f"{prefix}{max(blocks)}" if blocks else "genus_1nn_accuracy"


def parameter_count(folder: Path) -> int | None:
    """The model's parameter count from the run's ``summary.json``, if the run finished and recorded it."""
    path = RunLayout(folder).summary
    return json.loads(path.read_text()).get("parameters") if path.is_file() else None


def row(label: str, records: list[dict[str, Any]], parameters: int | None, curve: bool) -> str:
    first, last = records[0], records[-1]
    block = last_block_key(first)
    lowest = min(records, key=lambda r: r[block])

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    cells = [
        label, str(last["step"]), "–" if parameters is None else f"{parameters / 1e6:.2f} M",
        pct(first[block]), pct(first.get("genus_1nn_accuracy_layer_mean")),
        f"{pct(lowest[block])} ({lowest['step']})", pct(last[block]),
        pct(last.get("genus_1nn_accuracy_layer_0")), pct(last.get("genus_1nn_accuracy_layer_mean")),
        f"{last.get('top_pc_variance_share', float('nan')):.2f}", num(last.get("val_perplexity")),
        num(last.get("unseen_val_perplexity")),
    ]
    if curve:
        cells.append(" ".join(f"{r['step']}:{pct(r[block])}" for r in records))
    return "| " + " | ".join(cells) + " |"


HEADER = ("run", "steps", "parameters", "untrained", "untrained, layer mean", "lowest (step)", "last",
          "last, embedding layer", "last, layer mean", "top-PC share", "val ppl", "val_unseen ppl")


def render(rows: list[tuple[str, list[dict[str, Any]], int | None]], curve: bool = False) -> str:
    header = [*HEADER, "curve (step:accuracy)"] if curve else list(HEADER)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += [row(label, records, parameters, curve) for label, records, parameters in rows]
    return "\n".join(lines)


def plot_curves(path: Path, rows: list[tuple[str, list[dict[str, Any]], int | None]]) -> None:
    """Two panels sharing the step axis: the last block's genus 1-NN (%) and the top-PC variance share, one line
    per run, so that runs of different lengths and evaluation intervals compare at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (accuracy, share) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5), height_ratios=(2, 1))
    for label, records, _ in rows:
        block = last_block_key(records[0])
        steps = [r["step"] for r in records]
        line, = accuracy.plot(steps, [100 * r[block] for r in records], marker="o", markersize=3, label=label)
        share.plot(steps, [r.get("top_pc_variance_share", float("nan")) for r in records], marker="o",
                   markersize=3, color=line.get_color())
    accuracy.set_ylabel("genus 1-NN, last block (%)")
    accuracy.set_title("training-time probe: open-world genus 1-NN (step 0 = untrained)")
    accuracy.legend(fontsize=7, frameon=False)
    accuracy.grid(alpha=0.3)
    share.set_ylabel("top-PC variance share")
    share.set_xlabel("step")
    share.set_ylim(0, 1)
    share.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=FOLDER (a train.py output folder)")
    parser.add_argument("--curve", action="store_true", help="add the last-block probe at every validation")
    parser.add_argument("--plot", type=Path, help="also draw the runs' probe curves into this image (.png, .svg)")
    args = parser.parse_args(argv)
    rows = []
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        records = probe_records(Path(folder))
        if not records:
            raise SystemExit(f"{folder}: metrics.jsonl holds no genus-probe record")
        rows.append((label, records, parameter_count(Path(folder))))
    print(render(rows, args.curve))
    if args.plot is not None:
        plot_curves(args.plot, rows)
        print(f"curves: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
