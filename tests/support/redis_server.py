"""A throwaway redis-server (Debian package) for the online-store tests.

Started once per session on a free loopback port with a temp dir and no persistence,
torn down after. Without the binary the tests skip (install: `apt-get install
redis-server`), except in CI (env CI set) or with FTI_REQUIRE_REDIS=1, where a missing
server is a failure rather than a silent skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from support.wait import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("FTI_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a private redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server not found: apt-get install redis-server"
        if _required():
            pytest.fail(message)
        pytest.skip(message)
    import redis

    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="fti-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            workdir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            os.path.join(workdir, "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}; see {workdir}/redis.log")
            return bool(client.ping())

        wait_until(answers, timeout=20, interval=0.05, ignore=(redis.ConnectionError,), description="redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session server, flushed before each test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server
