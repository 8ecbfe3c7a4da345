"""One command for the BIOSCAN-5M / BarcodeBERT / BarcodeMAE evaluation protocol.

    python eval/run.py --model DIR --data CSV --output DIR       (or: barcodemae evaluate ...)
    python eval/run.py --baseline kmer --data CSV --output DIR   (4-mer frequencies, no learning)
    python eval/run.py --baseline kmer-lda --data CSV --output DIR   (4-mer frequencies, genus LDA fitted on train)

Every model (ours, any Hugging Face folder, the k-mer baseline) goes through the same splits, the same
embedding loop and the same metrics, so the numbers are comparable:

- closed world: species of ``test``, logistic-regression probe trained on ``train`` (plus cosine 1-NN);
- open world: genus of ``test_unseen`` by cosine 1-NN against the ``train`` keys (and, beside it, the k-NN majority
  vote at ``--knn-k`` 1 3 5 7);
- BIN reconstruction: ``test_unseen`` embeddings reduced (UMAP, PCA fallback) and clustered (agglomerative),
  AMI against ``dna_bin`` and against species;
- the harmonic mean of species probe accuracy, genus 1-NN accuracy and BIN AMI;
- optionally (``--finetune-epochs N``) the species accuracy of the fully fine-tuned encoder.

``--queries validation`` runs the same protocol on ``val`` / ``val_unseen`` instead of ``test`` / ``test_unseen``
(same ``train`` keys): the numbers to choose a recipe or a checkpoint on, so that test is only ever reported.

Writes ``results.json``, ``report.md`` and plots (``umap_test_unseen_genus.png``, ``accuracy_per_genus.png``).

The modules that embed and score (torch, transformers, scikit-learn, pandas) are imported by the functions that use
them, not at the top: building the parser must not load them, so ``eval/run.py --help`` answers at once.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import platform
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from barcodemae.embedding_settings import EmbeddingSettings, add_embedding_flags
from barcodemae.endings import evaluation_ending, print_ending
from barcodemae.errors import check_writable_folder, report_errors
from barcodemae.eval.postprocess import POSTPROCESSING, EmbeddingPostprocessor
from barcodemae.eval.protocol_options import FINETUNE_BATCH_SIZE, KNN_K, LDA_SOLVERS, PROBE_C_GRID
from barcodemae.flag_spellings import CommandParser
from barcodemae.help_format import DefaultsHelpFormatter
from barcodemae.run_layout import RESULTS_FILE

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

QUERY_SPLITS: dict[str, tuple[str, str]] = {"test": ("test", "test_unseen"), "validation": ("val", "val_unseen")}
"""The closed-world (species seen in ``train``) and open-world (species never seen) query partitions: the protocol's
``test`` splits give the reported numbers; the ``validation`` splits are for choosing a recipe or a checkpoint
without ever looking at test. The keys (probe training set, 1-NN references) are ``train`` either way."""


def eval_splits(queries: str = "test") -> tuple[str, str, str]:
    """``(keys, closed-world queries, open-world queries)`` partitions of an evaluation on ``queries``."""
    if queries not in QUERY_SPLITS:
        raise ValueError(f"queries must be one of {tuple(QUERY_SPLITS)}, got {queries!r}")
    return ("train", *QUERY_SPLITS[queries])

BASELINES = ("kmer", "kmer-lda")
"""``kmer``: k-mer frequencies, no learning; ``kmer-lda``: the same projected by a genus LDA fitted on the ``train``
keys (:mod:`.baselines`), the supervised linear yardstick."""


def load_eval_splits(
    data: str | Path,
    *,
    max_per_split: int | None = None,
    seed: int = 0,
    min_length: int = 1,
    queries: str = "test",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ``train`` records of a BIOSCAN-5M CSV and those of the ``queries`` splits (:data:`QUERY_SPLITS`: ``test``
    and ``test_unseen``, or ``val`` and ``val_unseen``), cleaned; and what was dropped.

    ``max_per_split`` keeps a seeded random subset of each split (for quick runs). A missing or empty split
    raises :class:`ValueError` naming the file and the split, because the protocol cannot run without it.
    """
    from barcodemae.data import load_bioscan5m

    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(data)!r} does not exist (expected a BIOSCAN-5M metadata CSV)")
    splits = eval_splits(queries)
    dataset, report, _ = load_bioscan5m(path, "+".join(splits), min_length=min_length, return_report=True)
    columns = ["processid", "dna_barcode", "split", "genus", "species", "dna_bin"]
    frame = dataset.select_columns(columns).to_pandas()
    sizes = frame["split"].value_counts().to_dict()
    missing = [split for split in splits if sizes.get(split, 0) == 0]
    if missing:
        found = ", ".join(f"{name}={count}" for name, count in sizes.items()) or "none"
        raise ValueError(
            f"{path}: split(s) {', '.join(missing)} missing or empty (records found: {found}); the evaluation "
            f"needs {', '.join(splits)} in the 'split' column (BIOSCAN-5M partitions)"
        )
    if max_per_split is not None:
        rng = np.random.default_rng(seed)
        keep = [
            np.sort(rng.permutation(index)[:max_per_split])
            for index in (np.flatnonzero(frame["split"].to_numpy() == split) for split in splits)
        ]
        frame = frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)
    info = {
        "path": str(path),
        "split_sizes": {split: int((frame["split"] == split).sum()) for split in splits},
        "split_sizes_before_subsampling": {split: int(sizes.get(split, 0)) for split in splits},
        "max_per_split": max_per_split,
        "cleaning": {"read": report.read, "kept": report.kept, "rejected": report.num_rejected},
    }
    return frame, info


