"""Reference libraries in the forms labs have: FASTA headers with taxonomy (SINTAX/UTAX, BOLD) and any CSV/TSV with
an id and a sequence column, read by the one reader policy that embed, identify and qc share."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from barcodemae.cli import main
from barcodemae.data import load_barcodes, open_barcode_file
from barcodemae.data.fasta import iter_fasta_raw
from barcodemae.data.fasta_headers import parse_header
from barcodemae.embed_files import embed_file
from barcodemae.embedding_settings import EmbeddingSettings
from barcodemae.qc.check_files import check_file, iter_raw_records

RANKS = ("phylum", "class", "order", "family", "subfamily", "genus", "species")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hf_cache"))


def taxonomy(record) -> dict[str, str]:
    """The ranks a record carries (``class_`` as ``class``), missing ones left out."""
    row = record.to_dict()
    return {rank: row[rank] for rank in (*RANKS, "dna_bin") if row[rank] is not None}


# ----------------------------------------------------------------------------------------------------- headers
@pytest.mark.parametrize(
    ("header", "record_id", "convention", "ranks"),
    [
        ("id1;tax=k:Animalia,p:Arthropoda,c:Insecta,o:Diptera,f:Culicidae,g:Aedes,s:Aedes_aegypti;", "id1", "sintax",
         {"phylum": "Arthropoda", "class": "Insecta", "order": "Diptera", "family": "Culicidae", "genus": "Aedes",
          "species": "Aedes aegypti"}),
        ("id2;tax=d:Eukaryota,o:Diptera,g:Culex", "id2", "sintax", {"order": "Diptera", "genus": "Culex"}),
        ("id3;tax=s:Culex_pipiens;", "id3", "sintax", {"species": "Culex pipiens"}),  # no g:, so no genus
        ("id4 ;size=12; tax= p:Arthropoda , G: Aedes ,s:,;", "id4", "sintax",
         {"phylum": "Arthropoda", "genus": "Aedes"}),
        ("ABC1-19|Apis mellifera|COI-5P", "ABC1-19", "bold", {"genus": "Apis", "species": "Apis mellifera"}),
        ("ABC2-19|Apis mellifera carnica|COI-5P|MK000002", "ABC2-19", "bold",
         {"genus": "Apis", "species": "Apis mellifera carnica"}),
        ("ABC3-19| Apis |COI-5P", "ABC3-19", "bold", {"genus": "Apis"}),
        ("ABC4-19|Culicidae|COI-5P", "ABC4-19", "bold", {"family": "Culicidae"}),
        ("ABC5-19|Chironominae|COI-5P", "ABC5-19", "bold", {"subfamily": "Chironominae"}),
        ("ABC6-19||COI-5P", "ABC6-19", "bold", {}),
        ("ABC7-19|None|COI-5P", "ABC7-19", "bold", {}),
        ("gi|12345|gb|AB000001.1|", "gi", "plain", {}),  # the second field is no taxon name
        ("seq1 sample|Site 3", "seq1", "plain", {}),  # the id field holds a space: a description, not BOLD
        ("r1 Aedes aegypti, Kenya", "r1", "plain", {}),
    ],
)
def test_each_header_convention_gives_its_id_and_ranks(header, record_id, convention, ranks):
    parsed = parse_header(header)
    assert (parsed.record_id, parsed.convention, parsed.taxonomy) == (record_id, convention, ranks)


@pytest.mark.parametrize("item", ["Culex", "x:Foo"])
def test_a_malformed_sintax_taxonomy_names_file_line_and_item(tmp_path, item):
    path = tmp_path / "bad.fasta"
    path.write_text(f">bad;tax=g:Aedes,{item}\nACGT\n")
    open_barcode_file(path)  # recognised as SINTAX from its first line; the error comes with the record's line
    with pytest.raises(ValueError, match=rf"bad.fasta:1: SINTAX taxonomy item '{item}' is not rank:name"):
        list(iter_fasta_raw(path))
    path.write_text(f">ok;tax=g:Aedes\nACGT\n>bad;tax=g:Aedes,{item}\nACGT\n")
    with pytest.raises(ValueError, match=rf"bad.fasta:3: SINTAX taxonomy item '{item}' is not rank:name"):
        list(iter_fasta_raw(path))


def test_a_file_mixing_conventions_is_read_header_by_header_with_a_warning(tmp_path, caplog):
    path = tmp_path / "mixed.fasta"
    path.write_text(">a;tax=g:Aedes,s:Aedes_aegypti\nACGT\n>b|Culex pipiens|COI-5P\nACGT\n>c some words\nACGT\n"
                    ">d;tax=g:Anopheles\nACGT\n")
    with caplog.at_level(logging.WARNING):
        records = list(iter_fasta_raw(path))
    assert [(r.processid, taxonomy(r)) for r in records] == [
        ("a", {"genus": "Aedes", "species": "Aedes aegypti"}), ("b", {"genus": "Culex", "species": "Culex pipiens"}),
        ("c", {}), ("d", {"genus": "Anopheles"})]
    assert "FASTA headers of several conventions (2 sintax, 1 bold, 1 plain)" in caplog.text


def test_the_detected_header_convention_is_logged(tmp_path, cache, caplog):
    path = tmp_path / "refs.fa.gz"
    path.write_bytes(gzip.compress(b">r1;tax=g:Aedes,s:Aedes_aegypti;\nACGTACGT\n"))
    with caplog.at_level(logging.INFO):
        dataset = load_barcodes(path, cache_dir=cache)
    assert "refs.fa.gz: reading as FASTA, SINTAX/UTAX (id;tax=k:...,g:...,s:...;) headers" in caplog.text
    assert (dataset["genus"], dataset["species"], dataset["family"]) == (["Aedes"], ["Aedes aegypti"], [None])


# ------------------------------------------------------------------------------------------------------ tables
def test_table_columns_are_found_by_alias_in_any_case(tmp_path, cache):
    csv_path = tmp_path / "lab.csv"
    csv_path.write_text("\ufeffSample ID,Genus,Species_Name,notes,SEQ,BIN-URI\n"
                        "s1,Aedes,Aedes aegypti,x,acgtacgt,BOLD:AAA0001\ns2,Culex,,y,ACGTTT,None\n",
                        encoding="utf-8")
    dataset = load_barcodes(csv_path, cache_dir=cache)
    assert dataset["processid"] == ["s1", "s2"] and dataset["dna_barcode"] == ["ACGTACGT", "ACGTTT"]
    assert dataset["genus"] == ["Aedes", "Culex"] and dataset["species"] == ["Aedes aegypti", None]
    assert dataset["dna_bin"] == ["BOLD:AAA0001", None]
    assert dataset["family"] == [None, None] and dataset["split"] == ["", ""]  # missing ranks are null

    tsv_path = tmp_path / "lab.tsv"
    tsv_path.write_text("sampleid\tfamily\tprocessid\tnucleotides\nS-1\tCulicidae\tP-1\tACGTAC\n")
    source = open_barcode_file(tsv_path)
    assert source.kind == "table"
    assert source.description == "TSV table (id: processid, sequence: nucleotides, ranks: family)"
    (record, reject), = source.records()
    assert (record.processid, record.family, record.genus, reject) == ("P-1", "Culicidae", None, None)


def test_a_table_without_id_or_sequence_column_is_a_one_line_error(tmp_path, kmer4_model_folder, capsys):
    path = tmp_path / "names.csv"
    path.write_text("name,dna_seq,genus\nx,ACGT,Aedes\n")
    with pytest.raises(ValueError) as error:
        open_barcode_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: no id column and no sequence column among its columns (name, dna_seq, genus)")
    assert "\n" not in message
    assert "id processid/sampleid/" in message and "sequence dna_barcode/nucleotides/" in message
    path.write_text("processid,dna_seq\nx,ACGT\n")
    code = main(["embed", "--model", str(kmer4_model_folder), "--input", str(path), "--output",
                 str(tmp_path / "out.npy"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"barcodemae embed: error: {path}: no sequence column among its columns (processid, ")


def test_split_selects_rows_only_where_a_split_column_exists(tmp_path, cache):
    with_split = tmp_path / "split.csv"
    with_split.write_text("id,sequence,split,genus\na,ACGT,train,G1\nb,ACGA,val,G2\nc,ACGC,val,G3\n")
    assert load_barcodes(with_split, split="val", cache_dir=cache)["processid"] == ["b", "c"]
    assert [r[0] for r in iter_raw_records(with_split, split="val")] == ["b", "c"]
    with pytest.raises(ValueError, match="unknown BIOSCAN-5M split"):
        open_barcode_file(with_split, split="valid")
    without = tmp_path / "nosplit.tsv"
    without.write_text("id\tsequence\na\tACGT\n")
    with pytest.raises(ValueError) as error:
        load_barcodes(without, split="val")
    assert str(error.value) == (f"{without}: split='val' needs a BIOSCAN-format CSV or another table with a split "
                                "column; this one has none (its columns: id, sequence)")
    fasta = tmp_path / "refs.fasta"
    fasta.write_text(">a;tax=g:Aedes\nACGT\n")
    with pytest.raises(ValueError, match="refs.fasta: split='val' needs .*; FASTA files carry no splits"):
        iter_raw_records(fasta, split="val")


def test_a_row_of_another_width_names_file_and_line(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text('id,sequence,genus\na,ACGT,G1\n"b\nc",ACGT,G1\nd,ACGT\n')
    with pytest.raises(ValueError, match="short.csv:5: 2 fields, header has 3"):
        list(open_barcode_file(path).records())


def test_a_bioscan_csv_read_as_a_plain_table_gives_the_same_records(fixture_csv, tmp_path, cache):
    """One policy: the BIOSCAN-5M fast path and the table reader agree on every column and label of every record."""
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(fixture_csv.read_text().replace("processid,", "ProcessID,", 1))
    assert (open_barcode_file(fixture_csv).kind, open_barcode_file(renamed).kind) == ("bioscan_csv", "table")
    for split in ("all", "train+test"):
        fast, fast_report, fast_vocab = load_barcodes(fixture_csv, split=split, cache_dir=cache, return_report=True)
        table, table_report, table_vocab = load_barcodes(renamed, split=split, cache_dir=cache, return_report=True)
        assert table.to_dict() == fast.to_dict() and table_vocab == fast_vocab
        assert table_report.to_dict() | {"source": ""} == fast_report.to_dict() | {"source": ""}
        assert list(load_barcodes(renamed, split=split, streaming=True)) == list(fast)
    assert list(iter_raw_records(renamed)) == list(iter_raw_records(fixture_csv))


# ------------------------------------------------------------------------------------------- embed and qc reads
def test_qc_and_embed_read_minimal_tables_and_fasta_headers(tmp_path, kmer4_model_folder):
    reads = tmp_path / "reads.csv"
    reads.write_text("SeqID,Sequence,Genus\nr1,ACGTACGTAC,Aedes\nr2,ACGTNNACGT,\n")
    summary = check_file(reads, tmp_path / "qc.csv", min_length=0, progress=False)
    table = pd.read_csv(tmp_path / "qc.csv", dtype=str, keep_default_na=False)
    assert summary["num_records"] == 2 and table["id"].tolist() == ["r1", "r2"]
    assert table["ambiguous_bases"].tolist() == ["", "5;6"]
    fasta = tmp_path / "reads.fasta"
    fasta.write_text(">q1;tax=g:Aedes;\nACGTACGTAC\n>q2|Culex pipiens|COI-5P\nACGTAC\n")
    check_file(fasta, tmp_path / "qc_fasta.csv", min_length=0, progress=False)
    assert pd.read_csv(tmp_path / "qc_fasta.csv")["id"].tolist() == ["q1", "q2"]

    barcodes = ["ACGT" * 40, "ACGA" * 40, "TTGA" * 40]
    specimens = tmp_path / "specimens.csv"
    specimens.write_text("record_id,DNA,species\n" + "".join(
        f"x{i},{barcode},{name}\n" for i, (barcode, name) in enumerate(zip(barcodes, ["Aedes aegypti", "", "C c"]))))
    output = tmp_path / "specimens.parquet"
    embed_file(kmer4_model_folder, specimens, output, settings=EmbeddingSettings(progress=False))
    written = pq.read_table(output, columns=["processid", "genus", "species"]).to_pydict()
    assert written == {"processid": ["x0", "x1", "x2"], "genus": [None] * 3, "species": ["Aedes aegypti", None, "C c"]}


# ------------------------------------------------------------------------------------------------ identify
def write_reference(rows: pd.DataFrame, path: Path, form: str) -> Path:
    """The reference records in one of the forms a lab has them."""
    if form == "sintax":
        path.write_text("".join(
            f">{row.processid};tax=k:Animalia,p:{row.phylum},c:{row['class']},o:{row.order},f:{row.family},"
            f"g:{row.genus},s:{row.species.replace(' ', '_')};\n{row.dna_barcode}\n" for _, row in rows.iterrows()))
    elif form == "bold":
        path.write_text("".join(f">{row.processid}|{row.species}|COI-5P|GB{i:05d}\n{row.dna_barcode}\n"
                                for i, (_, row) in enumerate(rows.iterrows())))
    else:
        rows.rename(columns={"processid": "ID", "dna_barcode": "Sequence", "genus": "Genus", "species": "Species"})[
            ["ID", "Genus", "Species", "Sequence"]].to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("form", "name"), [("sintax", "refs.fasta"), ("bold", "refs.fas"), ("table", "refs.csv")])
def test_identify_votes_with_the_taxonomy_of_a_fasta_or_minimal_table(form, name, kmer_profile_model, fixture_csv,
                                                                      tmp_path, capsys, caplog):
    fixture = pd.read_csv(fixture_csv)
    train, test = fixture[fixture["split"] == "train"], fixture[fixture["split"] == "test"]
    reference = write_reference(train, tmp_path / name, form)
    index = tmp_path / "index"
    with caplog.at_level(logging.WARNING):
        assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(reference),
                     "--output", str(index), "--no-progress"]) == 0
    assert "no reference has a genus" not in caplog.text
    stored = pq.read_table(index / "references.parquet").to_pandas()
    assert stored["processid"].tolist() == train["processid"].tolist()
    assert stored["genus"].tolist() == train["genus"].tolist()
    assert stored["species"].tolist() == train["species"].tolist()
    if form == "sintax":
        assert stored["family"].tolist() == train["family"].tolist()
    else:  # the form carries no family: missing, not invented
        assert stored["family"].isna().all()

    queries = tmp_path / "queries.fasta"
    queries.write_text("".join(f">{row.processid} unidentified\n{row.dna_barcode}\n" for _, row in test.iterrows()))
    output = tmp_path / "ids.csv"
    assert main(["identify", "query", "--index", str(index), "--input", str(queries), "--top-k", "3",
                 "--align", "0", "--output", str(output), "--no-progress"]) == 0
    capsys.readouterr()
    result = pd.read_csv(output)
    genus_of = dict(zip(train["processid"], train["genus"]))
    for j in (1, 2, 3):  # each neighbour's vote is the genus its header or row gave it
        assert result[f"neighbor{j}_genus"].tolist() == result[f"neighbor{j}_processid"].map(genus_of).tolist()
    votes = (result[[f"neighbor{j}_genus" for j in (1, 2, 3)]].to_numpy() ==
             result["vote_genus"].to_numpy()[:, None]).sum(axis=1)
    assert (result["vote_genus_count"] == votes).all() and (result["vote_genus_count"] >= 2).mean() > 0.5
    # test specimens: their species is in the reference, so the nearest reference carries their genus
    assert (result["neighbor1_genus"] == test["genus"].to_numpy()).all()
