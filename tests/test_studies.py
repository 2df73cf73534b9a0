"""Sweeps that scale out, through the real command line: several drivers share one Optuna study in
SQLite or a real PostgreSQL, a killed driver resumes, pruning stops trials the pruner calls bad, and a
failing trial is recorded while the sweep goes on (slow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import local_postgres
import optuna
import pytest
from conftest import FAST

from mmtrain.sweeping.study import REASON, STOPPED

pytestmark = pytest.mark.slow
QUICK = [f for f in FAST if not f.startswith(("data.source.num_samples", "trainer.max_epochs"))] + [
    "data.source.num_samples=120",
    "trainer.max_epochs=1",
]


def driver(sweep_dir: Path, storage: str, study: str, trials: int, *extra: str, quick=QUICK) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mmtrain",
        "-m",
        "hparams_search=fusion_optuna",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={trials}",
        *quick,
        *extra,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def run_drivers(tmp_path: Path, storage: str, count: int, trials: int) -> None:
    procs = [
        subprocess.Popen(
            driver(tmp_path / f"driver_{i}", storage, "shared", trials),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]


def check_shared(storage, drivers: int, trials: int) -> None:
    study = optuna.load_study(study_name="shared", storage=storage)
    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    )  # the median pruner may stop some
    done = [t for t in study.trials if t.state in finished]
    assert len(done) == drivers * trials
    assert len({t.number for t in done}) == drivers * trials
    assert len({tuple(sorted(t.params.items())) for t in done}) == drivers * trials  # no set run twice
    assert len({t.user_attrs["driver"] for t in done}) == drivers


def test_two_drivers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"  # an absolute path: four slashes
    run_drivers(tmp_path, storage, 2, 3)
    check_shared(storage, 2, 3)
    from mmtrain.reporting.leaderboard import write

    board = write(tmp_path).read_text()  # one leaderboard over every driver's trials
    assert board.count("| 1 | 0 |") == 6 and "Study `shared` (6 trials over 2 driver(s))" in board


@pytest.fixture
def postgres():
    if local_postgres.bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    with local_postgres.running_postgres() as url:
        yield url


def test_two_drivers_share_one_postgresql_study(tmp_path, postgres):
    run_drivers(tmp_path, postgres, 2, 3)
    check_shared(postgres, 2, 3)


def test_a_killed_driver_resumes_and_reruns_the_trial_it_was_in(tmp_path):
    storage, sweep = f"journal:{tmp_path / 'study.log'}", tmp_path / "driver"
    command = driver(sweep, storage, "resume", 2, "trainer.max_epochs=3")
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    from mmtrain.sweeping.study import storage_of

    deadline = time.monotonic() + 300
    while True:  # kill it once its second trial is running
        assert time.monotonic() < deadline and proc.poll() is None
        trials = (
            optuna.load_study(study_name="resume", storage=storage_of(storage)).trials
            if (tmp_path / "study.log").exists()
            else []
        )
        if len(trials) == 2 and (sweep / "1" / "checkpoints").is_dir():
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="resume", storage=storage_of(storage)).trials
    stopped = [t for t in trials if t.user_attrs.get(REASON) == STOPPED]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(stopped) == 1 and stopped[0].state == optuna.trial.TrialState.FAIL
    assert len(done) == 2 and stopped[0].params in [t.params for t in done]  # its parameters ran again


def test_pruning_stops_trials_the_pruner_calls_bad_after_their_first_epoch(tmp_path):
    """ThresholdPruner(lower=1.1): every macro-F1 is below it, so each trial is pruned after epoch 0 of 3
    and ends as a run (metrics.json of its best epoch so far) marked PRUNED."""
    result = subprocess.run(
        driver(
            tmp_path,
            f"journal:{tmp_path / 'study.log'}",
            "prune",
            1,
            "trainer.max_epochs=3",
            "hydra.sweeper.pruner=null",
            "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.1}",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from mmtrain.sweeping.study import storage_of

    trials = optuna.load_study(
        study_name="prune", storage=storage_of(f"journal:{tmp_path / 'study.log'}")
    ).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED]
    for job in ("0",):
        assert (tmp_path / job / "pruned.json").is_file() and (tmp_path / job / "metrics.json").is_file()
        log = (tmp_path / job / "cli.log").read_text()
        assert "epoch 1/3 done" in log and "epoch 2/3 done" not in log
    assert "| 1 | 0 | 1 |" in (tmp_path / "leaderboard.md").read_text()


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on_until_too_many_fail(tmp_path):
    """fusion.dim=30 cannot split over 4 heads: those trials FAIL with that reason and the others
    complete; with every trial failing, max_failure_rate stops the driver naming the reason."""
    from mmtrain.sweeping.study import storage_of

    quick = [f for f in QUICK if not f.startswith("fusion.dim")] + ["fusion=intermediate", "fusion.heads=4"]
    space = ["hydra.sweeper.params=null"]  # the search space is the command line's fusion.dim sweep
    storage = f"journal:{tmp_path / 'a.log'}"
    command = driver(
        tmp_path / "mixed",
        storage,
        "mixed",
        4,
        *space,
        "fusion.dim=choice(32,30)",
        "hydra.sweeper.max_failure_rate=1",
        quick=quick,
    )
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="mixed", storage=storage_of(storage)).trials
    states = {(t.params["fusion.dim"], t.state) for t in trials}  # the seeded sampler draws both
    assert states == {(32, optuna.trial.TrialState.COMPLETE), (30, optuna.trial.TrialState.FAIL)}
    failed = next(t for t in trials if t.state == optuna.trial.TrialState.FAIL)
    assert "fusion.dim=30 must be divisible by fusion.heads=4" in failed.user_attrs[REASON]

    command = driver(
        tmp_path / "bad", storage, "bad", 6, *space, "fusion.dim=choice(30,34,38,42)", quick=quick
    )
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert "4 of 4 finished trials failed, over hydra.sweeper.max_failure_rate=0.5" in result.stderr
    assert "Traceback" not in result.stderr
    assert "must be divisible by fusion.heads=4" in result.stderr
