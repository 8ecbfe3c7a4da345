"""The command line starts without torch, transformers or datasets (`barcodemae`, `train.py` and `eval/run.py` alike);
the package's public names load on first use and then register the Auto classes; `barcodemae --version` reports the
installed distribution's version.

Start-up *time* is measured by bench/bench_startup.py, not asserted here: what is checked is which modules load,
which is deterministic. Each check runs in a fresh interpreter, since this test process has imported torch already.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from barcodemae.cli import main
from conftest import REPO_ROOT

HEAVY = ("torch", "transformers", "datasets", "accelerate", "pandas", "sklearn")
SCRIPT_HELP = {
    "train.py --help": ["train.py", "--help"],
    "train.py --preset small --help": ["train.py", "--preset", "small", "--help"],
    "train.py --preset none --help": ["train.py", "--preset", "none", "--help"],
    "train.py --preset enbed --help": ["train.py", "--preset", "enbed", "--help"],
    "eval/run.py --help": ["eval/run.py", "--help"],
}
"""The scripts' help commands, run as ``python SCRIPT ...`` runs them (``runpy``, as ``__main__``)."""


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


@pytest.mark.parametrize("command", SCRIPT_HELP)
def test_the_scripts_help_imports_nothing_heavy(command):
    """Their parsers (train.py's presets and model-config defaults, eval/run.py's settings) are built from light
    modules; torch and the rest load only once a run starts."""
    script, *args = SCRIPT_HELP[command]
    loaded = run_python(
        "import runpy, sys\n"
        f"sys.argv = [{script!r}, *{args!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(REPO_ROOT / script)!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        f"print('loaded:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    assert "usage:" in loaded and loaded.splitlines()[-1] == "loaded:"


def test_importing_the_parser_modules_imports_nothing_heavy():
    """What the scripts' parsers are made of, imported as a library user would: ``barcodemae train --help`` and
    ``barcodemae evaluate --help`` too."""
    loaded = run_python(
        "import sys\n"
        "import barcodemae.eval.run, barcodemae.masking, barcodemae.presets, barcodemae.training\n"
        "from barcodemae.training.arguments import build_parser, unset_flag_defaults\n"
        "from barcodemae.training.command import main\n"
        "build_parser(None), unset_flag_defaults('mae'), unset_flag_defaults('enbed')\n"
        "from barcodemae.cli import main as cli\n"
        "for command in ('train', 'evaluate'):\n"
        "    try:\n"
        "        cli([command, '--help'])\n"
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


def model_libraries_loaded_by(*commands: list[str]) -> list[str]:
    """Which of torch and transformers a fresh interpreter has loaded after running ``barcodemae`` ``commands``."""
    out = run_python(
        "import sys\n"
        "from barcodemae.cli import main\n"
        + "".join(f"main({command!r})\n" for command in commands)
        + f"print('loaded:', *[m for m in {HEAVY[:2]!r} if m in sys.modules])\n"
    )
    return out.splitlines()[-1].split()[1:]


def test_identifying_with_a_kmer_index_loads_no_torch_or_transformers(tmp_path, fixture_csv):
    """An index that needs no model must not pay for loading one: torch and transformers cost a query command
    seconds of start-up, a third of a 1,000-read plate's time (docs/results.md). The bars stay hidden all the same."""
    queries = tmp_path / "queries.fasta"
    queries.write_text(">q1\n" + "ACGTTGCAAT" * 30 + "\n")
    index = str(tmp_path / "index")
    assert model_libraries_loaded_by(
        ["identify", "build", "--kmer", "4", "--reference", str(fixture_csv), "--split", "train", "--output", index,
         "--no-progress"],
        ["identify", "query", "--index", index, "--input", str(queries), "--output", str(tmp_path / "ids.csv"),
         "--no-progress"],
    ) == []
    assert (tmp_path / "ids.csv").is_file()


def test_checking_reads_without_a_model_loads_no_torch_or_transformers(tmp_path):
    """``barcodemae qc``'s default, the translation check, needs no model; the detector's and corrector's torch
    code loads only when their folders are given (tests/test_cli_qc.py runs those)."""
    reads = tmp_path / "reads.fasta"
    reads.write_text(">r1\n" + "ACGTTGCAAT" * 30 + "\n")
    assert model_libraries_loaded_by(
        ["qc", "--input", str(reads), "--output", str(tmp_path / "qc.csv"), "--no-progress"]
    ) == []
    assert (tmp_path / "qc.csv").read_text().splitlines()[1].startswith("r1,300,has_errors,length")


def test_hidden_bars_reach_a_transformers_loaded_inside_the_block_and_come_back_after():
    out = run_python(
        "import sys\n"
        "from barcodemae.progress_bars import library_progress_bars_hidden\n"
        "with library_progress_bars_hidden():\n"
        "    from transformers.utils import logging\n"
        "    print(logging.is_progress_bar_enabled())\n"
        "print(logging.is_progress_bar_enabled())\n"
    )
    assert out.splitlines()[-2:] == ["False", "True"]


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
