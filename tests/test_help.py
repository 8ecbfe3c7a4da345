"""``--help`` tells the truth: every option of every command says what it does, ``train.py --preset NAME --help``
shows the values that preset sets, the model-config defaults it shows are the model folder's, the presets listed are
the files in configs/, ``--no_*`` switches say what they turn off, and each flag has one documented spelling while
both are accepted."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

import pytest

from barcodemae.dataclass_parser import DataclassArgumentParser
from barcodemae.flag_spellings import hyphenated, spelling_key
from barcodemae.model_folder_defaults import barcodemae_config_defaults, enbed_config_defaults
from barcodemae.presets import PRESET_DIR, preset_names
from barcodemae.training.arguments import (
    ARCHITECTURE_ARGUMENTS,
    RUN_CONFIG_ARGUMENTS,
    build_parser,
    load_preset,
    parse_args,
)
from conftest import REPO_ROOT
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_enbed import enbed_config

HYPHEN_COMMANDS = re.compile(r"eval/run\.py|eval/qc\.py|barcodemae (embed|identify|qc|export|evaluate)\b")
UNDERSCORE_COMMANDS = re.compile(r"train\.py|barcodemae train\b")
DOCUMENTS = ["README.md", "docs/*.md", "bench/README.md", "research/README.md"]


def subcommand_parsers(name: str, parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser below it, by command line (``barcodemae identify build``)."""
    found = {name: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                found.update(subcommand_parsers(f"{name} {command}", subparser))
    return found


def hyphen_command_parsers() -> dict[str, argparse.ArgumentParser]:
    """The argparse commands, whose flags are documented with hyphens."""
    from barcodemae.cli import build_parser as barcodemae_parser
    from barcodemae.eval.qc import build_parser as qc_parser
    from barcodemae.eval.run import build_parser as eval_parser

    return {"eval/run.py": eval_parser(), "eval/qc.py": qc_parser(),
            **subcommand_parsers("barcodemae", barcodemae_parser())}


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings]


def test_every_option_of_every_command_has_help():
    parsers = {"train.py": build_parser("tiny"), "train.py --preset none": build_parser(None),
               **hyphen_command_parsers()}
    missing = [f"{command} {action.option_strings[0]}" for command, parser in parsers.items()
               for action in options(parser) if not (action.help or "").strip()]
    assert missing == []


def test_no_switches_say_what_they_turn_off():
    """HfArgumentParser copied --X's help onto --no_X, where it read as the opposite of what the switch does."""
    parsers = {"train.py": build_parser("tiny"), **hyphen_command_parsers()}
    for command, parser in parsers.items():
        by_option = {option: action for action in options(parser) for option in action.option_strings}
        for option, action in by_option.items():
            positive = by_option.get("--" + option[len("--no_"):]) if re.match(r"--no[_-]", option) else None
            if positive is not None and positive is not action:
                assert action.help != positive.help, f"{command} {option}"
    assert "turn --evaluate off" in build_parser("tiny").format_help()


def test_preset_help_shows_the_values_that_preset_sets(capsys):
    """`--help` used to show the model config's 768-wide encoder and a contrastive weight of 0 while the run used
    the preset's 64 and 1.0: each flag a preset sets now shows its value and that it comes from the preset."""
    small = load_preset("small")
    with pytest.raises(SystemExit):
        parse_args(["--preset", "small", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in ("hidden_size", "contrastive_weight", "max_steps", "objective", "pooled_layers"):
        value = re.escape(str(small[flag]))
        assert re.search(rf"--{flag} \S+ .*?\(default: {value}, from --preset small\)", shown), flag
    assert "Defaults shown: --preset small (configs/small.yaml)" in shown

    default = " ".join(build_parser("tiny").format_help().split())  # `python train.py --help`: the tiny preset
    assert "(default: 64, from --preset tiny)" in default and "768" not in default.split("--hidden_size")[2][:80]
    bare = " ".join(build_parser(None).format_help().split())
    assert f"(default: the model config's: BarcodeMAE {BarcodeMAEConfig.hidden_size}, ENBED" in bare


def test_the_model_config_defaults_help_shows_are_what_the_model_folder_holds():
    """``--help`` reads them from the model folder's source, without importing it (transformers): every default
    read is the imported class's, and every field of the config and keyword of ``enbed_config`` is read."""
    config = barcodemae_config_defaults()
    assert config == {name: getattr(BarcodeMAEConfig, name) for name in config}
    assert set(vars(BarcodeMAEConfig)["__annotations__"]) <= set(config)
    assert {*ARCHITECTURE_ARGUMENTS.values(), *RUN_CONFIG_ARGUMENTS.values()} <= set(config)
    keywords = inspect.signature(enbed_config).parameters.values()
    assert enbed_config_defaults() == {
        keyword.name: keyword.default for keyword in keywords if keyword.kind is inspect.Parameter.KEYWORD_ONLY}


def test_switches_and_bad_flags_read_as_before(capsys):
    """``train.py``'s parser reads a switch as ``HfArgumentParser`` did (``--X``, ``--X false``, ``--no_X``), and a
    bad value or an unknown flag is a usage error (exit status 2) naming it."""
    assert parse_args(["--evaluate", "false"]).evaluate is False and parse_args(["--evaluate"]).evaluate is True
    assert parse_args(["--no-eval-plots"]).eval_plots is False and parse_args(["--eval_plots", "N"]).eval_plots is False
    assert parse_args(["--overwrite_output_dir", "yes"]).overwrite_output_dir is True
    for argv, named in ((["--evaluate", "maybe"], "'maybe'"), (["--max_steps", "few"], "'few'"),
                        (["--no_such_flag", "1"], "--no_such_flag")):
        with pytest.raises(SystemExit) as stop:
            parse_args(argv)
        assert stop.value.code == 2 and named in capsys.readouterr().err


def test_a_field_without_a_flag_is_refused_by_name():
    @dataclasses.dataclass
    class Listed:
        ks: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="field 'ks'"):
        DataclassArgumentParser(Listed)


def test_presets_listed_are_the_files_in_configs():
    names = sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))
    assert preset_names() == names and len(names) >= 6
    assert f"YAML preset: {' | '.join(names)} (configs/NAME.yaml)" in build_parser("tiny")._option_string_actions[
        "--preset"].help
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Presets", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"^\| `([\w-]+)` \|", table, re.MULTILINE)) == names
    with pytest.raises(FileNotFoundError, match=re.escape(str(names))):
        parse_args(["--preset", "no_such_preset"])


