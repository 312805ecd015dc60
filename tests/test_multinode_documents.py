"""Documents between two real nodes (``vbg-node serve`` processes on loopback, each with
its own database, data folder and workers; every request signed and verified).

A member of B publishes one of B's documents in A's members-only community: A lists it
in its library, its documents worker fetches the file from B with a signed GET (B serves
it to A only because A's signature verifies and A is listed), checks and cleans it again
and serves it to A's members only. The member's Delete on B removes it from A, file
included.

B follows A's public community (issue 11, shared follow): a document a member of A
publishes there reaches B's library with its file, fetched from A and cleaned again on
B; its deletion on A removes it from B, file included.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pikepdf
import pytest

from federation import remote
from federation.handlers import follow as follow_handler
from node import communities, documents, uploads
from node.sessions import User
from node.storage import storage_for
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, real_nodes
from tests.samples_uploads import AUTHOR, pdf_with_author

pytestmark = pytest.mark.federation


@pytest.fixture(scope="module")
async def nodes(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, RealNode]]:
    specs = [
        NodeSpec("a", "127.0.0.24", members_communities=("juridique",), public_communities=("protocoles",)),
        NodeSpec("b", "127.0.0.25", public_communities=("bibliotheque",)),
    ]
    async with real_nodes(server_dsn, template_db, tmp_path_factory.mktemp("docnodes"), specs) as started:
        a, b = started["a"], started["b"]
        await asyncio.gather(a.admin("allow-domain", b.domain), b.admin("allow-domain", a.domain))
        yield started


def _cleaned_pdf(tmp_path: Path) -> uploads.CleanFile:
    source = tmp_path / "upload.pdf"
    source.write_bytes(pdf_with_author("Certificat medical initial", with_image=True))
    return uploads.clean(source, tmp_path)


async def upload_on(node: RealNode, tmp_path: Path, community: str, username: str) -> int:
    """A PDF with its author in its metadata, uploaded on ``node`` as a member would."""
    member = await node.member(username)
    clean = await asyncio.to_thread(_cleaned_pdf, tmp_path)
    name = await storage_for(node.settings, "documents").put_file(clean.path, clean.kind.extension)
    file = documents.NewFile(name, clean.kind.media_type, clean.size, "certificat.pdf", clean.text)
    meta = documents.Metadata("Certificat médical initial", "Le modèle validé.", "modele", ("certificat",))
    async with node.pool.acquire() as conn:
        found = await communities.find(conn, community)
        assert found is not None
        return await documents.create_document(conn, found, member, meta, file)


async def get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def test_a_document_shared_from_b_reaches_a_with_its_file_and_leaves_with_its_deletion(
    nodes: dict[str, RealNode], tmp_path: Path
) -> None:
    a, b = nodes["a"], nodes["b"]
    # Given A's moderators approved B's instance (B may post in A's members-only community)
    async with a.pool.acquire() as conn:
        await follow_handler.approve_instance(conn, b.domain, None)
    # and a member of B uploaded a document on B
    bruno_document = await upload_on(b, tmp_path, "bibliotheque", "bruno")
    bruno = await b.pool.fetchval("SELECT id FROM users WHERE username = 'bruno'")

    # When bruno publishes it in A's community
    async with b.pool.acquire() as conn:
        page_id = await remote.share_document(
            conn,
            b.settings,
            b.fetcher,
            user_id=bruno,
            group_uri=a.group("juridique"),
            document_id=bruno_document,
        )

    # Then A lists it in its library and its worker stores the file fetched from B
    version = await eventually(
        lambda: a.pool.fetchrow(
            """SELECT v.* FROM document_versions v JOIN documents d ON d.id = v.document_id
               JOIN threads t ON t.id = d.thread_id WHERE t.ap_id = $1 AND v.status = 'stored'""",
            page_id,
        ),
        "A stores the file of B's document",
        within=60,
    )
    document_id = version["document_id"]
    row = await a.pool.fetchrow(
        "SELECT title, doc_type, tags, remote FROM documents WHERE id = $1", document_id
    )
    assert (row["title"], row["doc_type"], row["tags"], row["remote"]) == (
        "Certificat médical initial", "modele", ["certificat"], True,
    )  # fmt: skip
    stored = storage_for(a.settings, "documents").local_path(version["stored_name"])
    assert stored is not None
    data = await asyncio.to_thread(stored.read_bytes)
    with pikepdf.open(io.BytesIO(data)) as pdf:  # cleaned again on A
        assert "/Author" not in pdf.docinfo
    assert AUTHOR.encode() not in data
    # And A serves its copy to A's members only: an anonymous GET gets 404
    status, _ = await get(a.url(f"/documents/{document_id}/v/1"))
    assert status == 404
    amina = await a.member("amina")
    assert amina.is_approved
    async with a.pool.acquire() as conn:
        listing = await documents.list_documents(conn, amina, documents.Filters(query="certificat"))
    assert [d.id for d in listing.documents] == [document_id]

    # When bruno deletes it on A
    async with b.pool.acquire() as conn:
        await remote.withdraw(
            conn, b.settings, b.fetcher, user_id=bruno, group_uri=a.group("juridique"), object_id=page_id
        )

    # Then A deletes the document and removes its file from disk
    await eventually(
        lambda: a.pool.fetchval("SELECT deleted_at IS NOT NULL FROM documents WHERE id = $1", document_id),
        "A deletes the document",
        within=60,
    )

    async def file_gone() -> bool:
        return not await asyncio.to_thread(stored.exists)

    await eventually(file_gone, "A removes the file from its disk", within=60)
    async with a.pool.acquire() as conn:
        listing = await documents.list_documents(conn, amina, documents.Filters())
    assert listing.documents == []


async def test_a_document_published_on_a_reaches_the_library_of_b_that_follows_its_community(
    nodes: dict[str, RealNode], tmp_path: Path
) -> None:
    a, b = nodes["a"], nodes["b"]
    # Given B follows A's public community « protocoles » for the whole node
    await b.admin("follow-remote", a.group("protocoles"))
    remote_name = f"protocoles@{a.domain}"
    community = await eventually(
        lambda: b.pool.fetchrow(
            """SELECT c.id FROM communities c JOIN group_follows f ON f.community_id = c.id
               WHERE c.name = $1 AND f.state = 'accepted'""",
            remote_name,
        ),
        "A accepts B's follow of its community",
        within=60,
    )

    # When a member of A publishes a document there
    document_on_a = await upload_on(a, tmp_path, "protocoles", "chloe")
    chloe = User(await a.pool.fetchval("SELECT id FROM users WHERE username = 'chloe'"), "chloe", "Chloe", "member", "approved")  # fmt: skip

    # Then B lists it in that community's library and in its own, with its file fetched from A
    version = await eventually(
        lambda: b.pool.fetchrow(
            """SELECT v.* FROM document_versions v JOIN documents d ON d.id = v.document_id
               WHERE d.community_id = $1 AND v.status = 'stored'""",
            community["id"],
        ),
        "B stores the file of A's document",
        within=90,
    )
    document_id = version["document_id"]
    row = await b.pool.fetchrow(
        "SELECT title, doc_type, tags, remote FROM documents WHERE id = $1", document_id
    )
    assert (row["title"], row["doc_type"], row["tags"], row["remote"]) == (
        "Certificat médical initial", "modele", ["certificat"], True,
    )  # fmt: skip
    stored = storage_for(b.settings, "documents").local_path(version["stored_name"])
    assert stored is not None
    data = await asyncio.to_thread(stored.read_bytes)
    with pikepdf.open(io.BytesIO(data)) as pdf:  # cleaned again on B
        assert "/Author" not in pdf.docinfo
    # a public community: B's library pages show it to anyone, and B serves the file
    for path in ("/documents", f"/c/{remote_name}/documents"):
        status, body = await get(b.url(path))
        assert status == 200 and f'href="/documents/{document_id}"'.encode() in body, path
    status, served = await get(b.url(f"/documents/{document_id}/v/1"))
    assert status == 200 and AUTHOR.encode() not in served

    # When its author uploads a new version on A
    (tmp_path / "v2").mkdir()
    clean = await asyncio.to_thread(_cleaned_pdf, tmp_path / "v2")
    name = await storage_for(a.settings, "documents").put_file(clean.path, clean.kind.extension)
    async with a.pool.acquire() as conn:
        await documents.add_version(
            conn, document_on_a, chloe,
            documents.NewFile(name, clean.kind.media_type, clean.size, "certificat-v2.pdf", clean.text),
        )  # fmt: skip

    # Then B keeps the first and fetches the second as its current version
    await eventually(
        lambda: b.pool.fetchval(
            "SELECT status = 'stored' FROM document_versions WHERE document_id = $1 AND number = 2",
            document_id,
        ),
        "B stores A's new version",
        within=90,
    )
    status, _ = await get(b.url(f"/documents/{document_id}/v/1"))
    assert status == 200
    second = await b.pool.fetchval(
        "SELECT stored_name FROM document_versions WHERE document_id = $1 AND number = 2", document_id
    )
    second_file = storage_for(b.settings, "documents").local_path(second)
    assert second_file is not None

    # When its author deletes it on A
    async with a.pool.acquire() as conn:
        await documents.delete_document(conn, document_on_a, chloe)

    # Then B deletes it and removes its file from disk
    await eventually(
        lambda: b.pool.fetchval("SELECT deleted_at IS NOT NULL FROM documents WHERE id = $1", document_id),
        "B deletes A's document",
        within=60,
    )

    async def files_gone() -> bool:
        return not any(await asyncio.gather(*(asyncio.to_thread(f.exists) for f in (stored, second_file))))

    await eventually(files_gone, "B removes both files from its disk", within=60)
    status, body = await get(b.url(f"/c/{remote_name}/documents"))
    assert status == 200 and f'href="/documents/{document_id}"'.encode() not in body
