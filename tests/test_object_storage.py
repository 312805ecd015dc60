"""Files on an S3-compatible object store through the storage seam (issue 16,
``VBG_S3_*``): ``node.storage.S3Storage`` against a real S3-compatible HTTP server on
loopback (moto's server, from PyPI: MinIO and Garage are in no registry reachable here),
and a document uploaded and downloaded through the web pages with its file in the bucket.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from node import storage
from node.settings import Settings, load
from node.web.app import create_app
from tests.conftest import TEST_SECRET
from tests.documents_kit import given_a_document
from tests.liveserver import free_port
from tests.samples_uploads import pdf_with_author

BUCKET = "vbg-fichiers"


@pytest.fixture
def s3_server() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(s3_server: str, tmp_path: Path, database_url: str) -> Settings:
    settings = load({"VBG_BASE_URL": "http://testserver", "VBG_DATA_DIR": str(tmp_path / "data"),
                     "VBG_SECRET_KEY": TEST_SECRET, "DATABASE_URL": database_url, "VBG_WORKERS_IN_SERVE": "0",
                     "VBG_S3_BUCKET": BUCKET, "VBG_S3_ENDPOINT": s3_server, "VBG_S3_ACCESS_KEY": "vbg",
                     "VBG_S3_SECRET_KEY": "vbg-secret-key", "VBG_S3_PREFIX": "noeud/"})  # fmt: skip
    storage.s3_client(settings).create_bucket(Bucket=BUCKET)
    return settings


def keys(settings: Settings) -> list[str]:
    listed = storage.s3_client(settings).list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listed.get("Contents", []))


async def test_the_object_store_keeps_puts_reads_and_deletes(s3_settings: Settings, tmp_path: Path) -> None:
    store = storage.storage_for(s3_settings, "documents")
    assert isinstance(store, storage.S3Storage)
    # A finished file is moved in (uploaded, then the local copy removed)
    local = tmp_path / "upload.pdf"
    payload = os.urandom(9 * 1024 * 1024 + 123)  # past the spool size and boto3's multipart threshold
    local.write_bytes(payload)
    name = await store.put_file(local, "pdf")
    assert not local.exists() and storage.valid_name(name)
    assert keys(s3_settings) == [f"noeud/documents/{name}"]
    assert await store.size(name) == len(payload)
    fh = await store.open(name)
    try:
        assert fh.read() == payload
        fh.seek(5)  # seekable, for HTTP ranges
        assert fh.read(4) == payload[5:9]
    finally:
        fh.close()

    # A stream is stored too
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"premier ", b"second"):
            yield part

    streamed = await store.put(chunks(), "txt")
    assert (await store.open(streamed)).read() == b"premier second"
    # Deleting removes the object; deleting again is not an error; a missing object is FileNotFoundError
    await store.delete(name)
    await store.delete(name)
    with pytest.raises(FileNotFoundError):
        await store.open(name)
    with pytest.raises(FileNotFoundError):
        await store.size(name)
    # No local path, and names that are not ours never reach the network
    assert store.local_path(streamed) is None
    with pytest.raises(storage.StorageError):
        await store.open("../../secret_key")


async def test_a_document_is_uploaded_to_and_served_from_the_bucket(
    s3_settings: Settings, pool: asyncpg.Pool
) -> None:
    app = create_app(s3_settings, pool=pool)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # Given a member uploads a PDF
        doc = await given_a_document(client, pool, data=pdf_with_author(with_image=False))
        # Then its file (and its thumbnail) are objects of the bucket, none under the data folder
        stored = keys(s3_settings)
        assert stored and all(k.startswith("noeud/documents/") for k in stored)
        assert not (s3_settings.data_dir / "documents").exists() or not any(
            (s3_settings.data_dir / "documents").iterdir()
        )
        # And the download streams it back from the bucket, with the document headers
        response = await client.get(f"/documents/{doc}/v/1")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert response.content.startswith(b"%PDF")
