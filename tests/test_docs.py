"""The docs a user navigates stay true: the configuration reference is generated from mmtrain/conf/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_configuration_reference_is_current():
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", ROOT / "scripts" / "gen_config_reference.py"
    )
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert (ROOT / "docs" / "config.md").read_text() == generator.render(), (
        "docs/config.md is stale: run python scripts/gen_config_reference.py"
    )
    assert '| `data.na_values` | `["?"]` |' in generator.render()  # a key of a group option, with its default
