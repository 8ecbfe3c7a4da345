"""--overwrite_output_dir deletes only what a run's record says that run wrote (issue #26, item 1)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from barcodemae.run_layout import RUN_FILE
from barcodemae.training.run_folder import (
    RUN_ARTEFACTS,
    OutputDirInUseError,
    check_new_run,
    owned_artefacts,
    planned_artefacts,
    read_run_id,
    start_run,
)
from conftest import REPO_ROOT

WITH_DATA = planned_artefacts(simulated_data=False, tensorboard=False)
SIMULATED = planned_artefacts(simulated_data=True, tensorboard=False)


def fake_run_files(folder, names=("training_args.json", "metrics.jsonl", "checkpoints", "final_model", "eval")):
    """What a run leaves behind (written after ``start_run``, as train.py does)."""
    for name in names:
        path = folder / name
        if name.endswith((".json", ".jsonl")):
            path.write_text("{}\n")
        else:
            path.mkdir(exist_ok=True)
            (path / "inside.txt").write_text("x")


def test_a_folder_without_a_run_record_is_not_a_run_and_nothing_in_it_is_deleted(tmp_path):
    specimens = tmp_path / "data" / "my_specimens.csv"
    specimens.parent.mkdir()
    specimens.write_text("processid,nucleotides\n")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "notes.md").write_text("mine")
    for overwrite in (False, True):  # the user's own eval/ is refused with and without the flag
        with pytest.raises(OutputDirInUseError, match=r"holds eval, data, which this run would write into"):
            start_run(tmp_path, overwrite, SIMULATED)
    assert specimens.is_file() and (tmp_path / "eval" / "notes.md").read_text() == "mine"
    # a run given --data does not write data/, so a user's data/ beside it is no obstacle, and never the run's
    shutil.rmtree(tmp_path / "eval")
    start_run(tmp_path, False, WITH_DATA, protected=[specimens])
    assert "data" not in json.loads((tmp_path / RUN_FILE).read_text())["owned"]
    fake_run_files(tmp_path)
    start_run(tmp_path, True, WITH_DATA, protected=[specimens])
    assert specimens.is_file() and not (tmp_path / "checkpoints").exists()


def test_overwrite_removes_exactly_the_previous_runs_own_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    first = start_run(tmp_path, False, SIMULATED)
    fake_run_files(tmp_path, (*RUN_ARTEFACTS[1:5], "data"))
    assert set(owned_artefacts(tmp_path)) == {RUN_FILE, *RUN_ARTEFACTS[1:5], "data"}
    with pytest.raises(OutputDirInUseError, match=f"already holds run {first}.*--overwrite_output_dir true"):
        check_new_run(tmp_path, False, SIMULATED)
    second = start_run(tmp_path, True, SIMULATED)
    assert second != first and read_run_id(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", RUN_FILE]


def test_overwrite_never_deletes_the_training_data_or_the_working_directory(tmp_path, monkeypatch):
    start_run(tmp_path, False, SIMULATED)
    fake_run_files(tmp_path, ("data", "checkpoints"))
    data = tmp_path / "data" / "inside.txt"  # a later run trains on the earlier run's simulated data
    with pytest.raises(OutputDirInUseError, match=r"would delete .*data, which holds .*inside.txt; nothing was"):
        start_run(tmp_path, True, WITH_DATA, protected=[data])
    monkeypatch.chdir(tmp_path / "checkpoints")
    with pytest.raises(OutputDirInUseError, match=r"would delete .*checkpoints, which holds"):
        start_run(tmp_path, True, SIMULATED)
    assert data.is_file() and (tmp_path / "checkpoints" / "inside.txt").is_file()


def test_the_repository_as_output_folder_is_refused_and_left_whole(tmp_path):
    """``--output_dir .`` from the repository root used to delete barcodemae/ and eval/."""
    copy = tmp_path / "repo"
    for name in ("eval", "barcodemae"):
        shutil.copytree(REPO_ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    before = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    os.chdir(copy)
    try:
        with pytest.raises(OutputDirInUseError, match="holds eval"):
            start_run(copy, True, planned_artefacts(simulated_data=True, tensorboard=True))
    finally:
        os.chdir(REPO_ROOT)
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*")) == before


def test_a_record_written_before_the_owned_list_owns_only_run_specific_names(tmp_path):
    (tmp_path / RUN_FILE).write_text(json.dumps({"run_id": "0" * 32}))
    fake_run_files(tmp_path, ("metrics.jsonl", "checkpoints"))
    assert set(owned_artefacts(tmp_path)) == {RUN_FILE, "metrics.jsonl", "checkpoints"}
    (tmp_path / "eval").mkdir()  # may be the user's: an old record cannot tell
    with pytest.raises(OutputDirInUseError, match="holds eval"):
        start_run(tmp_path, True, SIMULATED)


def test_an_unreadable_run_record_is_named(tmp_path):
    (tmp_path / RUN_FILE).write_text("{not json")
    with pytest.raises(OutputDirInUseError, match=f"{RUN_FILE}: unreadable run record"):
        check_new_run(tmp_path, True, SIMULATED)


def test_a_live_job_holds_its_folder_and_a_dead_one_does_not(tmp_path):
    """``--overwrite_output_dir`` into a folder whose run is still going used to mix the two runs' files."""
    import subprocess
    import sys

    from barcodemae.training.run_folder import exclusive_run_folder

    script = ("import sys; from pathlib import Path; "
              "from barcodemae.training.run_folder import exclusive_run_folder as hold\n"
              f"with hold(Path({str(tmp_path)!r})):\n    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"another training job \(pid {holder.pid}\) is running"
        with pytest.raises(OutputDirInUseError, match=busy), exclusive_run_folder(tmp_path):
            pass
    finally:
        holder.kill()  # a killed holder's lock goes with it
        holder.wait()
    one_job = pytest.raises(OutputDirInUseError, match="another training job")
    with exclusive_run_folder(tmp_path), one_job, exclusive_run_folder(tmp_path):
        pass  # one job, one hold
    with exclusive_run_folder(tmp_path):  # released at the end of the block
        pass
