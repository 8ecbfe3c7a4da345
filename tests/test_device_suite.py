"""bench/device_suite.py: every stage of the prepared GPU suite runs at toy sizes on the CPU (--dry-run), and the
real run's time caps fit its deadline. No test here times anything: the limits are checked with a stand-in clock
and subprocess, so a busy machine cannot fail them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

STAGES = ["step_time", "step_time_compiled", "embedding", "enbed_attention", "pretrain_mae", "pretrain_mlm",
          "multi_gpu"]
HANG_GUARD_S = 3600
"""Only stops a hung dry run (it takes minutes); the dry run itself has no caps, so load cannot fail it."""


def test_dry_run_runs_every_stage_and_writes_the_reports(tmp_path, demo_csv):
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "device_suite.py"), "--dry-run", "--output",
                           str(tmp_path)], capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "suite.json").read_text())
    stages = report["stages"]
    assert list(stages) == STAGES
    assert {name: stage["status"] for name, stage in stages.items()} == dict.fromkeys(stages, "ok"), stages
    assert all(stage["cap_s"] is None for stage in stages.values())  # uncapped: no stage can be stopped by load
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


@pytest.mark.parametrize("recipe", ["paper", "small"])
def test_the_real_runs_stage_caps_fit_inside_its_deadline(tmp_path, recipe):
    """A stage may use its whole cap and the next ones still get theirs: the caps add up to at most the deadline."""
    from device_suite import build_parser, stage_cap, stage_caps

    args = build_parser().parse_args(["--output", str(tmp_path), "--recipe", recipe])
    caps = stage_caps(args)
    assert list(caps) == STAGES  # one cap per stage, in the order they run
    assert all(cap > 0 for cap in caps.values())
    assert sum(caps.values()) <= args.budget_seconds
    assert caps["pretrain_mae"] == caps["pretrain_mlm"] == args.pretrain_seconds + args.pretrain_overhead_seconds
    assert [stage_cap(name, args) for name in STAGES] == list(caps.values())
    args.dry_run = True
    assert [stage_cap(name, args) for name in STAGES] == [None] * len(STAGES)


def test_caps_beyond_the_deadline_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    import device_suite

    def must_not_run(*args, **kwargs):
        raise AssertionError("a stage ran although the caps do not fit the deadline")

    monkeypatch.setattr(device_suite.subprocess, "run", must_not_run)
    with pytest.raises(SystemExit) as refused:
        device_suite.main(["--output", str(tmp_path / "suite"), "--pretrain-seconds", "300"])
    assert refused.value.code == 2
    message = capsys.readouterr().err
    assert "caps add up to 980 s" in message and "pretrain_mae 340" in message and "--budget-seconds 540" in message
    assert not (tmp_path / "suite").exists()
    # Raising the deadline with the training time is accepted.
    args = device_suite.build_parser().parse_args(["--output", str(tmp_path), "--pretrain-seconds", "300",
                                                   "--budget-seconds", "980"])
    assert device_suite.caps_over_deadline(args) is None


class FakeRun:
    """``subprocess.run`` stand-in: records the timeout it was given, then times out or exits with ``code``."""

    def __init__(self, times_out: bool, code: int = 0) -> None:
        self.times_out, self.code, self.timeouts = times_out, code, []

    def __call__(self, command, timeout=None, **kwargs):
        self.timeouts.append(timeout)
        if self.times_out:
            raise subprocess.TimeoutExpired(command, timeout)
        return subprocess.CompletedProcess(command, self.code)


@pytest.mark.parametrize(
    ("cap", "left", "times_out", "timeout", "status"),
    [
        (60, 500, True, 60, "stopped at its 60 s cap"),
        (60, 30, True, 30, "stopped at the suite's deadline (30 s left)"),  # the deadline is nearer than the cap
        (60, 500, False, 60, "ok"),
        (None, None, False, None, "ok"),  # the dry run: no cap, no deadline
    ],
)
def test_a_stage_runs_under_the_nearer_of_its_cap_and_the_deadline(tmp_path, monkeypatch, cap, left, times_out,
                                                                   timeout, status):
    import device_suite

    fake = FakeRun(times_out)
    monkeypatch.setattr(device_suite.subprocess, "run", fake)
    now = 1000.0
    stage = device_suite.Stage("probe", ["true"], cap_s=cap)
    deadline = None if left is None else now + left
    device_suite.run_stage(stage, deadline, tmp_path, clock=lambda: now)
    assert fake.timeouts == [timeout] and stage.status == status


def test_a_stage_left_too_little_time_is_skipped_without_starting(tmp_path, monkeypatch):
    import device_suite

    fake = FakeRun(times_out=False)
    monkeypatch.setattr(device_suite.subprocess, "run", fake)
    stage = device_suite.Stage("late", ["true"], cap_s=60)
    device_suite.run_stage(stage, 1003.0, tmp_path, clock=lambda: 1000.0)
    assert fake.timeouts == [] and stage.status == "skipped" and "deadline" in stage.detail



def test_plus_recipe_trains_the_paper_mae_with_barcodemae_plus_taxonomy_term(tmp_path, demo_csv):
    """Issue #28: --recipe barcodemae-plus runs the paper MAE with the preset's taxonomy choices; the weight warms up
    over the stage's first 5/35 of steps; the dry run's small batches hold 4 genera x 2."""
    from device_suite import build_parser, pretrain_stage

    from barcodemae.training.arguments import load_preset, parse_args

    plus = load_preset("barcodemae-plus")
    for dry_run in (False, True):
        argv = ["--output", str(tmp_path), "--recipe", "barcodemae-plus", "--data", str(demo_csv)]
        args = build_parser().parse_args([*argv, "--dry-run"] if dry_run else argv)
        command = pretrain_stage("pretrain_mae", "mae", 70, args, tmp_path).command
        parsed = parse_args(command[command.index(str(REPO_ROOT / "train.py")) + 1:])
        assert (parsed.taxonomy_loss, parsed.taxonomy_on, parsed.representation) == (
            plus["taxonomy_loss"], plus["taxonomy_on"], plus["representation"])
        assert parsed.taxonomy_warmup_steps == 10
        expected = (4, 2) if dry_run else (plus["taxonomy_classes_per_batch"], plus["taxonomy_per_class"])
        assert (parsed.taxonomy_classes_per_batch, parsed.taxonomy_per_class) == expected
