"""The linter configured in pyproject.toml is clean on the whole repository (ruff is pinned in the test extra)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_ruff_is_clean():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--exclude", ".venv", "."],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