def _labelled(frame: pd.DataFrame, split: str, rank: str) -> np.ndarray:
    """Row positions of ``split`` whose ``rank`` label is known (unlabelled rows cannot be scored)."""
    labels = frame[rank]
    return np.flatnonzero((frame["split"] == split).to_numpy() & labels.notna().to_numpy() & (labels != "").to_numpy())


def closed_world_species(
    frame: pd.DataFrame, embeddings: np.ndarray, key_split: str, closed_split: str, *, probe_c: float | str,
    probe_max_iter: int, seed: int,
) -> tuple[dict[str, Any], int]:
    """The closed-world species task: a linear probe and 1-NN from the ``key_split`` rows to the ``closed_split``
    rows with a species label. ``embeddings``: ``(len(frame), dim)``. Returns the task's metrics and how many
    ``closed_split`` rows had no species label."""
    from barcodemae.eval.metrics import linear_probe, one_nn_accuracy, select_probe_c

    train_species, test_species = _labelled(frame, key_split, "species"), _labelled(frame, closed_split, "species")
    species = frame["species"].to_numpy(dtype=object)
    selection = None
    if probe_c == "auto":
        with warnings.catch_warnings():  # select_probe_c warns at the grid's edge; said below, with what to do
            warnings.filterwarnings("ignore", message="the probe's best C", category=UserWarning)
            selection = select_probe_c(
                embeddings[train_species], species[train_species], max_iter=probe_max_iter, seed=seed
            )
        probe_c = selection["c"]
        if selection["at_grid_edge"]:
            log_probe_c_at_grid_edge(selection)
    elif isinstance(probe_c, str):
        raise ValueError(f"probe_c must be a positive number or 'auto', got {probe_c!r}")
    probe = linear_probe(
        embeddings[train_species],
        species[train_species],
        embeddings[test_species],
        species[test_species],
        c=probe_c,
        max_iter=probe_max_iter,
        seed=seed,
    )
    probe["c"] = float(probe_c)
    if selection is not None:
        probe["c_selection"] = selection
    nn_species = one_nn_accuracy(
        embeddings[train_species], species[train_species], embeddings[test_species], species[test_species]
    )
    unlabelled = int((frame["split"] == closed_split).sum() - len(test_species))
    return {"linear_probe": probe, "one_nn": nn_species}, unlabelled


