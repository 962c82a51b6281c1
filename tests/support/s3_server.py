"""An S3 endpoint on loopback (moto's ThreadedMotoServer) to prove s3:// works through s3fs.

The store code is the same for file:// and s3://; only the storage options differ
(endpoint and dummy credentials), exactly as a user would pass them for MinIO.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on 127.0.0.1, stopped at the end of the session."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in requirements-dev.txt")
    pytest.importorskip("s3fs", reason="install the s3 extra: pip install 'fti-pipelines[s3]'")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_store_options(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """fsspec storage options for the moto endpoint (dummy credentials, as for any S3-compatible server)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}


@pytest.fixture
def s3_bucket_uri(s3_store_options: dict) -> str:
    """A fresh, empty bucket: s3://<bucket>/fti."""
    import boto3

    bucket = f"fti-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_store_options["client_kwargs"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/fti"
