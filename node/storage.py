"""Where uploaded and fetched files are kept: a small interface with one backend today.

    Storage (the seam)
     ├── LocalStorage       files under ``<VBG_DATA_DIR>/<area>/`` (this module)
     └── S3Storage          an S3-compatible object store (``VBG_S3_BUCKET`` …), for nodes that
                            outgrow one disk or run web processes on several machines
                            (docs/architecture.md §6: "PostgreSQL with a replica and object storage for files")

Callers never build a file path from user input: a stored object is known by a random
name this module makes (:func:`new_name`: 32 URL-safe characters and an extension from a
fixed list) and every method checks the name it is given against :data:`NAME`, so a
``../`` or a Unicode look-alike in a name is refused before any file system call.

An *area* is a folder of its own per kind of file (``documents``, ``attachments`` …):
``storage_for(settings, "documents")``. Files arrive complete: :meth:`Storage.put_file`
moves a finished temporary file in (atomic rename on the same disk), :meth:`Storage.put`
writes a stream; readers use :meth:`Storage.open` (a seekable binary file, for HTTP range
requests) or, on the local backend, :meth:`Storage.local_path` (handed to the web
server's file response). Every method is blocking-free for the event loop: disk work
runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from node.settings import Settings

EXTENSIONS = frozenset(
    {"pdf", "odt", "ods", "odp", "docx", "xlsx", "pptx", "txt", "csv", "png", "jpg", "webp", "bin"}
)
NAME = re.compile(r"^[A-Za-z0-9_-]{32}\.([a-z0-9]{1,5})$")
AREA = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class StorageError(Exception):
    """A name that is not one of ours, or a backend failure."""


def new_name(extension: str) -> str:
    """A fresh random object name (32 URL-safe characters, a dot, ``extension``)."""
    if extension not in EXTENSIONS:
        raise StorageError(f"extension {extension!r} not allowed")
    return f"{secrets.token_urlsafe(24)}.{extension}"


def valid_name(name: str) -> bool:
    match = NAME.match(name)
    return match is not None and match.group(1) in EXTENSIONS


def _checked(name: str) -> str:
    if not valid_name(name):
        raise StorageError("not a stored object name")
    return name


class Storage(Protocol):
    """What the forum needs from a file store. Missing objects raise FileNotFoundError."""

    area: str

    async def put(self, chunks: AsyncIterable[bytes], extension: str) -> str:
        """Store a stream under a new random name; return the name."""
        ...

    async def put_file(self, path: Path, extension: str) -> str:
        """Take a finished temporary file (moved, not copied, where the backend can)."""
        ...

    async def open(self, name: str) -> BinaryIO:
        """A seekable binary file to read ``name`` from; the caller closes it."""
        ...

    async def delete(self, name: str) -> None:
        """Remove ``name``; a missing object is not an error (deletions are retried)."""
        ...

    async def size(self, name: str) -> int: ...

    def local_path(self, name: str) -> Path | None:
        """The file on this machine's disk, for a zero-copy file response; None when the
        backend keeps objects elsewhere (then serve :meth:`open`)."""
        ...


class LocalStorage:
    """Objects as files of one folder. Writes go to a temporary file of the same folder,
    then an atomic rename: a reader never sees half a file."""

    def __init__(self, root: Path, area: str) -> None:
        if not AREA.match(area):
            raise StorageError(f"bad area {area!r}")
        self.area = area
        self.root = root / area

    def _path(self, name: str) -> Path:
        return self.root / _checked(name)

    def _temporary(self) -> tuple[Path, BinaryIO]:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".tmp-{secrets.token_urlsafe(16)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return path, os.fdopen(fd, "wb")

    async def put(self, chunks: AsyncIterable[bytes], extension: str) -> str:
        name = new_name(extension)
        temp, fh = await asyncio.to_thread(self._temporary)
        try:
            with fh:
                async for chunk in chunks:
                    await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(os.replace, temp, self._path(name))
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return name

    def _move_in(self, path: Path, name: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._path(name)
        try:
            os.replace(path, target)
        except OSError:  # another file system: copy next to the target, then rename
            temp, fh = self._temporary()
            try:
                with fh, open(path, "rb") as source:
                    shutil.copyfileobj(source, fh, 1024 * 1024)
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            path.unlink(missing_ok=True)
        os.chmod(target, 0o600)

    async def put_file(self, path: Path, extension: str) -> str:
        name = new_name(extension)
        await asyncio.to_thread(self._move_in, path, name)
        return name

    async def open(self, name: str) -> BinaryIO:
        return await asyncio.to_thread(open, self._path(name), "rb")

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._path(name).unlink, missing_ok=True)

    async def size(self, name: str) -> int:
        stat = await asyncio.to_thread(os.stat, self._path(name))
        return stat.st_size

    def local_path(self, name: str) -> Path | None:
        return self._path(name)


class S3Storage:
    """Objects of one area as ``<prefix><area>/<name>`` keys of an S3-compatible bucket
    (AWS S3, MinIO, Garage, Ceph RGW, Scaleway, OVH…), through boto3 in a thread.

    The object store is infrastructure of the node, like PostgreSQL: it is reached with
    the node's own credentials at a configured endpoint, never at an address taken from
    remote content. Uploads of a finished file use boto3's multipart transfer (bounded
    memory); reads come back as a spooled temporary file (seekable, in memory up to
    ``SPOOL_BYTES``, then on disk)."""

    SPOOL_BYTES = 8 * 1024 * 1024

    def __init__(self, client: Any, bucket: str, area: str, prefix: str = "") -> None:
        if not AREA.match(area):
            raise StorageError(f"bad area {area!r}")
        self.area = area
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix}{area}/"

    def _key(self, name: str) -> str:
        return self.prefix + _checked(name)

    async def put(self, chunks: AsyncIterable[bytes], extension: str) -> str:
        name = new_name(extension)
        spool = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_BYTES)  # noqa: SIM115 (closed below)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(spool.write, chunk)
            await asyncio.to_thread(spool.seek, 0)
            await asyncio.to_thread(self.client.upload_fileobj, spool, self.bucket, self._key(name))
        finally:
            spool.close()
        return name

    async def put_file(self, path: Path, extension: str) -> str:
        name = new_name(extension)
        await asyncio.to_thread(self.client.upload_file, str(path), self.bucket, self._key(name))
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return name

    def _download(self, name: str) -> BinaryIO:
        spool = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_BYTES)  # noqa: SIM115 (the caller closes it)
        try:
            self.client.download_fileobj(self.bucket, self._key(name), spool)
        except Exception as exc:
            spool.close()
            raise _translated(exc, name) from exc
        spool.seek(0)
        return spool  # type: ignore[return-value]

    async def open(self, name: str) -> BinaryIO:
        return await asyncio.to_thread(self._download, name)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(name))

    def _size(self, name: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            raise _translated(exc, name) from exc
        return int(head["ContentLength"])

    async def size(self, name: str) -> int:
        return await asyncio.to_thread(self._size, name)

    def local_path(self, name: str) -> Path | None:
        _checked(name)
        return None


def _translated(exc: Exception, name: str) -> Exception:
    """boto3's "no such key" as FileNotFoundError (the seam's contract); any other
    failure as StorageError."""
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    if code in {"404", "NoSuchKey", "NotFound"}:
        return FileNotFoundError(name)
    return StorageError(f"object store: {type(exc).__name__} {code}".strip())


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the node's object store (``VBG_S3_*`` settings)."""
    import boto3  # only a node with an object store needs it (pip install 'vbg-node[s3]')
    from botocore.config import Config

    secret = settings.s3_secret_key.reveal() if settings.s3_secret_key else None
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key or None,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


_clients: dict[tuple[str, str, str], Any] = {}


def storage_for(settings: Settings, area: str) -> Storage:
    """The store of ``area`` for this node: the object store when ``VBG_S3_BUCKET`` is
    set, else a folder under VBG_DATA_DIR."""
    if settings.s3_bucket:
        key = (settings.s3_endpoint, settings.s3_bucket, settings.s3_access_key)
        if key not in _clients:
            _clients[key] = s3_client(settings)
        return S3Storage(_clients[key], settings.s3_bucket, area, settings.s3_prefix)
    return LocalStorage(settings.data_dir, area)
