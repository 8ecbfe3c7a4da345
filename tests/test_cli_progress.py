"""`--no-progress` hides every progress bar, the libraries' too (transformers' `Loading weights` / `Writing model
shards`, datasets' `Generating train split` and map bars), and restores the libraries' switches afterwards; a
missing or unnamed input is refused before the model loads, so no loading bar comes before the one-line error."""

from __future__ import annotations

import datasets
import pytest
import torch
from huggingface_hub.utils import are_progress_bars_disabled
from transformers.utils import logging as transformers_logging

from barcodemae import BarcodeMAEConfig, BarcodeMAEModel, BarcodeTokenizer, embed_files, index_embedders
from barcodemae.cli import main
from conftest import tiny_config_kwargs


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tokenizer = BarcodeTokenizer.kmer()
    torch.manual_seed(0)
    BarcodeMAEModel(BarcodeMAEConfig(**tiny_config_kwargs(), vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def library_bars_shown() -> tuple[bool, bool, bool]:
    return (transformers_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled(),
            not are_progress_bars_disabled())


def test_no_progress_hides_the_libraries_bars_and_restores_their_switches(model_folder, fixture_csv, tmp_path,
                                                                           capfd):
    fasta = tmp_path / "reads.fasta"  # a new file: datasets generates (and would draw) its split again
    fasta.write_text(">a\nAACATTATATTTTATTTTTGGAATTTGAGC\n>b\nAACATTATACTTTATTTTCGGAATTTGAGC\n")
    before = library_bars_shown()
    commands = [
        ["embed", "--model", str(model_folder), "--input", str(fasta), "--output", str(tmp_path / "e.npy")],
        ["identify", "build", "--model", str(model_folder), "--reference", str(fixture_csv), "--split", "train",
         "--output", str(tmp_path / "index")],
        ["identify", "query", "--index", str(tmp_path / "index"), "--input", str(fasta),
         "--output", str(tmp_path / "ids.csv")],
        ["export", "--checkpoint", str(model_folder), "--output", str(tmp_path / "export")],
    ]
    capfd.readouterr()
    for command in commands:
        assert main([*command, "--no-progress"]) == 0, command
        error = capfd.readouterr().err
        for bar in ("Loading weights", "Writing model shards", "Generating", "cleaning barcodes", "it/s]"):
            assert bar not in error, (command, error)
        assert library_bars_shown() == before


def test_missing_or_unnamed_input_is_refused_before_the_model_loads(model_folder, tmp_path, capfd, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(embed_files, "load_model", refuse)
    monkeypatch.setattr(index_embedders, "load_model", refuse)
    unnamed = tmp_path / "reads.seq"
    unnamed.write_text(">a\nACGT\n")
    cases = [
        (["embed", "--model", str(model_folder), "--input", str(tmp_path / "missing.fasta"), "--output",
          str(tmp_path / "e.npy")], "missing.fasta: no such file"),
        (["identify", "build", "--model", str(model_folder), "--reference", str(unnamed), "--output",
          str(tmp_path / "index")], "reads.seq: cannot tell the file format from its name"),
    ]
    for command, message in cases:
        assert main(command) == 2
        error = capfd.readouterr().err
        assert message in error and "Loading weights" not in error and error.count("\n") == 1, error
