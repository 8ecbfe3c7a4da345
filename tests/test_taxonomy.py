"""Taxonomy-aware pretraining (BarcodeMAE+, issue #28): config fields, the taxonomy terms, the model's forward
pass, the pooled representation, class-balanced batches and the label / leak guard of the pretraining split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig

import barcodemae  # noqa: F401  (registers the Auto classes)
from barcodemae.tokenization import BarcodeTokenizer
from conftest import tiny_config_kwargs
from modeling_barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeMAEModel
from modeling_barcodemae.modeling_barcodemae import (
    gather_visible,
    maskable_positions,
    mean_pool,
    random_token_mask,
    view_contrastive_loss,
)
from modeling_barcodemae.taxonomy_losses import (
    batch_hard_triplet_loss,
    same_taxon_pair_loss,
    taxon_positive_mask,
    taxonomy_ce_loss,
    taxonomy_warmup_scale,
)


def tiny(model_class=BarcodeMAEForPreTraining, **overrides):
    torch.manual_seed(0)
    return model_class(BarcodeMAEConfig(**tiny_config_kwargs(**overrides))).eval()


@pytest.fixture(scope="module")
def real_batch(fixture_csv) -> dict[str, torch.Tensor]:
    barcodes = pd.read_csv(fixture_csv, usecols=["dna_barcode"])["dna_barcode"].tolist()[:6]
    barcodes[1] = barcodes[1][:60]  # a short row among long ones
    return BarcodeTokenizer.kmer(6)(barcodes, padding=True, return_tensors="pt")


# ------------------------------------------------------------------------------------------------- config
def test_config_defaults_keep_the_papers_objectives_and_round_trip(tmp_path):
    config = BarcodeMAEConfig(**tiny_config_kwargs())
    assert (config.taxonomy_loss, config.representation, config.taxonomy_on) == ("none", "tokens_with_cls", "cls")
    assert (config.taxonomy_rank, config.taxonomy_weight, config.taxonomy_warmup_steps) == ("genus", 0.1, 0)
    assert (config.taxonomy_num_classes, config.taxonomy_margin, config.taxonomy_max_pairs) == (0, 0.0, 128)
    chosen = BarcodeMAEConfig(**tiny_config_kwargs(
        taxonomy_loss="ce", taxonomy_rank="family", taxonomy_weight=0.3, taxonomy_warmup_steps=50,
        taxonomy_num_classes=12, taxonomy_margin=0.2, taxonomy_max_pairs=64, taxonomy_on="pooled",
        representation="cls",
    ))
    chosen.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["taxonomy_loss"] == "ce" and saved["representation"] == "cls" and saved["taxonomy_num_classes"] == 12
    loaded = AutoConfig.from_pretrained(tmp_path)
    for name in ("taxonomy_loss", "taxonomy_rank", "taxonomy_weight", "taxonomy_warmup_steps", "taxonomy_num_classes",
                 "taxonomy_margin", "taxonomy_max_pairs", "taxonomy_on", "representation"):
        assert getattr(loaded, name) == getattr(chosen, name), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"taxonomy_loss": "arcface"}, "taxonomy_loss must be one of"),
        ({"taxonomy_rank": "order"}, "taxonomy_rank must be one of"),
        ({"taxonomy_on": "mean"}, "taxonomy_on must be one of"),
        ({"representation": "mean"}, "representation must be one of"),
        ({"taxonomy_weight": -0.1}, "taxonomy_weight must be >= 0"),
        ({"taxonomy_margin": -1.0}, "taxonomy_margin must be >= 0"),
        ({"taxonomy_warmup_steps": -1}, "taxonomy_warmup_steps must be a non-negative integer"),
        ({"taxonomy_num_classes": -2}, "taxonomy_num_classes must be a non-negative integer"),
        ({"taxonomy_loss": "pair", "taxonomy_max_pairs": 1}, "taxonomy_max_pairs must be >= 2"),
    ],
)
def test_bad_taxonomy_values_get_clear_errors(overrides, message):
    with pytest.raises(Exception, match=message):
        BarcodeMAEConfig(**tiny_config_kwargs(**overrides))


def test_warmup_scale_is_a_linear_ramp_of_the_step():
    assert [taxonomy_warmup_scale(step, 4) for step in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert taxonomy_warmup_scale(0, 0) == taxonomy_warmup_scale(7, 0) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        taxonomy_warmup_scale(-1, 4)


# ------------------------------------------------------------------------------------------------- losses
def test_ce_loss_and_accuracy_over_labelled_rows_only():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 3, requires_grad=True), torch.tensor([2, -1, 0, 1, -1])
    loss, accuracy = taxonomy_ce_loss(logits, labels)
    known = labels >= 0
    torch.testing.assert_close(loss, F.cross_entropy(logits[known], labels[known]))
    assert accuracy == (logits[known].argmax(1) == labels[known]).float().mean()
    none, none_accuracy = taxonomy_ce_loss(logits, torch.full((5,), -1))
    assert none == 0 and none_accuracy == 0
    none.backward()  # still part of the graph: every process reaches the head's parameters
    assert logits.grad is not None and not logits.grad.any()


def test_batch_hard_triplet_loss_matches_a_per_anchor_reference():
    torch.manual_seed(0)
    states, labels, margin = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 1, 2, -1, -1]), 0.1
    distance = 1 - F.cosine_similarity(states.unsqueeze(1), states.unsqueeze(0), dim=-1)
    expected = []
    for anchor in range(8):
        if labels[anchor] < 0:
            continue
        positives = [j for j in range(8) if j != anchor and labels[j] == labels[anchor]]
        negatives = [j for j in range(8) if labels[j] >= 0 and labels[j] != labels[anchor]]
        if positives and negatives:  # class 2 has one row: no anchor; -1 rows: neither anchor nor negative
            hardest = distance[anchor, positives].max() - distance[anchor, negatives].min()
            expected.append(F.softplus(hardest + margin))
    assert len(expected) == 5
    torch.testing.assert_close(batch_hard_triplet_loss(states, labels, margin), torch.stack(expected).mean())
    moved = states.clone()
    moved[6:] = torch.randn(2, 6)  # unlabelled rows take no part
    torch.testing.assert_close(batch_hard_triplet_loss(moved, labels, margin), torch.stack(expected).mean())
    one_class = torch.tensor([3, 3, 3, -1, -1, -1, -1, -1])
    assert batch_hard_triplet_loss(states, one_class, margin) == 0  # fewer than 2 classes: no anchor
    tight = torch.eye(4).repeat_interleave(2, dim=0)  # each class on its own axis: d_pos 0, d_neg 1
    torch.testing.assert_close(
        batch_hard_triplet_loss(tight, torch.arange(4).repeat_interleave(2), 0.0), F.softplus(torch.tensor(-1.0))
    )


def test_pair_loss_uses_every_pair_when_both_kinds_fit_and_balances_them():
    torch.manual_seed(0)
    states, temperature = torch.randn(5, 4), 0.5
    labels = torch.tensor([0, 0, 0, 1, -1])  # 3 same-taxon pairs, 3 other-taxon pairs; row 4 takes no part
    cosine = F.cosine_similarity(states.unsqueeze(1), states.unsqueeze(0), dim=-1)
    logits, targets = [], []
    for i, j in combinations(range(4), 2):
        logits.append(cosine[i, j] / temperature)
        targets.append(float(labels[i] == labels[j]))
    expected = F.binary_cross_entropy_with_logits(torch.stack(logits), torch.tensor(targets))
    torch.testing.assert_close(same_taxon_pair_loss(states, labels, 128, temperature), expected)
    assert same_taxon_pair_loss(states, torch.tensor([0, 0, 0, -1, -1]), 128, temperature) == 0  # one class

    # A bigger batch: max_pairs // 2 of each kind, drawn by the generator alone.
    states, labels = torch.randn(32, 8), torch.arange(8).repeat_interleave(4)
    labels[-4:] = -1

    def draw(seed, max_pairs=16, rows=states):
        return same_taxon_pair_loss(rows, labels, max_pairs, 0.1, generator=torch.Generator().manual_seed(seed))

    assert draw(1) == draw(1) and draw(1) != draw(2)
    moved = states.clone()
    moved[-4:] = torch.randn(4, 8)
    assert draw(1, rows=moved) == draw(1)  # unlabelled rows are never drawn
    # Every drawn pair weighs 1 / (2 n): the loss of all 8 + 8 pairs lies between the smallest and largest pair loss.
    cosine = F.cosine_similarity(states.unsqueeze(1), states.unsqueeze(0), dim=-1) / 0.1
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    all_losses = F.binary_cross_entropy_with_logits(cosine, same.float(), reduction="none")
    assert all_losses.min() <= draw(3) <= all_losses.max()


def test_pair_loss_counts_only_the_pairs_it_can_balance():
    states = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2, 3, 4])  # 1 same-taxon pair: 1 + 1 pairs whatever max_pairs
    loss = same_taxon_pair_loss(states, labels, 128, 1.0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    used = states.grad.abs().sum(dim=1) > 0
    assert used[:2].all() and used.sum() in (3, 4)  # the same-taxon pair and one other-taxon pair


def frozen_view_contrastive_loss(embeddings, barcode_ids, temperature):
    """``view_contrastive_loss`` as it was before it took a positive mask (the view-only case must not change)."""
    normalised = F.normalize(embeddings.float(), dim=-1)
    similarity = normalised @ normalised.T / temperature
    itself = torch.eye(len(barcode_ids), dtype=torch.bool, device=embeddings.device)
    log_prob = similarity.masked_fill(itself, float("-inf")).log_softmax(dim=1)
    positives = (barcode_ids.unsqueeze(0) == barcode_ids.unsqueeze(1)) & ~itself
    counts = positives.sum(dim=1)
    per_row = -log_prob.masked_fill(~positives, 0.0).sum(dim=1) / counts.clamp(min=1)
    has_positive = counts > 0
    return (per_row * has_positive).sum() / has_positive.sum().clamp(min=1)


def test_supcon_positives_are_views_or_taxa_and_the_view_only_case_is_bit_identical():
    torch.manual_seed(0)
    embeddings, ids = torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    labels = torch.tensor([5, 5, 5, 5, -1, -1, 6, 6])
    old = frozen_view_contrastive_loss(embeddings, ids, 0.1)
    assert torch.equal(view_contrastive_loss(embeddings, ids, 0.1), old)
    unlabelled = taxon_positive_mask(torch.full((8,), -1), ids)
    assert torch.equal(view_contrastive_loss(embeddings, ids, 0.1, positives=unlabelled), old)
    mask = taxon_positive_mask(labels, ids)
    assert mask[0, 3] and mask[4, 5] and not mask[4, 6] and not mask[0, 6] and mask.diagonal().all()
    assert torch.equal(mask, mask.T)
    taxa_only = taxon_positive_mask(labels)  # one view per barcode: same taxon only, unlabelled rows have none
    assert taxa_only[0, 2] and not taxa_only[4, 5]
    groups = torch.tensor([0, 0, 0, 0, 4, 4, 6, 6])  # the groups of `mask`, as if they were barcode ids
    supcon = view_contrastive_loss(embeddings, None, 0.1, positives=mask)
    assert torch.equal(supcon, frozen_view_contrastive_loss(embeddings, groups, 0.1))


# -------------------------------------------------------------------------------------------- forward pass
def encoder_input(model, ids, mask, masked):
    """What the encoder saw in the forward pass: the visible tokens (MAE) or the [MASK]-corrupted row (MLM with
    100% [MASK])."""
    if model.config.pretraining_objective == "mae":
        index, valid = gather_visible(mask.bool() & ~masked)
        return {"input_ids": ids.gather(1, index), "attention_mask": valid.long(), "position_ids": index}
    return {"input_ids": ids.masked_fill(masked, model.config.mask_token_id), "attention_mask": mask}


@pytest.mark.parametrize("objective", ["mae", "mlm"])
@pytest.mark.parametrize("kind", ["ce", "triplet", "pair", "supcon"])
def test_taxonomy_term_is_weighted_warmed_up_and_reaches_the_encoder(objective, kind, real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, tiny().config), 0.5, torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 0, 1, -1, 2])
    model = tiny(pretraining_objective=objective, taxonomy_loss=kind, taxonomy_num_classes=3 if kind == "ce" else 0,
                 taxonomy_weight=0.5, mlm_random_token_prob=0.0, mlm_mask_token_prob=1.0)
    assert (model.taxonomy_head is not None) == (kind == "ce")
    torch.manual_seed(3)  # the pair term draws from the global generator
    out = model(input_ids=ids, attention_mask=mask, masked_positions=masked, taxon_labels=labels,
                taxonomy_weight_scale=0.25)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + 0.5 * 0.25 * out.taxonomy_loss)
    assert out.taxonomy_loss > 0
    assert (out.taxonomy_accuracy is not None) == (kind == "ce")
    encoded = model.barcodemae(**encoder_input(model, ids, mask, masked))
    if kind != "pair" or objective == "mae":  # the MLM's corruption draws from the generator the pairs come from
        torch.manual_seed(3)
        expected, _ = model.taxonomy_term(encoded, labels, None)
        torch.testing.assert_close(out.taxonomy_loss, expected)
    if kind == "triplet":  # the [CLS] state: position 0 of what the encoder saw
        cls = encoded.last_hidden_state[:, 0]
        torch.testing.assert_close(out.taxonomy_loss, batch_hard_triplet_loss(cls, labels, 0.0))
    model.train()
    model(input_ids=ids, attention_mask=mask, masked_positions=masked, taxon_labels=labels).loss.backward()
    assert model.barcodemae.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    if kind == "ce":
        assert model.taxonomy_head.classifier.weight.grad.abs().sum() > 0
    model.eval()
    plain = model(input_ids=ids, attention_mask=mask, masked_positions=masked)  # validation batches: no labels
    assert plain.taxonomy_loss is None and plain.taxonomy_accuracy is None
    torch.testing.assert_close(plain.loss, out.reconstruction_loss)
    with pytest.raises(ValueError, match="taxonomy_weight_scale"):
        model(input_ids=ids, attention_mask=mask, taxon_labels=labels, taxonomy_weight_scale=1.5)
    with pytest.raises(ValueError, match="one label per row"):
        model(input_ids=ids, attention_mask=mask, taxon_labels=labels[:3])


def test_taxonomy_on_pooled_reads_pooler_output(real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, tiny().config), 0.5, torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 0, 1, -1, 1])
    model = tiny(taxonomy_loss="triplet", taxonomy_on="pooled", representation="tokens", taxonomy_margin=0.3)
    out = model(input_ids=ids, attention_mask=mask, masked_positions=masked, taxon_labels=labels)
    pooled = model.barcodemae(**encoder_input(model, ids, mask, masked)).pooler_output
    torch.testing.assert_close(out.taxonomy_loss, batch_hard_triplet_loss(pooled, labels, 0.3))


def test_taxonomy_off_leaves_pretraining_unchanged(real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, tiny().config), 0.5, torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 0, 1, -1, 1])
    plain = tiny()(input_ids=ids, attention_mask=mask, masked_positions=masked)
    ignored = tiny()(input_ids=ids, attention_mask=mask, masked_positions=masked, taxon_labels=labels)
    assert ignored.taxonomy_loss is None and torch.equal(ignored.loss, plain.loss)
    assert tiny().taxonomy_head is None
    assert len(plain.to_tuple()) == len(ignored.to_tuple())  # None fields stay out of the tuple output
    with pytest.raises(ValueError, match="taxonomy_num_classes >= 2"):
        tiny(taxonomy_loss="ce")


def test_ce_head_is_added_by_from_pretrained_and_dropped_by_the_encoder(tmp_path, real_batch):
    tiny().save_pretrained(tmp_path / "plain")
    model, info = BarcodeMAEForPreTraining.from_pretrained(
        tmp_path / "plain", taxonomy_loss="ce", taxonomy_num_classes=4, output_loading_info=True
    )
    assert model.taxonomy_head.classifier.out_features == 4
    assert all(key.startswith("taxonomy_head.") for key in info["missing_keys"]) and info["missing_keys"]
    model.save_pretrained(tmp_path / "ce")
    reloaded = BarcodeMAEForPreTraining.from_pretrained(tmp_path / "ce")
    torch.testing.assert_close(reloaded.taxonomy_head.classifier.weight, model.taxonomy_head.classifier.weight)
    _, info = BarcodeMAEModel.from_pretrained(tmp_path / "ce", output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    bare = tiny()
    bare.config.taxonomy_loss = "ce"  # set after construction: no head, a clear error rather than a None call
    with pytest.raises(ValueError, match="without its taxonomy_head"):
        bare(**real_batch, taxon_labels=torch.zeros(6, dtype=torch.long))


# ---------------------------------------------------------------------------------------- representation
def test_representation_chooses_what_pooler_output_pools(real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    with torch.no_grad():
        default = tiny(BarcodeMAEModel)(input_ids=ids, attention_mask=mask)
        explicit = tiny(BarcodeMAEModel, representation="tokens_with_cls")(input_ids=ids, attention_mask=mask)
        cls = tiny(BarcodeMAEModel, representation="cls")(input_ids=ids, attention_mask=mask)
        tokens = tiny(BarcodeMAEModel, representation="tokens")(input_ids=ids, attention_mask=mask)
    hidden = default.last_hidden_state
    assert torch.equal(default.pooler_output, mean_pool(hidden, mask))  # today's embedding, bit for bit
    assert torch.equal(explicit.pooler_output, default.pooler_output)
    assert torch.equal(cls.pooler_output, hidden[:, 0])
    for row in range(len(ids)):
        length = int(mask[row].sum())
        torch.testing.assert_close(tokens.pooler_output[row], hidden[row, 1:length].mean(dim=0))
    assert not torch.allclose(tokens.pooler_output, default.pooler_output)


@pytest.mark.parametrize("representation", ["cls", "tokens"])
def test_representation_combines_with_the_layer_average(representation, real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    model = tiny(BarcodeMAEModel, pooled_layers="mean", representation=representation)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    average = torch.stack(out.hidden_states).mean(dim=0)
    if representation == "cls":
        expected = average[:, 0]
    else:
        expected = mean_pool(average, mask * (torch.arange(ids.shape[1]) > 0))
    torch.testing.assert_close(out.pooler_output, expected)


FRESH_PROCESS = """
import sys, torch
from transformers import AutoModel, AutoModelForPreTraining

