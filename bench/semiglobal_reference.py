"""A plain Needleman-Wunsch (Gotoh) aligner with free end gaps: the yardstick the SIMD aligner is checked against.

Why: ``barcodemae identify --align`` reports percent identity, aligned length, mismatches and gap opens from
parasail's striped alignment (:mod:`barcodemae.alignment`). A wrong traceback would give confident wrong numbers,
so ``bench/bench_aligners.py`` and tests/test_alignment.py compare every candidate aligner with this one, written
from the textbook recurrences and sharing nothing with the code it checks but the scores (match, mismatch, gap
open, gap extension of :mod:`barcodemae.alignment`).

Semi-global ("overlap") alignment: a gap before the first or after the last base of either sequence costs nothing,
so barcodes of different extent are not penalised for overhang; an interior gap of length ``L`` costs
``open + (L - 1) * extend``. Rows are vectorised with numpy (the horizontal gap by a running maximum); the
traceback is a Python loop over the path, fine for the few hundred pairs a check needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from barcodemae.alignment import GAP_EXTEND, GAP_OPEN, substitution_scores

NEGATIVE = -(1 << 40)
DIAGONAL, VERTICAL, HORIZONTAL = 0, 1, 2
"""Which matrix a cell's best score came from: a pair of bases, a gap in the reference (a query base against a
gap, moving down), a gap in the query (a reference base against a gap, moving right)."""


@dataclass(frozen=True)
class ReferenceAlignment:
    """One optimal alignment as aligned columns: ``query_row`` and ``reference_row`` with ``-`` for gaps."""

    score: int
    query_row: str
    reference_row: str

    def statistics(self) -> dict[str, float | int]:
        """Identity over the columns between the first and the last pair of bases (terminal gaps excluded, as
        VSEARCH's ``--iddef 2`` and BLAST count), and what BLAST's tabular output reports, 0-based half-open."""
        pairs = [i for i, (a, b) in enumerate(zip(self.query_row, self.reference_row)) if a != "-" and b != "-"]
        if not pairs:  # no two bases face each other (every column a terminal gap)
            return {"score": self.score, "matches": 0, "mismatches": 0, "gap_opens": 0, "aligned_length": 0,
                    "identity": 0.0, "query_start": 0, "query_end": 0, "reference_start": 0, "reference_end": 0}
        first, last = pairs[0], pairs[-1]
        query_inner, reference_inner = self.query_row[first:last + 1], self.reference_row[first:last + 1]
        matches = sum(a == b for a, b in zip(query_inner, reference_inner))
        mismatches = sum(a != b and a != "-" and b != "-" for a, b in zip(query_inner, reference_inner))
        gap_opens = 0
        for i, (a, b) in enumerate(zip(query_inner, reference_inner)):
            kind = "Q" if a == "-" else "R" if b == "-" else ""
            previous = "" if i == 0 else ("Q" if query_inner[i - 1] == "-" else "R" if reference_inner[i - 1] == "-"
                                          else "")
            gap_opens += bool(kind) and kind != previous
        query_start = len(self.query_row[:first].replace("-", ""))
        reference_start = len(self.reference_row[:first].replace("-", ""))
        return {
            "score": self.score, "matches": matches, "mismatches": mismatches, "gap_opens": gap_opens,
            "aligned_length": last - first + 1, "identity": 100.0 * matches / (last - first + 1),
            "query_start": query_start, "query_end": query_start + len(query_inner.replace("-", "")),
            "reference_start": reference_start,
            "reference_end": reference_start + len(reference_inner.replace("-", "")),
        }


def align_semiglobal(query: str, reference: str) -> ReferenceAlignment:
    """The best-scoring semi-global alignment of two barcodes (ties: pair of bases, then vertical, then
    horizontal)."""
    scores = substitution_scores()
    q = np.frombuffer(query.encode("ascii"), np.uint8)
    r = np.frombuffer(reference.encode("ascii"), np.uint8)
    n, m = len(q), len(r)
    columns = np.arange(m + 1)
    best = np.zeros((n + 1, m + 1), np.int64)        # H: best score of q[:i] against r[:j]
    vertical = np.full((n + 1, m + 1), NEGATIVE)    # F: ... ending in a query base against a gap
    horizontal = np.full((n + 1, m + 1), NEGATIVE)  # E: ... ending in a reference base against a gap
    source = np.zeros((n + 1, m + 1), np.int8)
    vertical_extends = np.zeros((n + 1, m + 1), bool)
    horizontal_extends = np.zeros((n + 1, m + 1), bool)
    for i in range(1, n + 1):
        opened, extended = best[i - 1] - GAP_OPEN, vertical[i - 1] - GAP_EXTEND
        vertical[i] = np.maximum(opened, extended)
        vertical_extends[i] = extended > opened
        diagonal = np.full(m + 1, NEGATIVE)
        diagonal[1:] = best[i - 1, :-1] + scores[q[i - 1], r]
        without_horizontal = np.maximum(diagonal, vertical[i])
        without_horizontal[0] = 0  # free leading gap in the reference: the row starts at zero
        # E[j] = max over k < j of H'[k] - open - (j - 1 - k) * extend, a running maximum of H'[k] + k * extend
        lifted = np.maximum.accumulate(without_horizontal + columns * GAP_EXTEND)
        horizontal[i, 1:] = lifted[:-1] - GAP_OPEN - (columns[1:] - 1) * GAP_EXTEND
        horizontal_extends[i, 1:] = horizontal[i, :-1] - GAP_EXTEND > without_horizontal[:-1] - GAP_OPEN
        row = np.maximum(without_horizontal, horizontal[i])
        row[0] = 0
        best[i] = row
        source[i] = np.where(row == diagonal, DIAGONAL, np.where(row == vertical[i], VERTICAL, HORIZONTAL))
    # free trailing gaps: the alignment may end anywhere on the last row or the last column, after one column at
    # least (as parasail's: two barcodes with no base in common still get an aligned column)
    end_column = 1 + int(np.argmax(best[n, 1:]))
    end_row = 1 + int(np.argmax(best[1:, m]))
    if best[end_row, m] > best[n, end_column]:
        i, j = end_row, m
    else:
        i, j = n, end_column
    score = int(best[i, j])
    # the columns from the last to the first: the free trailing gap, the traceback, the free leading gap
    query_columns = ["-"] * (m - j) + list(query[i:][::-1])
    reference_columns = list(reference[j:][::-1]) + ["-"] * (n - i)
    state = int(source[i, j])
    while i > 0 and j > 0:
        if state == DIAGONAL:
            query_columns.append(query[i - 1])
            reference_columns.append(reference[j - 1])
            i, j = i - 1, j - 1
            state = int(source[i, j])
        elif state == VERTICAL:
            query_columns.append(query[i - 1])
            reference_columns.append("-")
            state = VERTICAL if vertical_extends[i, j] else int(source[i - 1, j])
            i -= 1
        else:
            query_columns.append("-")
            reference_columns.append(reference[j - 1])
            state = HORIZONTAL if horizontal_extends[i, j] else int(source[i, j - 1])
            j -= 1
    query_columns += list(query[:i][::-1]) + ["-"] * j
    reference_columns += ["-"] * i + list(reference[:j][::-1])
    return ReferenceAlignment(score, "".join(query_columns[::-1]), "".join(reference_columns[::-1]))
