"""A real single-node Slurm (Debian's slurmctld + slurmd + munge on loopback), started for these
tests from ../shared/tools/slurm or $MMTRAIN_SLURM_TOOLS. Skipped, with the reason, without root or
without the scripts."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FAST, run_cli

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("MMTRAIN_SLURM_TOOLS", REPO.parent / "shared" / "tools" / "slurm"))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local Slurm needs root (start.sh writes /etc/slurm and starts daemons)")
    if not (TOOLS / "start.sh").is_file():
        pytest.skip(f"no Slurm scripts at {TOOLS} (set MMTRAIN_SLURM_TOOLS)")
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "SLURM_STATE": str(state)}
    started = subprocess.run(["bash", str(TOOLS / "start.sh")], env=env, capture_output=True, text=True,
                             timeout=600)
    try:
        if started.returncode != 0 or shutil.which("sbatch") is None:
            pytest.skip(f"could not start Slurm (Debian packages unavailable?): {started.stderr[-500:]}")
        yield
    finally:
        subprocess.run(["bash", str(TOOLS / "stop.sh")], env=env, capture_output=True, timeout=120)


def test_slurm_job_array_sweep_and_leaderboard(slurm, tmp_path):
    result = run_cli("-m", "hydra/launcher=slurm", "fusion=early,late", *FAST, f"hydra.sweep.dir={tmp_path}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert "test/sentiment/f1_macro" in json.loads((tmp_path / job / "metrics.json").read_text())
    board = (tmp_path / "leaderboard.md").read_text()
    assert "`fusion=early`" in board and "`fusion=late`" in board


def test_ddp_over_two_slurm_tasks(slurm, tmp_path):
    result = run_cli("-m", "hydra/launcher=slurm", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                     *FAST, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "0" / "metrics.json").read_text())
    assert 0.0 <= metrics["test/sentiment/acc"] <= 1.0
    log = "\n".join(p.read_text() for p in tmp_path.glob(".submitit/*/*_0_log.out"))
    assert "world_size: 2" in log or "MEMBER: 2/2" in log, log[-2000:]
