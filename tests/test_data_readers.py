"""FASTA and BOLD TSV readers, and load_barcodes dispatch, on real BOLD data and malformed inputs."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from barcodemae.data import (
    CleaningReport,
    detect_format,
    load_barcodes,
    read_bold_tsv,
    read_fasta,
)
from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError, clean_barcode
from conftest import edit_keeping_size_and_mtime

BOLD_2023 = "BOLD_Public.18-Dec-2023.sample1000.tsv"
BOLD_2024 = "BOLD_Public.21-Jun-2024.curated.NL.tsv"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hf_cache"))


@pytest.fixture(scope="module")
def bold_dir(shared_data) -> Path:
    return shared_data / "bold_public_tsv"


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], rows[1:]


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        handle.write("\n".join("\t".join(fields) for fields in [header, *rows]) + "\n")
    return path


FASTA_TEXT = """\
; a comment line
>ABC001-19|Apis mellifera|COI-5P|MK000001 first record
acgtacgtac
GTACGT--AC

>ABC002-19 second
NNNACGTRYACGTNN
>BAD003-19
ACGTXACGT
>BAD004-19
NNNN
>EMPTY005-19
>ABC001-19 repeated id
ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGT
"""


@pytest.fixture
def fasta_path(tmp_path) -> Path:
    path = tmp_path / "barcodes.fasta"
    path.write_text(FASTA_TEXT)
    return path


class TestFasta:
    def test_parses_ids_joins_lines_and_cleans(self, fasta_path):
        report = CleaningReport()
        records = list(read_fasta(fasta_path, report=report, max_length=60))
        assert [r.processid for r in records] == ["ABC001-19", "ABC002-19", "ABC001-19"]
        assert records[0].dna_barcode == "ACGTACGTAC" + "GTACGTAC"
        assert records[1].dna_barcode == "ACGTRYACGT"
        assert records[2].dna_barcode == "ACGT" * 15
        assert records[0].split == "" and (records[0].genus, records[0].species) == ("Apis", "Apis mellifera")
        assert records[1].genus is None and records[1].species is None  # a plain header carries no taxonomy
        assert report.read == 6 and report.kept == 3
        assert report.rejected_by_reason == {"non_iupac": 1, "all_n": 1, "empty": 1}
        assert [record_id for record_id, _ in report.rejected] == ["BAD003-19", "BAD004-19", "EMPTY005-19"]
        assert report.duplicate_ids == ["ABC001-19"]
        assert (report.trimmed, report.trimmed_bases, report.truncated, report.truncated_bases) == (1, 5, 1, 4)

    def test_gzip_equals_plain_and_raw_mode(self, fasta_path, tmp_path):
        gz = tmp_path / "barcodes.fa.gz"
        gz.write_bytes(gzip.compress(fasta_path.read_bytes()))
        assert list(read_fasta(gz)) == list(read_fasta(fasta_path))
        raw = list(read_fasta(gz, clean=False))
        assert len(raw) == 6 and raw[0].dna_barcode == "acgtacgtacGTACGT--AC" and raw[4].dna_barcode == ""

    def test_strict_raises_naming_the_record(self, fasta_path):
        with pytest.raises(InvalidBarcodeError, match="BAD003-19.*'X'"):
            list(read_fasta(fasta_path, strict=True))

    @pytest.mark.parametrize(
        "text, message",
        [("ACGT\n>x\nACGT\n", "before the first '>'"), (">\nACGT\n", "header without a record id")],
    )
    def test_malformed_files_name_file_and_line(self, tmp_path, text, message):
        path = tmp_path / "broken.fasta"
        path.write_text(text)
        with pytest.raises(ValueError, match=f"broken.fasta:1: .*{message}"):
            list(read_fasta(path))

    def test_load_barcodes_fasta_gz_dataset_and_stream(self, fasta_path, tmp_path, cache):
        gz = tmp_path / "barcodes.fna.gz"
        gz.write_bytes(gzip.compress(fasta_path.read_bytes()))
        dataset, report, vocab = load_barcodes(gz, cache_dir=cache, return_report=True)
        assert dataset["processid"] == ["ABC001-19", "ABC002-19", "ABC001-19"]
        assert dataset["dna_barcode"] == [r.dna_barcode for r in read_fasta(fasta_path)]
        assert dataset["genus"] == ["Apis", None, None] and vocab.names("genus") == ["Apis"]
        assert report.kept == 3 and report.num_rejected == 3 and report.duplicate_ids == ["ABC001-19"]
        stream, stream_report, _ = load_barcodes(gz, streaming=True, return_report=True)
        assert list(stream) == list(dataset)
        ignored = {"source": "", "duplicate_ids": []}  # streams do not remember every id
        assert stream_report.to_dict() | ignored == report.to_dict() | ignored
        with pytest.raises(ValueError, match="carry no splits"):
            load_barcodes(gz, split="train")


    def test_cache_follows_the_content_not_the_modification_time(self, fasta_path, cache):
        """#26 item 10: the cache was keyed on size and mtime, so an edit keeping both loaded the old barcodes."""
        before = load_barcodes(fasta_path, cache_dir=cache)
        edit_keeping_size_and_mtime(fasta_path, b"NNNACGTRY", b"NNNTCGTRY")
        after = load_barcodes(fasta_path, cache_dir=cache)
        assert (before["dna_barcode"][1], after["dna_barcode"][1]) == ("ACGTRYACGT", "TCGTRYACGT")
        assert after["processid"] == before["processid"]


