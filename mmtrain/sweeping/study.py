"""An Optuna study shared by many sweep drivers (hydra/sweeper=mmtrain_optuna).

Each driver (one ``mmtrain -m`` process, e.g. one task of a Slurm job array, with its own sweep dir)
asks the study for a trial, runs it as one Hydra job, and tells the study how it ended: COMPLETE with
the job's ``optimized_metric``, PRUNED (the job stopped when the study's pruner said so, see
pruning.py), or FAIL with the reason from the job's failed.json. The study lives in an RDB
(``postgresql://...``, ``sqlite:////abs/path.db``) or an Optuna journal file (``journal:/abs/path.log``,
for shared file systems without a database; by default one in the sweep dir), created or loaded by
name, so drivers share it and a
stopped sweep resumes: a driver started again finishes its own ``n_trials`` and re-runs the trial it
was killed in (that one is marked FAIL, "driver stopped", and its parameters queued again).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError

log = logging.getLogger(__name__)
DRIVER = "driver"  # trial user attribute: the sweep dir of the driver that ran it
REASON = "fail_reason"
STOPPED = "driver stopped"
STUDY_LOG = "study.log"  # the default storage: an Optuna journal file in the sweep dir


def storage_url(url: str | None, sweep_dir) -> str:
    """The study's storage: ``url``, or by default a journal file in the driver's sweep dir (so that
    its jobs can report to their trials, and a stopped driver resumes)."""
    return str(url) if url else f"journal:{Path(sweep_dir).absolute() / STUDY_LOG}"


def storage_of(url: str):
    """An Optuna storage for an RDB URL or ``journal:<file>``."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        raise ConfigError(
            f"hydra.sweeper.storage={url}: give SQLite an absolute path (sqlite:////abs/path/study.db, four "
            f"slashes), so that every driver opens the same file whatever its working directory."
        )
    engine = {"pool_pre_ping": True}
    if url.startswith("sqlite"):  # drivers writing at once wait for the file lock instead of failing
        engine["connect_args"] = {"timeout": 120}
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):  # drivers started together race to create the schema: the losers retry
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.5 * (attempt + 1))


def distribution(override):
    """A Hydra sweep override (choice, range, interval, tag(log, interval)) -> an Optuna distribution."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    if override.is_choice_sweep():
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(value.start, value.stop, step=value.step)
        return IntDistribution(int(value.start), int(value.stop) - 1, step=int(value.step))
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ConfigError(f"hydra.sweeper.params: {override.input_line} is not a sweep Optuna can search.")


def search_space(params: dict, arguments: list[str]) -> tuple[dict, list[str]]:
    """(the distributions of the sweep's params and of the command line's sweeps, the fixed overrides)."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(lines):
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            fixed.append(override.input_line)
    return space, fixed


def built(node):
    """A sampler/pruner: Hydra has built it already when it built the sweeper; a config is built here."""
    return instantiate(node) if isinstance(node, (dict, DictConfig)) else node


