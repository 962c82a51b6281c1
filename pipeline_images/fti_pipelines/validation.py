"""Validation before ingestion: the spec's expectations evaluated with pandera.

Each expectation of `spec.validation.expectations` (notNull, unique, between, in, regex,
dtype, with an optional `mostly` fraction) becomes a pandera Check on its column; the
whole batch is validated lazily, so one run reports every failing check at once. pandera
has no `mostly`, so a failing check is judged here: it passes when the fraction of rows
that pass is at least `mostly`. Nulls count as passing for every check but notNull (as
in pandera and Great Expectations); add notNull to forbid them.

The primary-key and event-time columns get an implicit notNull: a row without a key or
an event time cannot be stored, and must be rejected rather than dropped.

Mind the dtypes for speed: string columns should be Arrow-backed (`string[pyarrow]`);
the regex and `in` checks then run in Arrow compute (regexes in RE2 syntax, with a
fallback to Python's `re` for patterns RE2 does not support).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.errors import SchemaErrors

from .contract import PipelineError

EXAMPLES = 5
DTYPE_TESTS = {
    "int": pd.api.types.is_integer_dtype,
    "float": pd.api.types.is_float_dtype,
    "bool": pd.api.types.is_bool_dtype,
    "string": lambda d: pd.api.types.is_string_dtype(d) or pd.api.types.is_object_dtype(d),
    "datetime": pd.api.types.is_datetime64_any_dtype,
}


@dataclass
class CheckSpec:
    """One check of one expectation, as evaluated."""

    expectation: int  # index in spec.validation.expectations (-1: implicit key/event-time check)
    column: str
    check: str  # notNull | unique | between | in | regex | dtype
    mostly: float
    detail: Any = None  # the check's argument, for the report


@dataclass
class CheckResult:
    spec: CheckSpec
    rows: int
    failed: int
    passed: bool
    examples: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    # positions of the failing rows; None: the check failed for the column as a whole (every row)
    positions: list[int] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = {
            "expectation": self.spec.expectation,
            "column": self.spec.column,
            "check": self.spec.check,
            "argument": self.spec.detail,
            "mostly": self.spec.mostly,
            "rows": self.rows,
            "failedRows": self.failed,
            "passFraction": round(1 - self.failed / self.rows, 6) if self.rows else 1.0,
            "passed": self.passed,
            "examples": self.examples,
        }
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ValidationReport:
    rows: int
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    @property
    def warnings(self) -> list[CheckResult]:
        """Checks with failing rows that still met their `mostly` fraction."""
        return [r for r in self.results if r.passed and r.failed]

    def summary(self) -> str:
        if self.passed:
            return f"{self.rows} rows passed {len(self.results)} checks"
        parts = [
            f"{r.spec.check} on {r.spec.column!r}: {r.failed} of {r.rows} rows failed (mostly={r.spec.mostly})"
            for r in self.failures
        ]
        return "; ".join(parts)

    def row_checks(self) -> pyarrow.Table:
        """One line per (row, failed check): what `fti quarantine show` prints next to each row.

        `blocking` is false for a check that still met its `mostly` fraction."""
        rows: list[int] = []
        labels: list[str] = []
        blocking: list[bool] = []
        for r in self.results:
            if not r.failed:
                continue
            label = f"{r.spec.check} on {r.spec.column!r}" + (f" ({r.error})" if r.error else "")
            positions = r.positions if r.positions is not None else range(self.rows)
            rows.extend(positions)
            labels.extend([label] * len(positions))
            blocking.extend([not r.passed] * len(positions))
        return pyarrow.table(
            {
                "row": pyarrow.array(rows, pyarrow.int64()),
                "check": pyarrow.array(labels, pyarrow.string()),
                "blocking": pyarrow.array(blocking, pyarrow.bool_()),
            }
        )

    def first_rejected(self, limit: int = 3) -> list[str]:
        """`row 4: between on 'amount' (amount=5000.0)` for the first failing rows of the failing checks."""
        out: list[str] = []
        for r in self.failures:
            for example in r.examples:
                if len(out) >= limit:
                    return out
                value = example.get(r.spec.column)
                out.append(f"row {example.get('row')}: {r.spec.check} on {r.spec.column!r} ({r.spec.column}={value!r})")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "summary": self.summary(),
            "checks": [r.to_json() for r in self.results],
        }


def _get(exp: Any, name: str) -> Any:
    if isinstance(exp, dict):
        wire = {"not_null": "notNull", "in_": "in"}.get(name, name)
        return exp.get(wire, exp.get(name))
    return getattr(exp, name)


def _regex_check(pattern: str, where: str) -> Any:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise PipelineError("InvalidExpectation", f"{where}.regex {pattern!r} is not a valid regular expression: {exc}") from exc

    def fullmatch(series: pd.Series) -> pd.Series:
        if isinstance(series.dtype, (pd.StringDtype, pd.ArrowDtype)):
            try:
                return series.str.fullmatch(pattern).astype(bool)
            except Exception:  # noqa: BLE001 - a pattern RE2 rejects: fall back to Python's re
                pass
        return series.map(lambda v: bool(compiled.fullmatch(str(v)))).astype(bool)

    return fullmatch


def _unique(series: pd.Series) -> Any:
    """Rows whose value is not repeated.

    Fast path: if the 64-bit hashes (DuckDB's, vectorised) of the non-null values are all
    distinct, the values are too - exact, no false "unique". Only when hashes repeat (a
    real duplicate or a collision) does pandas find the duplicated rows exactly.
    """
    values = series.dropna()
    if isinstance(series.dtype, (pd.StringDtype, pd.ArrowDtype)):
        try:
            con = duckdb.connect()
            try:
                con.register("u", pyarrow.table({"s": pyarrow.chunked_array(pyarrow.array(values.array))}))
                hashes = con.sql("SELECT hash(s) AS h FROM u").to_arrow_table().column("h").to_numpy()
            finally:
                con.close()
            ordered = np.sort(hashes)  # ~5x less CPU than pandas' hash-set is_unique on 1M hashes
            if not (ordered[1:] == ordered[:-1]).any():
                return True
        except (pyarrow.ArrowException, duckdb.Error, TypeError):
            pass
    elif values.is_unique:
        return True
    return ~series.duplicated(keep=False)


def _dtype_check(kind: str) -> Any:
    test = DTYPE_TESTS[kind]

    def dtype_matches(series: pd.Series) -> bool:
        if kind == "string":
            return bool(
                pd.api.types.is_string_dtype(series.dtype)
                and (series.dtype != object or series.dropna().map(lambda v: type(v) is str).all())
            )
        return bool(test(series.dtype))

    return dtype_matches


def plan(expectations: Iterable[Any], implicit_not_null: Iterable[str] = ()) -> tuple[pa.DataFrameSchema, list[list[CheckSpec]]]:
    """The pandera schema for `expectations`, plus, per column, its CheckSpecs in check order."""
    columns: dict[str, list[pa.Check]] = {}
    specs: dict[str, list[CheckSpec]] = {}

    def add(col: str, check: pa.Check, spec: CheckSpec) -> None:
        columns.setdefault(col, []).append(check)
        specs.setdefault(col, []).append(spec)

    for col in implicit_not_null:
        add(col, pa.Check(lambda s: s.notna(), ignore_na=False, name="notNull"), CheckSpec(-1, col, "notNull", 1.0, True))
    for i, exp in enumerate(expectations):
        col, mostly, where = _get(exp, "column"), float(_get(exp, "mostly") or 1.0), f"validation.expectations[{i}]"
        if _get(exp, "not_null"):
            add(col, pa.Check(lambda s: s.notna(), ignore_na=False, name="notNull"), CheckSpec(i, col, "notNull", mostly, True))
        if _get(exp, "unique"):
            add(col, pa.Check(_unique, name="unique"), CheckSpec(i, col, "unique", mostly, True))
        between = _get(exp, "between")
        if between is not None:
            lo, hi = (_get(between, "min"), _get(between, "max"))
            if lo is not None and hi is not None:
                check = pa.Check.in_range(lo, hi)
            elif lo is not None:
                check = pa.Check.ge(lo)
            elif hi is not None:
                check = pa.Check.le(hi)
            else:
                raise PipelineError("InvalidExpectation", f"{where}.between needs min or max")
            add(col, check, CheckSpec(i, col, "between", mostly, {"min": lo, "max": hi}))
        allowed = _get(exp, "in_")
        if allowed is not None:
            add(col, pa.Check.isin(list(allowed)), CheckSpec(i, col, "in", mostly, list(allowed)))
        pattern = _get(exp, "regex")
        if pattern is not None:
            add(col, pa.Check(_regex_check(pattern, where), name="regex"), CheckSpec(i, col, "regex", mostly, pattern))
        kind = _get(exp, "dtype")
        if kind is not None:
            add(col, pa.Check(_dtype_check(kind), name="dtype", ignore_na=False), CheckSpec(i, col, "dtype", mostly, kind))
    schema = pa.DataFrameSchema(
        {col: pa.Column(checks=checks, nullable=True, coerce=False, required=True) for col, checks in columns.items()},
        strict=False,
    )
    return schema, [specs[c] for c in columns]


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


def example_rows(df: pd.DataFrame, positions: Iterable[int], limit: int = EXAMPLES) -> list[dict[str, Any]]:
    picked = list(positions)[:limit]
    if not picked:
        return []
    rows = df.iloc[picked]
    return [
        {"row": int(p), **{str(k): _jsonable(v) for k, v in rec.items()}}
        for p, rec in zip(picked, rows.to_dict(orient="records"), strict=True)
    ]


def check_columns(columns: Iterable[str], expectations: Iterable[Any]) -> None:
    """One clear error if an expectation names a column the data does not have."""
    columns = list(columns)
    missing = sorted({_get(e, "column") for e in expectations} - set(columns))
    if missing:
        raise PipelineError(
            "MissingColumn",
            f"column(s) {missing} named in validation.expectations are not in the data; columns are {columns}",
            columns=missing,
        )


def validate(df: pd.DataFrame, expectations: Iterable[Any], implicit_not_null: Iterable[str] = ()) -> ValidationReport:
    """Validate `df` (positional index expected) against the expectations; never raises for bad data."""
    expectations = list(expectations)
    check_columns(df.columns, expectations)
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.step != 1:
        df = df.reset_index(drop=True)
    schema, specs = plan(expectations, implicit_not_null)
    by_key = {(col_specs[0].column, n): s for col_specs in specs for n, s in enumerate(col_specs)}
    rows = len(df)
    failed: dict[tuple[str, int], Any] = {}
    try:
        schema.validate(df, lazy=True, inplace=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["schema_context"] == "Column"]
        for (col, number), group in cases.groupby(["column", "check_number"], dropna=True):
            failed[(col, int(number))] = group
    results = []
    for key, spec in by_key.items():
        group = failed.get(key)
        if group is None:
            results.append(CheckResult(spec, rows, 0, True))
            continue
        index = group["index"].dropna()
        error = None
        failing: list[int] | None = None
        if index.empty:  # a column-level failure (dtype, or a check that raised): every row fails
            count, positions = rows, range(min(rows, EXAMPLES))
            error = str(group["failure_case"].iloc[0])
            if spec.check == "dtype":
                error = f"column {spec.column!r} has dtype {df[spec.column].dtype}, expected {spec.detail}"
        else:
            unique_index = pd.unique(index.astype(np.int64))
            count, positions = len(unique_index), unique_index
            failing = [int(p) for p in unique_index]
        passed = rows == 0 or (rows - count) / rows >= spec.mostly
        results.append(CheckResult(spec, rows, count, passed, example_rows(df, positions), error, failing))
    results.sort(key=lambda r: r.spec.expectation)
    return ValidationReport(rows, results)
