"""Documents over ActivityPub: our document's Page carries a Document attachment; a
Lemmy-style post with a PDF joins the library, its file fetched through the guarded
fetcher, checked and cleaned again (or linked, per VBG_REMOTE_DOCUMENTS); a Delete
removes it and its file."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pikepdf
import pytest

from federation import actors, documents_worker, objects
from node import communities, documents, threads
from node.communities import get_readable
from node.sessions import User
from tests import inboxnode as ap
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import login, make_user
from tests.inboxnode import InboxNode, fake_fixture, node_fixture
from tests.samples_uploads import AUTHOR, pdf_with_author

fixture_node = node_fixture("medical")
fixture_lemmy = fake_fixture("lemmy", "127.0.0.74", "lemmy")

FILE = "/pictrs/files/protocole-accueil.pdf"


def pdf_page(
    fake: FakeInstance, actor: FakeActor, group: str, url: str, media_type: str = "application/pdf"
) -> dict[str, Any]:
    activity = ap.lemmy_page(fake, actor, group, "Protocole d'accueil", "Le protocole validé en 2026.")
    activity["object"]["attachment"] = [
        {"type": "Document", "url": url, "mediaType": media_type, "name": "Protocole"}
    ]
    return activity


async def deliver(node: InboxNode, fake: FakeInstance, activity: dict[str, Any], actor: FakeActor) -> None:
    response = await fake.send(node.url("/inbox"), activity, actor=actor)
    assert response.status == 202, response.text
    await node.process()


async def run_documents(node: InboxNode) -> int:
    total = 0
    while done := await documents_worker.process_due(node.pool, node.settings, node.fetcher):
        total += done
    return total


async def versions(node: InboxNode) -> list[dict[str, Any]]:
    return [dict(r) for r in await node.pool.fetch("SELECT * FROM document_versions ORDER BY id")]


def stored_files(node: InboxNode) -> list[str]:
    folder = node.settings.data_dir / "documents"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
async def browser(node: InboxNode) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=node.app, client=("203.0.113.9", 50002))
    async with httpx.AsyncClient(transport=transport, base_url=node.base_url) as client:
        await make_user(node.pool, "amina")
        await login(client, "amina")
        yield client


async def test_a_lemmy_post_with_a_pdf_joins_the_library_with_its_file_cleaned(
    node: InboxNode, lemmy: FakeInstance, browser: httpx.AsyncClient
) -> None:
    # Given a Lemmy user posts a PDF (with its author in its metadata) to our public community
    lemmy.add_response(FILE, pdf_with_author(), content_type="application/pdf")
    alice = lemmy.add_actor("alice")
    activity = pdf_page(lemmy, alice, node.group("medical"), lemmy.url(FILE))

    # When it arrives and the documents worker runs
    await deliver(node, lemmy, activity, alice)
    [version] = await versions(node)
    assert version["status"] == "pending"
    await run_documents(node)

    # Then the file was fetched with a signed GET, checked and stored without its metadata
    [version] = await versions(node)
    assert version["status"] == "stored", version["error"]
    fetches = [r for r in lemmy.received if r.path == FILE]
    assert fetches and "signature" in {k.lower() for k in fetches[0].headers}
    document_id = version["document_id"]
    served = await browser.get(f"/documents/{document_id}/v/1")
    assert served.status_code == 200 and served.headers["content-disposition"].startswith("attachment;")
    with pikepdf.open(io.BytesIO(served.content)) as pdf:
        assert "/Author" not in pdf.docinfo
    assert AUTHOR.encode() not in served.content
    # And the library lists it, and its text is searchable
    library = await browser.get("/documents?q=protocole")
    assert f'href="/documents/{document_id}"' in library.text

    # When Lemmy deletes the post
    await deliver(node, lemmy, ap.delete_of(lemmy, alice, activity["object"]["id"]), alice)
    await run_documents(node)

    # Then the document and its files are gone
    assert stored_files(node) == []
    assert (await browser.get(f"/documents/{document_id}")).status_code == 404
    assert f'href="/documents/{document_id}"' not in (await browser.get("/documents")).text


async def test_html_served_as_a_pdf_is_refused_and_never_stored(
    node: InboxNode, lemmy: FakeInstance, browser: httpx.AsyncClient
) -> None:
    lemmy.add_response(FILE, b"<html><script>alert(1)</script></html>", content_type="application/pdf")
    alice = lemmy.add_actor("alice")
    await deliver(node, lemmy, pdf_page(lemmy, alice, node.group("medical"), lemmy.url(FILE)), alice)

    await run_documents(node)

    [version] = await versions(node)
    assert version["status"] == "refused" and stored_files(node) == []
    page = await browser.get(f"/documents/{version['document_id']}")
    assert f'href="{lemmy.url(FILE)}"' in page.text  # shown as a link to its origin


async def test_link_only_and_on_first_open_modes(
    node: InboxNode, lemmy: FakeInstance, browser: httpx.AsyncClient
) -> None:
    lemmy.add_response(FILE, pdf_with_author(with_image=False), content_type="application/pdf")
    alice = lemmy.add_actor("alice")
    node.app.state.settings = dataclasses.replace(node.settings, remote_documents="open")
    node = dataclasses.replace(node, settings=node.app.state.settings)
    await deliver(node, lemmy, pdf_page(lemmy, alice, node.group("medical"), lemmy.url(FILE)), alice)

    # Nothing is fetched until a member opens the page
    [version] = await versions(node)
    assert version["status"] == "link"
    await run_documents(node)
    assert not [r for r in lemmy.received if r.path == FILE]
    await browser.get(f"/documents/{version['document_id']}")
    await run_documents(node)
    [version] = await versions(node)
    assert version["status"] == "stored"


async def test_our_document_page_carries_a_document_attachment(node: InboxNode, tmp_path: Path) -> None:
    # Given a document uploaded in a public community
    amina_id = await make_user(node.pool, "amina")
    amina = User(amina_id, "amina", "Amina", "member", "approved")
    community = await get_readable(node.pool, "medical", amina)
    file = documents.NewFile("A" * 32 + ".pdf", "application/pdf", 12345, "protocole.pdf", "texte")
    meta = documents.Metadata(
        "Protocole", "Le protocole.", "protocole", ("accueil",), "fr", "Panzi", "CC BY 4.0"
    )
    async with node.pool.acquire() as conn:
        document_id = await documents.create_document(conn, community, amina, meta, file)
        thread_id = await conn.fetchval("SELECT thread_id FROM documents WHERE id = $1", document_id)
        view = await objects.load_thread(conn, thread_id)

    page = objects.post_to_ap(node.settings, view)

    assert page["type"] == "Page" and page["name"] == "Protocole"
    assert page["attachment"] == [
        {
            "type": "Document",
            "url": node.url(f"/documents/{document_id}/v/1"),
            "mediaType": "application/pdf",
            "name": "protocole.pdf",
            "size": 12345,
        }
    ]
    assert page["vbgDocument"]["docType"] == "protocole"
    assert {"type": "Hashtag", "name": "#accueil", "href": node.url("/documents?etiquette=accueil")} in page[
        "tag"
    ]
    # and the Create went out with the thread (outbox event in the same transaction)
    assert [e["thread_id"] for e in await node.events("post.created")] == [thread_id]
    # a deletion of the discussion's opening post removes the document (trigger)
    async with node.pool.acquire() as conn:
        opening = await conn.fetchval("SELECT id FROM posts WHERE thread_id = $1 AND is_opening", thread_id)
        await threads.delete_post(conn, opening, amina)
    assert await node.pool.fetchval("SELECT deleted_at IS NOT NULL FROM documents WHERE id = $1", document_id)
    assert await node.pool.fetchval("SELECT count(*) FROM document_trash") == 1


async def test_an_update_with_a_new_file_is_a_new_version(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given a Lemmy post with a PDF, fetched and stored
    lemmy.add_response(FILE, pdf_with_author(with_image=False), content_type="application/pdf")
    lemmy.add_response(
        "/pictrs/files/v2.pdf",
        pdf_with_author("Version revue", with_image=False),
        content_type="application/pdf",
    )
    alice = lemmy.add_actor("alice")
    activity = pdf_page(lemmy, alice, node.group("medical"), lemmy.url(FILE))
    await deliver(node, lemmy, activity, alice)
    await run_documents(node)

    # When its author edits the post with a new file
    page = dict(
        activity["object"],
        attachment=[
            {"type": "Document", "url": lemmy.url("/pictrs/files/v2.pdf"), "mediaType": "application/pdf"}
        ],
    )
    await deliver(node, lemmy, ap.update_of(lemmy, alice, page), alice)
    await run_documents(node)

    # Then the new file is version 2 and the first stays
    assert [(v["number"], v["status"]) for v in await versions(node)] == [(1, "stored"), (2, "stored")]
    # and the same Update again adds nothing
    await deliver(node, lemmy, ap.update_of(lemmy, alice, page), alice)
    assert len(await versions(node)) == 2


async def test_a_draft_left_unconfirmed_for_a_week_goes_with_its_file(
    node: InboxNode, tmp_path: Path
) -> None:
    amina_id = await make_user(node.pool, "amina")
    amina = User(amina_id, "amina", "Amina", "member", "approved")
    community = await get_readable(node.pool, "medical", amina)
    file = documents.NewFile("B" * 32 + ".pdf", "application/pdf", 10, "x.pdf", carried=("des commentaires",))
    async with node.pool.acquire() as conn:
        draft = await documents.create_document(conn, community, amina, documents.Metadata("Brouillon"), file)
    await node.pool.execute(
        "UPDATE documents SET created_at = now() - interval '8 days' WHERE id = $1", draft
    )

    await run_documents(node)

    assert await node.pool.fetchval("SELECT count(*) FROM documents") == 0
    assert await node.pool.fetchval("SELECT count(*) FROM document_trash") == 0  # its file was removed


async def test_a_pdf_posted_in_a_followed_remote_group_joins_that_communitys_library(
    node: InboxNode, lemmy: FakeInstance, browser: httpx.AsyncClient
) -> None:
    # Given our node follows a Lemmy community (issue 11: a remote community, its shared follow)
    group = lemmy.add_actor("protocoles", type="Group")
    async with node.pool.acquire() as conn:
        actor = await actors.get_or_fetch(conn, node.fetcher, group.id)
        community = await communities.upsert_remote(
            conn, actor_id=actor.id, name=f"protocoles@{lemmy.domain.split(':')[0]}", title="Protocoles",
            description="", visibility="public",
        )  # fmt: skip
        instance = await actors.instance_actor(conn, node.settings)
        await conn.execute(
            "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state)"
            " VALUES ($1, $2, $3, 'accepted')",
            community.id, instance.id, node.url(f"/activities/{uuid.uuid4()}"),
        )  # fmt: skip
    # and a Lemmy user's post with a PDF there, which the group announces
    lemmy.add_response(FILE, pdf_with_author(), content_type="application/pdf")
    alice = lemmy.add_actor("alice")
    page = pdf_page(lemmy, alice, group.id, lemmy.url(FILE))
    announce = {"@context": ap.AS_CONTEXT, "id": ap.activity_id(lemmy, "Announce"), "type": "Announce",
                "actor": group.id, "to": [ap.PUBLIC], "cc": [group.id + "/followers"], "object": page}  # fmt: skip

    # When the group delivers it and the documents worker runs
    await deliver(node, lemmy, announce, group)
    await run_documents(node)

    # Then the post is a document of that community's library, its file fetched and cleaned
    [version] = await versions(node)
    assert version["status"] == "stored", version["error"]
    document_id = version["document_id"]
    assert (
        await node.pool.fetchval("SELECT community_id FROM documents WHERE id = $1", document_id)
        == community.id
    )
    listed = await browser.get(f"/c/{community.name}/documents")
    assert f'href="/documents/{document_id}"' in listed.text
    assert f'href="/documents/{document_id}"' in (await browser.get("/documents")).text
    served = await browser.get(f"/documents/{document_id}/v/1")
    assert served.status_code == 200 and AUTHOR.encode() not in served.content

    # When the author deletes it on Lemmy and the group relays the Delete
    delete = ap.delete_of(lemmy, alice, page["object"]["id"])
    await deliver(node, lemmy, dict(announce, id=ap.activity_id(lemmy, "Announce"), object=delete), group)
    await run_documents(node)

    # Then it leaves the library, its file with it
    assert stored_files(node) == []
    assert (
        f'href="/documents/{document_id}"' not in (await browser.get(f"/c/{community.name}/documents")).text
    )
    assert (await browser.get(f"/documents/{document_id}")).status_code == 404
