"""predictions.jsonl: durable appends, a torn last line cut off and counted, corruption reported by line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from src.evaluation.predictions import EvaluationError, PredictionRecord, PredictionStore
from tests.evaluation.conftest import record


def test_records_round_trip_through_the_file(tmp_path) -> None:
    store = PredictionStore(tmp_path / "predictions.jsonl")
    first = [record("a", "happy", "happy", secondary=("sad",)), record("b", "sad", None, judge=None)]
    store.append(first)
    store.append([record("c", "fear", "fear")])
    loaded = store.load()
    assert loaded.records == [*first, record("c", "fear", "fear")]
    assert loaded.torn_lines == 0
    assert PredictionStore(tmp_path / "missing.jsonl").load().records == []


def test_a_torn_last_line_is_cut_off_and_counted(tmp_path) -> None:
    path = tmp_path / "predictions.jsonl"
    store = PredictionStore(path)
    store.append([record("a", "happy", "happy"), record("b", "sad", "sad")])
    whole = path.read_bytes()
    path.write_bytes(whole + record("c", "fear", "fear").to_json().encode()[:37])  # killed mid-write
    loaded = store.load()
    assert [r.id for r in loaded.records] == ["a", "b"]
    assert loaded.torn_lines == 1
    assert path.read_bytes() == whole  # the file is repaired, so appending continues cleanly
    store.append([record("c", "fear", "fear")])
    assert [r.id for r in store.load().records] == ["a", "b", "c"]


def test_corruption_is_an_error_naming_the_line(tmp_path) -> None:
    path = tmp_path / "predictions.jsonl"
    good = record("a", "happy", "happy").to_json()
    path.write_text(good + "\n{not json\n" + good.replace('"a"', '"b"') + "\n")
    with pytest.raises(EvaluationError, match=r"predictions.jsonl:2: invalid JSON"):
        PredictionStore(path).load()
    path.write_text(good + "\n" + good + "\n")
    with pytest.raises(EvaluationError, match=r":2: sample 'a' is already recorded on line 1"):
        PredictionStore(path).load()
    row = json.loads(good)
    del row["label"]
    row["colour"] = "blue"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(EvaluationError, match=r":1: not a prediction record \(missing label; unknown colour\)"):
        PredictionStore(path).load()


def test_rewrite_replaces_the_content_and_leaves_no_temporary_file(tmp_path) -> None:
    store = PredictionStore(tmp_path / "predictions.jsonl")
    store.append([record("a", "happy", "happy", judge=None)])
    judged = dataclasses.replace(store.load().records[0], judge="keywords|explanation", judged="happy")
    store.rewrite([judged])
    assert store.load().records == [judged]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.jsonl"]


def test_record_fields_have_json_types() -> None:
    row = json.loads(record("a", "happy", None, judged_set=["fear", "happy"]).to_json())
    assert row["prediction"] is None
    assert row["judged_set"] == ["fear", "happy"]
    assert PredictionRecord.from_row(row, where="x") == record("a", "happy", None, judged_set=["fear", "happy"])
    with pytest.raises(EvaluationError, match="x: expected a JSON object, found list"):
        PredictionRecord.from_row([], where="x")
