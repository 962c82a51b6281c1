"""The artifact store: one URI (file:///... or s3://...) read and written through fsspec.

Everything the FTI pipelines persist lives under this root: feature-group Parquet
files, quarantined batches, training datasets and model versions. Code never looks
at the scheme, so an `s3://` URI works through s3fs exactly like `file://`.

Immutability (docs/versions.md): a version directory is written once. Writers stage into
a hidden sibling directory and `commit_dir` publishes it: files are moved into place
and the `_COMMITTED` marker is written last. Readers treat a directory without the
marker as absent, so a writer that dies half-way leaves nothing visible and the
previous state stays readable. A committed directory is never overwritten
(`ArtifactExists`); leftovers of a crashed writer (no marker) are replaced.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

COMMIT_MARKER = "_COMMITTED"
STAGING_PREFIX = ".staging-"


class ArtifactExists(Exception):
    """A committed (immutable) directory already exists at this path."""

    def __init__(self, url: str):
        super().__init__(f"{url} is already committed; artifacts are immutable (use a new version)")
        self.url = url


def _clean_part(part: Any) -> str:
    text = str(part).strip("/")
    if not text or text in (".", "..") or "/.." in f"/{text}" or "../" in f"{text}/":
        raise ValueError(f"invalid artifact path part {part!r}")
    return text


class ArtifactStore:
    """A root URI plus the fsspec filesystem that serves it."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None):
        if not uri or "://" not in uri:
            raise ValueError(f"artifact store URI {uri!r} needs a scheme: file:///path or s3://bucket/prefix")
        self.storage_options = dict(storage_options or {})
        options = dict(self.storage_options)
        if uri.startswith("file:"):
            # Writers open nested paths directly (as they would on an object store).
            options.setdefault("auto_mkdir", True)
        self.fs, root = fsspec.core.url_to_fs(uri, **options)
        self.root = root.rstrip("/") or "/"
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.protocol = "file" if protocol in ("file", "local") else protocol
        self.uri = self._to_url(self.root)
        if self.protocol == "file":
            self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    # -- paths ---------------------------------------------------------------------------
    def path(self, *parts: Any) -> str:
        """The filesystem path (no scheme) of `parts` under the root, for `self.fs`."""
        if not parts:
            return self.root
        return posixpath.join(self.root, *(_clean_part(p) for p in parts))

    def _to_url(self, path: str) -> str:
        if self.protocol == "file":
            return "file://" + path
        return f"{self.protocol}://{path}"

    def url(self, *parts: Any) -> str:
        """The full URI of `parts` (what DuckDB, KServe or another process is given)."""
        return self._to_url(self.path(*parts))

    def url_of(self, path: str) -> str:
        """The full URI of a filesystem path returned by `path()` or `commit_dir()`."""
        return self._to_url(path)

    def local_path(self, *parts: Any) -> str | None:
        """A plain local path when the store is on local disk, else None (for libraries that want paths)."""
        return self.path(*parts) if self.protocol == "file" else None

    # -- files ---------------------------------------------------------------------------
    def exists(self, *parts: Any) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_bytes(self, *parts: Any) -> bytes:
        with self.fs.open(self.path(*parts), "rb") as fh:
            return fh.read()

    def write_bytes(self, *parts_and_data: Any) -> str:
        """`write_bytes(*parts, data)`: writes a file (not atomic; use commit_dir for versions)."""
        *parts, data = parts_and_data
        path = self.path(*parts)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(path, "wb") as fh:
            fh.write(data)
        return path

    def write_bytes_atomic(self, *parts_and_data: Any) -> str:
        """`write_bytes_atomic(*parts, data)`: a reader sees the whole file or none of it.

        On file:// a hidden temporary file in the same directory is renamed into place; on an
        object store the file is one PUT, which is atomic already. Unlike `create_exclusive`,
        an existing file is replaced: callers choose unique names (the prediction log does).
        """
        *parts, data = parts_and_data
        path = self.path(*parts)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if self.protocol == "file":
            temp = posixpath.join(posixpath.dirname(path), f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
            try:
                with open(temp, "wb") as fh:
                    fh.write(data)
                os.replace(temp, path)
            finally:
                if os.path.exists(temp):
                    os.unlink(temp)
        else:
            self.fs.pipe_file(path, data)
            self.invalidate()
        return path

    def create_exclusive(self, *parts_and_data: Any) -> bool:
        """`create_exclusive(*parts, data)`: write a file only if none is there; False if one is.

        The one atomic claim the store offers (the model registry allocates versions with it):
        on file:// a complete temporary file is hard-linked into place (link fails if the name
        exists, so a reader never sees a partial file); on s3:// a conditional PUT
        (`If-None-Match: *`). Other schemes have no such primitive and are refused.
        """
        *parts, data = parts_and_data
        path = self.path(*parts)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if self.protocol == "file":
            temp = posixpath.join(posixpath.dirname(path), f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
            with open(temp, "wb") as fh:
                fh.write(data)
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(temp)
            return True
        if self.protocol == "s3":
            try:
                self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return False
            self.invalidate()
            return True
        raise ValueError(f"{self.uri}: an exclusive create needs file:// or s3:// (conditional PUT)")

    def read_json(self, *parts: Any) -> Any:
        return json.loads(self.read_bytes(*parts))

    def read_parquet(self, *parts: Any) -> pa.Table:
        """A Parquet file read whole on this thread (for files a process reads once and is done).

        Why not `pq.read_table` on the fsspec handle: Arrow then reads through the Python file
        on its own IO threads, and a read that completes there after the main thread moved on
        releases a Python buffer while the interpreter shuts down: the process aborts
        ("terminate called without an active exception", exit 134) after its work is done.
        The bytes copied into an Arrow-owned buffer leave no Python object to any other thread."""
        sink = pa.BufferOutputStream()
        sink.write(self.read_bytes(*parts))
        return pq.read_table(pa.BufferReader(sink.getvalue()))

    def write_json(self, *parts_and_obj: Any) -> str:
        """`write_json(*parts, obj)`."""
        *parts, obj = parts_and_obj
        return self.write_bytes(*parts, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def list(self, *parts: Any) -> list[str]:
        """Names of the entries directly under `parts` (sorted, staging directories hidden); [] if absent."""
        path = self.path(*parts)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        own = path.rstrip("/")
        # object stores may list the prefix itself (a directory marker): skip it
        names = {posixpath.basename(str(e).rstrip("/")) for e in entries if str(e).rstrip("/") != own}
        return sorted(n for n in names if n and not n.startswith(STAGING_PREFIX))

    def invalidate(self) -> None:
        """Drop cached listings (object stores cache them; another process may have written)."""
        self.fs.invalidate_cache()

    # -- immutable version directories ---------------------------------------------------
    def is_committed(self, *parts: Any) -> bool:
        return self.fs.exists(posixpath.join(self.path(*parts), COMMIT_MARKER))

    def committed(self, *parts: Any) -> builtins.list[str]:  # `list` here is the method above
        """Names of the committed sub-directories under `parts`."""
        return [n for n in self.list(*parts) if self.is_committed(*parts, n)]

    @contextlib.contextmanager
    def commit_dir(self, *parts: Any, metadata: dict[str, Any] | None = None) -> Iterator[str]:
        """Stage a directory and publish it atomically at `parts`.

        Yields a staging path (for `self.fs`) to write the directory's files into. On a
        clean exit the files are moved into place and `_COMMITTED` is written last; on an
        exception the staging directory is removed and nothing becomes visible.
        """
        target = self.path(*parts)
        if self.is_committed(*parts):
            raise ArtifactExists(self.url(*parts))
        parent, name = posixpath.split(target)
        staging = posixpath.join(parent, f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:12]}")
        self.fs.makedirs(staging, exist_ok=True)
        try:
            yield staging
            self._publish(staging, target, parts, metadata or {})
        finally:
            if self.fs.exists(staging):
                self.fs.rm(staging, recursive=True)

    def _publish(self, staging: str, target: str, parts: tuple[Any, ...], metadata: dict[str, Any]) -> None:
        self.invalidate()
        if self.is_committed(*parts):  # another writer won the race while we were staging
            raise ArtifactExists(self.url(*parts))
        files = sorted(
            posixpath.relpath(str(f), staging) for f in self.fs.find(staging) if posixpath.basename(str(f)) != COMMIT_MARKER
        )
        marker = json.dumps(
            {"committedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "files": files, **metadata}, sort_keys=True
        ).encode()
        if self.protocol == "file":
            # The marker goes in first and one rename publishes the complete directory; of two
            # racing writers the second rename fails (the target exists) and gets ArtifactExists.
            with self.fs.open(posixpath.join(staging, COMMIT_MARKER), "wb") as fh:
                fh.write(marker)
            if os.path.isdir(target) and not os.path.exists(posixpath.join(target, COMMIT_MARKER)):
                self.fs.rm(target, recursive=True)  # debris without a marker: never visible
            try:
                os.rename(staging, target)
            except OSError as exc:
                if os.path.exists(target):
                    raise ArtifactExists(self.url(*parts)) from exc
                raise
        else:
            if self.fs.exists(target):  # debris of a writer that died before its marker: never visible
                self.fs.rm(target, recursive=True)
            # Object stores have no directory rename: copy, then the marker makes it visible.
            for rel in files:
                self.fs.copy(posixpath.join(staging, rel), posixpath.join(target, rel))
            with self.fs.open(posixpath.join(target, COMMIT_MARKER), "wb") as fh:
                fh.write(marker)
        self.invalidate()

    def commit_info(self, *parts: Any) -> dict[str, Any]:
        """The marker's content: committedAt, files and the metadata given to commit_dir."""
        return self.read_json(*parts, COMMIT_MARKER)
