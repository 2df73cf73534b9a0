"""Bad values fail before training, with one sentence naming the key and the fix."""

import json

import pytest
from conftest import run_cli

from mmtrain.core.errors import ConfigError
from mmtrain.train import prepare
from mmtrain.training.checkpoints import resolve_ckpt_path


@pytest.mark.parametrize(
    "overrides, text",
    [
        (["modalities=[]"], "modalities is empty"),
        (["modalities=text"], r"modalities=text must be a list: modalities=\[text\]"),
        (["modalities=[text,video]"], r"\['video'\] not in data 'news_audio'"),
        (["+head.price.loss_weight=1"], "head.price: the data 'news_audio' has no task 'price'"),
        (["loss.class_weights=inverse"], "loss.class_weights=inverse is not known"),
        (["loss.class_weights=[1.0,2.0]"], "needs 3 non-negative weights"),
        (["optim.optimizer.lr=0"], "optim.optimizer.lr=0 must be positive"),
        (["optim.optimizer.lr=-1e-3"], "must be positive"),
        (["trainer.precision=16-mixed"], "trainer.precision=16-mixed needs a CUDA GPU"),
        (["fusion.dim=30", "fusion.heads=4"], "fusion.dim=30 must be divisible by fusion.heads=4"),
        (["fusion=late", "fusion.combine=weighted", "fusion.weights=[0.6]"], "needs one weight per member"),
        (["fusion=late", "fusion.combine=vote", "fusion.member_loss_weight=0"], "member_loss_weight above 0"),
        (["data.sampler=oversample"], "data.sampler=oversample is not known"),
        (["monitor=val/tags/f1_macro"], "monitor=val/tags/f1_macro is not a metric of this run"),
        (["encoder.text.arch=lstm"], "encoder.text.arch=lstm is not known"),
        (["optim.scheduler.name=step"], "optim.scheduler.name=step is not known: use cosine, plateau, none"),
        (["+optim.lr=0.1"], r"optim.lr is not a setting of mmtrain: did you mean optim.optimizer.lr\?"),
        (["+sed=3"], "sed is not a setting of mmtrain: did you mean seed?"),
        (["+loss.class_weight=balanced"], "did you mean loss.class_weights?"),
        (["optimized_mode=maximize"], "optimized_mode=maximize must be max or min"),
        (["train=false"], "train=false evaluates a checkpoint, so it needs ckpt_path="),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
        (
            ["encoder/text=hf", "encoder.text.model=/models/finbert"],
            "encoder.text.model=/models/finbert: no such folder",
        ),
        (["optim.encoder_lr=-1"], "optim.encoder_lr=-1 must be positive"),
        (["optim.layer_decay=1.5"], r"optim.layer_decay=1.5 must be in \(0, 1\]"),
        (["loss.label_smoothing=1.5"], r"loss.label_smoothing=1.5 must be in \[0, 1\)"),
        (["model.modality_dropout=1"], r"model.modality_dropout=1 must be in \[0, 1\)"),
        (["finetune=[video]"], r"finetune=\['video'\] must be null, all, or a list of modality types"),
        (["data.num_workers=-1"], "data.num_workers=-1 must be auto or a whole number"),
        (["average.method=best"], "average.method=best is not known: use none, uniform, greedy"),
        (["average.top_k=0"], "average.top_k=0 must be a whole number >= 1"),
        (
            ["encoder.audio.normalize=cmvn"],
            "encoder.audio.normalize=cmvn is not known: use none or utterance",
        ),
        (
            ["data=manifest", "++data.targets.label.column=label"],
            r"data.path not set: give it on the command line \(e.g. data.path=/data/manifest.csv\)",
        ),
        (["data=manifest", "data.path=x.csv"], "data.targets is empty: name what to predict"),
        (["encoder/text=hf"], r"encoder.text.model not set"),
        (["balance=ogm_ge"], "balance=ogm_ge compares .* set model.aux_heads=true"),
        (["cv.fold=1"], "cv.fold=1 picks one of cv.folds folds: set cv.folds as well"),
        (["model.aux_weight=-1"], r"model.aux_weight=-1 >= 0"),
        (
            ["fusion=tensor", "fusion.dim=1000"],
            r"outer product of .* 1,002,001 features, over max_features=200,000: set fusion.dim=446",
        ),
        (
            ["fusion=film", "fusion.conditioner=video"],
            "fusion.conditioner=video is not one of this run's modalities",
        ),
    ],
)
def test_bad_value_names_the_key(cfg_factory, overrides, text):
    with pytest.raises(ConfigError, match=text):
        prepare(cfg_factory(*overrides))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path=.*no such file"):
        resolve_ckpt_path(tmp_path / "nope.ckpt", tmp_path, auto_resume=False)
    assert resolve_ckpt_path(None, tmp_path, auto_resume=True) is None  # nothing to resume: a fresh run


def test_ckpt_path_last_without_a_checkpoint_starts_fresh_with_a_warning(tmp_path, caplog):
    # Lightning's convention: a Slurm script that always passes ckpt_path=last works on its first run.
    assert resolve_ckpt_path("last", tmp_path, auto_resume=False) is None
    assert "ckpt_path=last" in caplog.text and "starting from scratch" in caplog.text
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"truncated")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        resolve_ckpt_path("last", tmp_path, auto_resume=False)


def test_truncated_checkpoint_is_named_and_left_in_place(tmp_path):
    import torch

    good = tmp_path / "checkpoints" / "last.ckpt"
    good.parent.mkdir()
    torch.save({"state_dict": {"w": torch.ones(1000)}}, good)
    assert resolve_ckpt_path(None, tmp_path, auto_resume=True) == str(good)
    bad = tmp_path / "checkpoints" / "cut.ckpt"
    bad.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ConfigError, match=r"cut.ckpt is not a readable checkpoint .* truncated or corrupt"):
        resolve_ckpt_path(bad, tmp_path, auto_resume=False)
    assert bad.stat().st_size == 500 and good.is_file()


def test_cli_reports_config_errors_with_exit_code_2(tmp_path):
    result = run_cli("optim.optimizer.lr=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "mmtrain: error: optim.optimizer.lr=0 must be positive" in result.stderr
    assert not (tmp_path / "checkpoints").exists()
    assert "optim.optimizer.lr=0" in json.loads((tmp_path / "failed.json").read_text())["error"]


def test_cli_unknown_option_lists_the_valid_ones(tmp_path):
    result = run_cli("fusion=nope", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "Could not find 'fusion/nope'" in result.stderr
    for option in ("early", "late", "intermediate", "hybrid"):
        assert option in result.stderr


def test_nan_loss_stops_training_with_a_clear_message(cfg_factory):
    import torch

    module, datamodule = prepare(cfg_factory())
    module._loss = lambda out, targets: torch.tensor(float("nan"))
    batch = datamodule.batch(datamodule.table.indices("train")[:4])
    with pytest.raises(FloatingPointError, match="training loss became nan .* lower optim.optimizer.lr"):
        module.training_step(batch, 0)


def test_run_dirs_follow_the_slurm_job(monkeypatch):
    from mmtrain import run_id

    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    assert len(run_id().split("-")[-1]) == 6  # microseconds
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert run_id() == "slurm-4242"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4240")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert run_id() == "slurm-4240_2"


def test_resuming_a_run_dir_with_another_model_is_a_clear_error(cfg_factory):
    from mmtrain.train import run

    run(cfg_factory("fusion=early"))
    with pytest.raises(
        ConfigError,
        match=r"last.ckpt was trained with another model config than this run's .*"
        r"Start in a new run dir",
    ):
        run(cfg_factory("fusion=early", "fusion.dim=48", "trainer.max_epochs=2"))


@pytest.mark.parametrize(
    "overrides, text",
    [
        (
            ["trainer.max_epochs=two"],
            r"trainer.max_epochs=two must be a whole number \(e.g. trainer.max_epochs=10\)",
        ),
        (["data.batch_size=1.5"], "data.batch_size=1.5 must be a whole number"),
        (["optim.optimizer.lr=fast"], "optim.optimizer.lr=fast must be a number"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(cfg_factory, overrides, text):
    from mmtrain.config.validate import validate

    with pytest.raises(ConfigError, match=text):
        validate(cfg_factory(*overrides))


OPEN_MAPS = ("data.modalities.", "data.targets.", "encoder_for.")


@pytest.mark.parametrize(
    "args, text",
    [
        (
            ["trainer.max_epoch=2"],
            (
                r"trainer.max_epoch is not a setting of mmtrain: did you mean trainer.max_epochs\? "
                r"For an argument of lightning.pytorch.Trainer .* \+trainer.max_epoch=<value>"
            ),
        ),
        (
            ["+data.batchsize=32"],
            r"data.batchsize is not a setting of mmtrain: did you mean data.batch_size\?",
        ),
        (
            ["data=manifest", "data.patth=x.csv"],
            r"data.patth is not a setting of mmtrain: did you mean data.path\?",
        ),
        (
            ["fusion=gated", "fusion.dimm=3"],
            r"fusion.dimm is not a setting of mmtrain: did you mean fusion.dim\?",
        ),
    ],
)
def test_a_misspelt_key_gets_did_you_mean_before_anything_runs(args, text):
    from mmtrain.config.validate import check_overrides

    with pytest.raises(ConfigError, match=text):
        check_overrides("train", args, OPEN_MAPS)


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "fusion=early,late", "seed=1"],
        ["+trainer.deterministic=true"],
        ["data=manifest", "++data.targets.label.column=y"],
        ["fusion=nope"],
    ],
)
def test_overrides_hydra_takes_are_left_alone(args):
    from mmtrain.config.validate import check_overrides

    check_overrides(
        "train", args, OPEN_MAPS
    )  # nothing raised (fusion=nope: Hydra's own message lists the options)


def test_a_misspelt_trainer_argument_added_with_plus_is_named():
    from omegaconf import OmegaConf

    from mmtrain.core.errors import check_arguments

    trainer = OmegaConf.create(
        {"_target_": "lightning.pytorch.Trainer", "max_epoch": 2, "deterministic": True}
    )
    with pytest.raises(
        ConfigError,
        match=r"trainer.max_epoch is not an argument of lightning.pytorch.Trainer: "
        r"did you mean trainer.max_epochs\?",
    ):
        check_arguments(trainer, "trainer")


def fails_inside(x: int):
    raise KeyError("a bug, not a setting")


def test_building_tells_a_wrong_setting_from_a_bug():
    from omegaconf import OmegaConf

    from mmtrain.core.errors import build

    node = OmegaConf.create({"_target_": "test_errors.fails_inside", "x": 1})
    with pytest.raises(KeyError, match="a bug"):
        build(node, "thing")
    with pytest.raises(
        ConfigError, match=r"thing: could not build test_errors.fails_inside: TypeError: .*'y'"
    ):
        build(OmegaConf.create({"_target_": "test_errors.fails_inside", "y": 1}), "thing")
    with pytest.raises(ConfigError, match=r"thing: could not build nowhere.Thing"):
        build(OmegaConf.create({"_target_": "nowhere.Thing"}), "thing")


def test_a_bug_is_one_paragraph_with_the_traceback_in_error_log(tmp_path, capsys):
    from mmtrain.cli import fail

    try:
        {}["missing"]
    except KeyError as err:
        with pytest.raises(SystemExit) as exit_:
            fail("mmtrain", err, tmp_path)
    assert exit_.value.code == 1
    said = capsys.readouterr().err.strip()
    assert (
        said.startswith(
            "mmtrain: mmtrain hit an internal error (KeyError: 'missing'). This is a bug in mmtrain, "
            "not a problem with your settings or data."
        )
        and "\n" not in said
    )
    assert str(tmp_path / "error.log") in said
    assert "Traceback" in (tmp_path / "error.log").read_text()
    with pytest.raises(SystemExit) as exit_:
        fail("mmtrain", ConfigError("data.path=x: no such file."), tmp_path)
    assert (
        exit_.value.code == 2
        and capsys.readouterr().err.strip() == "mmtrain: error: data.path=x: no such file."
    )


def test_cli_answers_a_misspelt_key_before_hydra_with_exit_code_2(tmp_path):
    result = run_cli("trainer.max_epoch=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "mmtrain: error: trainer.max_epoch is not a setting of mmtrain: did you mean trainer.max_epochs?"
    )
    assert "To append to your config use" not in result.stderr
