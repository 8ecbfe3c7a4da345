"""The ``barcodemae`` command: ``embed``, ``identify build|query``, ``qc``, ``export``, ``train-bpe``, ``train``,
``evaluate``, ``train-qc`` and ``convert``.

Each subcommand is a thin argparse layer over one library function (:func:`barcodemae.embed_files.embed_file`,
:func:`barcodemae.identify.build_reference_index` / :func:`~barcodemae.identify.identify_file`,
:func:`barcodemae.qc.check_files.check_file`, :func:`barcodemae.export.export_encoder`,
:func:`barcodemae.bpe_files.train_bpe_on_file`), so everything the CLI does
is also scriptable from Python (``train``, ``evaluate``, ``train-qc`` and ``convert`` hand their arguments to
train.py's, eval/run.py's, eval/qc.py's and barcodemae-convert's own ``main``: :data:`FORWARDED_COMMANDS`, so one
command lists every entry point). The
embedding options (batch size, device, dtype, pooling, layer, progress, remote code) and their defaults are
:mod:`barcodemae.embedding_settings`'s.
A run prints a JSON summary on stdout (for scripts) and ends with a short human summary on stderr (what was written
where, the headline numbers, the next command: :mod:`barcodemae.endings`); a bad input ends with a one-line error
naming the file/record and exit code 2.

Building the parser imports nothing heavy (no torch, transformers or datasets: each command imports its library
function inside its ``run_*`` function), so ``--help`` and ``--version`` answer at once;
tests/test_cli_startup.py checks it and bench/bench_startup.py times it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from importlib.metadata import version
from pathlib import Path

from barcodemae.cli_options import (
    DEFAULT_ALIGN,
    DEFAULT_CANDIDATES,
    DEFAULT_IDENTITY_THRESHOLDS,
    DEFAULT_KMER,
    DEFAULT_TOP_K,
    TABLE_FORMATS,
)
from barcodemae.embedding_settings import DEFAULT_SHARD_SIZE, EmbeddingSettings, add_embedding_flags
from barcodemae.endings import (
    Ending,
    embed_ending,
    export_ending,
    index_ending,
    print_ending,
    qc_ending,
    query_ending,
)
from barcodemae.errors import report_errors
from barcodemae.eval.postprocess import POSTPROCESSING
from barcodemae.flag_spellings import CommandParser
from barcodemae.index_search import IVF_NPROBE
from barcodemae.progress_bars import library_progress_bars_hidden
from barcodemae.qc.read_checks import DEFAULT_MIN_LENGTH

INDEX_EMBEDDING_FLAGS = ("batch_size", "device", "progress", "trust_remote_code")
"""The embedding flags of ``identify query``: an index embeds with its model's own pooling and layer, in float32, and
its queries in the reading frames it was built with (:class:`~barcodemae.index_embedders.ModelEmbedder`)."""
INDEX_BUILD_FLAGS = ("batch_size", "device", "frames", "progress", "trust_remote_code")
"""``identify build``'s: those of the queries, and the reading frames (``--frames first`` builds and queries a
``pooled_frames="all"`` model's index k times faster)."""


Subcommands = argparse._SubParsersAction
"""What ``add_subparsers`` returns: each ``add_*_parser`` below adds one command to it."""


def add_embed_parser(commands: Subcommands) -> None:
    """``barcodemae embed``: a barcode file into vectors, resumable."""
    embed = commands.add_parser(
        "embed", help="embed a FASTA/CSV/TSV barcode file into Parquet or NumPy",
        description="Embed barcodes (length-sorted batches, resumable shards, rejected records reported).",
    )
    embed.add_argument("--model", required=True, help="model folder (exported or save_pretrained)")
    embed.add_argument("--input", required=True, help=".csv/.fasta/.fa/.tsv, optionally .gz")
    embed.add_argument("--output", required=True, help="output .parquet (metadata + embedding) or .npy")
    embed.add_argument("--resume", action="store_true", help="continue an interrupted run from its saved shards")
    embed.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                       help="records per saved shard (default %(default)s)")
    embed.add_argument("--split", default="all", help="BIOSCAN split(s) of a table to embed (default all)")
    embed.add_argument("--keep-shards", action="store_true", help="keep <output>.parts/ after finishing")
    add_embedding_flags(embed, EmbeddingSettings())


