"""Every long command ends with a summary on stderr: it names the files that exist (and no others), the headline
numbers, and a next command that its own parser accepts; a run on simulated data says so and points to the
real-data recipe; a probe C at the grid's edge is a log line saying what to do, not a bare UserWarning."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
from test_docs_links import anchors

from barcodemae.cli_options import DEFAULT_ALIGN
from barcodemae.endings import (
    REAL_DATA_RECIPE,
    Ending,
    embed_ending,
    evaluation_ending,
    export_ending,
    index_ending,
    print_ending,
    qc_ending,
    qc_evaluation_ending,
    query_ending,
    training_ending,
)
from barcodemae.run_layout import RunLayout
from conftest import REPO_ROOT

HEADLINE = {"closed_world_species_accuracy": 0.9618, "open_world_genus_accuracy": 0.9027,
            "bin_reconstruction_ami": 0.7582, "harmonic_mean": 0.8654}


def accepted_by_its_parser(command: str) -> None:
    """Parse a next command (up to its '   (' comment) with the parser of the command it names."""
    words = shlex.split(command.split("   (")[0])
    if words[:2] == ["barcodemae", "evaluate"]:  # parsed by eval/run.py's parser, as barcodemae.cli.main does
        from barcodemae.eval.run import build_parser as eval_parser

        eval_parser().parse_args(words[2:])
    elif words[0] == "barcodemae":
        from barcodemae.cli import build_parser

        build_parser().parse_args(words[1:])
    elif words[:2] == ["python", "train.py"]:
        from barcodemae.training.arguments import parse_args

        parse_args(words[2:])
    elif words[:2] in (["python", "eval/run.py"], ["python", "eval/qc.py"]):
        from barcodemae.eval.qc import build_parser as qc_parser
        from barcodemae.eval.run import build_parser as eval_parser

        (eval_parser if words[1] == "eval/run.py" else qc_parser)().parse_args(words[2:])
    else:
        raise AssertionError(f"unknown command {command!r}")


def shown_paths(ending: Ending) -> list[Path]:
    return [path for _, path in ending.files()]


def test_an_ending_names_only_the_files_that_exist(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a.txt").write_text("a")
    ending = Ending("cmd finished", written=[("out", tmp_path / "a.txt"), ("out", tmp_path / "missing.txt"),
                                             ("folder", tmp_path / "folder")],
                    numbers="1 thing", notes=["careful"], next_command="barcodemae qc --input a --output b.csv")
    print("{}")
    print_ending(ending)
    captured = capsys.readouterr()
    assert captured.out == "{}\n"  # stdout stays the scripts' JSON
    lines = captured.err.strip().splitlines()
    assert lines[0] == "cmd finished" and lines[-1] == "  next: barcodemae qc --input a --output b.csv"
    assert f"{tmp_path / 'folder'}/" in captured.err and "missing.txt" not in captured.err
    assert "  note: careful" in lines and "  1 thing" in lines
    assert sum(line.strip().startswith("out ") for line in lines) == 1  # a label once, for its first file


def fake_run(root: Path, *, plots: bool) -> dict:
    """A run folder as train.py leaves it (empty files will do) and its run_training summary."""
    layout = RunLayout(root)
    for folder in (layout.final_model, layout.eval, layout.checkpoints, layout.simulated_data):
        folder.mkdir(parents=True)
    for path in (layout.eval / "report.md", layout.eval_results, layout.summary, layout.metrics,
                 layout.simulated_data / "simulated_bioscan5m.csv", layout.eval / "accuracy_per_genus.png"):
        path.write_text("")
    evaluation = {"metrics": {"headline": HEADLINE}, "settings": {"queries": "test"},
                  "plots": {"accuracy_per_genus": "accuracy_per_genus.png", "embedding_2d": "pca_genus.png"}
                  if plots else {}}
    return {"global_step": 200, "parameters": 702_218, "data": str(layout.simulated_data / "simulated_bioscan5m.csv"),
            "final_model": str(layout.final_model), "evaluation": evaluation}


def test_the_main_job_says_its_data_were_simulated_and_where_the_real_recipe_is(tmp_path):
    summary = fake_run(tmp_path / "run", plots=True)
    ending = training_ending(summary, output_dir=tmp_path / "run", data=None, objective="mae")
    layout = RunLayout(tmp_path / "run")
    assert shown_paths(ending)[:4] == [layout.final_model, layout.eval / "report.md", layout.eval_results,
                                       layout.eval / "accuracy_per_genus.png"]  # pca_genus.png was not written
    assert all(path.exists() for path in shown_paths(ending))
    text = ending.render()
    assert "200 optimiser steps, 702,218 parameters" in text
    assert "species probe 96.18%, genus 1-NN 90.27%, BIN AMI 75.82%, harmonic mean 86.54%" in text
    assert "simulated barcodes" in text and "not meant for real specimens" in text and REAL_DATA_RECIPE in text
    page, anchor = REAL_DATA_RECIPE.split("#")
    assert anchor in anchors(REPO_ROOT / page)
    assert ending.next_command.startswith("python train.py --preset small --data ")
    accepted_by_its_parser(ending.next_command)


def test_training_endings_on_real_data_enbed_without_evaluation_and_stopped(tmp_path):
    summary = fake_run(tmp_path / "run", plots=False)
    real = training_ending({**summary, "data": "dev.csv"}, output_dir=tmp_path / "run", data="dev.csv",
                           objective="mae")
    assert "simulated" not in real.render() and real.next_command.startswith("barcodemae identify build")
    assert "--reference dev.csv" in real.next_command
    enbed = training_ending(summary, output_dir=tmp_path / "run", data="dev.csv", objective="enbed")
    unevaluated = training_ending({k: v for k, v in summary.items() if k != "evaluation"},
                                  output_dir=tmp_path / "run", data="dev.csv", objective="mae")
    assert enbed.next_command.startswith("python eval/qc.py --model ")
    assert unevaluated.next_command.startswith("python eval/run.py --model ") and unevaluated.numbers is None
    for ending in (real, enbed, unevaluated):
        accepted_by_its_parser(ending.next_command)
    stopped = training_ending({"global_step": 3, "stopped_early": True}, output_dir=tmp_path / "run", data=None,
                              objective="mae")
    assert "stopped after step 3" in stopped.title and "--resume_from_checkpoint latest" in stopped.next_command


def test_evaluation_ending(tmp_path):
    (tmp_path / "report.md").write_text("")
    (tmp_path / "results.json").write_text("{}")
    results = {"metrics": {"headline": {**HEADLINE, "harmonic_mean": float("nan")}},
               "settings": {"queries": "validation"}, "model": {"name": "4-mer frequency baseline"}}
    model = evaluation_ending(results, output_dir=tmp_path, model="m", data="d.csv")
    assert shown_paths(model) == [tmp_path / "report.md", tmp_path / "results.json"]
    assert model.numbers == "val / val_unseen: species probe 96.18%, genus 1-NN 90.27%, BIN AMI 75.82%, harmonic " \
        "mean n/a"
    baseline = evaluation_ending(results, output_dir=tmp_path, model=None, data="d.csv", baseline="kmer")
    assert "4-mer frequency baseline" in baseline.title
    assert baseline.title.startswith("eval/run.py finished") and baseline.next_command.startswith("python eval/run.py")
    command = evaluation_ending(results, output_dir=tmp_path, model=None, data="d.csv", baseline="kmer",
                                prog="barcodemae evaluate")  # run as `barcodemae evaluate`: named as the user ran it
    assert command.title.startswith("barcodemae evaluate finished: 4-mer frequency baseline")
    assert command.next_command.startswith("barcodemae evaluate --model ")
    for ending in (model, baseline, command):
        accepted_by_its_parser(ending.next_command)


def test_the_barcodemae_command_endings(tmp_path):
    output = tmp_path / "x.npy"
    for path in (output, tmp_path / "x.npy.ids.txt", tmp_path / "x.npy.json", tmp_path / "x.npy.cleaning_report.json"):
        path.write_text("")
    embedded = embed_ending({"output": str(output), "num_records": 1200, "num_rejected": 3, "hidden_size": 64,
                             "report_path": f"{output}.cleaning_report.json"}, model="m")
    assert "1,200 records embedded, 3 rejected" in embedded.title and len(shown_paths(embedded)) == 4

    (tmp_path / "index").mkdir()
    built = index_ending({"index": str(tmp_path / "index"), "num_references": 10, "num_rejected": 0,
                          "call_thresholds": {"species": 0.97, "genus": 0.9}})
    assert built.numbers == "call thresholds: species >= 0.9700, genus >= 0.9000" and not built.notes
    uncalibrated = index_ending({"index": str(tmp_path / "index"), "num_references": 10, "num_rejected": 0})
    assert "--calibration-split" in uncalibrated.notes[0]

    (tmp_path / "ids.csv").write_text("")
    (tmp_path / "ids.hits.csv").write_text("")
    queried = query_ending({"output": str(tmp_path / "ids.csv"), "hits": str(tmp_path / "ids.hits.csv"),
                            "num_queries": 12, "top_genus_accuracy": 0.75, "vote_genus_accuracy": 0.5,
                            "call_levels": {"species": 5, "genus": 3, "family": 1, "order": 0, "none": 3},
                            "no_call_share": 0.25, "uncalibrated": False}, input_path="q.fasta")
    assert queried.numbers == ("12 queries; calls: species 5, genus 3, family 1, order 0, no call 3 (25.00% no call); "
                               "top hit genus accuracy 75.00%; vote genus accuracy 50.00%")
    assert shown_paths(queried) == [tmp_path / "ids.csv", tmp_path / "ids.hits.csv"] and not queried.notes
    unaligned = query_ending({"output": str(tmp_path / "ids.csv"), "hits": None, "num_queries": 2,
                              "call_levels": {"species": 0, "genus": 0, "family": 0, "order": 0, "none": 2},
                              "no_call_share": 1.0, "uncalibrated": True}, input_path="q.fasta")
    assert shown_paths(unaligned) == [tmp_path / "ids.csv"]
    assert "no query got a call" in unaligned.notes[0] and f"--align {DEFAULT_ALIGN}" in unaligned.notes[0]

    checked = qc_ending({"output": str(tmp_path / "ids.csv"), "model": None, "num_records": 9, "clean": 5,
                         "has_errors": 3, "rejected": 1}, input_path="reads.fasta")
    assert checked.numbers == "clean 5, has_errors 3, rejected 1"

    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "README.md").write_text("")
    exported = export_ending({"output": str(tmp_path / "export"), "files": ["README.md"], "pushed_to": "lab/m"})
    assert shown_paths(exported) == [tmp_path / "export", tmp_path / "export" / "README.md"]
    assert "lab/m" in exported.notes[0]

    (tmp_path / "qc_model").mkdir()
    scored = qc_evaluation_ending({"detection": {"model": {"verdict": {"f1": 0.5}, "record_auroc": 0.75},
                                                 "translation_baseline": {"verdict": {"f1": 0.25},
                                                                          "record_auroc": 0.5}}},
                                  output_dir=tmp_path)
    assert scored.numbers == "detector: verdict F1 50.00%, AUROC 75.00%; translation check: verdict F1 25.00%, " \
        "AUROC 50.00%"
    assert shown_paths(scored) == [tmp_path / "qc_model"]  # no results.json, no correction_model/ here

    for ending in (embedded, built, uncalibrated, queried, unaligned, checked, exported, scored):
        accepted_by_its_parser(ending.next_command)


def test_a_probe_c_at_the_grid_edge_is_a_log_line_with_the_action(monkeypatch, caplog, recwarn):
    """select_probe_c warns with a bare UserWarning; the evaluation says what it means and which flag to try."""
    import barcodemae.eval.run as evaluation
    from barcodemae.eval import metrics

    select_probe_c = metrics.select_probe_c  # evaluate_embeddings imports it from metrics when called
    monkeypatch.setattr(metrics, "select_probe_c", lambda *a, **k: select_probe_c(*a, grid=(0.1, 1.0), **k))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(300, 8))
    labels = np.repeat(np.arange(300), 10)  # narrow classes want a weak penalty: C=1 wins, the grid's top
    queries = rng.integers(0, 300, size=60)
    frame = pd.DataFrame({
        "split": ["train"] * len(labels) + ["test"] * 60 + ["test_unseen"] * 20,
        "species": [f"s{label}" for label in (*labels, *queries)] + [f"u{i % 4}" for i in range(20)],
        "genus": [f"g{label % 20}" for label in (*labels, *queries)] + [f"g{i % 4}" for i in range(20)],
        "dna_bin": [f"BOLD:{i % 4}" for i in range(len(labels) + 80)],
    })
    embeddings = np.concatenate([centres[labels] + 0.35 * rng.normal(size=(len(labels), 8)),
                                 centres[queries], rng.normal(size=(20, 8))]).astype(np.float32)
    with caplog.at_level(logging.WARNING):
        metrics, _ = evaluation.evaluate_embeddings(frame, embeddings, reducer="pca", n_components=4)
    assert metrics["closed_world_species"]["linear_probe"]["c_selection"]["at_grid_edge"]
    assert not [w for w in recwarn if "best C" in str(w.message)]
    assert "the largest of the grid tried (0.1, 1)" in caplog.text and "--probe-c 10" in caplog.text

    caplog.clear()  # ties go to the smaller C: an edge choice on a plateau means C does not matter
    with caplog.at_level(logging.INFO):
        evaluation.log_probe_c_at_grid_edge({"c": 0.1, "held_out_accuracy": {"0.1": 0.97, "1.0": 0.97, "10.0": 0.96}})
    assert [record.levelno for record in caplog.records] == [logging.INFO]
    assert "scores as C=1 on held-out train: the choice of C does not matter here" in caplog.text


def test_stdout_stays_json_for_scripts(tmp_path, capsys):
    """`barcodemae qc` (the cheapest long command) prints JSON on stdout and its ending on stderr."""
    from barcodemae.cli import main

    reads = tmp_path / "reads.fasta"
    reads.write_text(">a\n" + "ATG" * 200 + "\n>b\n" + "TAA" * 200 + "\n")
    assert main(["qc", "--input", str(reads), "--output", str(tmp_path / "v.csv"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["num_records"] == 2
    assert "barcodemae qc finished: 2 reads checked" in captured.err
    assert f"verdicts  {tmp_path / 'v.csv'}" in captured.err and "next: barcodemae qc --model" in captured.err
