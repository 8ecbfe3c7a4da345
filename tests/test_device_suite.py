"""bench/device_suite.py --dry-run: every stage of the prepared GPU suite runs at toy sizes on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import REPO_ROOT


def test_dry_run_runs_every_stage_and_writes_the_reports(tmp_path, demo_csv):
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "device_suite.py"), "--dry-run", "--output",
                           str(tmp_path)], capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 200  # the suite's own deadline is 170 s in a dry run
    report = json.loads((tmp_path / "suite.json").read_text())
    stages = report["stages"]
    assert list(stages) == [
        "step_time", "step_time_compiled", "embedding", "enbed_attention", "pretrain_mae", "pretrain_mlm", "multi_gpu"
    ]
    assert {name: stage["status"] for name, stage in stages.items()} == dict.fromkeys(stages, "ok"), stages
    attention = stages["enbed_attention"]["result"]
    assert {row["variant"] for row in attention["rows"] if row["status"] == "ok"} == {
        "local", "transient-global", "full"
    }
    rows = stages["step_time"]["result"]["main"]["rows"]
    assert {row["variant"] for row in rows} == {"mae", "mlm_same_encoder", "mlm_equal_depth", "bert_reference"}
    assert all(row["median_s"] > 0 for row in rows)
    assert stages["embedding"]["result"]["extrapolation_bioscan_5m"]["end_to_end_hours"] > 0
    for objective in ("mae", "mlm"):
        result = stages[f"pretrain_{objective}"]["result"]
        assert result["steps"] == 3 and result["untrained"]["step"] == 0 and result["trained"]["step"] == 3
        assert 0 <= result["trained"]["genus_1nn_accuracy"] <= 1
    summary = (tmp_path / "suite.md").read_text()
    assert summary.startswith("# Device suite (dry run)") and "| pretrain_mae | ok |" in summary
