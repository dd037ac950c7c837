"""Archiving to a real S3-protocol server (moto in server mode on loopback), with SSE requested."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from harness import Proc, Stack, free_port, wait_until

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "hookbay-test",
    "AWS_SECRET_ACCESS_KEY": "hookbay-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        {**os.environ, **CREDENTIALS},
        tmp_path / "moto.log",
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=30, what="moto server")
        yield endpoint
    finally:
        proc.stop()


def test_bodies_archive_to_s3_byte_exact(tmp_path: Path, database_url: str, s3_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())
    s3.create_bucket(Bucket="hookbay-raw")
    stack = Stack(
        tmp_path,
        database_url,
        HOOKBAY_RAW_STORE_URL="s3://hookbay-raw/packets/",
        HOOKBAY_S3_ENDPOINT_URL=s3_endpoint,
        HOOKBAY_S3_REGION="us-east-1",
        HOOKBAY_S3_SSE="AES256",
        HOOKBAY_ARCHIVE_AFTER="0",
        **CREDENTIALS,
    )
    try:
        stack.receiver()
        source = stack.create_source("s3", max_body=2 * 1024 * 1024)
        bodies = [os.urandom(1024 * 1024), "José".encode("windows-1252"), b'{"ok": true}']
        ids = [stack.http.post(stack.url(source), content=b).json()["id"] for b in bodies]
        wait_until(lambda: all(stack.packet(i).archived for i in ids), timeout=30, what="archiving to S3")
        for packet_id, body in zip(ids, bodies, strict=True):
            packet = stack.packet(packet_id)
            assert packet.raw_key
            obj = s3.get_object(Bucket="hookbay-raw", Key=f"packets/{packet.raw_key}")
            assert obj["Body"].read() == body
            assert obj.get("ServerSideEncryption") == "AES256"
            assert hashlib.sha256(stack.raw(packet_id)).hexdigest() == packet.sha256
        assert stack.scalar("SELECT count(*) FROM packets WHERE body IS NOT NULL") == 0
    finally:
        stack.close()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }
