"""mmtrain-report does what its name says: a sweep dir -> its leaderboard, a run dir -> its report.md."""

from __future__ import annotations

import json

import yaml

from mmtrain.report import report


def job(folder, overrides: list[str], value: float) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "metrics.json").write_text(json.dumps({"val/sentiment/f1_macro": value}))


def test_a_sweep_dir_gets_a_leaderboard_and_a_single_run_no_spread(tmp_path):
    job(tmp_path / "0", ["fusion=late", "seed=0"], 0.7)
    job(tmp_path / "1", ["fusion=late", "seed=1"], 0.8)
    job(tmp_path / "2", ["fusion=early", "seed=0"], 0.6)
    text = report(tmp_path).read_text()
    assert "| `fusion=late` | 2 | 0 | 0 | 0.7500 ± 0.0707 |" in text  # runs, failed, pruned
    assert "| `fusion=early` | 1 | 0 | 0 | 0.6000 |" in text  # one run: no "± 0.0000"


def test_a_run_dir_gets_its_report_md_again(tmp_path):
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "kind": "train",
                "checkpoint": None,
                "data": "x.csv",
                "modalities": [],
                "fusion": "LateFusion",
                "tasks": {},
                "parameters": {"trainable": 1, "frozen": 0},
                "splits": {},
                "calibration": {},
                "peak_rss_mb": 1.0,
            }
        )
    )
    (tmp_path / "metrics.json").write_text("{}")
    path = report(tmp_path)
    assert path == tmp_path / "report.md" and path.read_text().startswith("# ")
