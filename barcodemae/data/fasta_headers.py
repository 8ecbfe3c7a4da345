"""FASTA header conventions that carry taxonomy (SINTAX/UTAX, BOLD) and the plain one that carries only an id.

Why: reference libraries are shared as FASTA far more often than as tables, and their taxonomy lives in the header.
Read as plain headers, every rank of such a library is lost and ``identify`` can only name neighbours, not taxa.

Each header is parsed by the first rule it matches (so a file mixing conventions is read header by header):

``sintax`` (SINTAX / UTAX, USEARCH and VSEARCH references)
    ``>id;tax=k:Animalia,p:Arthropoda,c:Insecta,o:Diptera,f:Culicidae,g:Aedes,s:Aedes_aegypti;``. The id is the first
    word before the first ``;`` (other ``key=value;`` fields such as ``size=12;`` are skipped); ranks ``p c o f g s``
    fill phylum, class, order, family, genus and species, ``d`` and ``k`` (domain, kingdom) are accepted and not
    kept; underscores of a species become spaces. A rank the header leaves out is missing (``s:`` without ``g:``
    gives no genus); an item that is not ``rank:name`` or names another rank is an error.
``bold`` (BOLD's FASTA download)
    ``>id|Genus species|marker`` or ``>id|Genus species|marker|accession``: the id is the field before the first
    ``|`` (one word), the second field is the identification (empty: none). A binomial (or longer name) gives the
    genus (its first word) and the species (the whole name); a single word gives the genus, unless it ends in a
    family-group suffix (``-idae``/``-aceae``: family, ``-inae``: subfamily), as BOLD identifies some specimens
    only to family. Later fields (marker, accession) are not read. The rule applies only when the second field is
    empty or starts with a capitalised name, so ``>gi|12345|gb|...`` stays plain.
``plain``
    ``>id description``: the id is the first word (before any ``|``); no taxonomy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .schema import normalise_missing

HEADER_CONVENTIONS: dict[str, str] = {
    "sintax": "SINTAX/UTAX (id;tax=k:...,g:...,s:...;)",
    "bold": "BOLD (id|Genus species|marker)",
    "plain": "plain (id description, no taxonomy)",
}
"""Each convention's name and how the log describes it, in the order headers are tried."""
SINTAX_RANKS: dict[str, str | None] = {
    "d": None, "k": None, "p": "phylum", "c": "class", "o": "order", "f": "family", "g": "genus", "s": "species",
}
"""SINTAX rank letter -> record column (``None``: a rank the record schema does not keep)."""
FAMILY_GROUP_SUFFIXES: dict[str, str] = {"idae": "family", "aceae": "family", "inae": "subfamily"}
"""Name endings of family-group names (zoological ``-idae``/``-inae``, botanical ``-aceae``): a one-word BOLD
identification with one of them is that rank, not a genus."""

_SINTAX_FIELD = re.compile(r";\s*tax=", re.IGNORECASE)
_TAXON_NAME = re.compile(r"[A-Z][a-z]+(-[a-z]+)?(\s|$)")
"""A capitalised Latin name at the start of a BOLD identification (``Aedes aegypti``, ``Culicidae``)."""


@dataclass(frozen=True)
class ParsedHeader:
    """What one FASTA header says: the record id, the convention it follows and the ranks it names."""

    record_id: str
    convention: str
    taxonomy: dict[str, str] = field(default_factory=dict)
    """Record column (``"genus"``, ``"class"``...) -> name, for the ranks the header gives; others are missing."""


def header_convention(header: str) -> str:
    """The convention (:data:`HEADER_CONVENTIONS`) of one header line (without the ``>``); never raises."""
    if _SINTAX_FIELD.search(header):
        return "sintax"
    fields = header.split("|", 2)
    if len(fields) > 1 and len(fields[0].split()) == 1:
        name = normalise_missing(fields[1]) or ""
        if not name or _TAXON_NAME.match(name):
            return "bold"
    return "plain"


def parse_header(header: str) -> ParsedHeader:
    """Parse one header line (without the ``>``); a malformed SINTAX taxonomy raises :class:`ValueError`."""
    convention = header_convention(header)
    if convention == "sintax":
        taxonomy = header[_SINTAX_FIELD.search(header).end():].split(";", 1)[0]
        return ParsedHeader(first_word(header.split(";", 1)[0]), convention, sintax_taxonomy(taxonomy))
    if convention == "bold":
        record_id, name = header.split("|", 2)[:2]
        return ParsedHeader(record_id.strip(), convention, bold_taxonomy(normalise_missing(name) or ""))
    return ParsedHeader(first_word(header).split("|")[0], convention)


def first_word(text: str) -> str:
    """The first whitespace-separated word of ``text`` (``""`` when there is none)."""
    words = text.split()
    return words[0] if words else ""


def sintax_taxonomy(text: str) -> dict[str, str]:
    """Ranks of a SINTAX ``tax=`` value (``k:Animalia,g:Aedes,s:Aedes_aegypti``), empty names left out."""
    taxonomy = {}
    for item in text.split(","):
        if not item.strip():
            continue
        letter, colon, name = item.partition(":")
        letter = letter.strip().lower()
        if not colon or letter not in SINTAX_RANKS:
            known = ", ".join(SINTAX_RANKS)
            raise ValueError(f"SINTAX taxonomy item {item.strip()!r} is not rank:name with a rank of {known}")
        column, name = SINTAX_RANKS[letter], normalise_missing(name)
        if column is not None and name is not None:
            taxonomy[column] = name.replace("_", " ") if column == "species" else name
    return taxonomy


def bold_taxonomy(name: str) -> dict[str, str]:
    """Ranks of a BOLD identification: ``"Genus species"`` -> genus and species, one word -> genus (or family /
    subfamily by its suffix, :data:`FAMILY_GROUP_SUFFIXES`), ``""`` -> none."""
    words = name.split()
    if len(words) > 1:
        return {"genus": words[0], "species": " ".join(words)}
    if not words:
        return {}
    rank = next((rank for suffix, rank in FAMILY_GROUP_SUFFIXES.items() if name.endswith(suffix)), "genus")
    return {rank: name}


__all__ = ["HEADER_CONVENTIONS", "ParsedHeader", "header_convention", "parse_header"]
