"""Real tables as they come: missing cells in every spelling and dtype, column types a person would
choose, the split and id columns by name, and what was found said in the log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmtrain.core.errors import ConfigError
from mmtrain.data.manifest import load_manifest
from mmtrain.data.schema import Missing, infer_type, read_missing, why_left_out

RNG = np.random.default_rng(0)
COUNTRIES = [f"country-{i}" for i in range(41)]


def test_every_spelling_and_dtype_of_a_missing_cell_is_missing(tmp_path):
    table = pa.table(
        {
            "text": pa.array(["a b", None, "  ", " ? ", "N/A", "ok"], type=pa.large_string()),
            "dictionary": pa.array(["x", None, "y", "?", "x", "y"]).dictionary_encode(),
            "integer": pa.array([1, None, 3, 4, None, 6], type=pa.int64()),
            "when": pa.array([1, None, 3, 4, 5, 6], type=pa.timestamp("s")),
            "flag": pa.array([True, None, False, True, None, False]),
        }
    )
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    frame = pd.read_parquet(path).assign(
        nullable=pd.array([1, None, 3, pd.NA, 5, 6], dtype="Int64"),
        floats=pd.array([0.5, None, 1.5, 2.0, None, 1.0], dtype="Float64"),
    )
    clean, sentinels = read_missing(frame, Missing())
    assert clean.isna().sum().to_dict() == {
        "text": 4,
        "dictionary": 2,
        "integer": 2,
        "when": 1,
        "flag": 2,
        "nullable": 2,
        "floats": 2,
    }
    assert sentinels == {"text": 2, "dictionary": 1}
    assert clean["nullable"].dtype == np.float64 and clean["floats"].dtype == np.float64


def test_na_values_and_keep_default_na_decide_what_a_sentinel_is():
    frame = pd.DataFrame({"region": ["NA", "EU", "-", "EU", "NA"]})
    assert read_missing(frame, Missing())[0]["region"].isna().sum() == 2  # pandas' list has "NA"
    kept = read_missing(frame, Missing.of({"na_values": ["-"], "keep_default_na": False}))[0]["region"]
    assert kept.isna().tolist() == [False, False, True, False, False]
    with pytest.raises(ConfigError, match=r"data.na_values=\? must be a list of cell texts"):
        Missing.of({"na_values": "?"})


def test_numbers_with_question_marks_are_numbers(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"age": ["39", " ?", "50", "?", "41"] * 6, "y": ["a", "b"] * 15}).to_csv(path, index=False)
    frame, sentinels = read_missing(pd.read_csv(path, keep_default_na=False, na_values=[""]), Missing())
    assert frame["age"].dtype.kind == "f" and frame["age"].isna().sum() == 12 and sentinels == {"age": 12}


COLUMNS = {
    "number": ([0.5, 1.25, 3.0, -2.0] * 10, "tabular"),
    "boolean words": (["yes", "no", "no", "yes"] * 10, "tabular"),
    "boolean dtype": ([True, False] * 20, "tabular"),
    "41 countries": ([COUNTRIES[i % 41] for i in range(400)], "tabular"),
    "repeating phrase": (["Driver & Passenger", "Driver only"] * 20, "tabular"),
    "free text": ([f"shares of company {i} fell sharply after the report" for i in range(40)], "text"),
    "row number": (list(range(1, 41)), None),
    "codes": ([f"A{i:05d}" for i in range(40)], None),
    "names": ([f"Mazda RX{i}" for i in range(40)], None),
    "iso dates": ([f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(40)], "tabular"),
    "audio paths": ([f"clips/{i}.wav" for i in range(40)], "audio"),
    "image paths": ([f"img/{i}.PNG" for i in range(40)], "image"),
    "number lists": ([[0.1 * i, 0.2] for i in range(40)], "sequence"),
    "json lists": (["[1, 2, 3]"] * 40, "sequence"),
    "empty": ([None] * 40, None),
}


@pytest.mark.parametrize("name", list(COLUMNS))
def test_a_column_gets_the_type_a_person_would_give_it(name):
    values, expected = COLUMNS[name]
    assert infer_type(pd.Series(values)) == expected


def test_a_person_reads_why_a_column_is_left_out():
    assert why_left_out(pd.Series(COLUMNS["codes"][0])) == "an identifier (one distinct value per row)"
    assert why_left_out(pd.Series([None] * 5)) == "no value in any row"


def messy_table(rows: int = 60) -> pd.DataFrame:
    y = np.arange(rows) % 3
    frame = pd.DataFrame(
        {
            "row": np.arange(rows),
            "name": [f"Item {i}" for i in range(rows)],
            "age": np.where(
                RNG.random(rows) < 0.1, "?", (20 + 10 * y + RNG.integers(0, 5, rows)).astype(str)
            ),
            "department": [
                None if i % 7 == 0 else ["Tops", "Dresses", "Bottoms"][v] for i, v in enumerate(y)
            ],
            "country": [COUNTRIES[(3 * i + v) % 41] for i, v in enumerate(y)],
            "joined": [f"2023-{1 + v * 4:02d}-{1 + i % 28:02d}" for i, v in enumerate(y)],
            "review": [
                "" if i % 9 == 0 else f"this dress is {['awful', 'fine', 'lovely'][v]} and fits well {i}"
                for i, v in enumerate(y)
            ],
            "rating": [None if i == 5 else ["low", "mid", "high"][v] for i, v in enumerate(y)],
            "split": ["train" if i % 10 < 6 else "validation" if i % 10 < 8 else "test" for i in range(rows)],
        }
    )
    return frame


def test_a_messy_table_is_read_as_a_person_would(tmp_path, caplog):
    caplog.set_level("INFO")
    path = tmp_path / "shop.csv"
    messy_table().to_csv(path, index=False)
    table = load_manifest(path, targets={"rating": {}})
    spec = table.spec["modalities"]
    assert set(spec) == {"tabular", "review"} and spec["review"]["type"] == "text"
    assert spec["tabular"] == {
        "type": "tabular",
        "numeric": ["age"],
        "categorical": ["department", "country"],
        "dates": ["joined"],
    }
    assert table.spec["split_column"] == "split" and sorted(set(table.split)) == ["test", "train", "val"]
    assert len(table) == 59 and table.dropped == {"no rating target": 1}  # row 5 has no rating
    assert sum(v is None for v in table.modalities["review"]) == 7  # empty reviews: text missing, rows kept
    uses = {c["column"]: c["use"] for c in table.columns}
    assert uses["row"].startswith("left out: an identifier") and uses["name"].startswith("left out")
    assert uses["split"] == "split"
    age = next(c for c in table.columns if c["column"] == "age")
    assert age["sentinels"] == round(age["missing"] * 60) > 0
    assert "column 'split' holds train/val/test: it is the split" in caplog.text
    assert "columns left out: 'row'" in caplog.text
    # a missing category (pandas 3 str dtype) is the unknown index, not a crash on sorting str and float
    assert table.preprocessing["tabular"]["vocab"][0] == ["Bottoms", "Dresses", "Tops"]
    assert table.preprocessing["tabular"]["numeric"] == [
        "age",
        "joined:year",
        "joined:day_of_year",
        "joined:weekday",
    ]


def test_a_rare_value_of_a_many_valued_category_shares_the_unknown_index(tmp_path):
    path = tmp_path / "m.csv"
    codes = [f"c{i % 60}" for i in range(100)] + [f"once{i}" for i in range(20)]
    pd.DataFrame({"code": codes, "y": ["a", "b"] * 60}).to_csv(path, index=False)
    table = load_manifest(path, targets={"y": {}}, split_fractions=(0.8, 0.1, 0.1))
    vocab = table.preprocessing["tabular"]["vocab"][0]
    assert not any(v.startswith("once") for v in vocab) and "c1" in vocab


def test_no_input_left_is_a_clear_error(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"id": range(30), "ticket": [f"T{i}" for i in range(30)], "y": ["a", "b"] * 15}).to_csv(path)
    with pytest.raises(ConfigError, match=r"No input column is left .* 'ticket' \(an identifier"):
        load_manifest(path, targets={"y": {}})


def test_a_date_that_does_not_parse_is_a_bad_row(tmp_path):
    path = tmp_path / "m.csv"
    frame = messy_table()
    frame.loc[3, "joined"] = "someday"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match=r"row 3 \(id 3\): joined: not a date: 'someday'"):
        load_manifest(path, targets={"rating": {}}, modalities={"t": {"dates": ["joined"]}})


def test_max_rows_samples_the_table_and_refuses_nonsense(tmp_path):
    path = tmp_path / "shop.csv"
    messy_table(200).to_csv(path, index=False)
    assert len(load_manifest(path, targets={"rating": {}}, max_rows=100)) <= 100
    with pytest.raises(ConfigError, match=r"data.max_rows=0 must be 1 or more"):
        load_manifest(path, targets={"rating": {}}, max_rows=0)


def test_log_progress_refuses_a_share_outside_an_epoch():
    from mmtrain.training.callbacks import LogProgress

    with pytest.raises(ConfigError, match=r"callbacks.log_progress.every=0 must be a share of an epoch"):
        LogProgress(every=0)