folder, reference = sys.argv[1], sys.argv[2]
ref = torch.load(reference, weights_only=True)
encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
pretraining = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True).eval()
assert "barcodemae" not in sys.modules and "modeling_barcodemae" not in sys.modules
assert encoder.config.representation == "cls" and pretraining.config.taxonomy_loss == "ce"
with torch.no_grad():
    out = encoder(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"])
    taxonomy = pretraining(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                           masked_positions=ref["masked"], taxon_labels=ref["labels"]).taxonomy_loss
assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
torch.testing.assert_close(out.pooler_output, ref["embedding"], atol=1e-5, rtol=1e-5)
torch.testing.assert_close(taxonomy, ref["taxonomy"], atol=1e-5, rtol=1e-5)
print("ok")
"""


def test_saved_folder_keeps_representation_and_head_through_remote_code(tmp_path, real_batch):
    model = tiny(representation="cls", taxonomy_loss="ce", taxonomy_num_classes=3)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    BarcodeTokenizer.kmer(6).save_pretrained(folder)
    assert (folder / "taxonomy_losses.py").is_file()  # the model file's sibling travels with it
    masked = random_token_mask(maskable_positions(real_batch["input_ids"], real_batch["attention_mask"], model.config),
                               0.5, torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        embedding = model.barcodemae(**real_batch).pooler_output
        taxonomy = model(**real_batch, masked_positions=masked, taxon_labels=labels).taxonomy_loss
    torch.save({"input_ids": real_batch["input_ids"], "attention_mask": real_batch["attention_mask"],
                "masked": masked, "labels": labels, "embedding": embedding, "taxonomy": taxonomy},
               tmp_path / "reference.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder), str(tmp_path / "reference.pt")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]


# -------------------------------------------------------------------------------------------------- batches
def balanced_stream(labels, barcodes, **options):
    from barcodemae.training.batches import BarcodeSource, GlobalBatchStream

    def mask_fn(ids, attention, rng):
        return (rng.random(ids.shape) < 0.5) & (attention == 1)

    settings = {"per_device_batch_size": 16, "seed": 3, "classes_per_batch": 4, "per_class": 3, **options}
    return GlobalBatchStream(BarcodeSource(barcodes), BarcodeTokenizer.kmer(6), mask_fn, taxon_labels=labels,
                             **settings)


@pytest.fixture(scope="module")
def labelled_barcodes():
    """60 barcodes: taxa 0..7 of 6 rows, taxon 8 of 2 rows (fewer than per_class), taxon 9 of 1 row, 9 unlabelled."""
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(8), 6), [8, 8, 9], np.full(9, -1)])
    rng.shuffle(labels)
    barcodes = ["".join(rng.choice(list("ACGT"), int(n))) for n in rng.integers(60, 200, len(labels))]
    return labels, barcodes


def test_taxon_groups_keep_taxa_with_two_labelled_rows():
    from barcodemae.training.batches import TaxonGroups

    groups = TaxonGroups.from_labels(np.array([3, -1, 3, 5, 7, 5, 5, -1, 3]))
    np.testing.assert_array_equal(groups.rows, [0, 2, 8, 3, 5, 6])  # taxon 7 (one row) and -1 are out
    np.testing.assert_array_equal(groups.starts, [0, 3])
    np.testing.assert_array_equal(groups.counts, [3, 3])
    assert groups.num_rows == 9 and groups.num_taxa == 2


def test_balanced_batches_are_a_pure_function_of_seed_epoch_and_batch(labelled_barcodes):
    from barcodemae.training.batches import TaxonGroups, balanced_batch_indices, balanced_block_positions

    labels, _ = labelled_barcodes
    groups = TaxonGroups.from_labels(labels)

    def draw(seed=3, epoch=0, batch=0):
        return balanced_batch_indices(groups, seed, epoch, batch, 32, 4, 3)

    np.testing.assert_array_equal(draw(), draw())
    for other in (draw(batch=1), draw(epoch=1), draw(seed=4)):
        assert not np.array_equal(other, draw())
    positions = balanced_block_positions(32, 4, 3)
    np.testing.assert_array_equal(positions[:, 0], [0, 8, 16, 24])
    seen_small_taxon = False
    for batch in range(200):
        indices = draw(batch=batch)
        assert indices.shape == (32,) and indices.dtype == np.int64
        block = labels[indices[positions]]  # (taxa, per_class)
        assert (block >= 0).all()  # unlabelled rows never in the block ...
        assert (block == block[:, :1]).all() and len(set(block[:, 0])) == 4  # 4 taxa x 3 rows
        assert 9 not in block  # ... nor a taxon of one row
        for taxon_rows in indices[positions]:
            taxon = labels[taxon_rows[0]]
            distinct = len(set(taxon_rows.tolist()))
            assert distinct == min(3, int((labels == taxon).sum()))  # without replacement while rows last
            seen_small_taxon |= taxon == 8
        fill = np.delete(indices, positions.ravel())
        assert len(set(fill.tolist())) == len(fill) == 20  # uniform draw without replacement ...
    assert seen_small_taxon
    every_fill = np.concatenate([np.delete(draw(batch=b), positions.ravel()) for b in range(200)])
    assert (labels[every_fill] < 0).any() and len(set(every_fill.tolist())) == len(labels)  # ... from every row
    with pytest.raises(ValueError, match="must fill part of a global batch"):
        balanced_batch_indices(groups, 0, 0, 0, 8, 4, 3)
    with pytest.raises(ValueError, match="need 12 taxa"):
        balanced_batch_indices(groups, 0, 0, 0, 64, 12, 2)


def test_balanced_stream_carries_labels_per_view_and_resumes_exactly(labelled_barcodes):
    labels, barcodes = labelled_barcodes
    stream = balanced_stream(labels, barcodes, views=2)
    batch = stream.global_batch(0, 5)
    assert len(batch["taxon_labels"]) == 32 and batch["taxon_labels"].dtype == np.int64
    np.testing.assert_array_equal(batch["taxon_labels"], labels[batch["barcode_ids"]])  # each view: its label
    np.testing.assert_array_equal(batch["taxon_labels"][0::2], batch["taxon_labels"][1::2])
    assert stream.batches_per_epoch == len(barcodes) // 16  # an epoch: as many batches as a shuffled one
    run = [stream.next()[0] for _ in range(stream.batches_per_epoch + 2)]  # into the second epoch
    resumed = balanced_stream(labels, barcodes, views=2)
    resumed.load_state_dict({"epoch": 0, "batch": 2})
    for expected in run[2:]:
        got, _ = resumed.next()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_labels_without_balancing_keep_the_plain_batches(labelled_barcodes):
    labels, barcodes = labelled_barcodes
    plain = balanced_stream(None, barcodes, classes_per_batch=0)
    labelled = balanced_stream(labels, barcodes, classes_per_batch=0)
    for index in range(3):
        before, after = plain.global_batch(1, index), labelled.global_batch(1, index)
        assert set(after) == set(before) | {"taxon_labels"}
        for key in before:
            np.testing.assert_array_equal(after[key], before[key])
        order = plain._epoch_order(1)[index * 16 : (index + 1) * 16]
        np.testing.assert_array_equal(after["taxon_labels"], labels[order])
    for problem, options in (
        ("need taxon_labels", {"classes_per_batch": 2, "per_class": 2}),
        ("shape", {"classes_per_batch": 0}),
    ):
        with pytest.raises(ValueError, match=problem):
            balanced_stream(None if problem.startswith("need") else labels[:5], barcodes, **options)
    with pytest.raises(ValueError, match="taxa with >= 2 labelled rows"):
        balanced_stream(labels, barcodes, classes_per_batch=10, per_class=1)


def test_balanced_batch_drives_every_taxonomy_term(labelled_barcodes):
    labels, barcodes = labelled_barcodes
    local, _ = balanced_stream(labels, barcodes, views=2, per_device_batch_size=8, num_processes=2,
                               process_index=1).next()
    assert len(local["taxon_labels"]) == 16
    for kind in ("ce", "triplet", "pair", "supcon"):
        model = tiny(taxonomy_loss=kind, taxonomy_num_classes=10, vocab_size=4101).train()
        out = model(**local, taxonomy_weight_scale=0.5)
        assert out.taxonomy_loss is not None and torch.isfinite(out.loss), kind
        out.loss.backward()


# ----------------------------------------------------------------------------------- labels and leak guard
def test_guard_refuses_every_evaluation_split():
    from barcodemae.training.taxonomy import check_taxonomy_splits, leaking_splits

    for allowed in ("pretrain", "pretrain+other_heldout", "train", "pretrain+train"):
        check_taxonomy_splits(allowed)
    for spec, named in (("pretrain+val", "val"), ("test", "test"), ("key_unseen", "key_unseen"),
                        ("pretrain+val_unseen", "val_unseen"), ("unseen", "key_unseen, val_unseen, test_unseen"),
                        ("seen", "val, test"), ("all", "val, test, key_unseen, val_unseen, test_unseen")):
        with pytest.raises(ValueError, match=f"includes {named}: the evaluation scores"):
            check_taxonomy_splits(spec)
    assert leaking_splits("pretrain+test_unseen") == ["test_unseen"]


def test_pretraining_labels_follow_the_source_rows_and_number_their_taxa(sim_csv, tmp_path):
    from barcodemae.training.data import load_training_data
    from barcodemae.training.taxonomy import dense_labels, pretraining_taxon_labels

    labels = dense_labels(np.array([7, -1, 3, 7, 12, -1]))
    np.testing.assert_array_equal(labels.labels, [1, -1, 0, 1, 2, -1])
    assert (labels.num_classes, labels.num_labelled_rows) == (3, 4)
    data = load_training_data(sim_csv, cache_dir=tmp_path / "cache")
    for sample_size in (None, 40):
        source, genus = data.source("pretrain+other_heldout", sample_size=sample_size, seed=9)
        taxa = pretraining_taxon_labels(data, "pretrain+other_heldout", "genus", sample_size=sample_size, seed=9)
        assert len(taxa.labels) == len(source) == len(genus)
        names = sorted({name for name in genus if name is not None})
        assert taxa.num_classes == len(names) and taxa.num_labelled_rows == sum(g is not None for g in genus)
        expected = [names.index(name) if name is not None else -1 for name in genus]
        np.testing.assert_array_equal(taxa.labels, expected)  # dense ids, in sorted-name order
    family = pretraining_taxon_labels(data, "pretrain", "family")
    assert family.labels.dtype == np.int64 and family.num_classes >= 1
    with pytest.raises(ValueError, match="includes test"):
        pretraining_taxon_labels(data, "pretrain+test", "genus")


# ---------------------------------------------------------------------------------------------- train.py
def test_taxonomy_flags_set_the_config_and_are_checked():
    from barcodemae.training.arguments import RUN_CONFIG_ARGUMENTS, parse_args
    from barcodemae.training.builders import build_model

    args = parse_args(["--preset", "none", "--max_steps", "1", "--hidden_size", "32", "--num_attention_heads", "2",
                       "--num_hidden_layers", "1", "--decoder_hidden_size", "32", "--decoder_num_attention_heads",
                       "2", "--decoder_num_hidden_layers", "1", "--tokenizer", "kmer4",
                       "--taxonomy_loss", "triplet", "--taxonomy_weight", "0.2", "--taxonomy_warmup_steps", "100",
                       "--taxonomy_margin", "0.1", "--taxonomy_on", "pooled", "--representation", "cls",
                       "--taxonomy_classes_per_batch", "16", "--taxonomy_per_class", "4", "--pooled_frames", "all"])
    assert {"taxonomy_loss", "representation", "taxonomy_on", "pooled_frames"} <= set(RUN_CONFIG_ARGUMENTS)
    config = build_model(args, BarcodeTokenizer.kmer(4)).config
    assert config.pooled_frames == "all" and parse_args(["--preset", "small-taxonomy"]).pooled_frames == "all"
    assert (config.taxonomy_loss, config.taxonomy_weight, config.taxonomy_warmup_steps) == ("triplet", 0.2, 100)
    assert (config.taxonomy_margin, config.taxonomy_on, config.representation) == (0.1, "pooled", "cls")
    assert (args.taxonomy_classes_per_batch, args.taxonomy_per_class) == (16, 4)
    assert parse_args(["--preset", "none", "--max_steps", "1"]).taxonomy_loss == "none"
    for flags, problem in (
        (["--taxonomy_loss", "softmax"], "invalid run flag .*taxonomy_loss must be one of"),
        (["--representation", "max"], "invalid run flag .*representation must be one of"),
        (["--pooled_frames", "some"], "invalid run flag .*pooled_frames must be one of"),
        (["--taxonomy_loss", "ce", "--split", "pretrain+val_unseen"], "includes val_unseen"),
        (["--taxonomy_classes_per_batch", "16"], "give one"),
        (["--taxonomy_loss", "ce", "--taxonomy_per_class", "0"], "taxonomy_per_class >= 1"),
        (["--objective", "enbed", "--tokenizer", "char", "--taxonomy_loss", "ce"], "not enbed"),
    ):
        with pytest.raises(ValueError, match=problem):
            parse_args(["--preset", "none", "--max_steps", "1", *flags])


def test_supcon_encodes_two_views_even_without_the_view_term():
    """supcon's positives include a barcode's other view, so it needs two views per barcode like the view term."""
    from barcodemae.training.arguments import parse_args

    base = ["--preset", "none", "--max_steps", "1", "--contrastive_weight", "0"]
    assert parse_args(base).views_per_barcode == 1
    assert parse_args([*base, "--taxonomy_loss", "ce"]).views_per_barcode == 1
    assert parse_args([*base, "--taxonomy_loss", "supcon"]).views_per_barcode == 2
    assert parse_args(["--preset", "none", "--max_steps", "1", "--contrastive_weight", "0.5"]).views_per_barcode == 2
