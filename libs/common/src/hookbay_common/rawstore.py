"""Where raw bodies go once archived: a small protocol with file and S3 implementations.

Keys are relative paths such as ``<source id>/2026/12/03/<packet id>``; writing the same key twice
writes the same bytes, so an archiver that crashed after the upload can simply upload again.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    from hookbay_common.settings import CommonSettings


class RawStore(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None: ...

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store several objects; every one is durable when this returns."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


class FileRawStore:
    """Files under a directory, written atomically (temp file, fsync, rename, fsync the directory)."""

    # Files written, then fsynced together, per round: bounds the descriptors held open at once.
    CHUNK = 64

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        # Lexical, like a web server's safe join: resolving would cost a system call per component
        # for every object, and the keys are ours (``<source>/<yyyy>/<mm>/<dd>/<packet>``).
        path = Path(os.path.normpath(self.root / key))
        if path == self.root or not path.is_relative_to(self.root):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        # Each file is fsynced before its rename, so a crash never leaves a torn file under a key,
        # and each directory once after all its renames. The fsyncs of a chunk run concurrently:
        # the filesystem then shares journal commits between them, where one after another each
        # pays its own (ext4 here: 64 files in 6-9 ms instead of 32-59 ms, a third of the CPU).
        paths = [(self._path(key), data) for key, data in items]  # refuse a bad key before writing
        directories: set[Path] = set()
        for start in range(0, len(paths), self.CHUNK):
            self._put_chunk(paths[start : start + self.CHUNK], directories)
        for directory in directories:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _put_chunk(self, items: Sequence[tuple[Path, bytes]], directories: set[Path]) -> None:
        written: list[tuple[int, str, Path]] = []
        try:
            for path, data in items:
                if path.parent not in directories:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    directories.add(path.parent)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
                written.append((fd, tmp, path))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            list(_fsync_pool().map(os.fsync, [fd for fd, _, _ in written]))
            for _, tmp, path in written:
                os.replace(tmp, path)
        except BaseException:
            for _, tmp, _ in written:
                Path(tmp).unlink(missing_ok=True)  # those already renamed are gone: no-op
            raise
        finally:
            for fd, _, _ in written:
                os.close(fd)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


@functools.cache
def _fsync_pool() -> ThreadPoolExecutor:
    """Threads that only wait in fsync (which releases the GIL), shared by every file store."""
    return ThreadPoolExecutor(16, thread_name_prefix="raw-fsync")


class S3RawStore:
    """An S3 bucket (or any S3-protocol server). The boto3 client is built once, with timeouts."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._extra: dict[str, str] = {}
        if sse:
            self._extra["ServerSideEncryption"] = sse
            if sse_kms_key_id:
                self._extra["SSEKMSKeyId"] = sse_kms_key_id
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **self._extra)

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, data in items:
            self.put(key, data)

    def get(self, key: str) -> bytes:
        return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True


def open_raw_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
) -> RawStore:
    """``file:///abs/dir``, ``file://relative/dir`` or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileRawStore(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"raw store URL names no bucket: {url}")
        return S3RawStore(
            parsed.netloc,
            parsed.path,
            endpoint_url=endpoint_url,
            region=region,
            sse=sse,
            sse_kms_key_id=sse_kms_key_id,
        )
    raise ValueError(f"unsupported raw store URL (want file:// or s3://): {url}")


def raw_store_from(settings: CommonSettings) -> RawStore:
    return open_raw_store(
        settings.raw_store_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        sse=settings.s3_sse,
        sse_kms_key_id=settings.s3_sse_kms_key_id,
    )
