"""The identification benchmark (bench/bench_alignment.py) must score every method the same way and read each
tool's output right, or its side-by-side table compares nothing. No external program is needed: tool outputs are
captured lines; the end-to-end runs skip the rows whose programs are missing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from bench_alignment import draw_queries, load_split, main, score_calls
from identification_methods import (
    IdentifyCalls,
    IdentifyCommand,
    KmerCosine,
    Phase,
    QuerySet,
    ReferenceLibrary,
    read_blast6,
    read_identify_table,
    read_sintax,
    read_vsearch_userout,
    write_fasta,
    write_sintax_fasta,
)
from timing import command_memory_method, run_command

from barcodemae.cli import main as barcodemae_main
from barcodemae.data.fasta_headers import parse_header

TOOLS = ("vsearch", "blastn", "makeblastdb")


@pytest.fixture(scope="module")
def references(fixture_csv) -> pd.DataFrame:
    return load_split(fixture_csv, "train")


@pytest.fixture
def library(references, tmp_path) -> ReferenceLibrary:
    return ReferenceLibrary(references, write_fasta(references, tmp_path / "references.fasta"),
                            write_sintax_fasta(references, tmp_path / "references.sintax.fasta"))


def test_scores_count_a_no_call_as_wrong_and_judge_calls_by_their_precision():
    truth = pd.Series(["Aedes", "Aedes", "Aedes", "Culex"])
    scores = score_calls(truth, pd.Series(["Aedes", None, "Culex", "Culex"]))
    assert scores["accuracy"] == pytest.approx(2 / 4)
    assert scores["macro_accuracy"] == pytest.approx((1 / 3 + 1 / 1) / 2)  # per true taxon, then averaged
    assert scores["no_call_share"] == pytest.approx(1 / 4)
    assert scores["call_precision"] == pytest.approx(2 / 3)
    silent = score_calls(truth, pd.Series([None] * 4, dtype=object))
    assert (silent["accuracy"], silent["no_call_share"], silent["call_precision"]) == (0.0, 1.0, None)


def test_query_draw_is_seeded_keeps_file_order_and_only_named_records():
    records = pd.DataFrame({"processid": [f"q{i}" for i in range(10)],
                            "genus": ["G"] * 8 + [None, None]})
    drawn = draw_queries(records, "genus", 5, seed=3)
    assert len(drawn) == 5 and drawn["genus"].notna().all()
    assert drawn["processid"].tolist() == sorted(drawn["processid"], key=lambda pid: int(pid[1:]))
    assert drawn.equals(draw_queries(records, "genus", 5, seed=3))
    assert not drawn.equals(draw_queries(records, "genus", 5, seed=4))
    assert len(draw_queries(records, "genus", None, seed=3)) == 8


def test_sintax_calls_are_the_ranks_that_reached_the_cutoff(tmp_path):
    output = tmp_path / "sintax.tsv"
    output.write_text(
        "q1\td:Animalia(1.00),p:Arthropoda(1.00),g:Aedes(0.92),s:Aedes_aegypti(0.55)\t+\td:Animalia,p:Arthropoda,"
        "g:Aedes\n"
        "q2\tp:Arthropoda(1.00),c:Insecta(1.00),o:Diptera(1.00),f:Culicidae(0.99),g:Culex(0.97),s:Culex_pipiens(0.91)"
        "\t+\tp:Arthropoda,c:Insecta,o:Diptera,f:Culicidae,g:Culex,s:Culex_pipiens\n"
        "q3\tp:Arthropoda(1.00),c:Insecta(1.00),o:Lepidoptera(0.17),f:Noctuidae(0.03),g:Apamea(0.02),"
        "s:Apamea_longula(0.02)\t+\tp:Arthropoda,c:Insecta\n"
    )
    calls = read_sintax(output)
    assert calls.loc["q1"].tolist() == ["Aedes", None]
    assert calls.loc["q2"].tolist() == ["Culex", "Culex pipiens"]  # SINTAX's underscore is the species' space
    assert calls.loc["q3"].tolist() == [None, None]


def test_hit_tables_give_each_query_its_best_hit(tmp_path):
    blast6 = tmp_path / "blast.tsv"
    blast6.write_text(
        "q1\tR1\t91.2\t650\t57\t0\t1\t650\t1\t650\t0.0\t850\n"
        "q1\tR2\t97.5\t650\t16\t0\t1\t650\t1\t650\t0.0\t1098\n"
        "q2\tR3\t88.0\t400\t48\t1\t1\t400\t5\t404\t1e-150\t540\n"
        "q2\tR1\t88.0\t400\t48\t1\t1\t400\t5\t404\t1e-150\t540\n"
    )
    assert read_blast6(blast6).to_dict() == {"q1": "R2", "q2": "R3"}  # equal bit scores: BLAST's first
    userout = tmp_path / "vsearch.tsv"
    userout.write_text("q1\tR4;tax=p:Arthropoda,g:Aedes,s:Aedes_aegypti;\t97.1\n"
                       "q2\tR5;tax=g:Culex;\t79.7\nq2\tR6;tax=g:Culex;\t80.3\n")
    assert read_vsearch_userout(userout).to_dict() == {"q1": "R4", "q2": "R6"}
    empty = tmp_path / "none.tsv"
    empty.write_text("")
    assert read_blast6(empty).empty and read_vsearch_userout(empty).empty


def test_sintax_reference_headers_carry_every_rank_and_read_back(references, tmp_path):
    path = write_sintax_fasta(references.head(5), tmp_path / "references.fasta")
    headers = [line[1:] for line in path.read_text().splitlines() if line.startswith(">")]
    record = references.iloc[0]
    assert headers[0] == (f"{record['processid']};tax=p:{record['phylum']},c:{record['class']},o:{record['order']},"
                          f"f:{record['family']},g:{record['genus']},s:{record['species'].replace(' ', '_')};")
    for header, (_, record) in zip(headers, references.head(5).iterrows()):
        parsed = parse_header(header)
        assert parsed.record_id == record["processid"]
        assert parsed.taxonomy == record[["phylum", "class", "order", "family", "genus", "species"]].to_dict()
    partial = references.head(1).assign(species=None)
    assert ";tax=p:" in write_sintax_fasta(partial, tmp_path / "partial.fasta").read_text()
    assert ",s:" not in (tmp_path / "partial.fasta").read_text()
    with pytest.raises(ValueError, match=f"reference {record['processid']}: genus 'Aedes, s.l.'"):
        write_sintax_fasta(references.iloc[[4]].assign(genus="Aedes, s.l."), tmp_path / "bad.fasta")


def test_kmer_row_names_each_query_by_its_nearest_reference(library, tmp_path):
    method = KmerCosine(4)
    method.build(library, tmp_path)
    queries = library.records.head(6)  # references as queries: each is its own nearest (or an identical barcode)
    calls, phase = method.query(library, QuerySet(queries, tmp_path / "unused.fasta"), tmp_path, "self")
    assert calls["genus"].tolist() == queries["genus"].tolist()
    assert phase.commands == () and phase.peak_memory_mib > 0


def test_identify_row_runs_barcodemaes_own_commands(library, kmer4_model_folder, tmp_path, capsys):
    """The recorded command lines are the CLI's (run here in-process), and their output reads back as calls."""
    method = IdentifyCommand(threads=1, env={}, label="identify", build_options=("--model", str(kmer4_model_folder)),
                             batch_size=16)
    queries = library.records.head(7)
    fasta = write_fasta(queries, tmp_path / "queries.fasta")
    output = tmp_path / "calls.csv"
    for command in (*method.build_commands(library, tmp_path), method.query_command(fasta, tmp_path, output)):
        assert command[0] == "barcodemae" and barcodemae_main(command[1:]) == 0
    capsys.readouterr()
    calls = method.read_calls(output, library)
    table = pd.read_csv(output)
    assert calls.index.tolist() == queries["processid"].tolist()
    assert calls["genus"].tolist() == table["top_genus"].tolist()
    assert calls["species"].tolist() == table["top_species"].tolist()


