"""Packaging: presets and model-card templates are package data, so a non-editable install finds them."""

from __future__ import annotations

import configparser
from importlib import resources
from pathlib import Path

from conftest import REPO_ROOT


def _package_data() -> dict[str, list[str]]:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    return {name: [p.strip() for p in value.split(",")] for name, value in parser["options.package_data"].items()}


def test_every_preset_and_template_is_declared_package_data():
    declared = _package_data()
    for package, folder, suffix in (
        ("barcodemae.configs", "configs", ".yaml"),
        ("barcodemae.model_cards", "model_cards", ".md"),
    ):
        root = REPO_ROOT / folder
        shipped = {p.relative_to(root) for p in root.rglob(f"*{suffix}")}
        covered = {p.relative_to(root) for pattern in declared[package] for p in root.glob(pattern)}
        assert shipped and shipped <= covered, f"{folder}: not in package_data: {sorted(map(str, shipped - covered))}"


def test_presets_and_template_resolve_through_importlib_resources():
    from barcodemae.export import MODEL_CARD_TEMPLATE
    from barcodemae.presets import PRESET_DIR
    from barcodemae.training.arguments import load_preset

    assert PRESET_DIR == Path(str(resources.files("barcodemae.configs")))
    assert {"tiny", "small", "barcodemae", "barcodebert"} <= {p.stem for p in PRESET_DIR.glob("*.yaml")}
    assert load_preset("barcodemae")["hidden_size"] == 768
    assert MODEL_CARD_TEMPLATE.is_file() and "$" in MODEL_CARD_TEMPLATE.read_text()
