"""Server settings on the request path: event loop and access log."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
import uvloop

from fti_pipelines.serving.server import REQUEST_LOGGERS, access_log_level, event_loop_policy, tune_request_path


def test_uvloop_unless_asyncio_is_asked_for():
    assert isinstance(event_loop_policy("auto"), uvloop.EventLoopPolicy)
    assert isinstance(event_loop_policy("uvloop"), uvloop.EventLoopPolicy)
    assert event_loop_policy("asyncio") is None


def test_access_log_is_off_unless_asked_for():
    assert access_log_level({}) == logging.WARNING
    assert access_log_level({"FTI_ACCESS_LOG": "true"}) == logging.INFO


@pytest.fixture
def restore_loop_and_logger():
    policy = asyncio.get_event_loop_policy()
    levels = {name: logging.getLogger(name).level for name in REQUEST_LOGGERS}
    yield
    asyncio.set_event_loop_policy(policy)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_tuned_server_runs_on_uvloop_without_access_lines(restore_loop_and_logger):
    tune_request_path(SimpleNamespace(event_loop="auto"), {})
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    asyncio.get_event_loop_policy().get_event_loop().close()  # the one KServe's start() would configure
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    # KServe's timing middleware logs each request's wall and CPU time at INFO: off as well.
    assert not logging.getLogger("kserve.trace").isEnabledFor(logging.INFO)

    async def loop_type():
        return type(asyncio.get_running_loop())

    assert asyncio.run(loop_type()) is uvloop.Loop


def test_access_log_turns_both_request_loggers_on(restore_loop_and_logger):
    tune_request_path(SimpleNamespace(event_loop="asyncio"), {"FTI_ACCESS_LOG": "true"})
    assert all(logging.getLogger(name).isEnabledFor(logging.INFO) for name in REQUEST_LOGGERS)