def add_index_build_parser(commands: Subcommands) -> None:
    """``barcodemae identify build``: a labelled reference file into an index, by a model or k-mer profiles."""
    build = commands.add_parser("build", help="embed a labelled reference file once and save an index")
    embedder = build.add_mutually_exclusive_group(required=True)
    embedder.add_argument("--model", help="model folder")
    embedder.add_argument("--kmer", type=int, nargs="?", const=DEFAULT_KMER, metavar="K",
                          help=f"no model: index the references' overlapping K-mer frequency profiles, 4**K numbers "
                          f"each (K default {DEFAULT_KMER})")
    build.add_argument("--reference", required=True,
                       help="labelled reference barcodes: FASTA with SINTAX or BOLD headers, or CSV/TSV with rank "
                       "columns (docs/data.md)")
    build.add_argument("--output", required=True, help="index folder to create")
    build.add_argument("--split", default="all", help="BIOSCAN split(s) of a table to use as references")
    build.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                       help="records per saved shard (default %(default)s)")
    build.add_argument("--resume", action="store_true", help="continue an interrupted build")
    build.add_argument(
        "--postprocess", default="none", choices=POSTPROCESSING,
        help="centring or PCA-whitening fitted on the references, stored in the index and applied to queries",
    )
    build.add_argument(
        "--calibration-split", default=None, metavar="SPLITS",
        help="labelled records of the reference file (e.g. val+val_unseen, disjoint from --split) on which to fit "
        "the similarity thresholds of species / genus / no calls, stored in the index",
    )
    build.add_argument("--ivf", action="store_true",
                       help="also save a faiss IVF index that queries search instead of every reference: approximate, "
                       "for libraries of millions (needs the faiss extra)")
    add_embedding_flags(build, EmbeddingSettings(), INDEX_BUILD_FLAGS)


def add_index_query_parser(commands: Subcommands) -> None:
    """``barcodemae identify query``: retrieve, align and call each query."""
    query = commands.add_parser(
        "query", help="name specimens: nearest references by embedding, aligned, called by percent identity",
        description="Each query's --candidates M nearest references by embedding are screened by their best "
        "ungapped stretch on the pair's diagonal, the --align N best scored by local alignment (the hits' order, as "
        "BLAST's bit score) and aligned in full, and the query called species / genus / family / order / none "
        "from the best hit's percent identity (--thresholds); the output's first "
        "columns are the call and the rule that made it (docs/identification.md).",
    )
    query.add_argument("--index", required=True, help="index folder from `identify build`")
    query.add_argument("--input", required=True, help="query barcodes (.csv/.fasta/.tsv)")
    query.add_argument("--output", required=True,
                       help="one row per query (.csv, .tsv, or .b6/.m8 for BLAST tabular); the hits go beside it "
                       "as <stem>.hits.<ext>")
    query.add_argument("--split", default="all", help="BIOSCAN split(s) of a table to query (default all)")
    query.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                       help="hits reported per query, which also vote (default %(default)s)")
    query.add_argument("--align", type=int, default=DEFAULT_ALIGN, metavar="N",
                       help=f"align each query in full to the N best-screened of its --candidates and call by percent "
                       f"identity (default {DEFAULT_ALIGN}); 0: no alignment, calls from the index's calibrated "
                       "similarity thresholds (or none)")
    query.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, metavar="M",
                       help=f"nearest references by embedding screened per query (default {DEFAULT_CANDIDATES}); at "
                       "most --align: only those aligned are screened")
    query.add_argument("--thresholds", default=DEFAULT_IDENTITY_THRESHOLDS, metavar="S,G,F,O",
                       help=f"percent identity for a species, genus, family, order call (default "
                       f"{DEFAULT_IDENTITY_THRESHOLDS}; BOLDigger's are 97,95,90,85)")
    query.add_argument("--format", default=None, choices=TABLE_FORMATS, dest="table_format",
                       help="csv, tsv or blast6 (the 12 BLAST -outfmt 6 columns; needs --align) (default: from "
                       "--output's suffix, else csv)")
    query_embedder = query.add_mutually_exclusive_group()
    query_embedder.add_argument("--model", default=None, help="model folder, if moved since the index was built")
    query_embedder.add_argument("--kmer", type=int, default=None, metavar="K",
                                help="check that the index holds K-mer profiles (a k-mer index needs no option)")
    query.add_argument("--nprobe", type=int, default=None,
                       help="index built with --ivf: cells searched per query, more is slower and closer to the "
                       f"exact search (default {IVF_NPROBE})")
    add_embedding_flags(query, EmbeddingSettings(), INDEX_EMBEDDING_FLAGS)


