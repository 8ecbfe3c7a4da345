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


def test_small_recipe_trains_the_paper_models_with_the_small_presets_run_choices(tmp_path, demo_csv):
    from device_suite import build_parser, pretrain_stage, views_per_barcode

    from barcodemae.training.arguments import load_preset, parse_args

    small = load_preset("small")
    for recipe, objective, preset in (("paper", "mae", "barcodemae"), ("small", "mae", "barcodemae"),
                                      ("small", "mlm", "barcodebert")):
        args = build_parser().parse_args(["--output", str(tmp_path), "--recipe", recipe, "--data", str(demo_csv)])
        command = pretrain_stage(f"pretrain_{objective}", objective, 10, args, tmp_path).command
        parsed = parse_args(command[command.index(str(REPO_ROOT / "train.py")) + 1:])
        paper = load_preset(preset)
        assert (parsed.hidden_size, parsed.num_hidden_layers) == (paper["hidden_size"], paper["num_hidden_layers"])
        chosen = small if recipe == "small" else paper
        assert parsed.max_start_shift == chosen.get("max_start_shift", 0)
        assert parsed.contrastive_weight == chosen.get("contrastive_weight", parsed.contrastive_weight)
        if recipe == "small":
            assert parsed.contrastive_weight > 0 and parsed.pooled_layers == small["pooled_layers"]
        else:
            assert not parsed.contrastive_weight  # the papers train without the term
    assert (views_per_barcode("paper"), views_per_barcode("small")) == (1, 2)  # the term encodes two views a step