def test_identify_call_rows_name_only_what_the_identity_call_names(tmp_path):
    """``calls_from="call"``: a species call names both ranks, a genus call the genus, anything coarser nothing."""
    output = tmp_path / "ids.csv"
    pd.DataFrame({"query_id": ["a", "b", "c"], "call_level": ["species", "genus", "family"],
                  "top_genus": ["Aedes", "Culex", "Anopheles"],
                  "top_species": ["Aedes aegypti", "Culex pipiens", "Anopheles gambiae"]}).to_csv(output, index=False)
    top_hit = IdentifyCommand(threads=1, env={}).read_calls(output, None)
    assert top_hit["genus"].tolist() == ["Aedes", "Culex", "Anopheles"]
    calls = read_identify_table(output, calls_from="call")
    assert calls["genus"].tolist()[:2] == ["Aedes", "Culex"] and pd.isna(calls.loc["c", "genus"])
    assert calls.loc["a", "species"] == "Aedes aegypti" and calls.loc[["b", "c"], "species"].isna().all()


def test_the_calls_row_reads_the_aligned_rows_run_instead_of_repeating_it(tmp_path, monkeypatch):
    """One build and one query per task serve both rows, whichever runs first; each row reads it its own way."""
    runs = []

    def fake_run(self, commands, folder, name):
        runs.append(name)
        if name != "build":  # a query: the table identify would write
            output = Path(commands[0][commands[0].index("--output") + 1])
            pd.DataFrame({"query_id": ["a"], "call_level": ["family"], "top_genus": ["Aedes"],
                          "top_species": ["Aedes aegypti"]}).to_csv(output, index=False)
        return Phase(float(len(runs)), None, "none", ())

    monkeypatch.setattr(IdentifyCommand, "run", fake_run)
    library = ReferenceLibrary(pd.DataFrame(), tmp_path / "references.fasta", tmp_path / "references.sintax.fasta")
    queries = QuerySet(pd.DataFrame({"processid": ["a"]}), tmp_path / "queries.fasta")
    aligned = IdentifyCommand(threads=1, env={}, key="identify-align")
    calls_row = IdentifyCalls(run_of=aligned)
    found = {}
    for method in (calls_row, aligned):  # the calls row first: it has the aligned row build and query
        folder = tmp_path / method.key
        folder.mkdir()
        built = method.build(library, folder)
        found[method.key] = (built, *method.query(library, queries, folder, "unseen-genus"))
    assert runs == ["build", "unseen-genus"]
    assert found["identify-calls"][0] == found["identify-align"][0] and found["identify-calls"][2].seconds == 2.0
    assert found["identify-align"][1].loc["a", "genus"] == "Aedes"  # the top hit
    assert pd.isna(found["identify-calls"][1].loc["a", "genus"])  # a family call names no genus


