"""The command line as a user runs it: installed script, multirun sweep, 2-process DDP."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import FAST, run_cli

REPO = Path(__file__).resolve().parent.parent


def test_help_and_composed_config_are_fast_and_complete(tmp_path):
    result = run_cli("--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for line in (
        "_target_: mmtrain.fusion.intermediate.IntermediateFusion",
        "monitor: val/sentiment/f1_macro",
        "model: minilm",
    ):
        assert line in result.stdout
    help_text = run_cli("--help", cwd=tmp_path).stdout
    assert (
        "fusion: attention_pool, bottleneck, early, film, gated, hybrid, intermediate, late, low_rank, tensor"
        in help_text
    )


@pytest.mark.slow
def test_installed_console_script_finds_its_configs(tmp_path):
    """A non-editable install (a wheel) into a fresh venv that borrows this one's dependencies
    through a .pth line (so this checkout's editable mmtrain is not on its path)."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        check=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    (site_packages / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site_packages),
            str(next(wheel_dir.glob("*.whl"))),
        ],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli(
        "--cfg",
        "job",
        "fusion=late",
        cwd=elsewhere,
        executable=[str(venv / "bin" / "python"), str(site_packages / "bin" / "mmtrain")],
    )
    assert result.returncode == 0, result.stderr
    assert "_target_: mmtrain.fusion.late.LateFusion" in result.stdout
    assert "mmtrain.cli import main" in (site_packages / "bin" / "mmtrain").read_text()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mmtrain.conf; print(mmtrain.conf.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where  # the wheel's copy, not this checkout's


@pytest.mark.slow
def test_two_process_ddp_on_cpu_completes(tmp_path):
    args = [
        *FAST,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp_path}",
    ]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"test/sentiment/f1_macro", "test/sentiment/acc"}
    assert "Run dir:" in result.stdout
