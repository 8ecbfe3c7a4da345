"""ENBED error detection and read correction (issue #15): the per-token model, the token-level labels of corrupted
reads and back, a tiny model that learns to find an inserted base, remote-code loading, and eval/qc.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from barcodemae.qc import (
    INSERTED,
    CorruptedRead,
    ErrorEvent,
    ErrorRates,
    encode_reads,
    inject_errors,
    read_predictions,
    token_batch,
)
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import EnbedForErrorDetection, enbed_config

ARCHITECTURE = {"hidden_size": 32, "num_hidden_layers": 2, "num_decoder_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64, "dropout": 0.0, "local_radius": 16, "global_block_size": 4}


def tiny_detector(seed: int = 0, **overrides) -> EnbedForErrorDetection:
    torch.manual_seed(seed)
    fields = BarcodeTokenizer.char().model_config_kwargs()
    return EnbedForErrorDetection(enbed_config(fields, 8, **{**ARCHITECTURE, **overrides})).eval()


def random_barcodes(count: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, length)].tobytes().decode() for _ in range(count)]


def as_tensors(batch) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(value) for key, value in batch.as_dict().items()}


@pytest.fixture(scope="module")
def tokenizer() -> BarcodeTokenizer:
    return BarcodeTokenizer.char()


@pytest.fixture(scope="module")
def corrupted_reads() -> list[CorruptedRead]:
    rates = ErrorRates(substitution=0.03, insertion=0.02, deletion=0.02, homopolymer=0.3, n_run=0.01,
                       clean_fraction=0.25)
    return inject_errors(random_barcodes(24, 120, seed=1) + random_barcodes(4, 30, seed=2), rates, seed=3)


def edge_read() -> CorruptedRead:
    """An insertion before the first base and a deletion after the last one."""
    original = "ACGTTGCA"
    read = "G" + original[:-1]
    labels = np.zeros(len(read), np.int8)
    labels[0] = INSERTED
    deletion = np.zeros(len(read) + 1, bool)
    deletion[-1] = True
    events = (ErrorEvent("insertion", 0, 0, "", "G"), ErrorEvent("deletion", len(read), len(original) - 1, "A", ""))
    return CorruptedRead(read, original, labels, deletion, events)


def test_token_labels_follow_the_cls_read_sep_layout(tokenizer):
    batch = token_batch([edge_read(), CorruptedRead.untouched("ACG")], tokenizer)
    assert batch.input_ids.shape == (2, 10)
    assert batch.input_ids[0].tolist() == [2, 7, 5, 6, 7, 8, 8, 7, 6, 3]  # [CLS] G A C G T T G C [SEP]
    assert batch.input_ids[1].tolist() == [2, 5, 6, 7, 3, 0, 0, 0, 0, 0]
    assert batch.attention_mask[1].tolist() == [1] * 5 + [0] * 5
    assert batch.base_labels[0].tolist() == [-100, INSERTED, 0, 0, 0, 0, 0, 0, 0, -100]
    assert batch.deletion_labels[0].tolist() == [-100, 0, 0, 0, 0, 0, 0, 0, 0, 1]  # [SEP] carries the end
    assert batch.base_labels[1].tolist() == [-100, 0, 0, 0] + [-100] * 6
    assert batch.deletion_labels[1].tolist() == [-100, 0, 0, 0, 0] + [-100] * 5


def test_token_labels_round_trip(tokenizer, corrupted_reads):
    reads = [*corrupted_reads, edge_read()]
    assert any(read.has_errors for read in reads) and any(not read.has_errors for read in reads)
    batch = token_batch(reads, tokenizer)
    labels, deletions = read_predictions(batch.base_labels, batch.deletion_labels == 1, [len(r.read) for r in reads])
    for read, label, deletion in zip(reads, labels, deletions, strict=True):
        np.testing.assert_array_equal(label, read.base_labels)
        np.testing.assert_array_equal(deletion, read.deletion_after)
    # the tokenizer gives the same ids where its cleaning changes nothing (no N at an end, <= max_bp)
    plain = [read.read for read in reads if not read.read.startswith("N") and not read.read.endswith("N")]
    ids, mask = encode_reads(plain, tokenizer)
    expected = tokenizer(plain, padding=True, return_tensors="np")
    np.testing.assert_array_equal(ids, expected["input_ids"])
    np.testing.assert_array_equal(mask, expected["attention_mask"])


def test_long_reads_and_terminal_n_are_kept_and_bad_letters_name_the_record(tokenizer):
    long_read = "ACGT" * 180 + "NN"  # 722 bp: the tokenizer would truncate at 660 bp and trim the N run
    ids, mask = encode_reads([long_read], tokenizer)
    assert ids.shape == (1, 724) and mask.all() and ids[0, -3:].tolist() == [19, 19, 3]
    with pytest.raises(ValueError, match=r"rec-2: 'x' at position 3 .*cannot be represented"):
        encode_reads(["ACGT", "ACGT", "ACGxT"], tokenizer, record_ids=["rec-0", "rec-1", "rec-2"])
    with pytest.raises(ValueError, match="character tokenizer"):
        encode_reads(["ACGT"], BarcodeTokenizer.kmer(k=4))


def test_shapes_and_loss_over_labelled_tokens_only(tokenizer, corrupted_reads):
    model = tiny_detector()
    batch = as_tensors(token_batch(corrupted_reads[:6], tokenizer))
    out = model(**batch)
    count, width = batch["input_ids"].shape
    assert out.base_logits.shape == (count, width, 4) and out.deletion_logits.shape == (count, width)
    assert out.error_score.shape == (count,)
    base, deletion = batch["base_labels"], batch["deletion_labels"]
    expected_base = F.cross_entropy(out.base_logits[base != -100], base[base != -100])
    expected_deletion = F.binary_cross_entropy_with_logits(out.deletion_logits[deletion != -100],
                                                           deletion[deletion != -100].float())
    torch.testing.assert_close(out.base_loss, expected_base)
    torch.testing.assert_close(out.deletion_loss, expected_deletion)
    torch.testing.assert_close(out.loss, expected_base + expected_deletion)
    # ignoring a whole read gives the loss of the others; padding never counts
    ignored = {**batch, "base_labels": base.clone(), "deletion_labels": deletion.clone()}
    ignored["base_labels"][0] = -100
    ignored["deletion_labels"][0] = -100
    rest = {key: value[1:] for key, value in batch.items()}
    torch.testing.assert_close(model(**ignored).loss, model(**rest).loss)
    assert model(**{k: v for k, v in batch.items() if k == "input_ids" or k == "attention_mask"}).loss is None


def test_error_label_weight_multiplies_the_terms_of_errors(tokenizer, corrupted_reads):
    model = tiny_detector()
    batch = as_tensors(token_batch(corrupted_reads[:6], tokenizer))
    plain = model(**batch)
    model.config.error_label_weight = 20.0
    weighted = model(**batch)
    base, deletion = batch["base_labels"], batch["deletion_labels"]
    assert (base > 0).any() and (deletion == 1).any()  # the batch holds errors of both kinds
    labelled = base != -100
    per_base = F.cross_entropy(weighted.base_logits[labelled], base[labelled], reduction="none")
    factor = torch.where(base[labelled] > 0, 20.0, 1.0)
    torch.testing.assert_close(weighted.base_loss, (per_base * factor).sum() / labelled.sum())
    boundary = deletion != -100
    per_boundary = F.binary_cross_entropy_with_logits(
        weighted.deletion_logits[boundary], deletion[boundary].float(), reduction="none"
    )
    factor = torch.where(deletion[boundary] == 1, 20.0, 1.0)
    torch.testing.assert_close(weighted.deletion_loss, (per_boundary * factor).sum() / boundary.sum())
    assert weighted.loss > plain.loss
    torch.testing.assert_close(weighted.error_score, plain.error_score)  # the scores do not depend on the loss


def test_error_score_is_a_probability_of_any_error(tokenizer, corrupted_reads):
    model = tiny_detector()
    batch = as_tensors(token_batch(corrupted_reads[:4], tokenizer))
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert ((out.error_score >= 0) & (out.error_score <= 1)).all()
    # direct product over base tokens (P correct) and boundary tokens (P no deletion)
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    boundary = mask & (ids != 2)
    base = boundary & (ids != 3)
    p_correct = out.base_logits.softmax(-1)[..., 0]
    p_no_deletion = 1 - out.deletion_logits.sigmoid()
    direct = 1 - (
        torch.where(base, p_correct, 1).double().prod(-1) * torch.where(boundary, p_no_deletion, 1).double().prod(-1)
    )
    torch.testing.assert_close(out.error_score.double(), direct, atol=1e-5, rtol=1e-4)
    clean = torch.where(base, p_correct, 1).double().log().sum(-1) + torch.where(boundary, p_no_deletion, 1).double(
    ).log().sum(-1)
    torch.testing.assert_close(out.clean_log_probability.double(), clean, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        for head in (model.base_head, model.deletion_head):
            head.weight.zero_()
        model.base_head.bias.copy_(torch.tensor([30.0, -30.0, -30.0, -30.0]))
        model.deletion_head.bias.fill_(-30.0)
        assert model(**batch).error_score.max() < 1e-6  # certain that every base is correct: ~0
        model.deletion_head.bias.fill_(0.0)  # a coin flip at every boundary: certainly some error
        saturated = model(**batch)
        assert saturated.error_score.min() > 0.99
        # the score rounds to 1 for every read, the log-probability still ranks them by length (one coin per boundary)
        boundaries = boundary.sum(-1).double()
        torch.testing.assert_close(saturated.clean_log_probability.double(), boundaries * math.log(0.5))


def planted_insertions(barcodes: list[str], count: int, rng: np.random.Generator) -> list[CorruptedRead]:
    """Copies of ``barcodes`` (over ``A`` / ``C``) with one inserted ``G`` or ``T`` at a random position."""
    reads = []
    for _ in range(count):
        original = barcodes[rng.integers(len(barcodes))]
        position = int(rng.integers(0, len(original) + 1))
        base = "GT"[rng.integers(2)]
        read = original[:position] + base + original[position:]
        labels = np.zeros(len(read), np.int8)
        labels[position] = INSERTED
        reads.append(CorruptedRead(read, original, labels, np.zeros(len(read) + 1, bool),
                                   (ErrorEvent("insertion", position, position, "", base),)))
    return reads


def test_a_tiny_model_learns_to_find_a_planted_insertion(tokenizer):
    """The planted base is one the barcodes never contain, so the task is learnable in seconds: this checks that
    labels line up with tokens and the heads train. (An insertion that only breaks a periodic barcode's pattern
    needs context and was not learnt by this 32-wide model within 150 steps: ~10% found.)"""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    barcodes = ["".join(np.random.default_rng(seed).choice(list("AC"), 40)) for seed in (7, 8, 9)]
    model = tiny_detector(seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):
        batch = as_tensors(token_batch(planted_insertions(barcodes, 16, rng), tokenizer))
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = planted_insertions(barcodes, 64, np.random.default_rng(1))
    batch = as_tensors(token_batch(held_out, tokenizer))
    with torch.no_grad():
        out = model(**batch)
    inserted_probability = out.base_logits.softmax(-1)[..., INSERTED]
    inserted_probability[batch["base_labels"] == -100] = -1
    found = inserted_probability.argmax(-1) == (batch["base_labels"] == INSERTED).float().argmax(-1)
    assert found.float().mean() > 0.9, found.float().mean()
    assert out.error_score.min() > 0.5  # every held-out read has an error


def test_saved_detector_loads_in_plain_transformers_with_remote_code(tmp_path, tokenizer, corrupted_reads):
    model = tiny_detector()
    model.save_pretrained(tmp_path / "qc")
    config = json.loads((tmp_path / "qc" / "config.json").read_text())
    assert config["auto_map"] == {"AutoModelForTokenClassification": "modeling_enbed.EnbedForErrorDetection"}
    copied = (tmp_path / "qc" / "modeling_enbed.py").read_text()
    imported = {line.split()[1].split(".")[0] for line in copied.splitlines() if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "copy", "dataclasses", "typing", "torch", "transformers"}, imported
    batch = as_tensors(token_batch(corrupted_reads[:3], tokenizer))
    with torch.no_grad():
        reference = model(**batch)
    torch.save({"batch": batch, "score": reference.error_score, "logits": reference.base_logits}, tmp_path / "ref.pt")
    script = f"""
