"""Convert checkpoints of the original BarcodeMAE and BarcodeBERT code into a BarcodeMAE model folder.

:func:`convert_checkpoint` re-indexes the authors' k-mer vocabulary where needed
(:mod:`~barcodemae.conversion.kmer_vocabulary`), infers our config (:mod:`~barcodemae.conversion.checkpoint_config`),
renames the keys into our layout (:mod:`~barcodemae.conversion.checkpoint_keys`) and loads the result strictly.

Usage::

    barcodemae-convert --checkpoint model.pt --output converted/ \\
        [--tokenizer kmer:6 | path/to/tokenizer.json | tokenizer_folder] [--bert-config config.json] \\
        [--vocab-layout auto | as_is | barcodebert_kmer]
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from barcodemae.errors import check_new_folder, report_errors
from barcodemae.file_modes import apply_umask
from barcodemae.flag_spellings import CommandParser
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_barcodemae import BarcodeMAEForPreTraining

from .checkpoint_config import build_config, configs_beside
from .checkpoint_keys import (
    convert_state_dict,
    detect_format,
    drop_aliases,
    load_original_state_dict,
    rename_legacy_layernorm,
    unused_key_reasons,
)
from .kmer_vocabulary import (
    VOCAB_LAYOUTS,
    AuthorsKmerVocabulary,
    converted_tokenizer,
    kmer_config_kwargs,
    remap_vocabulary,
    resolve_vocab_layout,
)

logger = logging.getLogger(__name__)


@dataclass
class ConversionReport:
    """What a conversion read and what it dropped, so nothing is lost silently."""

    source_format: str
    config: BarcodeMAEConfig
    ignored_keys: list[str] = field(default_factory=list)
    ignored_reasons: dict[str, str] = field(default_factory=dict)
    vocab_layout: str = "as_is"
    original_vocabulary: AuthorsKmerVocabulary | None = None


def convert_checkpoint(
    checkpoint: str | Path | dict[str, torch.Tensor],
    *,
    encoder_config: dict[str, Any] | None = None,
    decoder_config: dict[str, Any] | None = None,
    num_attention_heads: int | None = None,
    decoder_num_attention_heads: int | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    vocab_layout: str = "auto",
    **config_overrides: Any,
) -> tuple[BarcodeMAEForPreTraining, ConversionReport]:
    """Load an original BarcodeMAE/BarcodeBERT checkpoint (path or state dict) as a ``BarcodeMAEForPreTraining``.

    Loading is strict: every parameter of our model must come from the checkpoint. ``tokenizer_kwargs`` are the
    target tokenizer's ``model_config_kwargs()``; ``vocab_layout`` is described in the module docstring, and
    :func:`converted_tokenizer` gives the tokenizer that reproduces the original's inputs.
    """
    if isinstance(checkpoint, (str, Path)):
        if encoder_config is None:
            encoder_config, decoder_config = configs_beside(Path(checkpoint), decoder_config)
        state_dict = load_original_state_dict(checkpoint)
    else:
        state_dict = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    state_dict, alias_reasons = drop_aliases(rename_legacy_layernorm(state_dict))
    source_format = detect_format(state_dict)
    original = resolve_vocab_layout(vocab_layout, state_dict, source_format, tokenizer_kwargs)
    if original is not None:
        state_dict = remap_vocabulary(state_dict, source_format, original)
        tokenizer_kwargs = tokenizer_kwargs or kmer_config_kwargs(original)
    config = build_config(
        state_dict,
        source_format,
        encoder_config=encoder_config,
        decoder_config=decoder_config,
        num_attention_heads=num_attention_heads,
        decoder_num_attention_heads=decoder_num_attention_heads,
        tokenizer_kwargs=tokenizer_kwargs,
        **config_overrides,
    )
    converted, ignored = convert_state_dict(state_dict, source_format, config)
    model = BarcodeMAEForPreTraining(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(converted)), sorted(set(converted) - expected)
    if missing or unexpected:
        raise ValueError(f"conversion produced a mismatched state dict: missing {missing}, unexpected {unexpected}")
    reasons = {**alias_reasons, **unused_key_reasons(ignored, projection_used=config.decoder_projection)}
    ignored = sorted(reasons)
    model.load_state_dict(converted, strict=True)
    model.eval()
    for key, reason in reasons.items():
        logger.info("not converted: %s (%s)", key, reason)
    return model, ConversionReport(
        source_format=source_format,
        config=config,
        ignored_keys=ignored,
        ignored_reasons=reasons,
        vocab_layout="as_is" if original is None else "barcodebert_kmer",
        original_vocabulary=original,
    )


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """``barcodemae-convert``'s options (also ``barcodemae convert``'s)."""
    parser = CommandParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original .pt/.bin/.safetensors state dict")
    parser.add_argument("--output", required=True, help="folder to write (model.safetensors, config.json, code)")
    parser.add_argument("--tokenizer", help=f"tokenizer to save with it: {BarcodeTokenizer.SPEC_GRAMMAR}")
    parser.add_argument("--bert-config", help="original BERT config.json (default: config.json beside the checkpoint)")
    parser.add_argument("--decoder-bert-config", help="original decoder BERT config.json (BarcodeMAE)")
    parser.add_argument("--num-attention-heads", type=int)
    parser.add_argument("--decoder-num-attention-heads", type=int)
    parser.add_argument("--mask-ratio", type=float, help="mask ratio the model was pretrained with")
    parser.add_argument(
        "--vocab-layout",
        choices=VOCAB_LAYOUTS,
        default="auto",
        help="as_is: keep token ids; barcodebert_kmer: re-index the authors' k-mer vocabulary onto our k-mer "
        "tokenizer and save it with the original's framing; auto: barcodebert_kmer when the sizes say so",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``barcodemae-convert`` and ``barcodemae convert`` (``prog``, the name its usage and errors give): a bad
    checkpoint or an output folder already in use is one line on stderr and exit status 2."""
    args = build_parser(prog).parse_args(argv)
    return report_errors(prog or "barcodemae-convert", lambda: convert_command(args))


