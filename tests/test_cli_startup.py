"""The command line starts without torch, transformers or datasets; the package's public names load on first use
and then register the Auto classes; `barcodemae --version` reports the installed distribution's version.

Start-up *time* is measured by bench/bench_startup.py, not asserted here: what is checked is which modules load,
which is deterministic. Each check runs in a fresh interpreter, since this test process has imported torch already.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from barcodemae.cli import main

HEAVY = ("torch", "transformers", "datasets", "accelerate", "pandas", "sklearn")


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_building_every_parser_imports_nothing_heavy():
    loaded = run_python(
        "import sys\n"
        "from barcodemae.cli import build_parser\n"
        "parser = build_parser()\n"
        "for command in (['embed'], ['identify', 'build'], ['identify', 'query'], ['qc'], ['export'], ['train-bpe']):\n"
        "    try:\n"
        "        parser.parse_args([*command, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print('loaded:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    assert loaded.splitlines()[-1] == "loaded:"


def test_public_names_load_on_first_use_and_register_the_auto_tokenizer(tmp_path):
    out = run_python(
        "import sys\n"
        "import barcodemae\n"
        "print('torch' in sys.modules)\n"
        "from barcodemae import BarcodeMAEConfig, BarcodeMAEModel, BarcodeTokenizer\n"
        "from transformers import AutoTokenizer\n"
        f"BarcodeTokenizer.kmer(4).save_pretrained({str(tmp_path)!r})\n"
        f"loaded = AutoTokenizer.from_pretrained({str(tmp_path)!r})\n"
        "print(type(loaded).__name__, BarcodeMAEModel.config_class is BarcodeMAEConfig)\n"
    )
    assert out.splitlines() == ["False", "BarcodeTokenizer True"]


def test_importing_the_tokenizer_package_registers_it_with_the_auto_tokenizer(tmp_path):
    """As when ``import barcodemae`` registered it: without it AutoTokenizer silently gives a generic backend."""
    out = run_python(
        "from barcodemae.tokenization import BarcodeTokenizer\n"
        "from transformers import AutoTokenizer\n"
        f"BarcodeTokenizer.char().save_pretrained({str(tmp_path)!r})\n"
        f"print(type(AutoTokenizer.from_pretrained({str(tmp_path)!r})).__name__)\n"
    )
    assert out.splitlines()[-1] == "BarcodeTokenizer"


def test_unknown_names_are_attribute_errors():
    import barcodemae

    with pytest.raises(AttributeError, match="has no attribute 'NoSuchModel'"):
        barcodemae.NoSuchModel  # noqa: B018
    assert barcodemae.__version__ == version("barcodemae")


def test_version_comes_from_the_installed_package(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"barcodemae {version('barcodemae')}"
