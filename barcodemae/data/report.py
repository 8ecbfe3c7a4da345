"""What cleaning did to a file: how many records were read, kept, rejected (and why), truncated or trimmed.

Why: "nothing is silently lost". Every loader returns or fills a :class:`CleaningReport`, logs its summary,
and keeps the id and reason of every rejected record so a user can go back to the source file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REASON_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("missing sequence", "missing"),
    ("sequence must be a string", "missing"),
    ("empty sequence", "empty"),
    ("sequence is all N", "all_n"),
    ("non-IUPAC", "non_iupac"),
    ("too short", "too_short"),
    ("marker", "wrong_marker"),
    ("record id", "bad_id"),
)
"""Prefix of an :class:`InvalidBarcodeError` reason -> short category used for the counts."""


def reason_category(reason: str) -> str:
    """Short, countable category of a rejection reason (the full reason stays in ``rejected``)."""
    for prefix, category in REASON_CATEGORIES:
        if reason.startswith(prefix):
            return category
    return "other"


@dataclass
class CleaningReport:
    """Counts and rejected records of one load.

    ``read`` counts records that reached cleaning (after split selection); ``kept`` those in the result.
    ``read == kept + sum(rejected_by_reason.values()) + duplicates_dropped`` always holds.
    """

    source: str = ""
    read: int = 0
    kept: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    truncated: int = 0
    truncated_bases: int = 0
    trimmed: int = 0
    trimmed_bases: int = 0
    duplicates_dropped: int = 0
    duplicate_ids: list[str] = field(default_factory=list)

    @property
    def num_rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def add_rejected(self, record_id: str, reason: str) -> None:
        """Record one rejected barcode under its reason category."""
        self.rejected.append((record_id, reason))
        self.rejected_by_reason[reason_category(reason)] += 1

    def reset(self) -> None:
        """Zero every count (a streaming dataset restarts its report with each pass over the data)."""
        self.__init__(source=self.source)

    def merge(self, other: CleaningReport) -> CleaningReport:
        """Add another report's counts into this one (e.g. several files loaded into one dataset)."""
        self.read += other.read
        self.kept += other.kept
        self.rejected_by_reason.update(other.rejected_by_reason)
        self.rejected.extend(other.rejected)
        self.truncated += other.truncated
        self.truncated_bases += other.truncated_bases
        self.trimmed += other.trimmed
        self.trimmed_bases += other.trimmed_bases
        self.duplicates_dropped += other.duplicates_dropped
        self.duplicate_ids.extend(other.duplicate_ids)
        return self

    def summary(self, max_examples: int = 5) -> str:
        """Human-readable multi-line summary, with up to ``max_examples`` rejected ids and reasons."""
        name = f" {self.source}" if self.source else ""
        lines = [f"cleaning report{name}: read {self.read:,}, kept {self.kept:,}, rejected {self.num_rejected:,}"]
        for category, count in sorted(self.rejected_by_reason.items()):
            lines.append(f"  rejected {category}: {count:,}")
        if self.duplicates_dropped:
            lines.append(f"  repeated barcodes dropped: {self.duplicates_dropped:,}")
        lines.append(f"  truncated: {self.truncated:,} records ({self.truncated_bases:,} bases cut)")
        lines.append(f"  leading/trailing N trimmed: {self.trimmed:,} records ({self.trimmed_bases:,} bases)")
        if self.duplicate_ids:
            shown = ", ".join(self.duplicate_ids[:max_examples])
            lines.append(f"  duplicate record ids (kept): {len(self.duplicate_ids):,}, e.g. {shown}")
        for record_id, reason in self.rejected[:max_examples]:
            lines.append(f"  - {record_id}: {reason}")
        if len(self.rejected) > max_examples:
            lines.append(f"  ... {len(self.rejected) - max_examples:,} more rejected (see report.rejected)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready form (for logs, benchmarks and files saved next to a dataset)."""
        return {
            "source": self.source,
            "read": self.read,
            "kept": self.kept,
            "rejected": self.num_rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "truncated": self.truncated,
            "truncated_bases": self.truncated_bases,
            "trimmed": self.trimmed,
            "trimmed_bases": self.trimmed_bases,
            "duplicates_dropped": self.duplicates_dropped,
            "duplicate_ids": list(self.duplicate_ids),
            "rejected_records": [list(pair) for pair in self.rejected],
        }

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (``cleaning_report.json`` inside ``path`` when it is a directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / "cleaning_report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def __str__(self) -> str:
        return self.summary()