def convert_command(args: argparse.Namespace) -> int:
    """Convert ``args.checkpoint`` into the new folder ``args.output``; print what was done as JSON."""
    check_new_folder(args.output)
    encoder_config = json.loads(Path(args.bert_config).read_text()) if args.bert_config else None
    decoder_config = json.loads(Path(args.decoder_bert_config).read_text()) if args.decoder_bert_config else None
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer) if args.tokenizer else None
    tokenizer_kwargs = tokenizer.model_config_kwargs() if tokenizer is not None else None
    if tokenizer_kwargs:
        tokenizer_kwargs.pop("max_position_embeddings", None)  # the checkpoint's position table decides
    overrides = {"mask_ratio": args.mask_ratio} if args.mask_ratio is not None else {}
    if encoder_config is None:
        encoder_config, decoder_config = configs_beside(Path(args.checkpoint), decoder_config)
    model, report = convert_checkpoint(
        args.checkpoint,
        encoder_config=encoder_config or {},
        decoder_config=decoder_config,
        num_attention_heads=args.num_attention_heads,
        decoder_num_attention_heads=args.decoder_num_attention_heads,
        tokenizer_kwargs=tokenizer_kwargs,
        vocab_layout=args.vocab_layout,
        **overrides,
    )
    if report.original_vocabulary is not None:
        tokenizer = converted_tokenizer(report.original_vocabulary, tokenizer)
    model.save_pretrained(args.output)
    if tokenizer is not None:
        tokenizer.save_pretrained(args.output)
    apply_umask(args.output)
    print(
        json.dumps(
            {
                "source_format": report.source_format,
                "output": str(args.output),
                "parameters": sum(p.numel() for p in model.parameters()),
                "ignored_keys": report.ignored_reasons,
                "vocab_layout": report.vocab_layout,
                "tokenizer_saved": tokenizer is not None,
                "tokenizer_framing": tokenizer.framing if tokenizer is not None else None,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
