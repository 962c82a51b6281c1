"""Validation: each expectation kind, `mostly`, nulls, reports with examples, bad expectations."""

from __future__ import annotations

import pandas as pd
import pytest

from fti_operator.api import Expectation
from fti_pipelines.contract import PipelineError
from fti_pipelines.validation import validate


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 3, 5],
            "amount": [10.0, -1.0, 50.0, None, 2000.0],
            "category": pd.Series(["grocery", "travel", "casino", None, "grocery"], dtype="string[pyarrow]"),
            "code": pd.Series(["AB12", "CD34", "x", "EF56", "GH78"], dtype="string[pyarrow]"),
        }
    )


def one(report, check: str):
    (result,) = [r for r in report.results if r.spec.check == check and r.spec.expectation >= 0]
    return result


@pytest.mark.parametrize(
    "expectation,check,failed",
    [
        ({"column": "amount", "notNull": True}, "notNull", 1),
        ({"column": "id", "unique": True}, "unique", 2),
        ({"column": "amount", "between": {"min": 0, "max": 1000}}, "between", 2),
        ({"column": "amount", "between": {"min": 0}}, "between", 1),
        ({"column": "amount", "between": {"max": 100}}, "between", 1),
        ({"column": "category", "in": ["grocery", "travel"]}, "in", 1),
        ({"column": "code", "regex": "[A-Z]{2}[0-9]{2}"}, "regex", 1),
        ({"column": "id", "dtype": "string"}, "dtype", 5),
        ({"column": "id", "dtype": "int"}, "dtype", 0),
        ({"column": "category", "dtype": "string"}, "dtype", 0),
    ],
)
def test_each_check(df, expectation, check, failed) -> None:
    report = validate(df, [Expectation.model_validate(expectation)])
    result = one(report, check)
    assert result.failed == failed
    assert report.passed is (failed == 0)
    assert len(result.examples) == min(failed, 5)


def test_nulls_pass_every_check_but_not_null(df) -> None:
    report = validate(
        df,
        [
            {"column": "amount", "between": {"min": -10, "max": 100000}},
            {"column": "category", "in": ["grocery", "travel", "casino"]},
        ],
    )
    assert report.passed


def test_mostly_is_a_pass_fraction(df) -> None:
    assert validate(df, [{"column": "amount", "between": {"min": 0, "max": 1000}, "mostly": 0.6}]).passed
    report = validate(df, [{"column": "amount", "between": {"min": 0, "max": 1000}, "mostly": 0.61}])
    assert not report.passed and report.failures[0].to_json()["passFraction"] == 0.6
    warned = validate(df, [{"column": "amount", "between": {"min": 0, "max": 1000}, "mostly": 0.5}])
    assert warned.passed and [w.failed for w in warned.warnings] == [2]


def test_report_names_expectation_column_count_and_examples(df) -> None:
    report = validate(df, [{"column": "id", "notNull": True}, {"column": "category", "in": ["grocery", "travel"]}])
    body = report.to_json()
    assert not body["passed"] and "in on 'category': 1 of 5 rows failed" in body["summary"]
    (failure,) = [c for c in body["checks"] if not c["passed"]]
    assert failure["expectation"] == 1 and failure["column"] == "category" and failure["failedRows"] == 1
    assert failure["examples"] == [{"row": 2, "id": 3, "amount": 50.0, "category": "casino", "code": "x"}]


def test_implicit_key_checks(df) -> None:
    report = validate(df, [], implicit_not_null=["amount"])
    assert not report.passed and report.failures[0].spec.expectation == -1


def test_object_strings_and_python_only_regex() -> None:
    frame = pd.DataFrame({"s": ["aa", "ab", "b"]})
    # a backreference: RE2 (Arrow) cannot run it, Python's re can
    assert validate(frame, [{"column": "s", "regex": r"(a)\1"}]).failures[0].failed == 2
    arrow = frame.astype("string[pyarrow]")
    assert validate(arrow, [{"column": "s", "regex": r"(a)\1"}]).failures[0].failed == 2


def test_unique_with_arrow_strings_counts_every_repeat() -> None:
    frame = pd.DataFrame({"s": pd.Series(["a", "b", "a", None, None], dtype="string[pyarrow]")})
    assert validate(frame, [{"column": "s", "unique": True}]).failures[0].failed == 2


def test_missing_column_is_one_clear_error(df) -> None:
    with pytest.raises(PipelineError, match=r"\['nope'\] named in validation.expectations") as err:
        validate(df, [{"column": "nope", "notNull": True}])
    assert err.value.reason == "MissingColumn"


def test_invalid_regex_names_the_expectation(df) -> None:
    with pytest.raises(PipelineError, match=r"validation.expectations\[0\].regex"):
        validate(df, [{"column": "code", "regex": "("}])


def test_empty_batch_passes() -> None:
    assert validate(pd.DataFrame({"a": pd.Series([], dtype=float)}), [{"column": "a", "notNull": True}]).passed


def test_non_numeric_between_fails_the_whole_column(df) -> None:
    report = validate(df, [{"column": "category", "between": {"min": 0, "max": 1}}])
    assert not report.passed and report.failures[0].failed == 5 and report.failures[0].error
