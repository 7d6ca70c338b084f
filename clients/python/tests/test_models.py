"""Results as values: exact JSON in and out, unknown fields kept, absent fields left absent."""

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest

from fakes import MONTHLY_TEXT
from usage_portal_client import AllTimeUsage, IngestItemResult, MonthlyUsage, Totals, _json


def test_loads_reads_fractions_as_decimals_and_integers_as_ints():
    value = _json.loads('{"a": 0.00000, "b": 1e-5, "c": 3, "d": [0.1, 2]}')

    assert value == {"a": Decimal("0.00000"), "b": Decimal("0.00001"), "c": 3, "d": [Decimal("0.1"), 2]}
    assert type(value["c"]) is int
    assert str(value["a"]) == "0.00000"


@pytest.mark.parametrize(
    "text",
    [
        '{"x":0.07482,"y":[1,2.50,null,true,false],"z":{"k":"caf\u00e9 \\"q\\""}}',
        '{"empty":{},"list":[],"n":-0.00001}',
        "[]",
    ],
)
def test_dumps_writes_back_the_same_digits(text):
    assert _json.dumps(_json.loads(text)) == text


def test_dumps_indents_like_the_standard_library():
    value = {"a": [1, {"b": Decimal("0.50")}], "c": {}, "d": []}

    assert _json.dumps(value, indent=2) == json.dumps(
        {"a": [1, {"b": 0.5}], "c": {}, "d": []}, indent=2
    ).replace("0.5", "0.50")


def test_dumps_refuses_what_json_cannot_say():
    with pytest.raises(ValueError):
        _json.dumps(Decimal("NaN"))
    with pytest.raises(ValueError):
        _json.dumps(float("inf"))
    with pytest.raises(TypeError):
        _json.dumps({1: "a"})
    with pytest.raises(TypeError):
        _json.dumps(object())


def test_dumps_writes_datetimes_as_the_portal_does():
    assert _json.dumps(dt.datetime(2025, 1, 3, 10, tzinfo=dt.UTC)) == '"2025-01-03T10:00:00Z"'


def test_integers_in_money_fields_become_decimals_and_go_back_as_integers():
    body = {
        "org_id": "o",
        "period": "all_time",
        "total_jobs": 0,
        "completed_jobs": 0,
        "total_duration_seconds": 0,
        "jobs_by_language": {},
        "api_calls": 0,
    }
    totals = Totals.from_dict(
        {
            "jobs": 0,
            "transcription_tokens": 0,
            "note_tokens": 0,
            "base_cost": 0,
            "final_cost": 0,
            "savings": 0,
            "effective_discount_percentage": 0,
            "free_jobs_left": 0,
        }
    )

    assert type(totals.base_cost) is Decimal
    assert totals.to_json() == (
        '{"jobs":0,"transcription_tokens":0,"note_tokens":0,"base_cost":0,"final_cost":0,"savings":0,'
        '"effective_discount_percentage":0,"free_jobs_left":0}'
    )
    assert AllTimeUsage.from_dict(body).to_dict() == body


def test_a_field_the_portal_adds_later_is_kept():
    body = {"index": 0, "external_id": "j-1", "status": "created", "job_id": 42}

    result = IngestItemResult.from_dict(body)

    assert result.to_dict() == body
    assert not hasattr(result, "job_id")


def test_a_null_is_kept_apart_from_an_absent_key():
    present = IngestItemResult.from_dict(
        {"index": 0, "external_id": None, "status": "rejected", "errors": []}
    )
    absent = IngestItemResult.from_dict({"index": 0, "status": "rejected"})

    assert present.external_id is None and absent.external_id is None
    assert present.to_dict() == {"index": 0, "external_id": None, "status": "rejected", "errors": []}
    assert absent.to_dict() == {"index": 0, "status": "rejected"}


def test_a_missing_field_or_a_wrong_type_says_where():
    with pytest.raises(ValueError, match="'period' is missing"):
        AllTimeUsage.from_dict({"org_id": "o"})
    with pytest.raises(ValueError, match=r"Totals.jobs: expected an integer"):
        Totals.from_dict({"jobs": True})


def test_replace_gives_a_new_value_written_from_its_attributes():
    usage = MonthlyUsage.from_dict(_json.loads(MONTHLY_TEXT))

    changed = dataclasses.replace(usage, totals=dataclasses.replace(usage.totals, jobs=1))

    assert changed.to_dict()["totals"]["jobs"] == 1
    assert usage.to_dict()["totals"]["jobs"] == 108
    assert changed != usage


def test_results_compare_by_value():
    assert MonthlyUsage.from_dict(_json.loads(MONTHLY_TEXT)) == MonthlyUsage.from_dict(
        _json.loads(MONTHLY_TEXT)
    )
