"""The rows of ``bench_alignment.py``: each way of naming a query barcode's taxon from a reference library.

A method builds whatever it searches (a BLAST database, a VSEARCH UDB, an embedding index) once from the library's
files, then answers one query FASTA per task with a *call* per query: the genus and the species it names, or
nothing (no call). :func:`registered_methods` lists the rows; a new row is one more entry there. Every method
outside this process is a :class:`CommandLineMethod`: its commands are recorded exactly as run, and each one's wall
clock and peak memory come from :func:`timing.run_command`.
"""

from __future__ import annotations

import csv
import re
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timing import command_memory_method, peak_memory_mib, reset_peak_memory, run_command

from barcodemae.cli_options import DEFAULT_ALIGN, DEFAULT_CANDIDATES, DEFAULT_IDENTITY_THRESHOLDS, DEFAULT_KMER
from barcodemae.data.fasta_headers import SINTAX_RANKS, parse_header, sintax_taxonomy
from barcodemae.eval.metrics import nearest_neighbors
from barcodemae.identify_tables import BLAST6_COLUMNS
from barcodemae.inference import KmerFrequencyEmbedder

CALL_RANKS = ("genus", "species")
"""The ranks a method's calls name (a frame with these columns, indexed by query id; missing: no call)."""
SINTAX_LETTERS = {column: letter for letter, column in SINTAX_RANKS.items() if column is not None}
"""Record column -> SINTAX rank letter, in SINTAX's order (phylum ... species)."""
INSTALL_HINTS = {"vsearch": "apt-get install vsearch", "blastn": "apt-get install ncbi-blast+",
                 "makeblastdb": "apt-get install ncbi-blast+", "barcodemae": "pip install -e ."}
"""How to get each external program a method needs (this benchmark installs nothing)."""
IN_PROCESS_MEMORY = "peak RSS of the benchmark's own process (in-process method; includes the loaded records)"
_NOT_IN_A_SINTAX_NAME = re.compile(r"[\s,;:]")


@dataclass(frozen=True)
class ReferenceLibrary:
    """The reference records and the files every method builds from (written once by the benchmark)."""

    records: pd.DataFrame
    """``processid``, ``dna_barcode`` and the rank columns present (cleaned barcodes), one row per reference."""
    fasta: Path
    """``>processid`` headers: what BLAST indexes."""
    sintax_fasta: Path
    """SINTAX headers (:func:`sintax_header`): what VSEARCH and ``barcodemae identify build`` read."""

    def calls_of_hits(self, top_hit: pd.Series) -> pd.DataFrame:
        """The genus and species of each query's top hit (``query id -> reference id``): its calls."""
        taxonomy = self.records.set_index("processid")[list(CALL_RANKS)]
        return taxonomy.reindex(top_hit.to_numpy()).set_axis(top_hit.index)


@dataclass(frozen=True)
class QuerySet:
    """The queries of one task, as records (in-process methods) and as a ``>processid`` FASTA (programs)."""

    records: pd.DataFrame
    fasta: Path


@dataclass(frozen=True)
class Phase:
    """One measured phase of a method (building its reference, or answering one task's queries)."""

    seconds: float
    peak_memory_mib: float | None
    memory_method: str
    commands: tuple[str, ...] = ()
    """The exact command lines, as a shell would take them (none for an in-process method)."""


def sintax_header(record: Mapping[str, object]) -> str:
    """``processid;tax=p:...,c:...,g:Genus,s:Genus_species;`` for one reference (ranks it lacks are left out).

    Species spaces become underscores (the SINTAX convention, undone by the readers); a name SINTAX cannot carry
    (a ``,``, ``;`` or ``:``, or whitespace outside a species) raises ``ValueError`` naming the record.
    """
    items = []
    for column, letter in SINTAX_LETTERS.items():
        name = record.get(column)
        if pd.isna(name):
            continue
        written = name.replace(" ", "_") if column == "species" else name
        if _NOT_IN_A_SINTAX_NAME.search(written) or (column == "species" and "_" in name):
            raise ValueError(f"reference {record['processid']}: {column} {name!r} cannot be written in a SINTAX "
                             "header (no ',', ';', ':', and no whitespace outside a species or '_' inside one)")
        items.append(f"{letter}:{written}")
    return f"{record['processid']};tax={','.join(items)};"


def write_fasta(records: pd.DataFrame, path: Path, headers: Sequence[str] | None = None) -> Path:
    """``records``' barcodes as FASTA, headed by ``headers`` (default: the processid)."""
    headers = records["processid"] if headers is None else headers
    path.write_text("".join(f">{header}\n{barcode}\n" for header, barcode in zip(headers, records["dna_barcode"])))
    return path


