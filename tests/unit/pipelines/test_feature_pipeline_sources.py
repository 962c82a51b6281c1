"""Sources: files and directories through fsspec, generators, the transform; errors name the input."""

from __future__ import annotations

import gzip

import pandas as pd
import pyarrow as pa
import pytest

from fti_pipelines.contract import PipelineError
from fti_pipelines.sources import apply_transform, load_callable, read_source, to_pandas


def test_directory_of_parquet_skips_hidden_and_markers(tmp_path) -> None:
    (tmp_path / "day=1").mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "day=1" / "x.parquet")
    pd.DataFrame({"a": [2]}).to_parquet(tmp_path / "y.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    pd.DataFrame({"a": [99]}).to_parquet(tmp_path / ".tmp.parquet")
    table = read_source({"uri": f"file://{tmp_path}", "format": "parquet"})
    assert sorted(table.column("a").to_pylist()) == [1, 2]


def test_csv_gz_and_single_file(tmp_path) -> None:
    with gzip.open(tmp_path / "a.csv.gz", "wt") as fh:
        fh.write("id,when\n1,2026-01-01T00:00:00Z\n")
    table = read_source({"uri": f"file://{tmp_path}/a.csv.gz", "format": "csv"})
    assert table.column("id").to_pylist() == [1] and pa.types.is_timestamp(table.schema.field("when").type)


def test_errors_name_the_uri_or_file(tmp_path) -> None:
    with pytest.raises(PipelineError, match="does not exist") as err:
        read_source({"uri": f"file://{tmp_path}/missing/", "format": "csv"})
    assert err.value.reason == "SourceNotFound"
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="has no jsonl files"):
        read_source({"uri": f"file://{tmp_path}/empty", "format": "jsonl"})
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(PipelineError, match=r"bad\.jsonl.*is not valid jsonl"):
        read_source({"uri": f"file://{tmp_path}/bad.jsonl", "format": "jsonl"})


def test_callables(tmp_path) -> None:
    assert load_callable("json:dumps", "transform")([1]) == "[1]"
    with pytest.raises(PipelineError, match=r"transform 'json:nope'.*no callable 'nope'"):
        load_callable("json:nope", "transform")
    with pytest.raises(PipelineError, match=r"must look like module\.path:function"):
        load_callable("json", "transform")


def test_transform_output_must_be_a_dataframe() -> None:
    with pytest.raises(PipelineError, match="returned int, expected a pandas DataFrame"):
        apply_transform(pa.table({"a": [1]}), "builtins:len")


def test_generator_failure_is_reported() -> None:
    with pytest.raises(PipelineError, match=r"GeneratorFailed|raised") as err:
        read_source({"generator": {"function": "json:loads", "params": {"s": "{"}}})
    assert err.value.reason == "GeneratorFailed"


def test_strings_become_arrow_backed() -> None:
    df = to_pandas(pa.table({"s": ["a", None], "n": [1, 2]}))
    assert df["s"].dtype == pd.StringDtype("pyarrow") and df["n"].dtype == "int64"


def test_s3_source_through_s3fs(s3_bucket_uri: str, s3_store_options: dict) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_store_options)
    with fs.open(f"{s3_bucket_uri}/raw/a.jsonl", "wb") as fh:
        fh.write(b'{"id": 1, "t": "2026-01-01T00:00:00Z"}\n{"id": 2, "t": "2026-01-02T00:00:00Z"}\n')
    table = read_source({"uri": f"{s3_bucket_uri}/raw/", "format": "jsonl"}, storage_options=s3_store_options)
    assert table.column("id").to_pylist() == [1, 2]
