"""Bad input: each kind gets a clear message naming the field and the fix (a ConfigError, which the
CLI turns into exit code 2), or is skipped / made a missing modality as data.on_bad_row says."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import toy_data

from mmtrain.core.errors import ConfigError
from mmtrain.data.manifest import load_manifest

ALL = {
    "text": {},
    "audio": {},
    "image": {},
    "series": {"type": "sequence"},
    "meta": {"numeric": ["likes"], "categorical": ["country"]},
}
TARGETS = {"label": {}, "score": {"type": "regression"}, "tags": {"type": "multilabel"}}


@pytest.fixture
def toy(tmp_path):
    path = toy_data.build(tmp_path, rows=30)
    return path, pd.read_csv(path)


def load(path, **kwargs):
    options = dict(modalities=ALL, targets=TARGETS, split_column="split")
    return load_manifest(path, **{**options, **kwargs})


def edit(path, frame, row, column, value):
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


# --- the whole manifest or its config is wrong ------------------------------------------------------


def test_missing_manifest(tmp_path):
    with pytest.raises(
        ConfigError, match=r"data.path=.*nope.csv: no such file\. Point data.path at the manifest"
    ):
        load(tmp_path / "nope.csv")


def test_unknown_format(tmp_path):
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(
        ConfigError, match=r"unknown manifest format '.xlsx'\. Use .csv, .tsv, .parquet or .jsonl"
    ):
        load(tmp_path / "m.xlsx")


def test_corrupt_parquet(tmp_path):
    (tmp_path / "m.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match=r"m.parquet: could not read it as parquet"):
        load(tmp_path / "m.parquet")


def test_manifest_without_rows(tmp_path):
    (tmp_path / "m.csv").write_text("text,label\n")
    with pytest.raises(ConfigError, match="the manifest has no rows"):
        load(tmp_path / "m.csv")


def test_missing_modality_column(toy):
    with pytest.raises(
        ConfigError,
        match=r"data.modalities.text.column=txt: the manifest has no such column\. "
        r"did you mean text\?",
    ):
        load(toy[0], modalities={"text": {"column": "txt"}})


def test_missing_target_column(toy):
    with pytest.raises(ConfigError, match=r"data.targets.label.column=lable: .* did you mean label\?"):
        load(toy[0], targets={"label": {"column": "lable"}})


def test_missing_tabular_column(toy):
    with pytest.raises(
        ConfigError, match=r"data.modalities.meta.numeric=likez: the manifest has no such column"
    ):
        load(toy[0], modalities={"meta": {"numeric": ["likez"]}})


def test_unknown_modality_type(toy):
    with pytest.raises(
        ConfigError,
        match=r"data.modalities.text.type=video is not a known modality type: use one of audio, image",
    ):
        load(toy[0], modalities={"text": {"type": "video"}})


def test_unknown_modality_setting(toy):
    with pytest.raises(ConfigError, match=r"data.modalities.text: unknown setting\(s\) \['colum'\]"):
        load(toy[0], modalities={"text": {"colum": "text"}})


def test_unknown_target_type(toy):
    with pytest.raises(
        ConfigError,
        match=r"data.targets.label.type=ordinal is not a known task type: use one of binary, multiclass",
    ):
        load(toy[0], targets={"label": {"type": "ordinal"}})


def test_no_targets(toy):
    with pytest.raises(ConfigError, match=r"data.targets is empty: name what to predict"):
        load(toy[0], targets={})


def test_ambiguous_integer_target(toy):
    path, frame = toy
    frame["count"] = np.arange(len(frame)) * 7
    frame.to_csv(path, index=False)
    with pytest.raises(
        ConfigError,
        match=r"holds 30 distinct whole numbers; say whether they are classes or "
        r"values: data.targets.count.type=multiclass or =regression",
    ):
        load(path, targets={"count": {}})


def test_missing_test_split(toy):
    with pytest.raises(
        ConfigError,
        match=r"No 'test_speaker' rows: the split \(column split\) has \['test', "
        r"'train', 'val'\]",
    ):
        load(toy[0], test_splits=["test", "test_speaker"])


def test_bad_split_fractions(toy):
    with pytest.raises(ConfigError, match=r"data.split_fractions=\[0.5, 0.2\] must be three positive shares"):
        load(toy[0], split_column=None, split_fractions=[0.5, 0.2])


def test_unknown_on_bad_row(toy):
    with pytest.raises(ConfigError, match="data.on_bad_row=drop is not known: use error, skip or missing"):
        load(toy[0], on_bad_row="drop")


# --- bad rows: one test per kind, with default on_bad_row=error --------------------------------------

ROW_PROBLEMS = {
    "missing audio file": ("audio", "media/gone.wav", r"audio: file not found: .*gone.wav"),
    "corrupt wav": ("audio", "BYTES:RIFF....WAVEjunk", r"audio: unreadable audio \("),
    "missing image file": ("image", "media/gone.png", r"image: file not found"),
    "truncated png": ("image", "TRUNCATE", r"image: unreadable image \("),
    "image that is not an image": ("image", "BYTES:not a png at all", r"image: unreadable image"),
    "text in a numeric column": ("likes", "lots", r"likes: not a number: 'lots'"),
    "infinite number": ("likes", "inf", r"likes: infinite value"),
    "series with NaN": ("series", "[[1, 2], [NaN, 1]]", r"series: time series holds NaN/inf"),
    "series that does not parse": ("series", "[1, 2", r"series: not a time series"),
    "series with other channels": (
        "series",
        "[[1, 2, 3], [1, 2, 3]]",
        r"series: 3 channels where earlier rows have 2",
    ),
    "class never seen in train": ("label", "angry", r"label: class 'angry' never seen in the train split"),
    "regression target not a number": ("score", "n/a?", r"score: not a finite number"),
    "multilabel label never seen in train": (
        "tags",
        "alpha|omega",
        r"tags: label\(s\) \['omega'\] never seen",
    ),
}


@pytest.mark.parametrize("kind", list(ROW_PROBLEMS))
def test_bad_row_is_named_with_its_reason(toy, kind):
    path, frame = toy
    column, value, reason = ROW_PROBLEMS[kind]
    row = 9 if column in ("label", "tags") else 4  # row 9 is a test row: its class must come from train
    if isinstance(value, str) and value.startswith("BYTES:"):
        (path.parent / "media" / f"{row}.{ {'audio': 'wav', 'image': 'png'}[column] }").write_bytes(
            value[6:].encode()
        )
        value = frame.loc[row, column]
    elif value == "TRUNCATE":
        image = path.parent / "media" / f"{row}.png"
        image.write_bytes(image.read_bytes()[:60])
        value = frame.loc[row, column]
    edit(path, frame, row, column, value)
    with pytest.raises(ConfigError) as err:
        load(path, report_dir=str(path.parent / "run"))
    message = str(err.value)
    assert message.startswith("data: 1 of 30 rows are bad (first: row %d (id s%03d): " % (row, row))
    assert __import__("re").search(reason, message), message
    assert "data.on_bad_row=skip" in message and "data.on_bad_row=missing" in message
    report = pd.read_csv(path.parent / "run" / "bad_rows.csv")
    assert report[["row", "id"]].values.tolist() == [[row, f"s{row:03d}"]]


def test_empty_cells_are_missing_values_not_bad_rows(toy, caplog):
    """An empty text, media or series cell is that modality missing in the row; an empty target
    leaves the row out of that task only (several tasks here: it stays for the others)."""
    path, frame = toy
    frame = frame.astype({"label": object, "series": object, "score": object})
    frame.loc[4, "text"], frame.loc[5, "audio"], frame.loc[6, "series"] = "   ", np.nan, ""
    frame.loc[7, "label"], frame.loc[8, "score"] = np.nan, "N/A"
    frame.to_csv(path, index=False)
    caplog.set_level("INFO")
    table = load(path)
    assert len(table) == 30
    assert "1 rows have no label target: left out of label's loss and metrics" in caplog.text
    assert table.modalities["text"][4] is None and table.modalities["audio"][5] is None
    assert table.modalities["series"][6] is None and table.modalities["text"][5] is not None
    assert table.targets["label"][7] == -1 and table.targets["label"][8] >= 0
    assert np.isnan(table.targets["score"][8]) and np.isfinite(table.targets["score"][7])


def test_a_row_without_its_only_target_leaves_the_split_and_is_counted(toy, caplog):
    caplog.set_level("INFO")
    path, frame = toy
    edit(path, frame, 4, "label", "?")
    table = load(path, targets={"label": {}})
    assert len(table) == 29 and table.dropped == {"no label target": 1}
    assert "1 rows have no label target: left out" in caplog.text


def test_nan_in_tabular_is_a_missing_value_not_a_bad_row(toy):
    path, frame = toy
    edit(path, frame, 4, "likes", np.nan)
    table = load(path)
    assert np.isnan(table.modalities["meta"][4][0])


def test_skip_drops_bad_rows_and_reports_them(toy, caplog):
    path, frame = toy
    (path.parent / "media" / "4.wav").write_bytes(b"junk")
    edit(path, frame, 7, "likes", "lots")
    table = load(path, on_bad_row="skip", report_dir=str(path.parent / "run"))
    assert len(table) == 28 and "s004" not in table.modalities["text"][4]
    assert "2 of 30 rows are bad; data.on_bad_row=skip: 2 rows dropped" in caplog.text
    assert len(pd.read_csv(path.parent / "run" / "bad_rows.csv")) == 2


def test_missing_makes_the_bad_modality_absent_and_drops_bad_targets(toy):
    path, frame = toy
    (path.parent / "media" / "4.wav").write_bytes(b"junk")
    frame.loc[5, "series"] = json.dumps([[1.0, float("nan")]])
    frame.loc[6, "series"] = "[np.float64(1.0), 2.0]"  # does not parse: never read, not a crash
    frame.loc[9, "label"] = "angry"
    frame.to_csv(path, index=False)
    table = load(path, on_bad_row="missing")
    assert len(table) == 29  # only the row with a bad target is gone
    assert table.modalities["series"][6] is None
    assert table.modalities["audio"][4] is None and table.modalities["text"][4] is not None
    assert table.modalities["series"][5] is None and table.modalities["audio"][5] is not None


def test_empty_split_cell_is_named(toy):
    path, frame = toy
    edit(path, frame, 4, "split", np.nan)
    with pytest.raises(ConfigError, match=r"data.split_column=split: 1 rows have no split \(rows \[4\]"):
        load(path)


def test_a_stray_word_in_a_numeric_column_is_a_bad_row_not_a_text_column(toy):
    path, frame = toy
    edit(path, frame, 4, "likes", "abc")
    with pytest.raises(ConfigError, match=r"row 4 \(id s004\): likes: not a number: 'abc'"):
        load(path, modalities={"likes": {}})


def test_skip_also_drops_rows_whose_class_left_train_with_a_bad_row(toy):
    path, frame = toy
    frame = frame.astype({"likes": object})
    frame.loc[0, "label"] = "rare"  # the only train row of class "rare" ...
    frame.loc[0, "likes"] = "lots"  # ... is bad and will be skipped
    frame.loc[9, "label"] = "rare"  # so this test row's class is no longer seen in train
    frame.to_csv(path, index=False)
    table = load(path, on_bad_row="skip")
    assert len(table) == 28 and "rare" not in table.tasks["label"].classes


def test_a_target_with_one_class_in_train(toy):
    path, frame = toy
    frame["const"] = "same"
    frame.to_csv(path, index=False)
    with pytest.raises(
        ConfigError, match=r"data.targets.const: the train split has 1 class\(es\) \['same'\]"
    ):
        load(path, targets={"const": {"type": "multiclass"}})


def test_a_target_column_cannot_also_be_an_input(toy):
    with pytest.raises(ConfigError, match=r"data.modalities.meta: column\(s\) \['label'\] are a target"):
        load(toy[0], modalities={"meta": {"columns": ["likes", "label"]}})


def test_parquet_nulls_are_missing_values(tmp_path):
    path = toy_data.build(tmp_path, rows=30, fmt="parquet")
    frame = pd.read_parquet(path)
    frame["visits"] = pd.array([None] + list(range(1, 30)), dtype="Int64")  # pd.NA in a nullable column
    frame.to_parquet(path)
    table = load_manifest(
        path, modalities={"meta": {"numeric": ["visits"]}}, targets={"label": {}}, split_column="split"
    )
    assert np.isnan(table.modalities["meta"][0][0])


def test_regression_target_with_a_stray_word_is_still_regression(toy):
    path, frame = toy
    edit(path, frame, 4, "score", "unknown")
    with pytest.raises(ConfigError, match=r"row 4 \(id s004\): score: not a finite number: 'unknown'"):
        load(path, targets={"score": {}})
