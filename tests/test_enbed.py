"""ENBED (issue #15): the LongT5 config of the character tokenizer, a loss on the corrupted spans only, normalised by
the step's targets, folders that load in plain transformers, and train.py's whole path (probe, export, evaluation,
exact resume) with the span-corruption objective."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from barcodemae.masking.span_corruption import SpanCorruptionCollator
from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.training.arguments import parse_args
from barcodemae.training.checkpoints import list_checkpoints
from barcodemae.training.loop import run_training
from modeling_barcodemae import EnbedForConditionalGeneration, enbed_config

ARCHITECTURE = {"hidden_size": 32, "num_hidden_layers": 2, "num_decoder_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64, "dropout": 0.0}
TINY_ENBED = [
    "--preset", "enbed-tiny", "--objective", "enbed", "--tokenizer", "char", "--hidden_size", "32",
    "--num_hidden_layers", "1", "--decoder_num_hidden_layers", "1", "--num_attention_heads", "2",
    "--intermediate_size", "64",
    "--mask_ratio", "0.15", "--max_val_samples", "16", "--max_probe_keys", "48", "--logging_steps", "1",
    "--learning_rate", "3e-3", "--warmup_ratio", "0.2", "--mixed_precision", "no", "--local_radius", "16",
    "--global_block_size", "4", "--eval_reducer", "pca", "--eval_plots", "false",
]


def tiny_enbed(seed: int = 0, **overrides) -> EnbedForConditionalGeneration:
    torch.manual_seed(seed)
    fields = BarcodeTokenizer.char().model_config_kwargs()
    return EnbedForConditionalGeneration(enbed_config(fields, 16, **{**ARCHITECTURE, **overrides})).eval()


@pytest.fixture(scope="module")
def corrupted(fixture_csv) -> dict[str, torch.Tensor]:
    import pandas as pd

    barcodes = pd.read_csv(fixture_csv, usecols=["dna_barcode"])["dna_barcode"].tolist()[:4]
    barcodes[1] = barcodes[1][:90]  # a short row among long ones
    tokenizer = BarcodeTokenizer.char()
    encoded = tokenizer(barcodes, padding=True, return_tensors="np")
    spans = SpanCorruptionCollator.from_tokenizer(tokenizer, sentinel_count=16, noise_density=0.05)
    batch = spans(encoded["input_ids"], encoded["attention_mask"], np.random.default_rng(0))
    return {k: torch.from_numpy(v) for k, v in batch.items() if k != "noise_mask"}


def test_config_puts_sentinels_after_the_character_vocabulary():
    config = tiny_enbed().config
    assert config.vocab_size == 20 + 16 and config.sentinel_first_id == 20 and config.num_sentinels == 16
    assert config.eos_token_id == 3 and config.decoder_start_token_id == 0 == config.pad_token_id  # [SEP], [PAD]
    assert config.tokenizer_scheme == "char" and config.encoder_attention_type == "transient-global"
    assert config.d_kv * config.num_heads == config.d_model and config.pretraining_objective == "enbed"
    with pytest.raises(ValueError, match="encoder_attention"):
        tiny_enbed(encoder_attention="full")
    with pytest.raises(ValueError, match="divisible"):
        tiny_enbed(num_attention_heads=3)


def test_loss_covers_only_the_targets_and_normalises_by_the_given_count(corrupted):
    model = tiny_enbed()
    out = model(**corrupted)
    labels = corrupted["labels"]
    targets = labels != -100
    expected = F.cross_entropy(out.logits[targets], labels[targets])
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.reconstruction_loss, out.loss)
    assert out.contrastive_loss is None
    summed = model(**corrupted, num_items_in_batch=1).loss
    torch.testing.assert_close(summed, expected * targets.sum())
    # two micro-batches divided by the whole batch's target count give the whole batch's gradient
    model.train()
    model(**corrupted, num_items_in_batch=int(targets.sum())).loss.backward()
    whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for rows in (slice(0, 1), slice(1, None)):
        part = {k: v[rows] for k, v in corrupted.items()}
        model(**part, num_items_in_batch=int(targets.sum())).loss.backward()
    for parameter, reference in zip(model.parameters(), whole):
        torch.testing.assert_close(parameter.grad, reference, atol=1e-6, rtol=1e-4)


def test_local_and_transient_global_encoders_and_generation(corrupted):
    for attention in ("local", "transient-global"):
        model = tiny_enbed(encoder_attention=attention)
        encoded = model.get_encoder()(input_ids=corrupted["input_ids"], attention_mask=corrupted["attention_mask"])
        assert encoded.last_hidden_state.shape == (*corrupted["input_ids"].shape, 32)
        for beams in (1, 3):
            generated = model.generate(input_ids=corrupted["input_ids"][:2],
                                       attention_mask=corrupted["attention_mask"][:2], max_new_tokens=6,
                                       num_beams=beams, do_sample=False)
            assert generated.shape[0] == 2 and generated.shape[1] <= 7 and (generated[:, 0] == 0).all()


def test_saved_folder_loads_in_plain_transformers(tmp_path, corrupted):
    model = tiny_enbed()
    model.save_pretrained(tmp_path / "enbed")
    reference = model(**corrupted).logits
    torch.save({"batch": corrupted, "logits": reference}, tmp_path / "reference.pt")
    script = f"""
import sys, torch
from transformers import AutoModelForSeq2SeqLM, LongT5EncoderModel
model = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / 'enbed')!r}).eval()
ref = torch.load({str(tmp_path / 'reference.pt')!r})
batch = ref["batch"]
logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
               decoder_input_ids=model._shift_right(batch["labels"]),
               decoder_attention_mask=batch["decoder_attention_mask"]).logits
