"""`barcodemae qc` without a model: the translation check (stop codons in the best frame of table 5, ambiguous
bases, length) as one verdict row per read, with the checks that made it; and on real BOLD barcodes, where every
read given an inserted base is flagged and the untouched ones mostly are not."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from barcodemae.cli import main
from barcodemae.qc.read_checks import check_reads_without_model


def read_output(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def barcode(fixture_csv) -> str:
    """A real COI barcode: 647 bp, no stop codon in its frame (the second: its first whole codon starts at base 2)."""
    barcode = pd.read_csv(fixture_csv, usecols=["dna_barcode"], nrows=1)["dna_barcode"][0]
    assert len(barcode) == 647
    return barcode


def test_each_check_flags_its_own_reads(barcode):
    stop = barcode[:301] + "TAA" + barcode[304:]  # codon 101 of frame 2 made a stop: a substitution
    inserted = barcode[:300] + "A" + barcode[300:]
    ambiguous = barcode[:10] + "N" + barcode[11:20] + "R" + barcode[21:]
    checks = check_reads_without_model([barcode, stop, inserted, ambiguous, barcode[:400]])
    assert [check.flagged_by for check in checks] == [(), ("stop_codons",), ("stop_codons",), ("ambiguous_bases",),
                                                      ("length",)]
    assert checks[0].columns() == {"frame": "2", "stop_codons": "", "ambiguous_bases": ""}
    assert checks[1].columns() == {"frame": "2", "stop_codons": "302", "ambiguous_bases": ""}
    assert checks[3].columns() == {"frame": "2", "stop_codons": "", "ambiguous_bases": "11;21"}
    assert check_reads_without_model([barcode[:400]], min_length=0)[0].flagged_by == ()  # 0: no length check


def test_the_frame_with_the_fewest_stops_is_read():
    check = check_reads_without_model(["ATGTAACGTTGGCAA"], min_length=0)[0]  # one stop in frame 1, none elsewhere
    assert (check.columns()["frame"], check.flagged_by) == ("2", ())


def test_negative_min_length_is_refused():
    with pytest.raises(ValueError, match="min_length must be >= 0"):
        check_reads_without_model(["ACGT"], min_length=-1)


def test_qc_needs_no_model(barcode, tmp_path, capsys):
    reads = {"ok": barcode, "stop": barcode[:301] + "TAG" + barcode[304:], "short": barcode[:300],
             "amb": barcode[:598] + "N" + barcode[599:], "bad": "ACGX"}
    fasta = tmp_path / "reads.fasta"
    fasta.write_text("".join(f">{name}\n{read}\n" for name, read in reads.items()))
    output = tmp_path / "verdicts.csv"
    assert main(["qc", "--input", str(fasta), "--output", str(output), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] is None and summary["min_length"] == 500 and "threshold" not in summary
    assert {key: summary[key] for key in ("clean", "has_errors", "rejected")} == \
        {"clean": 1, "has_errors": 3, "rejected": 1}
    assert summary["flagged_by"] == {"stop_codons": 1, "ambiguous_bases": 1, "length": 1}
    table = read_output(output)
    assert list(table.columns) == ["id", "length", "verdict", "verdict_by", "frame", "stop_codons", "ambiguous_bases",
                                   "problem"]
    assert table["verdict"].tolist() == ["clean", "has_errors", "has_errors", "has_errors", "rejected"]
    assert table["verdict_by"].tolist() == ["", "stop_codons", "length", "ambiguous_bases", ""]
    assert table["stop_codons"].tolist() == ["", "302", "", "", ""]
    assert table["ambiguous_bases"].tolist() == ["", "", "", "599", ""]
    assert table.loc[4, "problem"].startswith("non-IUPAC character(s) 'X'")


@pytest.fixture(scope="module")
def inserted_reads(fixture_csv, tmp_path_factory) -> tuple[Path, set[str]]:
    """The 200 real BOLD barcodes of the fixture as FASTA, every fourth with one random base inserted in its
    middle third (the frame shift a sequencing indel makes)."""
    frame = pd.read_csv(fixture_csv, usecols=["processid", "dna_barcode"])
    rng = random.Random(0)
    lines, inserted = [], set()
    for index, (record_id, barcode) in enumerate(zip(frame["processid"], frame["dna_barcode"], strict=True)):
        if index % 4 == 1:
            at = rng.randrange(len(barcode) // 3, 2 * len(barcode) // 3)
            barcode = barcode[:at] + rng.choice("ACGT") + barcode[at:]
            inserted.add(record_id)
        lines.append(f">{record_id}\n{barcode}\n")
    path = tmp_path_factory.mktemp("inserted") / "reads.fasta"
    path.write_text("".join(lines))
    return path, inserted


def test_real_reads_with_an_inserted_base_are_flagged_by_their_stop_codons(inserted_reads, fixture_csv, tmp_path):
    fasta, inserted = inserted_reads
    assert main(["qc", "--input", str(fasta), "--output", str(tmp_path / "inserted.csv"), "--no-progress"]) == 0
    table = read_output(tmp_path / "inserted.csv").set_index("id")
    assert len(table) == 200 and len(inserted) == 50
    shifted = table.loc[sorted(inserted)]
    assert (shifted["verdict"] == "has_errors").all()
    assert shifted["verdict_by"].str.contains("stop_codons").all()
    untouched = table.drop(index=sorted(inserted))
    assert untouched["verdict_by"].str.contains("stop_codons").sum() <= 2  # real COI reads: in frame, no stop

    assert main(["qc", "--input", str(fixture_csv), "--output", str(tmp_path / "fixture.csv"), "--no-progress"]) == 0
    original = read_output(tmp_path / "fixture.csv").set_index("id")
    assert (original.loc[untouched.index, "verdict_by"] == untouched["verdict_by"]).all()  # same reads, same verdict
    assert (original["verdict"] == "clean").mean() > 0.85
    flagged = original[original["verdict"] == "has_errors"]
    for row in flagged.itertuples():  # every flag has its evidence in the row
        evidence = {"stop_codons": row.stop_codons != "", "ambiguous_bases": row.ambiguous_bases != "",
                    "length": int(row.length) < 500}
        assert {check for check, seen in evidence.items() if seen} == set(row.verdict_by.split(";")), row
