"""Markdown report of an evaluation run (the human-readable twin of results.json)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def _probe_c(probe: dict[str, Any]) -> str:
    """``C=1``, or ``C=10 chosen on held-out train`` when ``--probe-c auto`` selected it."""
    if "c" not in probe:  # results written before the probe recorded its C
        return "C not recorded"
    chosen = " chosen on held-out train" if "c_selection" in probe else ""
    return f"C={probe['c']:g}{chosen}"


def _lda_fit(model: dict[str, Any]) -> list[str]:
    """The ``kmer-lda`` baseline's fit (what its projection saw), or nothing for any other model."""
    lda = model.get("lda")
    if lda is None:
        return []
    shrinkage = f", shrinkage {lda['shrinkage']}" if lda["shrinkage"] is not None else ""
    line = (
        f"- genus LDA ({lda['solver']} solver{shrinkage}) on {lda['kmer_k']}-mer frequencies, fitted on "
        f"{lda['num_keys']:,} {lda['fitted_on']} keys of {lda['num_genera']} genera only: "
        f"{lda['n_components']} components"
    )
    return [line]


def _knn_table(open_world: dict[str, Any]) -> list[str]:
    """Open-world genus k-NN at every recorded k (none in results written before k-NN was reported)."""
    knn = open_world.get("knn")
    if not knn:
        return []
    rows = [f"| {k} | {_pct(scores['accuracy'])} | {_pct(scores['macro_accuracy'])} |" for k, scores in knn.items()]
    return [
        "",
        "Open world, genus, k-NN (majority of the k nearest keys, ties to the nearest; k=1 is the 1-NN above):",
        "",
        "| k | accuracy | macro accuracy |",
        "|---:|---:|---:|",
        *rows,
    ]


def render_report(results: dict[str, Any]) -> str:
    """The report text: model, data, headline table, per-task details, plots."""
    model, data, metrics = results["model"], results["data"], results["metrics"]
    headline = metrics["headline"]
    closed, open_world, bins = (
        metrics["closed_world_species"],
        metrics["open_world_genus"]["one_nn"],
        metrics["bin_reconstruction"],
    )
    knn_table = _knn_table(metrics["open_world_genus"])
    open_split = bins["split"]
    lines = [
        f"# Evaluation of {model['name']}",
        "",
        f"Protocol: {results['protocol']}.",
        "",
        (
            f"- model: `{model['name']}` ({model.get('model_type') or model['kind']}, "
            f"{model.get('num_parameters', 0):,} parameters, embedding dim {results['settings']['embedding_dim']}, "
            f"pooling {results['settings']['pooling']}, layer {results['settings']['layer']}, "
            f"reading frames {results['settings'].get('frames') or 'first'}, "
            f"post-processing {results['settings'].get('postprocess', 'none')})"
        ),
        *_lda_fit(model),
        f"- data: `{data['path']}`; records per split: "
        + ", ".join(f"{split} {count:,}" for split, count in data["split_sizes"].items())
        + f" (cleaning: {data['cleaning']['rejected']:,} rejected of {data['cleaning']['read']:,} read)",
        "",
        "## Headline",
        "",
        "| closed-world species acc. (probe) | open-world genus acc. (1-NN) | BIN AMI | harmonic mean |",
        "|---:|---:|---:|---:|",
        (
            f"| {_pct(headline['closed_world_species_accuracy'])} | {_pct(headline['open_world_genus_accuracy'])} | "
            f"{_pct(headline['bin_reconstruction_ami'])} | {_pct(headline['harmonic_mean'])} |"
        ),
        "",
        "## Details",
        "",
        "| task | accuracy | macro accuracy | size |",
        "|---|---:|---:|---|",
        (
            f"| closed world, species, linear probe ({_probe_c(closed['linear_probe'])}) | "
            f"{_pct(closed['linear_probe']['accuracy'])} | "
            f"{_pct(closed['linear_probe']['macro_accuracy'])} | {closed['linear_probe']['num_train']:,} train, "
            f"{closed['linear_probe']['num_test']:,} test, {closed['linear_probe']['num_classes']} species |"
        ),
        (
            f"| closed world, species, 1-NN | {_pct(closed['one_nn']['accuracy'])} | "
            f"{_pct(closed['one_nn']['macro_accuracy'])} | "
            f"{closed['one_nn']['num_keys']:,} keys, {closed['one_nn']['num_queries']:,} queries |"
        ),
        *(
            [
                (
                    f"| closed world, species, fine-tuned ({closed['fine_tune']['epochs']} epochs) | "
                    f"{_pct(closed['fine_tune']['accuracy'])} | {_pct(closed['fine_tune']['macro_accuracy'])} | "
                    f"{closed['fine_tune']['num_train']:,} train, {closed['fine_tune']['num_test']:,} test |"
                )
            ]
            if "fine_tune" in closed
            else []
        ),
        (
            f"| open world, genus, 1-NN | {_pct(open_world['accuracy'])} | {_pct(open_world['macro_accuracy'])} | "
            f"{open_world['num_keys']:,} keys, {open_world['num_queries']:,} queries |"
        ),
        *knn_table,
        "",
        (
            f"BIN reconstruction on {open_split}: {bins['reducer']} to {bins['n_components']} dimensions, "
            f"agglomerative clustering ({bins['linkage']} linkage), one cluster per distinct label."
        ),
        "",
        "| labels | AMI | clusters | samples |",
        "|---|---:|---:|---:|",
    ]
    for rank in ("dna_bin", "species"):
        if rank in bins:
            lines.append(
                f"| {rank} | {_pct(bins[rank]['ami'])} | {bins[rank]['n_clusters']} | {bins[rank]['num_samples']:,} |"
            )
    plots = results.get("plots") or {}
    if plots.get("embedding_2d") or plots.get("accuracy_per_genus"):
        lines += ["", "## Plots", ""]
        if plots.get("embedding_2d"):
            lines.append(f"![{open_split} embeddings coloured by genus]({plots['embedding_2d']})")
        if plots.get("accuracy_per_genus"):
            lines.append(f"![open-world accuracy per genus]({plots['accuracy_per_genus']})")
    timings = results.get("timings", {})
    lines += ["", "Timings: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items()), ""]
    return "\n".join(lines)


def write_report(path: str | Path, results: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(render_report(results))
    return path


__all__ = ["render_report", "write_report"]