def write_sintax_fasta(records: pd.DataFrame, path: Path) -> Path:
    """``records`` as a SINTAX reference FASTA (:func:`sintax_header`)."""
    return write_fasta(records, path, [sintax_header(record) for record in records.to_dict("records")])


def _read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A header-less tab-separated tool output as strings (an empty file: no rows)."""
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns), dtype=object)
    return pd.read_csv(path, sep="\t", header=None, names=list(columns), dtype=str, keep_default_na=False,
                       quoting=csv.QUOTE_NONE)


def read_blast6(path: Path) -> pd.Series:
    """Query id -> subject id of its best hit (highest bit score; ties: the first listed) in ``-outfmt 6`` output."""
    hits = _read_table(path, BLAST6_COLUMNS)
    hits["bitscore"] = hits["bitscore"].astype(float)
    best = hits.sort_values("bitscore", ascending=False, kind="stable").drop_duplicates("qseqid")
    return pd.Series(best["sseqid"].to_numpy(), index=best["qseqid"].to_numpy(), dtype=object)


def read_vsearch_userout(path: Path) -> pd.Series:
    """Query id -> reference id of its best hit (highest identity; ties: the first listed) in VSEARCH ``--userout``
    with ``--userfields query+target+id`` (a target's SINTAX header is reduced to its id)."""
    hits = _read_table(path, ("query", "target", "id"))
    hits["id"] = hits["id"].astype(float)
    best = hits.sort_values("id", ascending=False, kind="stable").drop_duplicates("query")
    targets = [parse_header(target).record_id for target in best["target"]]
    return pd.Series(targets, index=best["query"].to_numpy(), dtype=object)


def read_sintax(path: Path) -> pd.DataFrame:
    """The calls in VSEARCH ``--sintax --tabbedout`` output: per query, the genus and species of its 4th column
    (the ranks whose bootstrap support reached ``--sintax_cutoff``), ``None`` where that rank did not."""
    table = _read_table(path, ("query", "support", "strand", "kept"))
    kept = [sintax_taxonomy(text) for text in table["kept"]]
    calls = {rank: [taxonomy.get(rank) for taxonomy in kept] for rank in CALL_RANKS}
    return pd.DataFrame(calls, index=table["query"].to_numpy(), dtype=object)


class IdentificationMethod(ABC):
    """One row of the benchmark: a reference build, then calls for each task's queries."""

    key: str
    """Short name for ``--methods`` (several rows may share one, e.g. one ``identify`` row per model)."""
    label: str
    """The row's name in the table."""
    tools: tuple[str, ...] = ()
    """Programs that must be on ``PATH`` (one missing: the row is skipped, with :data:`INSTALL_HINTS`)."""

    @abstractmethod
    def build(self, library: ReferenceLibrary, folder: Path) -> Phase:
        """Make what the queries are searched against, in ``folder`` (empty, the method's own)."""

    @abstractmethod
    def query(self, library: ReferenceLibrary, queries: QuerySet, folder: Path, name: str) -> tuple[pd.DataFrame,
                                                                                                   Phase]:
        """Calls for ``queries`` (:data:`CALL_RANKS` columns, indexed by query id; queries left out: no call);
        ``name`` is unique per query set, for the files of this phase."""


@dataclass
class KmerCosine(IdentificationMethod):
    """The no-learning baseline: k-mer frequency vectors, the top hit by cosine similarity (this process)."""

    k: int = 4
    reference_vectors: np.ndarray | None = field(init=False, default=None)
    """``(n_references, 4**k)`` frequency vectors, made by :meth:`build`."""

    def __post_init__(self) -> None:
        self.key, self.label = f"kmer{self.k}-cosine", f"{self.k}-mer frequencies, cosine top-1"
        self.embedder = KmerFrequencyEmbedder(self.k)

    def build(self, library: ReferenceLibrary, folder: Path) -> Phase:
        reset_peak_memory(torch.device("cpu"))
        started = time.perf_counter()
        self.reference_vectors = self.embedder(library.records["dna_barcode"].tolist())
        return Phase(time.perf_counter() - started, peak_memory_mib(torch.device("cpu"))["peak_memory_mib"],
                     IN_PROCESS_MEMORY)

    def query(self, library: ReferenceLibrary, queries: QuerySet, folder: Path, name: str) -> tuple[pd.DataFrame,
                                                                                                   Phase]:
        reset_peak_memory(torch.device("cpu"))
        started = time.perf_counter()
        nearest, _ = nearest_neighbors(self.reference_vectors, self.embedder(queries.records["dna_barcode"].tolist()))
        seconds = time.perf_counter() - started
        top_hit = pd.Series(library.records["processid"].to_numpy()[nearest], index=queries.records["processid"])
        phase = Phase(seconds, peak_memory_mib(torch.device("cpu"))["peak_memory_mib"], IN_PROCESS_MEMORY)
        return library.calls_of_hits(top_hit), phase


@dataclass
class CommandLineMethod(IdentificationMethod):
    """A method run as programs: build commands, one query command, its output file read back into calls."""

    threads: int
    env: Mapping[str, str]
    """The environment of every command (it pins the thread count of libraries that read one from there)."""

    @abstractmethod
    def build_commands(self, library: ReferenceLibrary, folder: Path) -> list[list[str]]:
        """The commands that build the searchable reference in ``folder``."""

    @abstractmethod
    def query_command(self, queries: Path, folder: Path, output: Path) -> list[str]:
        """The command that searches ``queries`` (FASTA) against the reference in ``folder``, writing ``output``."""

    @abstractmethod
    def read_calls(self, output: Path, library: ReferenceLibrary) -> pd.DataFrame:
        """The calls in the query command's ``output``."""

    def run(self, commands: list[list[str]], folder: Path, name: str) -> Phase:
        """Run ``commands`` one after another: their summed seconds and largest peak memory."""
        runs = [run_command(argv, folder / f"{name}.{step}.log", self.env) for step, argv in enumerate(commands)]
        peaks = [run.peak_memory_mib for run in runs if run.peak_memory_mib is not None]
        return Phase(sum(run.seconds for run in runs), max(peaks, default=None), command_memory_method(),
                     tuple(shlex.join(argv) for argv in commands))

    def build(self, library: ReferenceLibrary, folder: Path) -> Phase:
        return self.run(self.build_commands(library, folder), folder, "build")

    def query(self, library: ReferenceLibrary, queries: QuerySet, folder: Path, name: str) -> tuple[pd.DataFrame,
                                                                                                   Phase]:
        output = folder / f"{name}.out"
        phase = self.run([self.query_command(queries.fasta, folder, output)], folder, name)
        return self.read_calls(output, library), phase


@dataclass
class VsearchGlobal(CommandLineMethod):
    """``vsearch --usearch_global`` against a UDB of the references: the top hit at ``--id`` or better."""

    key: str = "vsearch"
    label: str = "VSEARCH --usearch_global --id 0.7 (maxaccepts 1, maxrejects 32), top hit"
    search_options: tuple[str, ...] = ()
    """Options beyond the defaults, e.g. ``--maxaccepts 0 --maxrejects 0`` (exhaustive)."""
    min_identity: float = 0.7
    tools: tuple[str, ...] = ("vsearch",)

    def build_commands(self, library: ReferenceLibrary, folder: Path) -> list[list[str]]:
        return [vsearch_udb_command(library, folder)]

    def query_command(self, queries: Path, folder: Path, output: Path) -> list[str]:
        return ["vsearch", "--usearch_global", str(queries), "--db", str(folder / "reference.udb"), "--id",
                str(self.min_identity), *self.search_options, "--maxhits", "1", "--userout", str(output),
                "--userfields", "query+target+id", "--threads", str(self.threads), "--quiet"]

    def read_calls(self, output: Path, library: ReferenceLibrary) -> pd.DataFrame:
        return library.calls_of_hits(read_vsearch_userout(output))


def vsearch_udb_command(library: ReferenceLibrary, folder: Path) -> list[str]:
    """VSEARCH's index of the SINTAX reference (single-threaded: ``--makeudb_usearch`` has no threads)."""
    return ["vsearch", "--makeudb_usearch", str(library.sintax_fasta), "--output", str(folder / "reference.udb"),
            "--quiet"]


@dataclass
class Blastn(CommandLineMethod):
    """``blastn`` against a BLAST database of the references: the hit with the best bit score."""

    task: str = "megablast"
    """``megablast`` (blastn's default, word size 28) or ``blastn`` (word size 11, slower, more sensitive)."""
    evalue: float = 1e-5
    tools: tuple[str, ...] = ("makeblastdb", "blastn")

    def __post_init__(self) -> None:
        self.key = f"blastn-{self.task}"
        self.label = f"BLAST+ blastn -task {self.task} -evalue {self.evalue:g}, best bit score"

    def build_commands(self, library: ReferenceLibrary, folder: Path) -> list[list[str]]:
        return [["makeblastdb", "-in", str(library.fasta), "-dbtype", "nucl", "-out", str(folder / "reference")]]

    def query_command(self, queries: Path, folder: Path, output: Path) -> list[str]:
        return ["blastn", "-task", self.task, "-query", str(queries), "-db", str(folder / "reference"), "-outfmt",
                "6", "-max_target_seqs", "5", "-evalue", f"{self.evalue:g}", "-num_threads", str(self.threads),
                "-out", str(output)]

    def read_calls(self, output: Path, library: ReferenceLibrary) -> pd.DataFrame:
        return library.calls_of_hits(read_blast6(output))


@dataclass
class Sintax(CommandLineMethod):
    """``vsearch --sintax``: bootstrap k-mer classification; a rank is called only at ``cutoff`` support or more."""

    cutoff: float = 0.8
    seed: int = 0
    """``--randseed`` (SINTAX subsamples k-mers; runs repeat exactly only with one thread)."""
    key: str = "sintax"
    tools: tuple[str, ...] = ("vsearch",)

    def __post_init__(self) -> None:
        self.label = f"SINTAX (vsearch --sintax, cutoff {self.cutoff:g})"

    def build_commands(self, library: ReferenceLibrary, folder: Path) -> list[list[str]]:
        return [vsearch_udb_command(library, folder)]

    def query_command(self, queries: Path, folder: Path, output: Path) -> list[str]:
        return ["vsearch", "--sintax", str(queries), "--db", str(folder / "reference.udb"), "--sintax_cutoff",
                f"{self.cutoff:g}", "--tabbedout", str(output), "--randseed", str(self.seed + 1), "--threads",
                str(self.threads), "--quiet"]

    def read_calls(self, output: Path, library: ReferenceLibrary) -> pd.DataFrame:
        return read_sintax(output)


CALLED_AT = {"genus": ("species", "genus"), "species": ("species",)}
"""Rank -> the ``call_level`` values of ``identify query`` that name a taxon at that rank."""


def read_identify_table(output: Path, calls_from: str = "top_hit") -> pd.DataFrame:
    """The calls in an ``identify query`` table: ``calls_from="top_hit"`` reads the best hit's genus and species
    (``top_<rank>``: the cosine top hit with ``--align 0``, the best by local alignment score with ``--align N``, as
    the alignment programs' rows read their top hit); ``"call"`` reads only what the identity call names
    (``call_level`` species: both ranks; genus: the genus; family, order or none: no call), so the no-call share and
    the precision are those of the calls a user reads."""
    table = pd.read_csv(output, dtype=str, keep_default_na=False, na_values=[""]).set_index("query_id")
    named = table[[f"top_{rank}" for rank in CALL_RANKS]].set_axis(list(CALL_RANKS), axis=1)
    if calls_from == "call":
        for rank in CALL_RANKS:
            named[rank] = named[rank].where(table["call_level"].isin(CALLED_AT[rank]))
    return named


@dataclass
class IdentifyCommand(CommandLineMethod):
    """``barcodemae identify build`` on the SINTAX reference, then ``identify query --top-k 1`` on CPU; the top hit.

    The index and each task's query run once per instance (kept in :attr:`built` / :attr:`answers`), so an
    :class:`IdentifyCalls` row reads the same run instead of repeating it.
    """

    build_options: tuple[str, ...] = ()
    """What the index is made of, e.g. ``--model FOLDER`` or ``--kmer 5``."""
    query_options: tuple[str, ...] = ("--top-k", "1", "--align", "0")
    batch_size: int = 256
    key: str = "identify"
    label: str = "barcodemae identify, top-1"
    tools: tuple[str, ...] = ("barcodemae",)
    built: tuple[Path, Phase] | None = field(default=None, init=False, repr=False)
    """The folder of the index and the build's measurement, once built."""
    answers: dict[str, tuple[Path, Phase]] = field(default_factory=dict, init=False, repr=False)
    """Per query set (the ``name`` of :meth:`query`): the query table written and the query's measurement."""

    def build_commands(self, library: ReferenceLibrary, folder: Path) -> list[list[str]]:
        return [["barcodemae", "identify", "build", *self.build_options, "--reference", str(library.sintax_fasta),
                 "--output", str(folder / "index"), "--batch-size", str(self.batch_size), "--device", "cpu",
                 "--no-progress"]]

    def query_command(self, queries: Path, folder: Path, output: Path) -> list[str]:
        return ["barcodemae", "identify", "query", "--index", str(folder / "index"), "--input", str(queries),
                "--output", str(output), *self.query_options, "--batch-size", str(self.batch_size), "--device",
                "cpu", "--no-progress"]

    def read_calls(self, output: Path, library: ReferenceLibrary) -> pd.DataFrame:
        return read_identify_table(output)

    def build(self, library: ReferenceLibrary, folder: Path) -> Phase:
        if self.built is None:
            self.built = (folder, super().build(library, folder))
        return self.built[1]

    def answer(self, queries: QuerySet, name: str) -> tuple[Path, Phase]:
        """The query table of ``queries`` and its measurement: run once (in the index's folder), then remembered."""
        if name not in self.answers:
            folder = self.built[0]
            output = folder / f"{name}.out"
            self.answers[name] = output, self.run([self.query_command(queries.fasta, folder, output)], folder, name)
        return self.answers[name]

    def query(self, library: ReferenceLibrary, queries: QuerySet, folder: Path, name: str) -> tuple[pd.DataFrame,
                                                                                                   Phase]:
        output, phase = self.answer(queries, name)
        return self.read_calls(output, library), phase


@dataclass
class IdentifyCalls(IdentificationMethod):
    """The identity calls (``--thresholds`` at their default) of an :class:`IdentifyCommand` row's run: the same
    index and query, so the row shows that run's build and query measurements, read with ``calls_from="call"``."""

    run_of: IdentifyCommand = field(repr=False)
    key: str = "identify-calls"
    label: str = "barcodemae identify, identity calls"
    tools: tuple[str, ...] = ("barcodemae",)

    def build(self, library: ReferenceLibrary, folder: Path) -> Phase:
        return self.run_of.build(library, folder)

    def query(self, library: ReferenceLibrary, queries: QuerySet, folder: Path, name: str) -> tuple[pd.DataFrame,
                                                                                                   Phase]:
        output, phase = self.run_of.answer(queries, name)
        return read_identify_table(output, calls_from="call"), phase


def registered_methods(threads: int, env: Mapping[str, str], seed: int, models: Sequence[Path],
                       batch_size: int) -> list[IdentificationMethod]:
    """Every row of the benchmark, in table order (``--methods`` picks by key); a new row is one more entry here.

    The ``identify`` rows: ``--align 0`` (the embedding's cosine top hit), the default ``--align N --candidates M``
    (the best of the ``N`` best-screened of the ``M`` nearest: its top hit, and the identity calls of
    ``--thresholds`` at their default, read from the same run), on each
    ``--model`` index and on a k-mer index (``identify build --kmer``, no model).
    """
    tools = {"threads": threads, "env": env}
    aligned = ("--top-k", "1", "--align", str(DEFAULT_ALIGN), "--candidates", str(DEFAULT_CANDIDATES))
    screen = f"--align {DEFAULT_ALIGN} --candidates {DEFAULT_CANDIDATES}"
    indexes = [*((f"model {model.name}", ("--model", str(model)), f"-{model.name}") for model in models),
               (f"{DEFAULT_KMER}-mer profiles, no model", ("--kmer", str(DEFAULT_KMER)), "-kmer")]
    identify_rows = []
    for name, build, suffix in indexes:
        aligned_row = IdentifyCommand(**tools, key=f"identify-align{suffix}", build_options=build,
                                      batch_size=batch_size, label=f"barcodemae identify ({name}) {screen}, top hit",
                                      query_options=aligned)
        identify_rows += [
            IdentifyCommand(**tools, key=f"identify{suffix}", label=f"barcodemae identify ({name}) --align 0, top hit",
                            build_options=build, batch_size=batch_size),
            aligned_row,
            IdentifyCalls(run_of=aligned_row, key=f"identify-calls{suffix}",
                          label=f"barcodemae identify ({name}) {screen}, identity calls {DEFAULT_IDENTITY_THRESHOLDS}"),
        ]
    return [
        KmerCosine(4),
        *identify_rows,
        VsearchGlobal(**tools),
        VsearchGlobal(**tools, key="vsearch-exhaustive", search_options=("--maxaccepts", "0", "--maxrejects", "0"),
                      label="VSEARCH --usearch_global --id 0.7 --maxaccepts 0 --maxrejects 0 (exhaustive), top hit"),
        Blastn(**tools, task="megablast"),
        Blastn(**tools, task="blastn"),
        Sintax(**tools, cutoff=0.8, seed=seed),
    ]