import sys, torch
from transformers import AutoModelForTokenClassification
model = AutoModelForTokenClassification.from_pretrained({str(tmp_path / 'qc')!r}, trust_remote_code=True).eval()
ref = torch.load({str(tmp_path / 'ref.pt')!r})
with torch.no_grad():
    out = model(**ref["batch"])
torch.testing.assert_close(out.base_logits, ref["logits"])
torch.testing.assert_close(out.error_score, ref["score"])
assert not any(name.startswith(("barcodemae", "modeling_barcodemae")) for name in sys.modules), "our code ran"
print(type(model).__name__)
"""
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["EnbedForErrorDetection"]


def test_detector_loads_the_encoder_of_an_enbed_pretraining_folder(tmp_path):
    from modeling_barcodemae import EnbedForConditionalGeneration

    torch.manual_seed(0)
    fields = BarcodeTokenizer.char().model_config_kwargs()
    pretrained = EnbedForConditionalGeneration(enbed_config(fields, 8, **ARCHITECTURE))
    pretrained.save_pretrained(tmp_path / "enbed")
    detector = EnbedForErrorDetection.from_pretrained(tmp_path / "enbed")
    for (name, loaded), (_, reference) in zip(detector.encoder.named_parameters(),
                                              pretrained.encoder.named_parameters(), strict=True):
        assert torch.equal(loaded, reference), name
    assert torch.equal(detector.shared.weight, pretrained.shared.weight)
    assert detector.encoder.embed_tokens.weight is detector.shared.weight
    assert detector.base_head.bias.abs().max() == 0 and 0 < detector.base_head.weight.std() < 0.5


def test_edit_distance_and_corrections_are_strings_of_bases(tokenizer):
    from eval.qc import edit_distance, generate_corrections
    from modeling_barcodemae import EnbedForConditionalGeneration

    pairs = [("", ""), ("ACGT", ""), ("", "AC"), ("ACGT", "ACGT"), ("ACGT", "AGT"), ("kitten", "sitting"),
             ("GATTACA", "GCATGCT"), ("AAAA", "TTTTT")]
    assert [edit_distance(a, b) for a, b in pairs] == [0, 4, 2, 0, 1, 3, 4, 5]
    torch.manual_seed(0)
    fields = BarcodeTokenizer.char().model_config_kwargs()
    model = EnbedForConditionalGeneration(enbed_config(fields, 8, **ARCHITECTURE)).eval()
    reads = ["ACGTACGTAC", "ACGTNACG", "GGGCCCAAATTT"]
    for beams in (1, 2):
        corrected = generate_corrections(model, reads, tokenizer, num_beams=beams, batch_size=2, max_extra_bases=4)
        assert len(corrected) == 3
        assert all(set(text) <= set("ACGTRYSWKMBDHVN") and len(text) <= len(read) + 4
                   for text, read in zip(corrected, reads, strict=True))


TINY_PRESET = """objective: enbed
tokenizer: char
hidden_size: 32
num_hidden_layers: 1
num_attention_heads: 2
intermediate_size: 64
decoder_num_hidden_layers: 1
dropout: 0.0
encoder_attention: local
local_radius: 16
global_block_size: 4
num_sentinels: 8
"""


def test_eval_qc_end_to_end_writes_model_and_baseline_rows(sim_csv, tmp_path):
    preset = tmp_path / "qc-tiny.yaml"
    preset.write_text(TINY_PRESET)
    command = [sys.executable, "eval/qc.py", "--model", "none", "--preset", str(preset), "--data", str(sim_csv),
               "--output", str(tmp_path / "qc"), "--steps", "3", "--batch-size", "4", "--train-barcodes", "16",
               "--test-barcodes", "12", "--correction-steps", "2", "--correction-reads", "2", "--num-beams", "2",
               "--substitution", "0.01", "--error-weight", "5", "--validation-barcodes", "8"]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=root, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "qc" / "results.json").read_text())
    assert results["data"]["test_genera"] >= 1 and results["data"]["test_barcodes"] == 12
    for method in ("model", "translation_baseline"):
        row = results["detection"][method]
        assert set(row["per_class"]) == {"substitution", "insertion", "deletion", "n"}
        assert 0 <= row["record_auroc"] <= 1 and row["detection"]["support"] > 0 and "f1" in row["verdict"]
    correction = results["correction"]
    assert set(correction) == {"reads", "unchanged", "greedy", "beam2"} and correction["reads"] == 2
    assert correction["unchanged"]["mean_edit_distance"] >= 0
    saved = json.loads((tmp_path / "qc" / "qc_model" / "config.json").read_text())
    assert saved["error_label_weight"] == 5.0
    threshold = results["verdict_threshold"]  # chosen on the validation reads, saved for `barcodemae qc`
    assert threshold["chosen_on"].startswith("best verdict F1 on 8 validation reads")
    assert saved["verdict_clean_nll_threshold"] == pytest.approx(threshold["clean_nll"])
    assert results["data"]["validation_barcodes"] == 8
    assert (tmp_path / "qc" / "correction_model" / "tokenizer.json").is_file()


def test_fine_tuning_reads_its_losses_without_a_requires_grad_warning():
    """eval/qc.py's loop read each loss with ``float(loss)``, which makes torch warn ("Converting a tensor with
    requires_grad=True to a scalar") in every run."""
    import warnings
    from types import SimpleNamespace

    from eval.qc import train

    class Quadratic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(loss=(self.weight * x).pow(2).sum())

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*requires_grad")
        losses = train(Quadratic(), lambda rng: {"x": torch.from_numpy(rng.normal(size=3)).float()}, steps=2,
                       learning_rate=0.1, warmup_ratio=0.0, weight_decay=0.0, seed=0, description="quadratic")
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
