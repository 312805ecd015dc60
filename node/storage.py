"""Where uploaded and fetched files are kept: a small interface with one backend today.

    Storage (the seam)
     ├── LocalStorage       files under ``<VBG_DATA_DIR>/<area>/`` (this module)
     └── (next) S3Storage   an S3-compatible object store, for nodes that outgrow one disk
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
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO, Protocol

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


def storage_for(settings: Settings, area: str) -> Storage:
    """The store of ``area`` for this node (local folder under VBG_DATA_DIR today)."""
    return LocalStorage(settings.data_dir, area)