def add_identify_parser(commands: Subcommands) -> None:
    """``barcodemae identify build|query``."""
    identify = commands.add_parser("identify", help="identify specimens against an embedded reference library")
    identify_commands = identify.add_subparsers(dest="identify_command", required=True)
    add_index_build_parser(identify_commands)
    add_index_query_parser(identify_commands)


def add_qc_parser(commands: Subcommands) -> None:
    """``barcodemae qc``: the per-read sequencing-error check."""
    qc = commands.add_parser(
        "qc", help="check reads for sequencing errors: translation check, optionally an ENBED error detector",
        description="Per-read sequencing-error check: one output row per input record, in input order, with the "
        "verdict (clean / has_errors / rejected) and verdict_by, the checks that flagged the read. Without a model: "
        "the translation check (stop codons in the best reading frame of the invertebrate mitochondrial code, "
        "ambiguous bases, length), with the frame and the 1-based positions of stops and ambiguous bases. --model adds "
        "a fine-tuned ENBED detector: its error score and the positions of substituted, inserted, N and missing "
        "bases; --correction-model a corrected read.",
    )
    qc.add_argument("--model", default=None,
                    help="error-detector folder (qc_model/ written by eval/qc.py): adds its columns and the "
                    "'detector' check (default: the translation check alone)")
    qc.add_argument("--input", required=True,
                    help="reads: FASTA, or CSV/TSV with an id and a sequence column, optionally .gz")
    qc.add_argument("--output", required=True, help="output .csv or .tsv (optionally .gz), one row per record")
    qc.add_argument("--correction-model", default=None,
                    help="read-correction folder (correction_model/ of eval/qc.py): adds a corrected column")
    qc.add_argument("--min-length", type=int, default=DEFAULT_MIN_LENGTH,
                    help=f"reads shorter than this many bases are flagged by the length check (default "
                    f"{DEFAULT_MIN_LENGTH}, BOLD's barcode minimum; 0 turns it off)")
    qc.add_argument("--threshold", type=float, default=None,
                    help="with --model: error score above which the detector flags a read (default: the threshold "
                    "eval/qc.py chose on validation reads, saved with the model; else 0.5)")
    qc.add_argument("--num-beams", type=int, default=1, help="beams of the correction, 1 = greedy (default 1)")
    add_embedding_flags(qc, EmbeddingSettings(batch_size=64), ("batch_size", "device"))  # the models' forward passes
    qc.add_argument("--split", default="all", help="BIOSCAN split(s) of a table to check (default all)")
    qc.add_argument("--no-progress", dest="progress", action="store_false",
                    help="hide the progress bars (loading, checking)")


def add_train_bpe_parser(commands: Subcommands) -> None:
    """``barcodemae train-bpe``: a barcode BPE tokenizer."""
    train_bpe = commands.add_parser(
        "train-bpe", help="train a barcode BPE tokenizer (DNABERT-2 style) on a barcode file and save its folder",
        description="Train a byte-pair-encoding tokenizer on the cleaned barcodes of a file; the folder loads with "
        "AutoTokenizer.from_pretrained and holds bpe_training.json (what the reader and the cleaning rejected).",
    )
    train_bpe.add_argument("--data", required=True, help="barcode file: FASTA, CSV or TSV (optionally .gz)")
    train_bpe.add_argument("--output", required=True, help="folder to write the tokenizer to")
    train_bpe.add_argument("--split", default="all", help="BIOSCAN split(s) of a table to train on (default all)")
    train_bpe.add_argument("--vocab-size", type=int, default=None,
                           help="vocabulary size, special tokens and IUPAC letters included (default 4096)")
    train_bpe.add_argument("--min-frequency", type=int, default=None,
                           help="a pair must occur this often to be merged (default 2)")
    train_bpe.add_argument("--max-bp", type=int, default=None,
                           help="truncate barcodes to this many bases (default: the cleaning policy's, 660)")
    train_bpe.add_argument("--max-token-length", type=int, default=None, help="at most this many bases in a token")
    train_bpe.add_argument("--strict", action="store_true",
                           help="fail on the first invalid record instead of skipping and counting it")


