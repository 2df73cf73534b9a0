"""A real single-node Slurm (Debian's slurmctld + slurmd + munge on loopback), started for these
tests from ../shared/tools/slurm or $MMTRAIN_SLURM_TOOLS. Skipped, with the reason, without root or
without the scripts."""

import json
import os
import shutil
import subprocess
import sys
import time
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
    started = subprocess.run(
        ["bash", str(TOOLS / "start.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    try:
        if started.returncode != 0 or shutil.which("sbatch") is None:
            pytest.skip(f"could not start Slurm (Debian packages unavailable?): {started.stderr[-500:]}")
        yield
    finally:
        subprocess.run(["bash", str(TOOLS / "stop.sh")], env=env, capture_output=True, timeout=120)


def test_slurm_job_array_of_four_jobs_and_leaderboard(slurm, tmp_path):
    fusions = ["early", "late", "intermediate", "hybrid"]
    result = run_cli(
        "-m",
        "hydra/launcher=slurm",
        f"fusion={','.join(fusions)}",
        *FAST,
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1", "2", "3"):
        assert "test/sentiment/f1_macro" in json.loads((tmp_path / job / "metrics.json").read_text())
    board = (tmp_path / "leaderboard.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in board[1:]) == sorted(f"fusion={f}" for f in fusions)


def test_requeued_job_resumes_from_its_own_last_checkpoint(slurm, tmp_path):
    args = [
        "-m",
        "hydra/launcher=slurm",
        *FAST,
        "trainer.max_epochs=6",
        "data.source.num_samples=600",
        "~callbacks.early_stopping",
        f"hydra.sweep.dir={tmp_path}",
    ]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "mmtrain", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = tmp_path / "0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and sweep.poll() is None:
        time.sleep(0.2)
    job_id = next(tmp_path.glob(".submitit/*/")).name
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    # Slurm holds a requeued job back (BeginTime) for a while; let it start again at once.
    for _ in range(120):
        state = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True, text=True
        ).stdout
        if state.startswith("RUNNING") or not state:
            break
        if state.startswith("PENDING"):
            subprocess.run(["scontrol", "update", f"jobid={job_id}", "starttime=now"], capture_output=True)
        time.sleep(0.5)
    _, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, stderr[-3000:]
    log = (tmp_path / "0" / "cli.log").read_text()
    assert "Resuming from " + str(last) in log
    assert json.loads((tmp_path / "0" / "metrics.json").read_text())["test/sentiment/acc"] >= 0.0


def test_ddp_over_two_slurm_tasks(slurm, tmp_path):
    result = run_cli(
        "-m",
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        *FAST,
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "0" / "metrics.json").read_text())
    assert 0.0 <= metrics["test/sentiment/acc"] <= 1.0
    logs = "\n".join(p.read_text() for p in tmp_path.glob(".submitit/*/*_log.*"))
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in logs and "GLOBAL_RANK: 1, MEMBER: 2/2" in logs, logs[-2000:]
    assert not (tmp_path / "0" / "failed.json").exists()


def test_sweep_array_drivers_share_one_study(slurm, tmp_path):
    """scripts/slurm/sweep_array.sh as a user submits it: a job array of 2 drivers, one study (a journal
    file here; PostgreSQL in scripts/bench_sweeps.py drivers), one leaderboard over both."""
    import optuna

    submitted = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--array=0-1",
            "--cpus-per-task=1",
            f"--chdir={tmp_path}",
            f"--output={tmp_path}/slurm-%a.out",
            str(REPO / "scripts" / "slurm" / "sweep_array.sh"),
            "hparams_search=fusion_optuna",
            "study=arr",
            f"storage=journal:{tmp_path / 'study.log'}",
            "trials=1",
            *[f for f in FAST if not f.startswith(("data.source.num_samples", "trainer.max_epochs"))],
            "data.source.num_samples=120",
            "trainer.max_epochs=1",
        ],
        env={**os.environ, "MMTRAIN": str(Path(sys.executable).parent / "mmtrain")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "".join(p.read_text()[-2000:] for p in tmp_path.glob("slurm-*.out"))
    assert submitted.returncode == 0, submitted.stderr + logs
    from mmtrain.sweeping.study import storage_of

    storage = storage_of(f"journal:{tmp_path / 'study.log'}")
    trials = optuna.load_study(study_name="arr", storage=storage).trials
    assert len(trials) == 2 and len({t.user_attrs["driver"] for t in trials}) == 2, logs
    from mmtrain.reporting.leaderboard import write

    assert "Study `arr` (2 trials over 2 driver(s))" in write(tmp_path / "multirun" / "arr").read_text()