def open_world_genus(
    frame: pd.DataFrame, embeddings: np.ndarray, key_split: str, open_split: str, knn_k: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The open-world genus task: 1-NN (the protocol's number) and k-NN by cosine from the ``key_split`` rows to the
    ``open_split`` rows with a genus label. ``embeddings``: ``(len(frame), dim)``. Returns the task's metrics, the
    details the plots need (true and predicted genus per query) and how many ``open_split`` rows had no genus."""
    from barcodemae.eval.metrics import knn_accuracy, one_nn_accuracy

    train_genus, unseen_genus = _labelled(frame, key_split, "genus"), _labelled(frame, open_split, "genus")
    genus = frame["genus"].to_numpy(dtype=object)
    open_world = one_nn_accuracy(
        embeddings[train_genus],
        genus[train_genus],
        embeddings[unseen_genus],
        genus[unseen_genus],
        return_predictions=True,
    )
    knn = knn_accuracy(
        embeddings[train_genus], genus[train_genus], embeddings[unseen_genus], genus[unseen_genus], ks=knn_k
    )
    key_genera = len(set(genus[train_genus]))
    if key_genera < 2:  # every query is named the one genus: a score that measures nothing, kept out of the mean
        logger.warning(
            "open-world genus 1-NN is undefined: the %s keys carry %d genus, so every query is named it; reported "
            "as NaN and left out of the harmonic mean (evaluate on data with several genera)", key_split, key_genera,
        )
        undefined = {"accuracy": float("nan"), "macro_accuracy": float("nan"), "undefined": "fewer than 2 key genera"}
        open_world.update(undefined)
        knn = {k: dict(undefined) for k in knn}
    details = {"genus_true": genus[unseen_genus], "genus_predicted": open_world.pop("predictions"),
               "genus_rows": unseen_genus, "open_world_split": open_split}
    unlabelled = int((frame["split"] == open_split).sum() - len(unseen_genus))
    return {"one_nn": open_world, "knn": knn}, details, unlabelled


def bin_reconstruction(
    frame: pd.DataFrame, embeddings: np.ndarray, open_split: str, *, reducer: str, n_components: int, linkage: str,
    seed: int,
) -> dict[str, Any]:
    """BIN reconstruction: the ``open_split`` embeddings ``(len(frame), dim)`` reduced, clustered and scored by AMI
    against their BINs (the protocol's number) and their species, each where at least two rows are labelled."""
    from barcodemae.eval.metrics import bin_reconstruction_ami, reduce_dimensions

    unseen = np.flatnonzero((frame["split"] == open_split).to_numpy())
    reduced, used = reduce_dimensions(embeddings[unseen], n_components=n_components, reducer=reducer, random_state=seed)
    bins: dict[str, Any] = {
        "split": open_split, "reducer": used, "n_components": int(reduced.shape[1]), "linkage": linkage
    }
    for rank in ("dna_bin", "species"):
        labels = frame[rank].to_numpy(dtype=object)[unseen]
        known = np.flatnonzero(frame[rank].notna().to_numpy()[unseen] & (labels != ""))
        if len(known) < 2:
            logger.warning(
                "BIN reconstruction against %s skipped: %d labelled %s records", rank, len(known), open_split
            )
            continue
        scored = bin_reconstruction_ami(reduced[known], labels[known], reducer="none", linkage=linkage)
        bins[rank] = {key: scored[key] for key in ("ami", "n_clusters", "num_labels", "num_samples")}
    return bins


def evaluate_embeddings(
    frame: pd.DataFrame,
    embeddings: np.ndarray,
    *,
    reducer: str = "auto",
    n_components: int = 50,
    linkage: str = "ward",
    probe_c: float | str = "auto",
    probe_max_iter: int = 500,
    seed: int = 0,
    postprocess: str = "none",
    queries: str = "test",
    knn_k: tuple[int, ...] = KNN_K,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """All protocol metrics from one embedding per row of ``frame``; returns ``(metrics, details)``.

    ``probe_c="auto"`` (default) chooses the probe's C on a held-out fifth of ``train`` (:func:`select_probe_c`);
    a number fixes it. ``postprocess`` (``none`` | ``center`` | ``whiten``, :mod:`.postprocess`) is fitted on the
    ``train`` embeddings (the keys) and applied to every row before any metric; ``none`` is the protocol.
    ``queries`` names the query partitions (:data:`QUERY_SPLITS`: ``test`` / ``test_unseen`` by default).
    ``knn_k``: the k of the open-world genus k-NN reported beside the protocol's 1-NN (:func:`knn_accuracy`).
    ``details`` holds what the plots need (genus predictions, the 2-D layout is computed by the plotter).
    """
    from barcodemae.eval.metrics import harmonic_mean

    key_split, closed_split, open_split = eval_splits(queries)
    keys = np.flatnonzero((frame["split"] == key_split).to_numpy())
    embeddings = EmbeddingPostprocessor.fit(embeddings[keys], postprocess).transform(embeddings)

    species_task, no_species = closed_world_species(
        frame, embeddings, key_split, closed_split, probe_c=probe_c, probe_max_iter=probe_max_iter, seed=seed
    )
    genus_task, details, no_genus = open_world_genus(frame, embeddings, key_split, open_split, knn_k)
    bins = bin_reconstruction(
        frame, embeddings, open_split, reducer=reducer, n_components=n_components, linkage=linkage, seed=seed
    )
    metrics: dict[str, Any] = {
        "closed_world_species": species_task, "open_world_genus": genus_task, "bin_reconstruction": bins
    }
    headline = {
        "closed_world_species_accuracy": species_task["linear_probe"]["accuracy"],
        "open_world_genus_accuracy": genus_task["one_nn"]["accuracy"],
        "bin_reconstruction_ami": bins.get("dna_bin", {}).get("ami", float("nan")),
    }
    valid = [value for value in headline.values() if np.isfinite(value)]
    headline["harmonic_mean"] = harmonic_mean(headline.values()) if len(valid) == 3 else float("nan")
    metrics["headline"] = headline
    metrics["unlabelled_records_skipped"] = {
        f"{closed_split}_without_species": no_species, f"{open_split}_without_genus": no_genus
    }
    return metrics, details


def log_probe_c_at_grid_edge(selection: dict[str, Any]) -> None:
    """Say what a probe C chosen at the edge of the tried grid means, and what to do about it, as one log line
    (``select_probe_c`` raises a bare ``UserWarning`` that tells neither).

    Ties go to the smaller C, so an edge choice is often a plateau (the same held-out accuracy from the edge
    inwards): then C does not matter and there is nothing to do. Otherwise a C past the edge might score higher.
    """
    scores = {float(c): accuracy for c, accuracy in selection["held_out_accuracy"].items()}
    tried = sorted(scores)
    c = selection["c"]
    inwards = tried if c == tried[0] else tried[::-1]
    plateau = list(itertools.takewhile(lambda value: scores[value] == scores[c], inwards))
    edge = "smallest" if c == tried[0] else "largest"
    grid = ", ".join(f"{value:g}" for value in tried)
    if len(plateau) > 1:
        logger.info("species probe: C=%g, the %s of the grid tried (%s), scores as C=%g on held-out train: the "
                    "choice of C does not matter here, nothing to do", c, edge, grid, plateau[-1])
        return
    logger.warning(
        "species probe: the best C on held-out train (%g) is the %s of the grid tried (%s), so a C past it might "
        "score higher; the species accuracy is reported with C=%g (results.json: c_selection). To check, rerun "
        "the evaluation with --probe-c %g", c, edge, grid, c, c / 10 if edge == "smallest" else c * 10,
    )


def _model_info(model: Any, name: str, lda: dict[str, Any] | None = None) -> dict[str, Any]:
    """What was evaluated, for ``results.json``; ``lda``: the genus LDA's fit record (``kmer-lda``)."""
    from barcodemae.inference import KmerFrequencyEmbedder

    if isinstance(model, KmerFrequencyEmbedder) and lda is not None:
        return {
            "name": name, "kind": "kmer_lda", "k": model.k, "dim": lda["n_components"],
            "num_parameters": lda["num_features"] * lda["n_components"], "lda": lda,
        }
    if isinstance(model, KmerFrequencyEmbedder):
        return {"name": name, "kind": "kmer_frequency", "k": model.k, "dim": model.dim, "num_parameters": 0}
    config = model.config
    return {
        "name": name,
        "kind": "huggingface",
        "model_type": getattr(config, "model_type", None),
        "class": type(model).__name__,
        "hidden_size": int(config.hidden_size),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "pretraining_objective": getattr(config, "pretraining_objective", None),
    }


@dataclass(frozen=True)
class EvaluationSettings(EmbeddingSettings):
    """How an evaluation runs, in one place: ``eval/run.py``'s flags (same names), :func:`run_evaluation`'s keyword
    arguments and the ``settings`` record of ``results.json`` (:meth:`record`).

    The embedding's own (batch size, device, dtype, pooling, layer, frames, progress, remote-code policy) are those of
    :class:`~barcodemae.embedding_settings.EmbeddingSettings`, with 256 barcodes a batch; ``layer=None``,
    ``pooling=None`` and ``frames=None`` mean the model's own embedding (:func:`~barcodemae.inference.pooled_layer`),
    recorded as used.
    ``probe_c="auto"`` chooses the probe's C on a held-out fifth of ``train``; ``knn_k``: the k of the open-world
    genus k-NN (any sequence of positive integers, kept as a tuple); ``lda_solver``: the ``kmer-lda`` baseline's
    (:data:`~barcodemae.eval.protocol_options.LDA_SOLVERS`). The fine-tuning (``finetune_epochs > 0``) runs on the
    embedding's device, dtype and remote-code policy with its own batch size.
    """

    batch_size: int = 256
    kmer_k: int = 4
    lda_solver: str = "svd"
    postprocess: str = "none"
    queries: str = "test"
    max_per_split: int | None = None
    seed: int = 0
    reducer: str = "auto"
    n_components: int = 50
    linkage: str = "ward"
    probe_c: float | str = "auto"
    probe_max_iter: int = 500
    knn_k: tuple[int, ...] = KNN_K
    finetune_epochs: int = 0
    finetune_learning_rate: float = 1e-4
    finetune_batch_size: int = FINETUNE_BATCH_SIZE
    plots: bool = True

    NOT_RECORDED: ClassVar[tuple[str, ...]] = ("plots", "progress", "trust_remote_code")
    """How the run was shown or allowed to run, not what it measured."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.postprocess not in POSTPROCESSING:
            raise ValueError(f"postprocess must be one of {POSTPROCESSING}, got {self.postprocess!r}")
        if self.lda_solver not in LDA_SOLVERS:
            raise ValueError(f"lda_solver must be one of {LDA_SOLVERS}, got {self.lda_solver!r}")
        if not self.knn_k or any(not isinstance(k, (int, np.integer)) or k < 1 for k in self.knn_k):
            raise ValueError(f"knn_k must be positive integers, got {self.knn_k!r}")
        object.__setattr__(self, "knn_k", tuple(int(k) for k in self.knn_k))  # a flag's list equals the default
        eval_splits(self.queries)

    def record(self) -> dict[str, Any]:
        """The settings that shaped the numbers, for ``results.json`` (tuples as lists, as JSON reads them back)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
            if key not in self.NOT_RECORDED
        }


def requested_settings(
    model: str | Path | None, data: str | Path | None, output_dir: str | Path | None, baseline: str | None,
    settings: EvaluationSettings | None, overrides: dict[str, Any],
) -> EvaluationSettings:
    """:func:`run_evaluation`'s settings (``settings`` with ``overrides`` applied), once its arguments are checked:
    a ``ValueError`` / ``TypeError`` naming the problem before any work."""
    unknown = sorted(set(overrides) - {f.name for f in fields(EvaluationSettings)})
    if unknown:
        raise TypeError(f"run_evaluation got unknown settings {unknown}; see EvaluationSettings")
    s = replace(settings or EvaluationSettings(), **overrides)
    if data is None or output_dir is None:
        raise ValueError("run_evaluation needs data (a BIOSCAN-5M CSV) and output_dir")
    if (model is None) == (baseline is None):
        raise ValueError(f"give exactly one of model (a model folder or hub name) and baseline {BASELINES}")
    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; available: {', '.join(BASELINES)}")
    if s.finetune_epochs and baseline is not None:
        raise ValueError("fine-tuning needs a model folder; the k-mer baseline has nothing to fine-tune")
    if baseline is not None:
        s.check_unset(("pooling", "layer", "frames"), "the k-mer baseline, which counts every window of a barcode,")
    return s


def fine_tuned_species_accuracy(model: str | Path, frame: pd.DataFrame, s: EvaluationSettings) -> dict[str, Any]:
    """The closed-world species task by fine-tuning the whole encoder (:mod:`barcodemae.eval.finetune`) on the
    key split's labelled rows and scoring the closed-world query split's, beside the linear probe."""
    from barcodemae.eval.finetune import fine_tune_classifier

    key_split, closed_split, _ = eval_splits(s.queries)
    train_rows, test_rows = _labelled(frame, key_split, "species"), _labelled(frame, closed_split, "species")
    barcodes, species = frame["dna_barcode"].to_numpy(dtype=object), frame["species"].to_numpy(dtype=object)
    return fine_tune_classifier(
        model,
        barcodes[train_rows].tolist(),
        species[train_rows],
        barcodes[test_rows].tolist(),
        species[test_rows],
        epochs=s.finetune_epochs,
        learning_rate=s.finetune_learning_rate,
        seed=s.seed,
        settings=EmbeddingSettings(batch_size=s.finetune_batch_size, device=s.device, dtype=s.dtype,
                                   progress=s.progress, trust_remote_code=s.trust_remote_code),
    )


def run_evaluation(
    model: str | Path | None = None,
    data: str | Path | None = None,
    output_dir: str | Path | None = None,
    *,
    baseline: str | None = None,
    settings: EvaluationSettings | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Evaluate a model folder (or a ``baseline``: ``"kmer"``, ``"kmer-lda"``) on a BIOSCAN-5M CSV; write and
    return the results.

    ``output_dir`` receives ``results.json``, ``report.md`` and the plots (skipped when matplotlib is missing
    or ``plots=False``). Returns the content of ``results.json``. ``finetune_epochs > 0`` adds the closed-world
    species accuracy of the fully fine-tuned encoder (:mod:`barcodemae.eval.finetune`) next to the linear probe.
    ``settings`` (default :class:`EvaluationSettings`) with any of its fields overridden by keyword, e.g.
    ``run_evaluation(model, data, out, reducer="pca", plots=False)``. ``trust_remote_code``: whether a non-BarcodeMAE
    model's own code may run (default: no, as in ``transformers``; see :func:`~barcodemae.inference.load_pretrained`).
    """
    from barcodemae.eval.metrics import per_class_accuracy
    from barcodemae.inference import (
        KmerFrequencyEmbedder,
        embed_barcodes,
        load_encoder,
        model_frames,
        model_pooling,
        pooled_layer,
    )

    s = requested_settings(model, data, output_dir, baseline, settings, overrides)
    check_writable_folder(output_dir)  # before the embedding and the metrics, which may take long
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if baseline is not None:
        encoder, tokenizer = KmerFrequencyEmbedder(s.kmer_k), None
        name = f"{s.kmer_k}-mer frequency {'genus LDA ' if baseline == 'kmer-lda' else ''}baseline"
    else:
        encoder, tokenizer = load_encoder(model, trust_remote_code=s.trust_remote_code)
        name = str(model)
        if s.layer is None:
            s = replace(s, layer=pooled_layer(encoder))  # recorded as used
        if s.pooling is None:
            s = replace(s, pooling=model_pooling(encoder))
        if s.frames is None:
            s = replace(s, frames=model_frames(encoder))
    min_length = max(1, int(getattr(tokenizer, "k", 1) or 1))
    frame, data_info = load_eval_splits(
        data, max_per_split=s.max_per_split, seed=s.seed, min_length=min_length, queries=s.queries
    )
    timings["load_s"] = time.perf_counter() - started

    started = time.perf_counter()
    embeddings = embed_barcodes(encoder, tokenizer, frame["dna_barcode"].tolist(), **s.forward_options(),
                                progress=s.progress)
    timings["embed_s"] = time.perf_counter() - started
    lda = None
    if baseline == "kmer-lda":
        started = time.perf_counter()
        embeddings, lda = _genus_lda_on_keys(frame, embeddings, s)
        timings["lda_fit_s"] = time.perf_counter() - started

    started = time.perf_counter()
    metrics, details = evaluate_embeddings(
        frame,
        embeddings,
        reducer=s.reducer,
        n_components=s.n_components,
        linkage=s.linkage,
        probe_c=s.probe_c,
        probe_max_iter=s.probe_max_iter,
        seed=s.seed,
        postprocess=s.postprocess,
        queries=s.queries,
        knn_k=s.knn_k,
    )
    timings["metrics_s"] = time.perf_counter() - started
    if s.finetune_epochs > 0:
        started = time.perf_counter()
        metrics["closed_world_species"]["fine_tune"] = fine_tuned_species_accuracy(model, frame, s)
        timings["finetune_s"] = time.perf_counter() - started

    output = Path(output_dir)  # created by check_writable_folder before the work
    genus_accuracy = per_class_accuracy(details["genus_true"], details["genus_predicted"])
    results: dict[str, Any] = {
        "protocol": "BIOSCAN-5M (closed-world species probe, open-world genus 1-NN, BIN reconstruction AMI)",
        "model": _model_info(encoder, name, lda),
        "data": data_info,
        "metrics": metrics,
        "open_world_genus_accuracy_per_genus": genus_accuracy,
        "settings": {**s.record(), "embedding_dim": int(embeddings.shape[1])},
        "timings": timings,
        "environment": {"python": platform.python_version()},
    }
    if s.plots:
        from barcodemae.eval.plots import write_plots

        results["plots"] = write_plots(
            output, frame, embeddings, details, genus_accuracy, reducer=s.reducer, seed=s.seed
        )
    (output / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=_json_default))
    from barcodemae.eval.report import write_report

    write_report(output / "report.md", results)
    return results


def _genus_lda_on_keys(
    frame: pd.DataFrame, frequencies: np.ndarray, settings: EvaluationSettings
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``kmer-lda`` embeddings (R, C) of every row of ``frame`` from its k-mer ``frequencies`` (R, 4**k): the
    genus LDA is fitted on the keys (``train`` rows with a genus) only, so no query row shapes the projection.
    Returns them and the fit's record (split, number of keys and genera, k, solver)."""
    from barcodemae.eval.baselines import genus_lda_embeddings

    key_split = eval_splits(settings.queries)[0]
    keys = _labelled(frame, key_split, "genus")
    genus = frame["genus"].to_numpy(dtype=object)
    embeddings, info = genus_lda_embeddings(frequencies, genus, keys, solver=settings.lda_solver)
    return embeddings, {"fitted_on": key_split, "kmer_k": settings.kmer_k, **info}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _probe_c(value: str) -> float | str:
    """``--probe-c``: a positive number, or ``auto``."""
    if value == "auto":
        return value
    try:
        c = float(value)
    except ValueError:
        c = float("nan")
    if not c > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number or 'auto', got {value!r}")
    return c


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """``eval/run.py``'s parser, also ``barcodemae evaluate``'s (``prog``: the command's name in ``--help``)."""
    parser = CommandParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", help="model folder (save_pretrained) or hub name; any AutoModel encoder")
    parser.add_argument(
        "--baseline", choices=BASELINES,
        help="evaluate a baseline instead of a model: kmer (k-mer frequencies, no learning) or kmer-lda (the same "
        "projected by a linear discriminant analysis fitted on the train keys' genus labels)",
    )
    parser.add_argument("--kmer-k", type=int, help="k of the k-mer frequency baselines")
    parser.add_argument(
        "--lda-solver", choices=LDA_SOLVERS,
        help="scikit-learn LDA solver of the kmer-lda baseline (eigen: with Ledoit-Wolf shrinkage)",
    )
    parser.add_argument("--data", required=True, help="BIOSCAN-5M metadata CSV with train, test and test_unseen")
    parser.add_argument("--output", required=True, help="folder for results.json, report.md and the plots")
    add_embedding_flags(parser, EvaluationSettings())
    parser.add_argument(
        "--postprocess", choices=POSTPROCESSING,
        help="transform fitted on the train embeddings (the keys) before every metric: none (the protocol, "
        "default), center, or whiten (PCA-whitening)",
    )
    parser.add_argument(
        "--queries", choices=tuple(QUERY_SPLITS),
        help="query splits: test (test and test_unseen: the reported numbers, default) or validation (val and "
        "val_unseen: for choosing a recipe or checkpoint without looking at test); the keys are train either way",
    )
    parser.add_argument("--max-per-split", type=int, help="random subset of each split (quick runs)")
    parser.add_argument("--seed", type=int, help="seed of subsets, probe split and clustering")
    parser.add_argument(
        "--reducer",
        choices=["auto", "umap", "pca", "none"],
        help="reduction before clustering (auto: UMAP when umap-learn is installed, else PCA)",
    )
    parser.add_argument("--n-components", type=int, help="dimensions kept by the reducer")
    parser.add_argument("--linkage", choices=["ward", "average", "complete", "single"], help="agglomerative linkage")
    parser.add_argument(
        "--probe-c", type=_probe_c,
        help="linear probe inverse L2 strength (sklearn's C), or 'auto' (default): the best of "
        f"{', '.join(f'{c:g}' for c in PROBE_C_GRID)} on a held-out fifth of train",
    )
    parser.add_argument("--probe-max-iter", type=int, help="L-BFGS iterations of the linear probe")
    parser.add_argument(
        "--knn-k", type=int, nargs="+", metavar="K",
        help="k of the open-world genus k-NN (majority of the k nearest train keys, ties to the nearest) reported "
        "beside the protocol's 1-NN",
    )
    parser.add_argument(
        "--finetune-epochs", type=int, help="also fine-tune the whole encoder for species (0: off)"
    )
    parser.add_argument(
        "--finetune-lr", dest="finetune_learning_rate", type=float,
        help="peak learning rate of the fine-tuning",
    )
    parser.add_argument("--finetune-batch-size", type=int, help="batch of the fine-tuning")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the figures")
    # The defaults are EvaluationSettings' (the one place they are written); --help shows them.
    parser.set_defaults(**{f.name: f.default for f in fields(EvaluationSettings)})
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``eval/run.py`` and ``barcodemae evaluate`` (``prog``, the name its usage and errors give): expected failures
    (bad data, missing model, unwritable output) are one line on stderr and exit status 2."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if (args.model is None) == (args.baseline is None):
        parser.error("give exactly one of --model and --baseline")
    return report_errors(prog or "eval/run.py", lambda: _run(args, prog))


def _run(args: argparse.Namespace, prog: str | None) -> int:
    results = run_evaluation(
        args.model, args.data, args.output, baseline=args.baseline, settings=EvaluationSettings.from_args(args)
    )
    print(json.dumps(results["metrics"]["headline"], indent=2))
    print_ending(evaluation_ending(results, output_dir=args.output, model=args.model, data=args.data,
                                  baseline=args.baseline, prog=prog))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