class TestBold:
    @pytest.mark.parametrize("name", [BOLD_2023, BOLD_2024])
    def test_both_schemas_map_to_records(self, bold_dir, name):
        header, rows = read_tsv(bold_dir / name)
        column = {key: i for i, key in enumerate(header)}
        sequence = column["nuc"] if "nuc" in column else column["nucraw"]
        report = CleaningReport()
        records = list(read_bold_tsv(bold_dir / name, report=report))
        assert report.read == len(rows) == len(records) == report.kept
        assert [r.processid for r in records] == [row[column["processid"]] for row in rows]
        assert [r.dna_barcode for r in records] == [clean_barcode(row[sequence]).sequence for row in rows]
        for record, row in zip(records, rows):
            assert record.dna_bin == (None if row[column["bin_uri"]] == "None" else row[column["bin_uri"]])
            assert record.species == (None if row[column["species"]] in ("None", "") else row[column["species"]])
            assert "None" not in (record.genus, record.species, record.subfamily, record.dna_bin)
        assert report.truncated == sum(
            len(clean_barcode(row[sequence], max_length=None).sequence) > 660 for row in rows
        )

    def test_curated_file_has_gaps_lowercase_and_ns_that_get_cleaned(self, bold_dir):
        report = CleaningReport()
        records = list(read_bold_tsv(bold_dir / BOLD_2024, report=report))
        assert all(set(r.dna_barcode) <= set("ACGTRYSWKMBDHVN") for r in records)
        assert all(not r.dna_barcode.startswith("N") and not r.dna_barcode.endswith("N") for r in records)
        assert report.trimmed > 0

    def test_load_barcodes_dataset_labels(self, bold_dir, cache):
        dataset, report, vocab = load_barcodes(bold_dir / BOLD_2023, cache_dir=cache, return_report=True)
        header, rows = read_tsv(bold_dir / BOLD_2023)
        species = [row[header.index("species")] for row in rows]
        assert len(dataset) == report.kept == 999 and set(dataset["split"]) == {""}
        assert dataset["species_label"].count(-1) == sum(name == "None" for name in species) == 830
        assert vocab.num_labels("species") == len({name for name in species if name != "None"})
        assert all(
            vocab.names("dna_bin")[i] == b for i, b in zip(dataset["dna_bin_label"], dataset["dna_bin"]) if i >= 0
        )

    def test_other_markers_missing_sequences_and_bad_rows(self, bold_dir, tmp_path, cache):
        header, rows = read_tsv(bold_dir / BOLD_2023)
        marker, sequence = header.index("marker_code"), header.index("nucraw")
        rows = [list(row) for row in rows[:10]]
        rows[1][marker] = "matK"
        rows[2][sequence] = "None"
        rows[3][sequence] = rows[3][sequence][:50] + "J" + rows[3][sequence][50:]
        path = write_tsv(tmp_path / "bold.tsv", header, rows)
        dataset, report, vocab = load_barcodes(path, cache_dir=cache, return_report=True)
        assert len(dataset) == 7 and report.read == 10 and report.kept == 7
        assert report.rejected_by_reason == {"wrong_marker": 1, "missing": 1, "non_iupac": 1}
        assert {record_id for record_id, _ in report.rejected} == {rows[i][0] for i in (1, 2, 3)}
        assert len(list(read_bold_tsv(path, marker=None))) == 8
        stream, stream_report, stream_vocab = load_barcodes(path, streaming=True, return_report=True)
        assert len(list(stream)) == 7 and stream_report.rejected_by_reason == report.rejected_by_reason
        assert stream_vocab == vocab  # rows set aside by the reader give no labels in either mode

        only_other_marker = write_tsv(tmp_path / "marker_only.tsv", header, [rows[0], rows[1]])
        strict, strict_report, _ = load_barcodes(only_other_marker, strict=True, cache_dir=cache, return_report=True)
        assert len(strict) == 1 and strict_report.rejected_by_reason == {"wrong_marker": 1}

        write_tsv(tmp_path / "short_row.tsv", header, [rows[0], rows[0][:5]])
        with pytest.raises(ValueError, match="short_row.tsv:3: 5 fields"):
            list(read_bold_tsv(tmp_path / "short_row.tsv"))

    def test_missing_columns_are_named(self, tmp_path):
        path = write_tsv(tmp_path / "x.tsv", ["processid", "genus", "marker_code"], [["A1", "Apis", "COI-5P"]])
        with pytest.raises(ValueError, match="missing column.*bin_uri.*species.*nuc or nucraw"):
            list(read_bold_tsv(path))


@pytest.mark.parametrize(
    "name, kind",
    [("a.csv", "csv"), ("a.CSV.gz", "csv"), ("x.fa", "fasta"), ("x.fasta.gz", "fasta"), ("b.tsv", "tsv")],
)
def test_detect_format(name, kind):
    assert detect_format(name) == kind


def test_detect_format_unknown():
    with pytest.raises(ValueError, match="cannot tell the file format.*\\.fasta"):
        detect_format("data.parquet")
