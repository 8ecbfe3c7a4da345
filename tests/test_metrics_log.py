"""metrics.jsonl's one reader: a torn last line (a run stopped mid-write) is dropped, earlier damage is an error."""

from __future__ import annotations

import json
import re

import pytest

from barcodemae.training.metrics_log import read_metrics

RECORDS = [{"step": 0, "val_loss": 8.0}, {"step": 1, "loss": 7.5}, {"step": 2, "loss": float("nan")}]


def write_log(path, lines: list[str], ending: str = "\n") -> None:
    path.write_text("\n".join(lines) + ending)


def test_whole_records_are_read_in_order_and_blank_lines_skipped(tmp_path):
    log = tmp_path / "metrics.jsonl"
    write_log(log, [json.dumps(RECORDS[0]), "", json.dumps(RECORDS[1]), json.dumps(RECORDS[2]), ""])
    records = read_metrics(log)
    assert [r["step"] for r in records] == [0, 1, 2] and records[0] == RECORDS[0]


@pytest.mark.parametrize("torn", ['{"step": 3, "lo', '{"step": 3, "loss": 7.', "[1, 2", '"step'])
def test_a_torn_last_line_is_dropped_with_a_warning_naming_the_file_and_line(tmp_path, caplog, torn):
    log = tmp_path / "metrics.jsonl"
    write_log(log, [json.dumps(r) for r in RECORDS] + [torn, ""], ending="")  # blank lines after it do not count
    with caplog.at_level("WARNING", logger="barcodemae.training.metrics_log"):
        assert [r["step"] for r in read_metrics(log)] == [0, 1, 2]
    assert f"{log}: line 4 is a torn last record" in caplog.text


@pytest.mark.parametrize("bad", ['{"step": 1, "lo', "not json", "[1, 2]", "7"])
def test_an_unreadable_line_before_the_last_is_corruption_naming_the_file_and_line(tmp_path, bad):
    log = tmp_path / "metrics.jsonl"
    write_log(log, [json.dumps(RECORDS[0]), bad, json.dumps(RECORDS[2])])
    with pytest.raises(ValueError, match=rf"{re.escape(str(log))}: line 2 is not a metrics record .*corrupt"):
        read_metrics(log)


def test_the_report_scripts_read_a_run_that_is_still_writing(tmp_path, caplog):
    """probe_table, quality_table and the device suite share the reader, so a live run's torn line is tolerated."""
    from probe_table import probe_records

    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"step": 0, "genus_1nn_accuracy": 0.5}) + "\n" + '{"step": 10, "genus_1nn_acc'
    )
    with caplog.at_level("WARNING", logger="barcodemae.training.metrics_log"):
        assert probe_records(tmp_path) == [{"step": 0, "genus_1nn_accuracy": 0.5}]
    assert "line 2 is a torn last record" in caplog.text
