"""One embedding-settings object for ``embed``, ``identify``, ``eval/run.py`` (``barcodemae evaluate``) and the
fine-tuning: the same flags, choices and help everywhere, read back into the same :class:`EmbeddingSettings`, and
settings a command cannot honour refused rather than ignored."""

from __future__ import annotations

import argparse

import pytest
import torch

from barcodemae.cli import build_parser as barcodemae_parser
from barcodemae.embedding_settings import DTYPES, EMBEDDING_HELP, FRAMES, POOLINGS, EmbeddingSettings
from barcodemae.eval.run import EvaluationSettings
from barcodemae.eval.run import build_parser as evaluation_parser
from barcodemae.index_embedders import requested_embedder
from barcodemae.inference import autocast_dtype

FLAGS = ["--batch-size", "7", "--device", "cpu", "--dtype", "bf16", "--pooling", "cls", "--layer", "mean",
         "--frames", "all", "--no-progress", "--trust-remote-code"]
GIVEN = EmbeddingSettings(batch_size=7, device="cpu", dtype="bf16", pooling="cls", layer="mean", frames="all",
                          progress=False, trust_remote_code=True)


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """``barcodemae``'s subcommand parsers and eval/run.py's, by command line."""
    parser = barcodemae_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    identify = next(action for action in commands.choices["identify"]._actions
                    if isinstance(action, argparse._SubParsersAction))
    return {"barcodemae embed": commands.choices["embed"], "barcodemae identify build": identify.choices["build"],
            "barcodemae identify query": identify.choices["query"], "eval/run.py": evaluation_parser()}


def test_embed_and_evaluate_read_the_same_flags_into_the_same_settings():
    embed = barcodemae_parser().parse_args(["embed", "--model", "m", "--input", "i.fasta", "--output", "o.npy", *FLAGS])
    evaluate = evaluation_parser().parse_args(["--model", "m", "--data", "d.csv", "--output", "o", *FLAGS])
    assert EmbeddingSettings.from_args(embed) == GIVEN
    settings = EvaluationSettings.from_args(evaluate)
    assert all(getattr(settings, name) == getattr(GIVEN, name) for name in EMBEDDING_HELP)
    assert EmbeddingSettings.from_args(  # unset: the defaults, 128 a batch for embed and 256 for the evaluation
        barcodemae_parser().parse_args(["embed", "--model", "m", "--input", "i", "--output", "o.npy"])
    ) == EmbeddingSettings()
    assert EvaluationSettings.from_args(evaluation_parser().parse_args(["--baseline", "kmer", "--data", "d",
                                                                        "--output", "o"])).batch_size == 256


def test_every_command_offers_the_same_choices_and_help():
    """--dtype and --pooling list the same choices wherever they appear, and each flag's help is written once."""
    seen = {}
    for command, parser in command_parsers().items():
        actions = {action.dest: action for action in parser._actions if action.option_strings}
        for name in ("batch_size", "device", "progress", "trust_remote_code"):
            assert actions[name].help == EMBEDDING_HELP[name], (command, name)
        if "dtype" in actions:
            assert tuple(actions["dtype"].choices) == DTYPES and tuple(actions["pooling"].choices) == POOLINGS
            assert tuple(actions["frames"].choices) == FRAMES
            seen[command] = actions["layer"].help == EMBEDDING_HELP["layer"] == actions["layer"].help
    assert seen == {"barcodemae embed": True, "eval/run.py": True}


def test_identify_query_has_no_pooling_layer_or_dtype_flags(capsys):
    """An index embeds with its model's own pooling and layer in float32: the flags would be silently ignored."""
    query = ["identify", "query", "--index", "i", "--input", "q.fasta", "--output", "o.csv"]
    with pytest.raises(SystemExit) as stop:
        barcodemae_parser().parse_args([*query, "--pooling", "cls"])
    assert stop.value.code == 2 and "--pooling" in capsys.readouterr().err


def test_settings_a_command_cannot_honour_are_refused(tmp_path):
    with pytest.raises(ValueError, match="a reference index.* does not take pooling='cls', layer=0: leave pooling, "
                                         "layer, dtype unset"):
        requested_embedder(tmp_path, None, EmbeddingSettings(pooling="cls", layer=0))
    assert requested_embedder(tmp_path, None, EmbeddingSettings(frames="first")).settings.frames == "first"
    assert requested_embedder(tmp_path, None, EmbeddingSettings(batch_size=3)).settings.batch_size == 3


@pytest.mark.parametrize(("field", "value", "message"), [
    ("batch_size", 0, "batch_size must be a positive integer, got 0"),
    ("dtype", "fp8", "dtype must be one of"),
    ("pooling", "median", "pooling must be one of"),
    ("layer", "last", "layer must be an integer or 'mean'"),
    ("frames", "some", "frames must be one of"),
])
def test_bad_settings_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingSettings(**{field: value})
    with pytest.raises(ValueError, match=message):  # the evaluation's settings are embedding settings too
        EvaluationSettings(**{field: value})


def test_every_dtype_choice_and_torch_name_is_an_autocast_dtype():
    assert [autocast_dtype(name) for name in DTYPES] == [None, torch.bfloat16, torch.float16]
    assert [autocast_dtype(name) for name in ("fp32", "bfloat16", "float16")] == [None, torch.bfloat16, torch.float16]
    assert autocast_dtype(None) is None and autocast_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="dtype must be one of"):
        autocast_dtype("fp8")