def test_every_index_gets_a_cosine_an_aligned_and_a_calls_row():
    from identification_methods import registered_methods

    keys = [method.key for method in registered_methods(1, {}, 0, [Path("m")], 16)]
    for suffix in ("-m", "-kmer"):
        assert {f"identify{suffix}", f"identify-align{suffix}", f"identify-calls{suffix}"} <= set(keys)


def test_a_missing_program_skips_its_rows_with_the_way_to_install_it(fixture_csv, tmp_path, monkeypatch, capsys):
    import bench_alignment

    monkeypatch.setattr(bench_alignment.shutil, "which", lambda tool: None)
    output = tmp_path / "report.json"
    assert main(["--data", str(fixture_csv), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert {row["key"] for row in report["rows"]} == {"kmer4-cosine"}
    assert [(task["name"], task["queries_used"]) for task in report["tasks"]] == [("unseen-genus", 11),
                                                                                   ("seen-species", 42)]
    skipped = report["skipped"]
    assert len(skipped) == 8 and any("apt-get install vsearch" in reason for reason in skipped.values())  # 5 + 3 k-mer
    assert "apt-get install ncbi-blast+" in skipped["BLAST+ blastn -task blastn -evalue 1e-05, best bit score"]
    table = capsys.readouterr().out
    assert "| 4-mer frequencies, cosine top-1 | 11 |" in table and "Skipped: SINTAX" in table


def test_unknown_method_is_refused(fixture_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(fixture_csv), "--methods", "kmer4-cosine,blast", "--output", str(tmp_path / "r.json")])
    assert exit_info.value.code == 2 and "unknown ['blast']" in capsys.readouterr().err


@pytest.mark.skipif(any(shutil.which(tool) is None for tool in TOOLS), reason="vsearch or BLAST+ not installed")
def test_every_program_row_runs_on_real_records(fixture_csv, tmp_path, capsys):
    output = tmp_path / "report.json"
    assert main(["--data", str(fixture_csv), "--max-queries", "10", "--threads", "1", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    keys = ["kmer4-cosine", "identify-kmer", "identify-align-kmer", "identify-calls-kmer", "vsearch",
            "vsearch-exhaustive", "blastn-megablast", "blastn-blastn", "sintax"]
    assert [row["key"] for row in report["rows"]] == [key for key in keys for _ in range(2)]
    assert set(report["tool_versions"]) == {*TOOLS, "barcodemae"} and report["skipped"] == {}
    assert report["tool_versions"]["vsearch"].startswith("vsearch v")
    for row in report["rows"]:
        assert row["queries"] == 10 and 0 <= row["no_call_share"] <= 1 and row["threads"] == 1
        if row["key"] != "kmer4-cosine":
            assert row["commands"]["query"][0].split()[0] in (*TOOLS, "barcodemae")
            assert row["memory_method"] == command_memory_method()
        if row["no_call_share"] < 1:
            assert row["accuracy"] == pytest.approx(row["call_precision"] * (1 - row["no_call_share"]))
    blast = next(row for row in report["rows"] if row["key"] == "blastn-megablast")
    assert blast["accuracy"] >= 0.5  # these queries have close relatives among the references
    capsys.readouterr()


@pytest.mark.skipif(not command_memory_method().startswith("peak"), reason="no GNU time")
def test_a_commands_memory_is_its_own_not_the_callers(tmp_path):
    """The caller (this test process, torch loaded) is far larger than a bare interpreter: a peak inherited from it
    would show (os.wait4 and RUSAGE_CHILDREN do)."""
    small = run_command([sys.executable, "-c", "pass"], tmp_path / "small.log")
    large = run_command([sys.executable, "-c", "block = b'x' * (300 * 2**20)"], tmp_path / "large.log")
    assert small.peak_memory_mib < 100 and 300 <= large.peak_memory_mib < 400
    with pytest.raises(RuntimeError, match="exited with 3: no such reference"):
        run_command([sys.executable, "-c", "print('no such reference'); raise SystemExit(3)"], tmp_path / "fail.log")
