"""BarcodeMAE models: shapes, MAE masking semantics, loss on masked tokens only, pad invariance, edge cases."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from barcodemae.tokenization import BarcodeTokenizer
from conftest import tiny_config_kwargs
from modeling_barcodemae import (
    BarcodeMAEConfig,
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
)
from modeling_barcodemae.modeling_barcodemae import (
    composition_loss,
    corrupt_for_mlm,
    gather_visible,
    maskable_positions,
    random_regular_tokens,
    random_token_mask,
    view_contrastive_loss,
)

VOCAB = 4101


def tiny(model_class=BarcodeMAEForPreTraining, **overrides):
    torch.manual_seed(0)
    return model_class(BarcodeMAEConfig(**tiny_config_kwargs(**overrides))).eval()


def batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] random k-mers [SEP] rows of the given total lengths, right-padded."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, VOCAB, (length,), generator=generator)
        ids[row, 0], ids[row, length - 1] = 2, 3
    return ids, (ids != 0).long()


@pytest.fixture(scope="module")
def real_batch(fixture_csv) -> dict[str, torch.Tensor]:
    barcodes = pd.read_csv(fixture_csv, usecols=["dna_barcode"])["dna_barcode"].tolist()[:6]
    barcodes[1] = barcodes[1][:60]  # a short row among long ones
    return BarcodeTokenizer.kmer(6)(barcodes, padding=True, return_tensors="pt")


# ------------------------------------------------------------------------------------------- mask helpers
def test_random_token_mask_has_exact_budget_and_spares_specials_and_padding():
    ids, mask = batch([40, 40, 17, 3, 2])
    config = BarcodeMAEConfig(**tiny_config_kwargs())
    maskable = maskable_positions(ids, mask, config)
    masked = random_token_mask(maskable, 0.5, generator=torch.Generator().manual_seed(0))
    assert masked.sum(dim=1).tolist() == [19, 19, 8, 0, 0]  # round(0.5 * n); a single maskable token stays visible
    assert not (masked & ~maskable).any()
    assert not masked[:, 0].any()


def test_random_token_mask_keeps_one_visible_and_masks_one():
    maskable = torch.ones(3, 10, dtype=torch.bool)
    assert random_token_mask(maskable, 0.99).sum(dim=1).tolist() == [9, 9, 9]
    assert random_token_mask(maskable, 0.01).sum(dim=1).tolist() == [1, 1, 1]


def test_gather_visible_keeps_order_and_marks_padding():
    visible = torch.tensor([[1, 0, 1, 1, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)
    index, valid = gather_visible(visible)
    assert index.shape == (2, 3)
    assert index[0].tolist() == [0, 2, 3] and index[1, 0].item() == 1
    assert valid.tolist() == [[True, True, True], [True, False, False]]


def test_mlm_corruption_is_bert_80_10_10():
    config = BarcodeMAEConfig(**tiny_config_kwargs(pretraining_objective="mlm"))
    ids = torch.randint(5, VOCAB, (200, 200), generator=torch.Generator().manual_seed(0))
    masked = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    corrupted = corrupt_for_mlm(ids, masked, config, generator=torch.Generator().manual_seed(2))
    assert torch.equal(corrupted[~masked], ids[~masked])
    changed = corrupted[masked]
    original = ids[masked]
    as_mask = (changed == config.mask_token_id).float().mean().item()
    kept = (changed == original).float().mean().item()
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - 0.1) < 0.01
    assert (changed[changed != config.mask_token_id] >= 5).all()  # random replacements are never special tokens


def test_random_replacements_avoid_specials_wherever_they_are():
    config = BarcodeMAEConfig(
        **tiny_config_kwargs(
            vocab_size=12, pad_token_id=3, unk_token_id=0, cls_token_id=11, sep_token_id=2, mask_token_id=7
        )
    )
    ids = random_regular_tokens((20000,), config, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert set(ids.tolist()) == {1, 4, 5, 6, 8, 9, 10}
    counts = torch.bincount(ids, minlength=12)[[1, 4, 5, 6, 8, 9, 10]].float()
    assert (counts / counts.sum() - 1 / 7).abs().max() < 0.02


# ------------------------------------------------------------------------------------------------ encoder
def test_encoder_shapes_hidden_states_and_mean_pool():
    model = tiny(BarcodeMAEModel)
    ids, mask = batch([30, 12])
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 30, 32)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    expected = out.last_hidden_state[1, :12].mean(dim=0)
    torch.testing.assert_close(out.pooler_output[1], expected)
    _, pooled = model(input_ids=ids, attention_mask=mask, return_dict=False)[:2]
    torch.testing.assert_close(pooled, out.pooler_output)


def test_pooled_layers_mean_pools_the_average_of_every_hidden_state():
    model = tiny(BarcodeMAEModel, pooled_layers="mean")
    ids, mask = batch([30, 12])
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    average = torch.stack(out.hidden_states).mean(dim=0)
    torch.testing.assert_close(out.pooler_output[1], average[1, :12].mean(dim=0))
    assert not torch.allclose(out.pooler_output[1], out.last_hidden_state[1, :12].mean(dim=0))
    plain = model(input_ids=ids, attention_mask=mask)  # states kept for the pooling are not returned unasked
    assert plain.hidden_states is None
    torch.testing.assert_close(plain.pooler_output, out.pooler_output)
    torch.testing.assert_close(plain.last_hidden_state, out.hidden_states[-1])


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_padded_batch_gives_same_embedding_as_alone(objective, real_batch):
    model = tiny(BarcodeMAEModel, pretraining_objective=objective)
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    assert (mask[1] == 0).any()
    with torch.no_grad():
        together = model(input_ids=ids, attention_mask=mask).pooler_output
        n = int(mask[1].sum())
        alone = model(input_ids=ids[1:2, :n]).pooler_output
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)


def test_empty_row_gives_finite_outputs():
    model = tiny(BarcodeMAEModel)
    ids, mask = batch([10, 10])
    ids[1], mask[1] = 0, 0
    out = model(input_ids=ids, attention_mask=mask)
    assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()
    assert torch.equal(out.pooler_output[1], torch.zeros(32))


def test_bad_inputs_get_clear_errors():
    model = tiny(BarcodeMAEModel)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=128"):
        model(input_ids=torch.full((1, 129), 7))
    with pytest.raises(ValueError, match=r"must be \(batch, length\)"):
        model(input_ids=torch.full((129,), 7))
    with pytest.raises(TypeError, match="unexpected arguments"):
        model(input_ids=torch.full((1, 9), 7), labels=None)
    pretraining = tiny()
    with pytest.raises(ValueError, match="masked_positions has shape"):
        pretraining(input_ids=torch.full((2, 9), 7), masked_positions=torch.zeros(2, 8, dtype=torch.bool))


# -------------------------------------------------------------------------------------------- pretraining
def test_mae_encoder_sees_only_visible_tokens_at_their_original_positions():
    model = tiny()
    ids, mask = batch([40, 40, 25])
    seen: dict[str, torch.Tensor] = {}
    model.barcodemae.encoder.layer[0].register_forward_hook(lambda m, args, out: seen.update(length=args[0].shape[1]))
    original_embeddings = model.barcodemae.embeddings.forward
    model.barcodemae.embeddings.forward = lambda i, p: (seen.update(ids=i, positions=p), original_embeddings(i, p))[1]
    out = model(input_ids=ids, attention_mask=mask)
    visible = mask.bool() & ~out.masked_positions
    assert seen["length"] == out.encoder_last_hidden_state.shape[1] == int(visible.sum(dim=1).max()) == 40 - 19
    assert out.logits.shape == (int(out.masked_positions.sum()), VOCAB)  # head runs on masked tokens only
    full = model(input_ids=ids, attention_mask=mask, masked_positions=out.masked_positions, full_logits=True)
    assert full.full_logits.shape == (3, 40, VOCAB) and out.full_logits is None
    torch.testing.assert_close(full.full_logits[out.masked_positions], out.logits)
    torch.testing.assert_close(full.logits, out.logits)  # one contract: logits are the masked tokens' either way
    for row in range(3):
        count = int(visible[row].sum())
        positions = visible[row].nonzero().squeeze(1)
        assert torch.equal(seen["positions"][row, :count], positions)
        assert torch.equal(seen["ids"][row, :count], ids[row, positions])
        assert not (seen["ids"][row, :count] == model.config.mask_token_id).any()


def test_mlm_encoder_sees_full_length_with_corruption():
    model = tiny(pretraining_objective="mlm")
    assert model.decoder is None
    ids, mask = batch([40, 22])
    out = model(input_ids=ids, attention_mask=mask)
    assert out.encoder_last_hidden_state.shape == (2, 40, 32)
    assert out.logits.shape == (int(out.masked_positions.sum()), VOCAB)
    assert model(input_ids=ids, attention_mask=mask, full_logits=True).full_logits.shape == (2, 40, VOCAB)


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_loss_is_cross_entropy_on_masked_tokens_only(objective):
    model = tiny(pretraining_objective=objective)
    ids, mask = batch([30, 18], seed=3)
    torch.manual_seed(5)
    out = model(input_ids=ids, attention_mask=mask)
    masked = out.masked_positions
    expected = F.cross_entropy(out.logits, ids[masked])
    torch.testing.assert_close(out.loss, expected)

    labels = ids.clone()
    labels[~masked] = 5  # changing unmasked targets must not change the loss
    torch.manual_seed(5)
    same = model(input_ids=ids, attention_mask=mask, masked_positions=masked, labels=labels)
    if objective == "mae":
        torch.testing.assert_close(same.loss, out.loss)
    else:  # mlm corruption is random; recompute on the same logits
        torch.testing.assert_close(same.loss, F.cross_entropy(same.logits, ids[masked]))


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_num_items_in_batch_makes_split_batches_weigh_every_token_alike(objective, real_batch):
    """As transformers' models: dividing by the step's token count, two micro-batches give the full batch's
    gradient even when they hold different numbers of masked tokens."""
    # every masked token becomes [MASK]: no random corruption that would differ between the two splits
    model = tiny(pretraining_objective=objective, mlm_mask_token_prob=1.0, mlm_random_token_prob=0.0)
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, model.config), 0.5, torch.Generator().manual_seed(0))
    masked[0] &= torch.arange(ids.shape[1]) < 12  # unequal counts per row
    total = int(masked.sum())
    torch.manual_seed(3)
    full = model(input_ids=ids, attention_mask=mask, masked_positions=masked)
    summed = model(input_ids=ids, attention_mask=mask, masked_positions=masked, num_items_in_batch=1).loss
    torch.testing.assert_close(summed, full.loss * total)
    full.loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for rows in (slice(0, 1), slice(1, None)):
        part = model(input_ids=ids[rows], attention_mask=mask[rows], masked_positions=masked[rows],
                     num_items_in_batch=total)
        part.loss.backward()
    for parameter, reference in zip(model.parameters(), expected):
        torch.testing.assert_close(parameter.grad, reference, atol=1e-6, rtol=1e-4)


def test_view_contrastive_loss_is_nt_xent_over_views():
    torch.manual_seed(0)
    embeddings, ids, temperature = torch.randn(6, 5), torch.tensor([7, 7, 3, 3, 9, 1]), 0.5
    unit = F.normalize(embeddings, dim=-1)
    expected = []
    for row in range(6):  # by hand: softmax over every other row, mean -log p of the same-barcode rows
        others = [j for j in range(6) if j != row]
        logits = torch.stack([unit[row] @ unit[j] / temperature for j in others])
        log_p = dict(zip(others, logits.log_softmax(0)))
        positives = [j for j in others if ids[j] == ids[row]]
        if positives:  # rows 4 and 5 have no second view: they are negatives only
            expected.append(-torch.stack([log_p[j] for j in positives]).mean())
    torch.testing.assert_close(view_contrastive_loss(embeddings, ids, temperature), torch.stack(expected).mean())
    # identical views far from everything else: near zero at a low temperature; one view per barcode: zero
    views = torch.eye(4).repeat_interleave(2, dim=0)
    assert view_contrastive_loss(views, torch.arange(4).repeat_interleave(2), 0.05) < 1e-6
    assert view_contrastive_loss(embeddings, torch.arange(6), 0.5) == 0


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_contrastive_term_is_added_only_with_views_and_a_weight(objective, real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, tiny().config), 0.5, torch.Generator().manual_seed(1))
    barcode_ids = torch.tensor([0, 0, 1, 1, 2, 2])
    model = tiny(pretraining_objective=objective, contrastive_weight=0.25, mlm_random_token_prob=0.0,
                 mlm_mask_token_prob=1.0)
    out = model(input_ids=ids, attention_mask=mask, masked_positions=masked, barcode_ids=barcode_ids)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + 0.25 * out.contrastive_loss)
    encoder_input = (
        {"input_ids": ids.masked_fill(masked, model.config.mask_token_id), "attention_mask": mask}
        if objective == "mlm"
        else None
    )
    if encoder_input is not None:  # the MLM's embedding is that of the corrupted sequence the encoder saw
        pooled = model.barcodemae(**encoder_input).pooler_output
        torch.testing.assert_close(out.contrastive_loss, view_contrastive_loss(pooled, barcode_ids, 0.1))
    out.loss.backward()
    assert model.barcodemae.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    plain = model(input_ids=ids, attention_mask=mask, masked_positions=masked)  # validation batches: no views
    assert plain.contrastive_loss is None
    torch.testing.assert_close(plain.loss, plain.reconstruction_loss)
    torch.testing.assert_close(plain.loss, out.reconstruction_loss)
    off = tiny(pretraining_objective=objective)(input_ids=ids, attention_mask=mask, barcode_ids=barcode_ids)
    assert off.contrastive_loss is None  # weight 0: the papers' objectives, untouched
    with pytest.raises(Exception, match="contrastive_weight"):  # the config's strict-dataclass validation error
        tiny(contrastive_weight=-1.0)
    with pytest.raises(Exception, match="contrastive_temperature"):
        tiny(contrastive_temperature=0.0)


@pytest.mark.parametrize("objective", ["mlm", "mae"])
def test_composition_term_is_kl_of_the_pooled_embeddings_prediction(objective, real_batch):
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, tiny().config), 0.5, torch.Generator().manual_seed(1))
    profiles = torch.rand(len(ids), 4**3)
    profiles = profiles / profiles.sum(dim=1, keepdim=True)
    model = tiny(pretraining_objective=objective, composition_weight=0.5, composition_kmer_size=3,
                 mlm_random_token_prob=0.0, mlm_mask_token_prob=1.0)
    assert model.composition_head.out_features == 64
    out = model(input_ids=ids, attention_mask=mask, masked_positions=masked, composition_targets=profiles)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + 0.5 * out.composition_loss)
    if objective == "mae":  # the embedding the term reads: the visible tokens at their positions (MAE) ...
        index, valid = gather_visible(mask.bool() & ~masked)
        encoder_input = {"input_ids": ids.gather(1, index), "attention_mask": valid.long(), "position_ids": index}
    else:  # ... or the corrupted sequence (MLM)
        encoder_input = {"input_ids": ids.masked_fill(masked, model.config.mask_token_id), "attention_mask": mask}
    pooled = model.barcodemae(**encoder_input).pooler_output
    log_predicted = F.log_softmax(model.composition_head(pooled), dim=-1)
    expected = (profiles * (profiles.log() - log_predicted)).sum(dim=1).mean()
    torch.testing.assert_close(out.composition_loss, expected)
    out.loss.backward()
    assert model.composition_head.weight.grad.abs().sum() > 0
    assert model.barcodemae.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    exact = composition_loss(profiles.log() + 3.0, profiles)  # a prediction equal to the profile costs nothing
    torch.testing.assert_close(exact, torch.tensor(0.0), atol=1e-6, rtol=0)
    plain = model(input_ids=ids, attention_mask=mask, masked_positions=masked)  # no targets (validation): no term
    assert plain.composition_loss is None
    assert tiny(pretraining_objective=objective).composition_head is None  # weight 0: no head, no term
    with pytest.raises(Exception, match="composition_kmer_size"):
        tiny(composition_weight=1.0, composition_kmer_size=0)


def test_given_mask_is_honoured_but_never_covers_specials_or_padding():
    model = tiny()
    ids, mask = batch([12, 8])
    wanted = torch.ones_like(ids, dtype=torch.bool)
    wanted[:, 1] = False
    out = model(input_ids=ids, attention_mask=mask, masked_positions=wanted)
    assert torch.equal(out.masked_positions, wanted & maskable_positions(ids, mask, model.config))


def test_mae_logits_of_a_padded_row_match_the_row_alone(real_batch):
    model = tiny()
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    masked = random_token_mask(maskable_positions(ids, mask, model.config), 0.5, torch.Generator().manual_seed(0))
    n = int(mask[1].sum())
    with torch.no_grad():
        together = model(input_ids=ids, attention_mask=mask, masked_positions=masked, full_logits=True).full_logits
        alone = model(input_ids=ids[1:2, :n], masked_positions=masked[1:2, :n], full_logits=True).full_logits
    torch.testing.assert_close(together[1:2, :n], alone, atol=1e-4, rtol=1e-4)


def test_batch_with_nothing_to_mask_has_zero_loss_not_nan():
    model = tiny()
    ids, mask = batch([3, 2])  # [CLS] x [SEP] and [CLS] [SEP]: one maskable token at most stays visible
    out = model(input_ids=ids, attention_mask=mask)
    assert not out.masked_positions.any()
    assert out.loss.item() == 0.0


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_training_on_real_barcodes_reduces_loss(objective, real_batch):
    torch.manual_seed(0)
    model = tiny(pretraining_objective=objective).train()
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    masked = random_token_mask(maskable_positions(ids, mask, model.config), 0.5, torch.Generator().manual_seed(0))
    losses = []
    for _ in range(15):
        loss = model(input_ids=ids, attention_mask=mask, masked_positions=masked).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_pooled_layers_leaves_pretraining_unchanged(objective, real_batch):
    """The embedding choice is read off the encoder, never fed to the loss: runs differing only in it train alike."""
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    losses = []
    for pooled_layers in ("last", "mean"):
        model = tiny(pretraining_objective=objective, pooled_layers=pooled_layers).train()
        torch.manual_seed(1)
        loss = model(input_ids=ids, attention_mask=mask).loss
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=0, atol=0)
    for first, second in zip(losses[0][1], losses[1][1]):
        torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_gradient_checkpointing_gives_same_gradients():
    ids, mask = batch([30, 20])
    masked = random_token_mask(maskable_positions(ids, mask, tiny().config), 0.5, torch.Generator().manual_seed(0))
    grads = []
    for checkpointing in (False, True):
        model = tiny().train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.barcodemae.encoder.layer[0].gradient_checkpointing
        model(input_ids=ids, attention_mask=mask, masked_positions=masked).loss.backward()
        grads.append(model.barcodemae.embeddings.word_embeddings.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_bf16_autocast_forward_and_backward(objective):
    model = tiny(pretraining_objective=objective, decoder_hidden_size=16, decoder_num_attention_heads=2).train()
    ids, mask = batch([30, 11])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=mask)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_decoder_projection_when_widths_differ():
    model = tiny(decoder_hidden_size=16, decoder_num_attention_heads=2)
    assert model.decoder.projection.weight.shape == (16, 32)
    assert tiny().decoder.projection.__class__.__name__ == "Identity"


def test_mask_embedding_is_initialised_and_pad_row_zero():
    model = tiny()
    assert model.decoder.mask_embedding.abs().sum() > 0
    assert model.barcodemae.embeddings.word_embeddings.weight[0].abs().sum() == 0


# ------------------------------------------------------------------------------------------ classification
def test_sequence_classification(real_batch):
    model = tiny(BarcodeMAEForSequenceClassification, num_labels=7)
    labels = torch.tensor([0, 1, 2, 3, 4, 6])
    out = model(input_ids=real_batch["input_ids"], attention_mask=real_batch["attention_mask"], labels=labels)
    assert out.logits.shape == (6, 7)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    out.loss.backward()
    assert model.barcodemae.embeddings.word_embeddings.weight.grad is not None


@pytest.mark.parametrize("objective", ["mlm", "mae"])
def test_folders_with_the_old_head_names_load_and_resave_under_the_new_names(objective, tmp_path, real_batch):
    """Folders saved before the head's parts were named (lm_head.decoder, lm_head.transform.0/.2) still load."""
    from safetensors.torch import load_file, save_file

    model = tiny(pretraining_objective=objective, prediction_head_transform=objective == "mlm")
    model.save_pretrained(tmp_path / "new")
    weights = load_file(tmp_path / "new" / "model.safetensors")
    old_names = {"vocab_projection": "decoder", "dense": "transform.0", "layer_norm": "transform.2"}
    legacy = {}
    for key, tensor in weights.items():
        part = key.split(".")[1] if key.startswith("lm_head.") else None
        legacy[key.replace(f"lm_head.{part}.", f"lm_head.{old_names[part]}.") if part else key] = tensor
    assert "lm_head.decoder.weight" in legacy and ("lm_head.transform.0.weight" in legacy) == (objective == "mlm")
    (tmp_path / "old").mkdir()
    (tmp_path / "new" / "config.json").rename(tmp_path / "old" / "config.json")
    save_file(legacy, tmp_path / "old" / "model.safetensors", metadata={"format": "pt"})

    loaded, info = BarcodeMAEForPreTraining.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = {"input_ids": real_batch["input_ids"], "attention_mask": real_batch["attention_mask"], "full_logits": True}
    torch.manual_seed(1)
    expected = model(**inputs).full_logits
    torch.manual_seed(1)
    torch.testing.assert_close(loaded.eval()(**inputs).full_logits, expected)
    loaded.save_pretrained(tmp_path / "resaved")
    resaved = load_file(tmp_path / "resaved" / "model.safetensors")
    assert resaved.keys() == weights.keys()
