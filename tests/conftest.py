"""Shared test fixtures: the real data in ../shared/data and small model configurations."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
sys.path.insert(0, str(REPO_ROOT / "bench"))  # the benchmark scripts are tested as modules
sys.path.insert(0, str(REPO_ROOT / "research"))  # and so are the research tools behind docs/results.md

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (real BOLD barcodes, BOLD TSVs, reference BPE tokenizers)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixture_csv(shared_data: Path) -> Path:
    return shared_data / "bold_coi" / "fixture.csv"


@pytest.fixture(scope="session")
def demo_csv(shared_data: Path) -> Path:
    return shared_data / "bold_coi" / "demo.csv.gz"


@pytest.fixture(scope="session")
def sim_csv(tmp_path_factory) -> Path:
    """A small simulated BIOSCAN-format CSV (no shared data needed)."""
    from barcodemae.simulation import write_simulated_dataset

    return write_simulated_dataset(
        tmp_path_factory.mktemp("sim") / "sim.csv", num_genera=6, specimens_per_species=12, seed=5
    )


def edit_keeping_size_and_mtime(path: Path, old: bytes, new: bytes) -> None:
    """Replace the first ``old`` with ``new`` (same length) and restore the modification time: a changed file as
    ``cp -p``, ``rsync -t`` or ``touch -r`` leave it, told apart from the original by its content only."""
    assert len(old) == len(new) and old != new
    stat = path.stat()
    content = path.read_bytes()
    assert old in content, f"{old!r} not in {path}"
    path.write_bytes(content.replace(old, new, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def settle(*paths: Path) -> None:
    """Date the files' last write an hour back, as an index's files are at its users' queries: a file written in the
    last seconds is hashed at every load (``barcodemae.checksums.SETTLED_NS``)."""
    for path in paths:
        os.utime(path, ns=(path.stat().st_atime_ns, time.time_ns() - 3600 * 10**9))


def count_file_hashes(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Files hashed by :func:`barcodemae.checksums.file_sha256`, by name, wherever the package imported it (the
    checksums, the data fingerprints and the loaders' cache keys all count)."""
    from barcodemae import checksums
    from barcodemae.data import bioscan5m, loaders

    counts: Counter = Counter()
    sha256 = checksums.file_sha256
    holders = [module for name, module in sys.modules.items()
               if name.startswith("barcodemae") and getattr(module, "file_sha256", None) is sha256]
    assert {loaders, bioscan5m, checksums} <= set(holders)
    for module in holders:
        monkeypatch.setattr(module, "file_sha256", lambda path: counts.update([Path(path).name]) or sha256(path))
    return counts


def tiny_config_kwargs(**overrides) -> dict:
    """A model small enough for unit tests (milliseconds per step on a CPU)."""
    kwargs = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "decoder_hidden_size": 32,
        "decoder_num_hidden_layers": 1,
        "decoder_num_attention_heads": 4,
        "decoder_intermediate_size": 64,
        "max_position_embeddings": 128,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(scope="session")
def kmer4_model_folder(tmp_path_factory) -> Path:
    """A tiny randomly initialised BarcodeMAE (4-mer, 700 positions) saved as training exports it."""
    from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeTokenizer

    torch.manual_seed(0)
    tokenizer = BarcodeTokenizer.kmer(k=4)
    config = BarcodeMAEConfig.from_tokenizer(tokenizer, **tiny_config_kwargs(max_position_embeddings=700))
    folder = tmp_path_factory.mktemp("kmer4_model")
    BarcodeMAEForPreTraining(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def kmer_profile_model(tmp_path_factory) -> Path:
    """An untrained encoder on overlapping 4-mers: its mean-pooled output is a random projection of the 4-mer
    profile, which (like the 4-mer baseline of the data README) separates genera without any training."""
    from barcodemae import BarcodeMAEConfig, BarcodeMAEModel, BarcodeTokenizer

    folder = tmp_path_factory.mktemp("model4")
    tokenizer = BarcodeTokenizer.kmer(k=4, stride=1)
    config = BarcodeMAEConfig(**tiny_config_kwargs(
        num_hidden_layers=1, hidden_size=64, intermediate_size=128, decoder_hidden_size=64,
        max_position_embeddings=tokenizer.model_max_length), vocab_size=len(tokenizer))
    torch.manual_seed(0)
    BarcodeMAEModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def mutate_bases(rng: np.random.Generator, sequence: str, share: float) -> str:
    """``sequence`` with about ``share`` of its bases replaced by another base: a relative, as barcodes are."""
    letters = list(sequence)
    for position in np.flatnonzero(rng.random(len(letters)) < share):
        letters[position] = rng.choice([base for base in "ACGT" if base != letters[position]])
    return "".join(letters)


def with_indels(rng: np.random.Generator, sequence: str, count: int, margin: int = 10) -> str:
    """``sequence`` with ``count`` single-base deletions and insertions (about half each) at distinct positions at
    least ``margin`` bases from either end: a read whose indels move it off its diagonal."""
    letters = list(sequence)
    for position in sorted(rng.choice(np.arange(margin, len(sequence) - margin), count, replace=False),
                           reverse=True):
        if position % 2:
            del letters[position]
        else:
            letters.insert(position, "A")
    return "".join(letters)