torch.testing.assert_close(logits, ref["logits"])
encoder = LongT5EncoderModel.from_pretrained({str(tmp_path / 'enbed')!r})
assert not any(name.startswith(("barcodemae", "modeling_barcodemae")) for name in sys.modules), "our code ran"
print(type(model).__name__, type(encoder).__name__)
"""
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["LongT5ForConditionalGeneration", "LongT5EncoderModel"]


def test_train_py_pretrains_exports_and_evaluates_enbed(sim_csv, tmp_path):
    from barcodemae.inference import load_encoder

    out = tmp_path / "enbed"
    summary = run_training(parse_args([*TINY_ENBED, "--data", str(sim_csv), "--output_dir", str(out),
                                       "--max_steps", "4", "--per_device_batch_size", "8", "--eval_steps", "2",
                                       "--save_steps", "2"]))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and steps[-1]["loss"] < steps[0]["loss"]
    validations = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in validations] == [0, 2, 4]
    assert all(0 <= r["genus_1nn_accuracy_layer_mean"] <= 1 and r["unseen_val_perplexity"] > 1 for r in validations)
    genus = summary["evaluation"]["metrics"]["open_world_genus"]["one_nn"]
    assert genus["num_queries"] > 0 and 0 <= genus["accuracy"] <= 1
    encoder, tokenizer = load_encoder(out / "final_model")
    assert type(encoder).__name__ == "LongT5EncoderModel" and len(tokenizer) == 20
    assert summary["evaluation"]["model"]["class"] == "LongT5EncoderModel"


def test_enbed_resumes_exactly(sim_csv, tmp_path):
    common = [*TINY_ENBED, "--dropout", "0.1", "--data", str(sim_csv), "--max_steps", "6",
              "--per_device_batch_size", "8", "--eval_steps", "3", "--save_steps", "3", "--evaluate", "false"]
    full, parted = tmp_path / "full", tmp_path / "parted"
    run_training(parse_args([*common, "--output_dir", str(full)]))
    run_training(parse_args([*common, "--output_dir", str(parted), "--stop_after_steps", "4"]))
    assert [p.name for p in list_checkpoints(parted)] == ["step_3"]
    run_training(parse_args([*common, "--output_dir", str(parted), "--resume_from_checkpoint", "latest"]))
    curve = [(r["step"], r["loss"]) for r in map(json.loads, (full / "metrics.jsonl").read_text().splitlines())
             if "loss" in r]
    resumed = [(r["step"], r["loss"]) for r in map(json.loads, (parted / "metrics.jsonl").read_text().splitlines())
               if "loss" in r]
    assert resumed == curve
    reference = load_file(full / "final_model" / "model.safetensors")
    for name, tensor in load_file(parted / "final_model" / "model.safetensors").items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=1e-6, msg=name)


def test_enbed_arguments_are_checked():
    with pytest.raises(ValueError, match="contrastive_weight"):
        parse_args(["--preset", "enbed-tiny", "--contrastive_weight", "1"])
    with pytest.raises(ValueError, match="encoder_attention"):
        parse_args(["--preset", "enbed-tiny", "--encoder_attention", "full"])
    with pytest.raises(ValueError, match="init_from"):
        parse_args(["--preset", "enbed-tiny", "--init_from", "somewhere"])


def test_barcodemae_embed_mean_pools_the_enbed_encoder(fixture_csv, tmp_path, capsys):
    import pandas as pd

    from barcodemae.cli import main
    from barcodemae.embed_files import read_embeddings

    folder = tmp_path / "enbed"
    tiny_enbed().save_pretrained(folder)
    BarcodeTokenizer.char().save_pretrained(folder)
    output = tmp_path / "fixture.npy"
    assert main(["embed", "--model", str(folder), "--input", str(fixture_csv), "--output", str(output),
                 "--no-progress"]) == 0
    vectors, ids = read_embeddings(output)
    barcodes = pd.read_csv(fixture_csv)
    assert vectors.shape == (len(barcodes), 32) and ids == barcodes["processid"].tolist()
    # the mean over the real tokens of LongT5's encoder output, for one barcode by hand
    tokenizer = BarcodeTokenizer.char()
    encoded = tokenizer([barcodes["dna_barcode"][0]], return_tensors="pt")
    with torch.no_grad():
        states = tiny_enbed().get_encoder()(**encoded).last_hidden_state
    np.testing.assert_allclose(vectors[0], states.mean(dim=1)[0].numpy(), atol=2e-5)
    assert json.loads(capsys.readouterr().out)["num_records"] == len(barcodes)


def test_enbed_folders_load_our_tokenizer_from_the_package_never_from_the_folder(tmp_path):
    from barcodemae.inference import load_encoder

    folder = tmp_path / "enbed"
    tiny_enbed().save_pretrained(folder)
    BarcodeTokenizer.char().save_pretrained(folder)
    copied = sorted(folder.glob("*.py"))
    assert copied  # the tokenizer's code travels with the folder for AutoTokenizer users
    for code in copied:
        code.write_text(code.read_text() + '\nraise RuntimeError("the folder\'s own code ran")\n')
    for trust in (False, True):
        encoder, tokenizer = load_encoder(folder, trust_remote_code=trust)
        assert type(encoder).__name__ == "LongT5EncoderModel" and isinstance(tokenizer, BarcodeTokenizer)
