"""`barcodemae qc --model`: the ENBED detector's columns and flag beside the translation check, rows in input order,
1-based positions, rejected records kept with their problem, FASTA / CSV.gz / BOLD TSV input, read correction, and
clear refusals. The model-free check alone: tests/test_qc_read_checks.py.

Most tests use a detector whose encoder passes each token's embedding straight through (attention and
feed-forward outputs zeroed), so its heads see the token alone; the embeddings and heads are set by hand so that
``R`` reads as substituted, ``Y`` as inserted, ``N`` as an ``N`` base and a base is missing before every ``W``.
Predictions are then known exactly, whatever the batching.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from barcodemae.cli import main
from barcodemae.qc import CORRECT, INSERTED, N_BASE, READ_CORRECTION_TASK, SUBSTITUTED, encode_reads
from barcodemae.qc.check_files import check_file, prepare_read
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import EnbedForConditionalGeneration, EnbedForErrorDetection, enbed_config

ARCHITECTURE = {"hidden_size": 32, "num_hidden_layers": 2, "num_decoder_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64, "dropout": 0.0, "local_radius": 16, "global_block_size": 4}
RULES = {"R": SUBSTITUTED, "Y": INSERTED, "N": N_BASE}
"""Letters the hand-set detector labels as errors; ``W`` (and optionally ``[SEP]``) carries a deletion."""


def save_with_tokenizer(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder)
    BarcodeTokenizer.char().save_pretrained(folder)
    return folder


def rule_detector(deletion_tokens: tuple[str, ...] = ("W",)) -> EnbedForErrorDetection:
    """The hand-set detector of the module docstring (``[SEP]`` in ``deletion_tokens``: a base missing at the end
    of every read)."""
    torch.manual_seed(0)
    tokenizer = BarcodeTokenizer.char()
    model = EnbedForErrorDetection(enbed_config(tokenizer.model_config_kwargs(), 8, **ARCHITECTURE)).eval()
    vocab = tokenizer.get_vocab()
    correct, deletion = 4, 3  # embedding directions besides those of the RULES letters (0, 1, 2)
    with torch.no_grad():
        for name, parameter in model.encoder.named_parameters():
            if name.endswith((".o.weight", ".wo.weight")):
                parameter.zero_()  # each layer adds nothing to the residual stream: output = norm(embedding)
        model.shared.weight.zero_()
        model.shared.weight[:, correct] = 1
        for direction, letter in enumerate(RULES):
            model.shared.weight[vocab[letter]] = 0
            model.shared.weight[vocab[letter], direction] = 1
        for token in deletion_tokens:
            model.shared.weight[vocab[token], deletion] = 1
        model.base_head.weight.zero_()
        model.base_head.bias.zero_()
        model.base_head.weight[CORRECT, correct] = 10
        for direction, label in enumerate(RULES.values()):
            model.base_head.weight[label, direction] = 10
        model.deletion_head.weight.zero_()
        model.deletion_head.bias.fill_(-20)
        model.deletion_head.weight[0, deletion] = 40
    return model


@pytest.fixture(scope="module")
def detector_folder(tmp_path_factory) -> Path:
    return save_with_tokenizer(rule_detector(), tmp_path_factory.mktemp("qc_model"))


@pytest.fixture(scope="module")
def correction_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = EnbedForConditionalGeneration(enbed_config(BarcodeTokenizer.char().model_config_kwargs(), 8,
                                                       **ARCHITECTURE)).eval()
    model.config.finetuning_task = READ_CORRECTION_TASK
    return save_with_tokenizer(model, tmp_path_factory.mktemp("correction_model"))


LONG = "ACGT" * 250 + "N"
RECORDS = [  # id, sequence as written, expected (verdict_by, substitutions, insertions, n_bases, deletions)
    ("clean-1", "ACGTACGTAC", ("", "", "", "", "")),
    ("lower|Genus species", "acgRacgtYacgNNac", ("ambiguous_bases;detector", "4", "9", "13;14", "")),
    ("gap-x", "ACGT-ACGX", (None, None, None, None, None)),
    ("missing-base", "ACGWTTACG", ("ambiguous_bases;detector", "", "", "", "4")),
    ("empty", "", (None, None, None, None, None)),
    ("stops", "TAAATAAATAA", ("stop_codons", "", "", "", "")),  # the detector finds nothing, the translation stops
    ("long", LONG, ("ambiguous_bases;detector", "", "", "1001", "")),
    ("clean-2", "GGCCTTAA", ("", "", "", "", "")),
]
"""Short reads: the tests give ``--min-length 0`` unless they are about the length check."""


def write_fasta(path: Path, records) -> Path:
    path.write_text("".join(f">{record_id} extra words\n{sequence}\n" for record_id, sequence, _ in records))
    return path


def read_output(path: Path, sep: str = ",") -> pd.DataFrame:
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def test_fasta_rows_in_input_order_with_1_based_positions_and_rejects(detector_folder, tmp_path, capsys):
    fasta = write_fasta(tmp_path / "reads.fasta", RECORDS)
    output = tmp_path / "qc.csv"
    code = main(["qc", "--model", str(detector_folder), "--input", str(fasta), "--output", str(output),
                 "--batch-size", "2", "--min-length", "0", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert {key: summary[key] for key in ("num_records", "clean", "has_errors", "rejected", "flagged_by")} == \
        {"num_records": 8, "clean": 2, "has_errors": 4, "rejected": 2,
         "flagged_by": {"stop_codons": 1, "ambiguous_bases": 3, "length": 0, "detector": 3}}
    table = read_output(output)
    assert list(table.columns) == ["id", "length", "verdict", "verdict_by", "frame", "stop_codons", "ambiguous_bases",
                                   "error_score", "substitutions", "insertions", "n_bases", "deletions", "problem"]
    assert table["id"].tolist() == ["clean-1", "lower", "gap-x", "missing-base", "empty", "stops", "long", "clean-2"]
    for (_, sequence, expected), row in zip(RECORDS, table.itertuples(), strict=True):
        verdict_by = expected[0]
        if verdict_by is None:
            assert row.verdict == "rejected" and row.verdict_by == row.error_score == row.frame == "" and row.problem
            continue
        assert (row.verdict, row.verdict_by) == ("has_errors" if verdict_by else "clean", verdict_by), row
        assert (row.substitutions, row.insertions, row.n_bases, row.deletions) == expected[1:], row
        assert int(row.length) == len(sequence) and row.problem == ""
        flagged = "detector" in verdict_by
        assert (float(row.error_score) > 0.99) if flagged else (float(row.error_score) < 1e-3)
    assert table.set_index("id").loc["gap-x", "problem"].startswith("non-IUPAC character(s) 'X' (first at base 8)")
    assert table.set_index("id").loc["empty", "problem"] == "empty sequence"
    assert table.set_index("id").loc["long", "length"] == "1001"  # not truncated at 660 bp, terminal N kept
    assert table.set_index("id").loc["stops", "stop_codons"] == "1"  # one stop in each frame: the first frame wins
    assert table.set_index("id").loc["stops", "frame"] == "1"
    assert table.set_index("id").loc["lower", "ambiguous_bases"] == "4;9;13;14"
    assert (table.drop(index=5)["stop_codons"] == "").all()
    assert not (tmp_path / "qc.csv.tmp").exists()


def test_the_threshold_saved_with_the_detector_is_the_default(tmp_path, capsys):
    model = rule_detector()
    model.config.verdict_clean_nll_threshold = 1e9  # as eval/qc.py saves its choice: here, nothing is an error
    folder = save_with_tokenizer(model, tmp_path / "strict")
    fasta = write_fasta(tmp_path / "reads.fasta", RECORDS)
    base = ["qc", "--model", str(folder), "--input", str(fasta), "--no-progress"]
    assert main([*base, "--output", str(tmp_path / "saved.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["flagged_by"]["detector"] == 0 and summary["clean_nll_threshold"] == 1e9
    assert main([*base, "--output", str(tmp_path / "given.csv"), "--threshold", "0.5"]) == 0  # a flag overrides it
    summary = json.loads(capsys.readouterr().out)
    assert summary["flagged_by"]["detector"] == 3 and summary["threshold"] == pytest.approx(0.5)


def test_a_deletion_at_the_end_is_length_plus_one_and_chunks_keep_the_order(tmp_path):
    folder = save_with_tokenizer(rule_detector(deletion_tokens=("W", "[SEP]")), tmp_path / "qc_model")
    records = [(f"r{i}", "ACGT" * (i % 4 + 1) + ("W" if i == 3 else ""), None) for i in range(7)]
    fasta = tmp_path / "reads.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write("".join(f">{record_id}\n{sequence}\n" for record_id, sequence, _ in records))
    summary = check_file(fasta, tmp_path / "qc.tsv", model_dir=folder, batch_size=2, chunk_size=3, progress=False)
    assert summary["flagged_by"]["detector"] == 7
    table = read_output(tmp_path / "qc.tsv", sep="\t")
    assert table["id"].tolist() == [record_id for record_id, _, _ in records]
    lengths = [len(sequence) for _, sequence, _ in records]
    assert table["length"].astype(int).tolist() == lengths
    expected = [f"{length + 1}" for length in lengths]
    expected[3] = f"{lengths[3]};{lengths[3] + 1}"  # before the final W, and after it
    assert table["deletions"].tolist() == expected


def test_csv_gz_with_splits_and_bold_tsv_with_another_marker(detector_folder, tmp_path, capsys):
    frame = pd.DataFrame({"processid": ["a", "b", "c", "d"], "dna_barcode": ["ACGT", "acgN", "ACGT", "ACG1"],
                          "split": ["test", "test", "train", "test"], "genus": ["G"] * 4})
    csv_path = tmp_path / "reads.csv.gz"
    frame.to_csv(csv_path, index=False, compression="gzip")
    output = tmp_path / "qc.tsv.gz"
    assert main(["qc", "--model", str(detector_folder), "--input", str(csv_path), "--output", str(output),
                 "--split", "test", "--min-length", "0", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["rejected"] == 1
    with gzip.open(output, "rt") as handle:
        assert handle.readline().startswith("id\tlength\tverdict\t")
    table = read_output(output, sep="\t")
    assert table["id"].tolist() == ["a", "b", "d"]
    assert table["verdict"].tolist() == ["clean", "has_errors", "rejected"]
    assert table["n_bases"].tolist() == ["", "4", ""]

    header = ["processid", "bin_uri", "phylum", "class", "order", "family", "subfamily", "genus", "species",
              "marker_code", "nuc"]
    rows = [["p1", "None"] + ["None"] * 7 + ["COI-5P", "ACGTRA"], ["p2", "None"] + ["None"] * 7 + ["ITS", "ACGT"]]
    bold = tmp_path / "bold.tsv"
    bold.write_text("\n".join("\t".join(fields) for fields in [header, *rows]) + "\n")
    summary = check_file(bold, tmp_path / "bold_qc.csv", model_dir=detector_folder, progress=False)
    assert (summary["has_errors"], summary["rejected"]) == (1, 1)
    table = read_output(tmp_path / "bold_qc.csv")
    assert table["substitutions"].tolist() == ["5", ""]
    assert table["problem"].tolist() == ["", "marker 'ITS' is not 'COI-5P'"]


def test_real_detector_scores_do_not_depend_on_batching(tmp_path):
    """Length-sorted, padded batches give each read what the model gives it alone (transient-global attention)."""
    torch.manual_seed(1)
    model = EnbedForErrorDetection(enbed_config(BarcodeTokenizer.char().model_config_kwargs(), 8,
                                                **ARCHITECTURE)).eval()
    with torch.no_grad():  # mostly "correct" and no deletion, so error scores spread over (0, 1)
        model.base_head.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
        model.deletion_head.bias.fill_(-5.0)
    folder = save_with_tokenizer(model, tmp_path / "random_qc")
    rng = np.random.default_rng(0)
    reads = ["".join(rng.choice(list("ACGTN"), length)) for length in (30, 7, 55, 12, 41)]
    fasta = write_fasta(tmp_path / "reads.fasta", [(f"r{i}", read, None) for i, read in enumerate(reads)])
    check_file(fasta, tmp_path / "qc.csv", model_dir=folder, batch_size=3, progress=False)
    table = read_output(tmp_path / "qc.csv")
    tokenizer = BarcodeTokenizer.char()
    scores = table["error_score"].astype(float)
    assert scores.min() > 0.05 and scores.max() < 0.999, scores
    with torch.no_grad():
        for read, row in zip(reads, table.itertuples(), strict=True):
            input_ids, attention_mask = encode_reads([read], tokenizer)  # one read, no padding
            out = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
            assert float(row.error_score) == pytest.approx(float(out.error_score[0]), abs=2e-6)
            labels = out.base_logits[0, 1:-1].argmax(-1).numpy()
            assert row.substitutions == ";".join(str(p + 1) for p in np.flatnonzero(labels == SUBSTITUTED))
            assert row.deletions == ";".join(str(p + 1) for p in np.flatnonzero(out.deletion_logits[0, 1:] > 0))


def test_correction_model_adds_a_corrected_column_of_bases(detector_folder, correction_folder, tmp_path, capsys):
    fasta = write_fasta(tmp_path / "reads.fasta", RECORDS)
    output = tmp_path / "qc.csv"
    assert main(["qc", "--model", str(detector_folder), "--input", str(fasta), "--output", str(output),
                 "--correction-model", str(correction_folder), "--num-beams", "2", "--min-length", "0",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["correction_model"] == str(correction_folder)
    table = read_output(output)
    assert list(table.columns)[-2:] == ["corrected", "problem"]
    for (_, sequence, _), row in zip(RECORDS, table.itertuples(), strict=True):
        if row.verdict == "clean":
            assert row.corrected == prepare_read(sequence)[0]  # not generated: the read itself
        elif row.verdict == "has_errors":
            # generated up to the batch's longest read + 16 (generate_corrections), LONG here
            assert set(row.corrected) <= set("ACGTRYSWKMBDHVN") and len(row.corrected) <= len(LONG) + 16
        else:
            assert row.corrected == ""


def test_a_pretraining_folder_as_correction_model_is_loaded_with_a_warning(detector_folder, tmp_path, caplog):
    torch.manual_seed(0)
    pretrained = EnbedForConditionalGeneration(enbed_config(BarcodeTokenizer.char().model_config_kwargs(), 8,
                                                            **ARCHITECTURE))
    folder = save_with_tokenizer(pretrained, tmp_path / "enbed")
    fasta = write_fasta(tmp_path / "reads.fasta", RECORDS[:2])
    with caplog.at_level(logging.WARNING, logger="barcodemae.qc.check_files"):
        check_file(fasta, tmp_path / "qc.csv", model_dir=detector_folder, correction_model=folder, progress=False)
    assert "not say the model was fine-tuned for read correction" in caplog.text


def test_bad_paths_and_wrong_model_folders_are_refused(detector_folder, kmer4_model_folder, tmp_path, capsys):
    fasta = write_fasta(tmp_path / "reads.fasta", RECORDS[:2])
    torch.manual_seed(0)
    pretraining = save_with_tokenizer(
        EnbedForConditionalGeneration(enbed_config(BarcodeTokenizer.char().model_config_kwargs(), 8, **ARCHITECTURE)),
        tmp_path / "enbed",
    )
    csv_path = tmp_path / "reads.csv"
    csv_path.write_text("processid,dna_barcode\na,ACGT\n")
    capsys.readouterr()
    cases = [
        (["--model", str(detector_folder), "--input", str(fasta), "--output", str(fasta)], "would overwrite the input"),
        (["--model", str(detector_folder), "--input", str(csv_path), "--output", str(csv_path)],
         "would overwrite the input"),
        (["--model", str(tmp_path / "nowhere"), "--input", str(fasta), "--output", str(tmp_path / "a.csv")],
         "no such model folder"),
        (["--model", str(pretraining), "--input", str(fasta), "--output", str(tmp_path / "a.csv")],
         "not an ENBED error detector (EnbedForErrorDetection), its config.json names EnbedForConditionalGeneration"),
        (["--model", str(kmer4_model_folder), "--input", str(fasta), "--output", str(tmp_path / "a.csv")],
         "python eval/qc.py --model <ENBED folder>"),
        (["--model", str(detector_folder), "--input", str(fasta), "--output", str(tmp_path / "a.csv"),
          "--correction-model", str(detector_folder)], "not an ENBED read-correction model"),
        (["--model", str(detector_folder), "--input", str(tmp_path / "missing.fasta"), "--output",
          str(tmp_path / "a.csv")], "no such file"),
        (["--model", str(detector_folder), "--input", str(fasta), "--output", str(tmp_path / "a.parquet")],
         "output must end in one of"),
        (["--model", str(detector_folder), "--input", str(fasta), "--output", str(tmp_path / "a.csv"),
          "--split", "test"], "needs a BIOSCAN-format CSV"),
        (["--model", str(detector_folder), "--input", str(fasta), "--output", str(tmp_path / "a.csv"),
          "--threshold", "1.5"], "threshold must be a probability"),
        (["--input", str(fasta), "--output", str(tmp_path / "a.csv"), "--threshold", "0.5"],
         "give the detector folder (--model) too"),
        (["--input", str(fasta), "--output", str(tmp_path / "a.csv"), "--min-length", "-1"],
         "min_length must be >= 0 bases"),
    ]
    for arguments, message in cases:
        assert main(["qc", *arguments, "--no-progress"]) == 2, arguments
        error = capsys.readouterr().err
        assert error.startswith("barcodemae qc: error: ") and message in error, (arguments, error)
        assert error.count("\n") == 1
    assert not (tmp_path / "a.csv").exists()
    assert fasta.read_text().startswith(">clean-1") and csv_path.read_text() == "processid,dna_barcode\na,ACGT\n"


def test_a_pickled_or_unfitting_detector_is_refused_before_loading(detector_folder, tmp_path, capsys, monkeypatch):
    """The ENBED folders of `barcodemae qc` get the checks of every model folder (barcodemae/model_folders.py)."""
    import shutil

    from safetensors.torch import load_file

    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    fasta = write_fasta(tmp_path / "reads.fasta", RECORDS[:2])
    pickled = tmp_path / "pickled"
    shutil.copytree(detector_folder, pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"a pickle would run code")
    (pickled / "model.safetensors").unlink()
    huge = tmp_path / "huge"
    shutil.copytree(detector_folder, huge)
    config = json.loads((huge / "config.json").read_text())
    (huge / "config.json").write_text(json.dumps({**config, "vocab_size": 10**9}))
    vocab = load_file(huge / "model.safetensors")["shared.weight"].shape[0]
    unfitting = ("config.json: does not fit the weights: it implies shared.weight of shape [1000000000, 32], "
                 f"model.safetensors holds shared.weight of shape [{vocab}, 32]")
    capsys.readouterr()
    for folder, message in [(pickled, "holds only pickled weights (pytorch_model.bin), which are not loaded"),
                            (huge, unfitting)]:
        assert main(["qc", "--model", str(folder), "--input", str(fasta), "--output", str(tmp_path / "a.csv"),
                     "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("barcodemae qc: error: ") and message in error and error.count("\n") == 1, error
    assert not (tmp_path / "a.csv").exists()