class StudySweeper(Sweeper):
    def __init__(
        self,
        storage: Any = None,
        study_name: str | None = None,
        direction: str = "maximize",
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.5,
        sampler: Any = None,
        pruner: Any = None,
        params: Any = None,
    ):
        if n_jobs != 1:
            raise ConfigError(
                f"hydra.sweeper.n_jobs={n_jobs}: each driver runs one trial at a time (n_jobs=1); run "
                f"several drivers against one storage and study_name to run trials in parallel."
            )
        if not 0 <= max_failure_rate <= 1:
            raise ConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate} must be in [0, 1].")
        self.storage_url, self.study_name, self.direction = storage, study_name, direction
        self.n_trials, self.max_failure_rate = n_trials, max_failure_rate
        self.sampler, self.pruner = sampler, pruner
        self.params = (
            OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else params
        )

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.job_idx = config, 0
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir).absolute()
        self.storage_url = storage_url(self.storage_url, self.sweep_dir)

    def study(self):
        import optuna

        return optuna.create_study(
            storage=storage_of(self.storage_url),
            study_name=self.study_name,
            direction=self.direction,
            sampler=self.driver_sampler(),
            pruner=built(self.pruner)
            or optuna.pruners.NopPruner(),  # null: none (Optuna's default is median)
            load_if_exists=True,
        )

    def driver_sampler(self):
        """The sampler, its seed offset by this driver's sweep dir: drivers sharing a study with one
        seeded sampler config would otherwise all draw the same trials (a driver stays reproducible)."""
        node = self.config.hydra.sweeper.get("sampler")
        if not isinstance(node, DictConfig) or node.get("seed") is None:
            return built(self.sampler)
        node = OmegaConf.to_container(node)
        node["seed"] = int(node["seed"]) + zlib.crc32(str(self.sweep_dir).encode()) % 100_003
        return instantiate(node)

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        space, fixed = search_space(self.params, arguments)
        study, driver = self.study(), str(self.sweep_dir)
        # a restarted driver numbers its jobs after the ones already in its sweep dir (a job dir reused
        # would resume the old trial's checkpoint)
        jobs = [int(p.name) for p in self.sweep_dir.glob("*") if p.name.isdigit()]
        self.job_idx = max(jobs, default=-1) + 1
        mine = self.recover(study, driver)
        log.info(
            "Study '%s' (%s): %d trials so far, %d of them this driver's; running %d more.",
            study.study_name,
            self.storage_url,
            len(study.trials),
            mine,
            max(0, self.n_trials - mine),
        )
        for _ in range(max(0, self.n_trials - mine)):
            trial = study.ask(space)
            trial.set_user_attr(DRIVER, driver)
            overrides = [*fixed, *(f"{k}={v}" for k, v in trial.params.items()), f"trial={trial.number}"]
            [result] = self.launcher.launch([overrides], initial_job_idx=self.job_idx)
            self.job_idx += 1
            state, value, reason = self.outcome(result)
            if reason:
                trial.set_user_attr(REASON, reason)
            if state == optuna.trial.TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                study.tell(trial, state=state)
            log.info("Trial %d: %s%s", trial.number, state.name, f" ({reason})" if reason else f" {value}")
            self.check_failures(study)
        self.write_results(study)

    def recover(self, study, driver: str) -> int:
        """Trials this driver left RUNNING when it was stopped are failed ("driver stopped") and their
        parameters queued again; -> the trials this driver has finished."""
        import optuna

        state, done = optuna.trial.TrialState, 0
        for t in study.get_trials(deepcopy=False):
            if t.user_attrs.get(DRIVER) != driver:
                continue
            if t.state == state.RUNNING:
                study._storage.set_trial_user_attr(
                    t._trial_id, REASON, STOPPED
                )  # no public setter on a frozen trial
                study.tell(t.number, state=state.FAIL)
                study.enqueue_trial(t.params)
            elif t.state.is_finished() and t.user_attrs.get(REASON) != STOPPED:
                done += 1
        return done

    def outcome(self, result) -> tuple[Any, float | None, str | None]:
        """(state, value, why it failed) of a finished job, from its run dir and return value."""
        import optuna

        state = optuna.trial.TrialState
        run_dir = Path(result.hydra_cfg.hydra.runtime.output_dir)
        if (run_dir / artefacts.FAILED).is_file():
            error = json.loads((run_dir / artefacts.FAILED).read_text()).get("error") or "unknown error"
            return state.FAIL, None, error.splitlines()[0][:300]
        if (run_dir / artefacts.PRUNED).is_file():
            return state.PRUNED, None, None
        try:
            value = float(result.return_value)
        except Exception as err:  # noqa: BLE001  (the job raised: Hydra keeps the exception)
            return state.FAIL, None, f"{type(err).__name__}: {err}"[:300]
        if not math.isfinite(value):
            return state.FAIL, None, f"optimized_metric is {value} (not in metrics.json?)"
        return state.COMPLETE, value, None

    def check_failures(self, study) -> None:
        """Stop the driver when the failed share of the study's finished trials is over max_failure_rate
        (from 4 finished trials on), naming the most common reason."""
        import optuna

        state = optuna.trial.TrialState
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        failed = [t for t in finished if t.state == state.FAIL and t.user_attrs.get(REASON) != STOPPED]
        if len(finished) >= 4 and len(failed) / len(finished) > self.max_failure_rate:
            reason, count = Counter(t.user_attrs.get(REASON, "unknown") for t in failed).most_common(1)[0]
            self.write_results(study)
            print(
                f"mmtrain: error: study '{study.study_name}': {len(failed)} of {len(finished)} finished "
                f"trials failed, over hydra.sweeper.max_failure_rate={self.max_failure_rate}; the driver "
                f"stops. Most common reason ({count} trials): {reason}",
                file=sys.stderr,
            )
            raise SystemExit(2)  # a plain message, not Hydra's traceback of the sweeper

    def write_results(self, study) -> None:
        import optuna

        complete = [
            t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
        ]
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        results = {"name": "optuna", "study": study.study_name, "trials": len(study.trials)}
        if complete:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / artefacts.OPTIMIZATION_RESULTS)
