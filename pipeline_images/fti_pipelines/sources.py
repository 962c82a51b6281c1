"""Raw data for a feature pipeline: files through fsspec, or a generator callable; the transform.

`spec.source.uri` names one file or a directory (read recursively, hidden files and
`_`-prefixed markers skipped, in name order) of `csv`, `parquet` or `jsonl` files on any
fsspec filesystem (file://, s3://, ...). `spec.source.generator` names a `module:function`
returning a pandas DataFrame or an Arrow table, called with `params` as keyword arguments.
`spec.transform` is a `module:function` taking and returning a pandas DataFrame; one that
declares a `history` parameter also gets the rows already stored (feature/history.py).

Every failure names what the user wrote: the URI, the file, the callable, the column.
"""

from __future__ import annotations

import importlib
import posixpath
from collections.abc import Callable
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson

from .contract import PipelineError

EXTENSIONS = {"csv": (".csv", ".csv.gz"), "parquet": (".parquet", ".pq"), "jsonl": (".jsonl", ".json", ".ndjson")}


def load_callable(path: str, field: str) -> Callable[..., Any]:
    """Import `module:function`; a clear PipelineError naming `field` if it cannot be imported."""
    module_name, _, attr = (path or "").partition(":")
    if not module_name or not attr:
        raise PipelineError("InvalidCallable", f"{field} {path!r} must look like module.path:function", field=field)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError or an error raised while importing
        raise PipelineError(
            "CallableNotImportable",
            f"{field} {path!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}",
            field=field,
        ) from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise PipelineError(
            "CallableNotImportable", f"{field} {path!r}: module {module_name!r} has no callable {attr!r}", field=field
        )
    return func


def list_files(uri: str, fmt: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    try:
        is_dir = fs.isdir(path)
        if not is_dir and not fs.exists(path):
            raise FileNotFoundError(path)
    except FileNotFoundError:
        raise PipelineError("SourceNotFound", f"source.uri {uri!r} does not exist", uri=uri) from None
    if not is_dir:
        return fs, [path]
    files = []
    for found in sorted(fs.find(path)):
        rel = posixpath.relpath(found, path)
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        if found.endswith(EXTENSIONS[fmt]):
            files.append(found)
    if not files:
        raise PipelineError("SourceEmpty", f"source.uri {uri!r} has no {fmt} files ({', '.join(EXTENSIONS[fmt])})", uri=uri)
    return fs, files


def read_files(uri: str, fmt: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    fs, files = list_files(uri, fmt, storage_options)
    if fmt == "parquet":
        try:
            return ds.dataset(files, format="parquet", filesystem=fs).to_table()
        except (pa.ArrowException, OSError) as exc:
            raise PipelineError("SourceUnreadable", f"source.uri {uri!r}: cannot read parquet: {exc}", uri=uri) from exc
    tables = []
    for file in files:
        try:
            with fs.open(file, "rb", compression="infer") as fh:
                if fmt == "csv":
                    tables.append(pacsv.read_csv(fh))
                else:
                    tables.append(pajson.read_json(fh))
        except (pa.ArrowException, OSError) as exc:
            raise PipelineError(
                "SourceUnreadable", f"source file {file!r} is not valid {fmt}: {exc}", uri=uri, file=file
            ) from exc
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise PipelineError("SourceUnreadable", f"source.uri {uri!r}: files have incompatible columns: {exc}", uri=uri) from exc


def read_source(source: Any, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """The raw rows of `spec.source` (a SourceSpec model or its wire dict) as an Arrow table."""
    get: Callable[[str], Any] = source.get if isinstance(source, dict) else (lambda k: getattr(source, k))
    generator = get("generator")
    if generator is not None:
        gget: Callable[[str], Any] = generator.get if isinstance(generator, dict) else (lambda k: getattr(generator, k))
        func = load_callable(gget("function"), "source.generator.function")
        try:
            out = func(**(gget("params") or {}))
        except PipelineError:
            raise
        except Exception as exc:  # user code
            raise PipelineError(
                "GeneratorFailed", f"source.generator.function {gget('function')!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        return _as_table(out, f"source.generator.function {gget('function')!r}")
    return read_files(get("uri"), get("format") or "parquet", storage_options)


def _as_table(out: Any, what: str) -> pa.Table:
    if isinstance(out, pa.Table):
        return out
    if isinstance(out, pd.DataFrame):
        try:
            return pa.Table.from_pandas(out, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise PipelineError("InvalidColumnType", f"{what} returned a column Arrow cannot store: {exc}") from exc
    raise PipelineError("InvalidSourceData", f"{what} returned {type(out).__name__}, expected a pandas DataFrame")


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """pandas with Arrow-backed strings (4-10x faster to validate than Python-object strings)."""
    strings = pd.StringDtype("pyarrow")
    mapping = {pa.string(): strings, pa.large_string(): strings}
    return table.to_pandas(types_mapper=mapping.get, self_destruct=False)


def apply_transform(table: pa.Table, path: str, func: Callable[..., Any] | None = None, history: Any = None) -> pa.Table:
    """Run `spec.transform` on the raw rows (as pandas) and return its output as Arrow.

    `history` (feature/history.py) is passed as `history=` when given: the caller passes
    it only to a transform that declares that parameter."""
    func = func or load_callable(path, "transform")
    try:
        out = func(to_pandas(table)) if history is None else func(to_pandas(table), history=history)
    except PipelineError:
        raise
    except Exception as exc:  # user code: report it, do not crash
        raise PipelineError("TransformFailed", f"transform {path!r} raised {type(exc).__name__}: {exc}") from exc
    return _as_table(out, f"transform {path!r}")