def test_both_spellings_are_accepted_and_help_shows_one():
    train = build_parser("tiny")
    for action in options(train):
        for option in action.option_strings:
            other = option[:2] + option[2:].replace("_", "-")
            assert train._option_string_actions.get(other) is action, option
    assert parse_args(["--max-steps", "3", "--output-dir", "x", "--no-evaluate"]) == parse_args(
        ["--max_steps", "3", "--output_dir", "x", "--no_evaluate"])
    assert "--max-steps" not in train.format_help() and "--no-evaluate" not in train.format_help()

    for command, parser in hyphen_command_parsers().items():
        for action in options(parser):
            for option in action.option_strings:
                underscored = option[:2] + option[2:].replace("-", "_")
                assert parser._option_string_actions.get(hyphenated([underscored])[0]) is action, (command, option)
    from barcodemae.cli import build_parser as barcodemae_parser

    query = ["identify", "query", "--index", "i", "--input", "q.fasta", "--output", "o.csv"]
    assert barcodemae_parser().parse_args([*query, "--top_k=3", "--no_progress"]) == barcodemae_parser().parse_args(
        [*query, "--top-k", "3", "--no-progress"])
    assert hyphenated(["--top_k", "--", "--not_a_flag"]) == ["--top-k", "--", "--not_a_flag"]


def test_the_documentation_spells_each_commands_flags_one_way():
    """train.py's flags with underscores, every other command's with hyphens (a line naming one command)."""
    underscored = {spelling_key(option) for action in options(build_parser(None)) for option in action.option_strings}
    hyphenated_flags = {spelling_key(option) for parser in hyphen_command_parsers().values()
                        for action in options(parser) for option in action.option_strings}
    wrong = []
    for document in sorted({path for pattern in DOCUMENTS for path in REPO_ROOT.glob(pattern)}):
        text = document.read_text(encoding="utf-8").replace("\\\n", " ")  # a command continued over lines
        for line in text.splitlines():
            trains, others = UNDERSCORE_COMMANDS.search(line), HYPHEN_COMMANDS.search(line)
            if bool(trains) == bool(others):  # neither command, or both: whose flag is it?
                continue
            known = underscored if trains else hyphenated_flags
            for flag in re.findall(r"--[a-z0-9][a-z0-9_-]*", line):
                documented = "--" + (flag[2:].replace("-", "_") if trains else flag[2:].replace("_", "-"))
                if spelling_key(flag) in known and flag != documented:
                    wrong.append(f"{document.relative_to(REPO_ROOT)}: {flag} in {line.strip()[:80]!r}")
    assert wrong == []


def test_barcodemae_help_lists_every_command(capsys):
    """``barcodemae --help`` names train.py's, eval/run.py's, eval/qc.py's and barcodemae-convert's commands beside its
    own; their options go after them."""
    from barcodemae.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    listed = re.findall(r"^    ([a-z-]+) ", shown, re.MULTILINE)
    assert sorted(listed) == ["convert", "embed", "evaluate", "export", "identify", "qc", "train", "train-bpe",
                              "train-qc"]
    with pytest.raises(SystemExit) as stop:
        main(["-v", "evaluate"])
    assert stop.value.code == 2 and "give barcodemae evaluate's options after it" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "train-qc", "convert"])
def test_barcodemae_subcommand_usage_names_itself(command, capsys):
    """``barcodemae train --help`` shows ``usage: barcodemae train``, not train.py's or the bare command's name."""
    from barcodemae.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert capsys.readouterr().out.startswith(f"usage: barcodemae {command} ")