FORWARDED_COMMANDS: dict[str, str] = {
    "train": "pretrain BarcodeMAE/BarcodeBERT/ENBED (every argument goes to train.py; `barcodemae train --help`)",
    "evaluate": "the BIOSCAN-5M evaluation protocol on a model or a baseline (every argument goes to eval/run.py; "
                "`barcodemae evaluate --help`)",
    "train-qc": "fine-tune and score an ENBED error detector / read corrector for `qc --model` (every argument goes to "
                "eval/qc.py; `barcodemae train-qc --help`)",
    "convert": "convert the authors' BarcodeMAE/BarcodeBERT checkpoints into a model folder (the same as "
               "barcodemae-convert; `barcodemae convert --help`)",
}
"""Commands with parsers of their own (:func:`forwarded_main`): ``barcodemae --help`` lists them, :func:`main` hands
them every argument after their name, so one command lists every entry point."""


def add_forwarded_parsers(commands: Subcommands) -> None:
    """The :data:`FORWARDED_COMMANDS`: listed here, parsed by their own parsers."""
    for name, summary in FORWARDED_COMMANDS.items():
        commands.add_parser(name, add_help=False, help=summary)


def forwarded_main(command: str) -> Callable[..., int]:
    """The ``main(argv, prog)`` of a :data:`FORWARDED_COMMANDS` entry, imported only when it runs (``--help`` stays
    fast) and by name here, so that the import graph (tests/test_import_cycles.py) sees it."""
    if command == "train":
        from barcodemae.training.command import main as command_main
    elif command == "evaluate":
        from barcodemae.eval.run import main as command_main
    elif command == "train-qc":
        from barcodemae.eval.qc import main as command_main
    else:
        from barcodemae.conversion.convert import main as command_main
    return command_main


def add_export_parser(commands: Subcommands) -> None:
    """``barcodemae export``: a Hub-ready folder from a checkpoint."""
    export = commands.add_parser(
        "export", help="write a Hub-ready feature-extraction folder from a training checkpoint"
    )
    export.add_argument("--checkpoint", required=True, help="save_pretrained folder or accelerate checkpoint")
    export.add_argument("--output", required=True, help="new folder to write")
    export.add_argument("--results", default=None, help="results.json of the evaluation (default: found nearby)")
    export.add_argument("--config-dir", default=None, help="folder with config.json (default: found nearby)")
    export.add_argument("--tokenizer-dir", default=None, help="folder with tokenizer.json (default: found nearby)")
    export.add_argument("--repo-id", default=None, help="name used in the model card's examples")
    export.add_argument("--model-name", default=None, help="title of the model card")
    export.add_argument("--training-data", default=None, help="training data paragraph of the model card")
    export.add_argument("--license", default="mit", help="licence identifier for the card (default mit)")
    export.add_argument("--template", default=None,
                        help="model card template (default model_cards/feature_extraction.md)")
    export.add_argument("--push-to-hub", default=None, metavar="REPO", help="upload the folder to this Hub repo")
    export.add_argument("--private", action="store_true", help="create the Hub repo as private")
    export.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bars (loading, writing)")


def build_parser() -> argparse.ArgumentParser:
    """The ``barcodemae`` parser: its options, then one ``add_*_parser`` per command, in ``--help``'s order."""
    parser = CommandParser(
        prog="barcodemae", description="DNA barcode foundation models: embed, identify, qc, export, train, evaluate."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('barcodemae')}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in (add_embed_parser, add_identify_parser, add_qc_parser, add_train_bpe_parser,
                        add_forwarded_parsers, add_export_parser):
        add_command(commands)
    return parser


def run_embed(args: argparse.Namespace) -> dict:
    from barcodemae.embed_files import embed_file

    summary = embed_file(
        args.model, args.input, args.output, settings=EmbeddingSettings.from_args(args), shard_size=args.shard_size,
        resume=args.resume, split=args.split, keep_shards=args.keep_shards,
    )
    return summary.to_dict()


