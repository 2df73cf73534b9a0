"""The layout shows the architecture (docs/architecture.md): commands at the top level, every other
module in a subpackage of its layer, imports only down or sideways, and short import chains."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "mmtrain"
LAYERS = [
    ("core",),
    ("runtime",),
    ("modalities", "tasks", "backbones"),
    ("encoders", "fusion"),
    ("data", "model"),
    ("training", "evaluation", "inference", "ensembling", "serving", "sweeping", "reporting", "config"),
]  # below: the commands, at the top level
COMMANDS = len(LAYERS)


def modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in ROOT.rglob("*.py")
    }


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next((i for i, names in enumerate(LAYERS) if part in names), COMMANDS)


def imports(path: Path, module_level_only: bool) -> set[str]:
    """The project modules ``path`` imports (``from mmtrain.x import y`` counts as mmtrain.x.y where that
    is a module)."""
    tree, known, found = ast.parse(path.read_text()), modules(), set()
    nodes = tree.body if module_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mmtrain")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmtrain"):
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            }
    return {m for m in found if m in known}


def test_the_top_level_holds_the_commands():
    top = sorted(p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(top) <= 10, top
    assert all(
        layer(f"mmtrain.{p.parent.name}.x") < COMMANDS for p in ROOT.glob("*/*.py") if p.parent.name != "conf"
    )


def test_no_module_imports_from_a_layer_above_it():
    upward = [
        f"{m} -> {i}"
        for m, path in modules().items()
        if m != "mmtrain"
        for i in imports(path, module_level_only=False)
        if layer(i) > layer(m)
    ]
    assert not upward, upward


def test_no_chain_of_project_imports_is_deeper_than_8():
    known = modules()

    @cache
    def depth(module: str) -> int:
        return 1 + max(
            (depth(i) for i in imports(known[module], module_level_only=True) if i != module), default=0
        )

    deepest = max(known, key=depth)
    assert depth(deepest) <= 8, (deepest, depth(deepest))


def test_checkpoint_files_and_autocast_each_have_one_home():
    """torch.load/torch.save of a checkpoint only in training/checkpoints.py; autocast only in
    runtime/devices.py."""
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        if path.name != "checkpoints.py":
            assert "torch.load(" not in text and "torch.save(" not in text, path
        if path.name != "devices.py":
            assert "torch.autocast(" not in text and "MixedPrecision" not in text, path


def test_importing_mmtrain_changes_no_environment_variable():
    import os
    import subprocess
    import sys

    code = "import os; before = dict(os.environ); import mmtrain; print(dict(os.environ) == before)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True"


def test_the_wheel_holds_every_module_and_every_config(tmp_path):
    """Built from the source tree (no install): a new subpackage or YAML left out of pyproject fails here."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT.parent),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    names = set(zipfile.ZipFile(next(tmp_path.glob("mmtrain-*.whl"))).namelist())
    source = {str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*") if p.suffix in (".py", ".yaml")}
    assert not source - names, sorted(source - names)