def run_identify(args: argparse.Namespace) -> dict:
    from barcodemae.call_levels import CALL_LEVELS, UNCALIBRATED
    from barcodemae.identify import build_reference_index, identify_file, labelled_call_report
    from barcodemae.identify_tables import hits_path, output_format
    from barcodemae.index_embedders import requested_embedder

    settings = EmbeddingSettings.from_args(args)
    if args.identify_command == "build":
        index = build_reference_index(
            requested_embedder(args.model, args.kmer, settings), args.reference, args.output, split=args.split,
            settings=settings, shard_size=args.shard_size, resume=args.resume, postprocess=args.postprocess,
            calibration_split=args.calibration_split, ivf=args.ivf,
        )
        return {"index": args.output, **index.info}
    result = identify_file(
        args.index, args.input, args.output, model_dir=args.model, kmer=args.kmer, nprobe=args.nprobe,
        split=args.split, top_k=args.top_k, align=args.align, candidates=args.candidates,
        thresholds=args.thresholds, table_format=args.table_format, settings=settings,
    )
    counts = result["call_level"].value_counts()
    rules = result["call_rule"]
    summary: dict = {
        "output": args.output, "format": output_format(args.output, args.table_format),
        "hits": str(hits_path(args.output)) if args.align else None, "num_queries": len(result),
        "align": args.align, "candidates": args.candidates if args.align else 0,
        "call_levels": {level: int(counts.get(level, 0)) for level in CALL_LEVELS},
        "no_call_share": round(float((result["call_level"] == "none").mean()), 4),
        "uncalibrated": bool((rules == UNCALIBRATED).all()),
    }
    for source in ("top", "vote"):
        for rank in ("genus", "species"):
            if f"true_{rank}" in result and f"{source}_{rank}" in result:
                known = result[f"true_{rank}"].notna()
                if known.any():
                    hits = result.loc[known, f"true_{rank}"] == result.loc[known, f"{source}_{rank}"]
                    summary[f"{source}_{rank}_accuracy"] = round(float(hits.mean()), 4)
    measured = labelled_call_report(result)
    if measured is not None:
        summary["calls"] = {k: v if not isinstance(v, float) else round(v, 4) for k, v in measured.items()}
    return summary


def run_qc(args: argparse.Namespace) -> dict:
    from barcodemae.qc.check_files import check_file

    return check_file(
        args.input, args.output, model_dir=args.model, correction_model=args.correction_model,
        min_length=args.min_length, batch_size=args.batch_size, device=args.device, threshold=args.threshold,
        num_beams=args.num_beams, split=args.split, progress=args.progress,
    )


def run_export(args: argparse.Namespace) -> dict:
    from barcodemae.export import export_encoder

    output = export_encoder(
        args.checkpoint, args.output, results=args.results, config_dir=args.config_dir,
        tokenizer_dir=args.tokenizer_dir, repo_id=args.repo_id, model_name=args.model_name,
        training_data=args.training_data, license=args.license, push_to_hub=args.push_to_hub, private=args.private,
        **({"template": args.template} if args.template else {}),
    )
    return {"output": str(output), "files": sorted(p.name for p in Path(output).iterdir()),
            "pushed_to": args.push_to_hub}


def run_train_bpe(args: argparse.Namespace) -> dict:
    from barcodemae.bpe_files import train_bpe_on_file

    given = {name: getattr(args, name) for name in ("vocab_size", "min_frequency", "max_bp", "max_token_length")
             if getattr(args, name) is not None}  # unset: the library's defaults
    return train_bpe_on_file(args.data, args.output, split=args.split, strict=args.strict, **given)


COMMANDS = {"embed": run_embed, "identify": run_identify, "qc": run_qc, "export": run_export,
            "train-bpe": run_train_bpe}


def command_ending(args: argparse.Namespace, summary: dict) -> Ending:
    """The closing lines on stderr of the command ``args`` ran, from the summary it printed on stdout."""
    if args.command == "embed":
        return embed_ending(summary, model=args.model)
    if args.command == "identify":
        return index_ending(summary) if args.identify_command == "build" else query_ending(summary,
                                                                                             input_path=args.input)
    if args.command == "qc":
        return qc_ending(summary, input_path=args.input)
    return export_ending(summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``barcodemae`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED_COMMANDS:
        return forwarded_main(argv[0])(argv[1:], prog=f"barcodemae {argv[0]}")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in COMMANDS:  # a forwarded command after a barcodemae option: their parser is not this one
        parser.error(f"give barcodemae {args.command}'s options after it, and none before it")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    def run() -> int:
        with nullcontext() if getattr(args, "progress", True) else library_progress_bars_hidden():
            summary = COMMANDS[args.command](args)
        print(json.dumps(summary, indent=2, default=str))
        print_ending(command_ending(args, summary))
        return 0

    return report_errors(f"barcodemae {args.command}", run)


if __name__ == "__main__":
    sys.exit(main())
