"""The documents space through its pages: upload, library, search, versions, downloads,
featuring, drafts, deletion, and who may read the files."""

from __future__ import annotations

import io
import re
from pathlib import Path

import asyncpg
import httpx
import pikepdf
from PIL import Image
from starlette.applications import Starlette

from node import documents, threads
from node.settings import Settings
from tests.ap_kit import approve, partner, settings, signed_get  # noqa: F401  (fixtures)
from tests.documents_kit import document_id, given_a_document, upload
from tests.fakefedi import FakeInstance
from tests.helpers import csrf, login, make_community, make_user, new_client
from tests.samples_uploads import AUTHOR, docx, jpeg_with_gps, pdf_with_author


def same_page(response: httpx.Response) -> bytes:
    """The answer without the login link's ``next=`` (the page asked for, by design)."""
    return re.sub(rb"next=[^\"]*", b"next=", response.content)


def files_under(path: Path) -> list[str]:
    return sorted(p.name for p in path.rglob("*") if p.is_file()) if path.exists() else []


async def test_a_member_uploads_a_pdf_and_finds_it_in_both_libraries_with_its_size(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool)

    page = await client.get(f"/documents/{doc}")
    assert page.status_code == 200
    assert "Protocole de prise en charge médicale" in page.text and "Hôpital de Panzi" in page.text
    assert re.search(r"<strong>\d+(,\d)? (Ko|octets)</strong>", page.text)  # the size before the download
    assert f'/documents/{doc}/v/1/apercu"' in page.text  # a thumbnail of the first page
    for path in ("/documents", "/c/medical/documents"):
        listing = await client.get(path)
        assert f'href="/documents/{doc}"' in listing.text and "Protocole" in listing.text
    # And its discussion is a thread of the community
    thread = re.search(r'href="/t/(\d+)"', page.text)
    discussion = await client.get(f"/t/{thread.group(1)}") if thread else None
    assert discussion is not None and discussion.status_code == 200
    assert f'href="/documents/{doc}/v/1" download' in discussion.text  # the file, from its discussion


async def test_the_file_is_served_as_a_sandboxed_attachment_with_ranges_and_no_metadata(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool, data=pdf_with_author())

    response = await client.get(f"/documents/{doc}/v/1")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert 'filename="protocole-de-prise-en-charge-medicale.pdf"' in response.headers["content-disposition"]
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"].startswith("private")
    with pikepdf.open(io.BytesIO(response.content)) as pdf:
        assert "/Author" not in pdf.docinfo and "/Metadata" not in pdf.Root
    assert AUTHOR.encode() not in response.content and b"SecretCam" not in response.content
    partial = await client.get(f"/documents/{doc}/v/1", headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and partial.content == response.content[:10]
    assert partial.headers["content-range"] == f"bytes 0-9/{len(response.content)}"


async def test_a_gps_jpeg_is_served_clean_and_inline(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool, data=jpeg_with_gps())

    response = await client.get(f"/documents/{doc}/v/1")

    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-disposition"].startswith("inline;")
    image = Image.open(io.BytesIO(response.content))
    assert dict(image.getexif()) == {} and b"SecretCam" not in response.content


async def test_html_disguised_as_jpeg_and_tricky_names_are_refused_or_harmless(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    await make_user(pool, "amina")
    await make_community(pool, "medical")
    await login(client, "amina")

    refused = await upload(client, "medical", b"<html><script>alert(1)</script></html>", name="photo.jpg")
    assert refused.status_code == 400 and "Ce type de fichier n&#39;est pas accepté" in refused.text
    svg = await upload(client, "medical", b'<svg xmlns="http://www.w3.org/2000/svg"/>', name="x.jpeg")
    assert svg.status_code == 400
    tricky = await upload(client, "medical", b"Bonjour\n", name="../../secret_key\u202egpj.exe")
    doc = document_id(tricky)
    stored = files_under(settings.data_dir / "documents")
    assert len(stored) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{32}\.txt", stored[0])
    assert set(files_under(settings.data_dir)) - {"messages_key"} == set(stored)  # nothing written elsewhere
    response = await client.get(f"/documents/{doc}/v/1")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert files_under(settings.data_dir / "tmp") == []


async def test_thirty_megabytes_are_refused_in_french_and_nothing_stays(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    await make_user(pool, "amina")
    await make_community(pool, "medical")
    await login(client, "amina")

    response = await upload(client, "medical", b"%PDF-1.4\n" + b"\0" * (30 * 1024 * 1024))

    assert response.status_code == 413
    assert "Le fichier est trop volumineux : 25 Mo au plus." in response.text
    assert files_under(settings.data_dir / "tmp") == [] and files_under(settings.data_dir / "documents") == []
    assert await pool.fetchval("SELECT count(*) FROM documents") == 0


async def test_every_non_reader_gets_the_same_404_for_a_members_only_file(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool)
    await make_user(pool, "paul", status="pending")
    await make_user(pool, "sami", status="suspended")
    paths = [f"/documents/{doc}", f"/documents/{doc}/v/1", f"/documents/{doc}/v/1/apercu"]
    for name in (None, "paul", "sami"):
        async with new_client(app) as other:
            if name == "paul":
                await login(other, name)  # a pending account may log in, and reads like a visitor
            for path in paths:
                # Then each gets for the document exactly what a missing one gets
                missing = await other.get(path.replace(f"/{doc}", "/999999"))
                answer = await other.get(path)
                assert (answer.status_code, same_page(answer)) == (404, same_page(missing)), (name, path)


async def test_only_an_approved_partner_gets_the_file_with_a_signed_get(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    partner: FakeInstance,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool)
    alice = partner.add_actor("alice")
    path = f"/documents/{doc}/v/1"
    async with new_client(app) as server:  # a server's request: no member's cookie
        missing = await signed_get(server, "/documents/999999/v/1", alice)
        # An allowed but not approved instance gets what a missing file gets
        refused = await signed_get(server, path, alice)
        assert (refused.status_code, refused.content) == (404, missing.content)
        # A bad signature from an approved one too, and an unsigned GET
        await approve(pool, partner)
        assert (await signed_get(server, path, alice, "wrong_key")).status_code == 404
        assert (await server.get(path)).status_code == 404
        # And a valid signed GET from the approved partner gets the file
        served = await signed_get(server, path, alice)
        assert served.status_code == 200 and served.content.startswith(b"%PDF-")


async def test_a_public_document_is_readable_by_visitors(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool, visibility="public")
    async with new_client(app) as visitor:
        assert (await visitor.get(f"/documents/{doc}")).status_code == 200
        assert (await visitor.get(f"/documents/{doc}/v/1")).status_code == 200
        assert f"/documents/{doc}" in (await visitor.get("/documents")).text


async def test_a_new_version_keeps_the_old_one_downloadable(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool)
    first = (await client.get(f"/documents/{doc}/v/1")).content

    token = await csrf(client, f"/documents/{doc}")
    response = await client.post(
        f"/documents/{doc}/version",
        data={"csrf_token": token, "note": "Mise à jour 2026"},
        files={"file": ("v2.docx", docx("Deuxième version"), "application/octet-stream")},
    )

    assert response.status_code == 303
    page = await client.get(f"/documents/{doc}")
    assert "Version 2" in page.text and "Mise à jour 2026" in page.text
    assert (await client.get(f"/documents/{doc}/v/1")).content == first
    second = await client.get(f"/documents/{doc}/v/2")
    assert second.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument")
    # and the search finds the new text
    assert f"/documents/{doc}" in (await client.get("/documents?q=deuxieme")).text


async def test_search_and_filters_find_documents_by_text_tag_type_and_language(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(
        client, pool, data=pdf_with_author("Certificat medical type", with_image=False)
    )
    other = document_id(
        await upload(client, "medical", b"Liste des contacts utiles\n", name="contacts.txt", title="Annuaire",
                     doc_type="fiche", tags="contacts", language="en", description="")
    )  # fmt: skip

    async def found(query: str) -> set[int]:
        text = (await client.get(f"/documents?{query}")).text
        return {d for d in (doc, other) if f'href="/documents/{d}"' in text}

    assert await found("q=certificat") == {doc}  # text extracted from the PDF
    assert await found("q=etapes") == {doc}  # the description, accents folded
    assert await found("etiquette=urgence") == {doc}
    assert await found("type=fiche") == {other}
    assert await found("langue=en") == {other}
    assert await found("q=annuaire&type=fiche") == {other}
    assert await found("q=annuaire&type=protocole") == set()


async def test_only_experts_and_moderators_feature_a_document(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool)
    token = await csrf(client, f"/documents/{doc}")
    assert (
        await client.post(f"/documents/{doc}/mise-en-avant", data={"csrf_token": token})
    ).status_code == 403
    await make_user(pool, "modo", role="moderator")
    async with new_client(app) as modo:
        await login(modo, "modo")
        token = await csrf(modo, f"/documents/{doc}")
        assert (
            await modo.post(f"/documents/{doc}/mise-en-avant", data={"csrf_token": token})
        ).status_code == 303
    assert "mis en avant" in (await client.get("/c/medical/documents")).text
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'document.feature'") == 1


async def test_the_discussion_thread_shows_its_document_at_its_latest_version(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    # Given a published document and the thread that discusses it
    doc = await given_a_document(client, pool, visibility="public")
    thread_id = await pool.fetchval("SELECT thread_id FROM documents WHERE id = $1", doc)
    # When a member opens the thread, then its card links the file (read with the thread's head)
    page = await client.get(f"/t/{thread_id}")
    assert 'class="document-card"' in page.text and f'href="/documents/{doc}/v/1" download' in page.text
    # And after a new version the card links that one, as the document's Page does
    token = await csrf(client, f"/documents/{doc}")
    await client.post(
        f"/documents/{doc}/version",
        data={"csrf_token": token, "note": "Mise à jour"},
        files={"file": ("v2.docx", docx("Deuxième version"), "application/octet-stream")},
    )
    page = await client.get(f"/t/{thread_id}")
    assert f'href="/documents/{doc}/v/2" download' in page.text
    async with pool.acquire() as conn:
        head = await threads.thread_head(conn, thread_id, None, 1)
        file = await documents.for_thread(conn, thread_id)
    assert file is not None and file.version == 2 and documents.of_thread_head(head.thread) == file


async def test_a_file_with_tracked_changes_waits_for_its_uploaders_confirmation(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool, data=docx(tracked=True))

    page = await client.get(f"/documents/{doc}")
    assert f"des modifications suivies (auteur·e·s : {AUTHOR})" in page.text
    assert f'href="/documents/{doc}"' not in (await client.get("/documents")).text
    assert await pool.fetchval("SELECT count(*) FROM threads") == 0  # nothing federated yet
    await make_user(pool, "karim")
    async with new_client(app) as karim:
        await login(karim, "karim")
        assert (await karim.get(f"/documents/{doc}")).status_code == 404
        assert (await karim.get(f"/documents/{doc}/v/1")).status_code == 404

    token = await csrf(client, f"/documents/{doc}")
    assert (await client.post(f"/documents/{doc}/confirmer", data={"csrf_token": token})).status_code == 303
    assert f'href="/documents/{doc}"' in (await client.get("/documents")).text
    assert await pool.fetchval("SELECT count(*) FROM threads") == 1


async def test_a_moderator_removes_a_reported_document_and_its_files_leave_the_disk(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    settings: Settings,  # noqa: F811
) -> None:
    doc = await given_a_document(client, pool, data=pdf_with_author())
    assert len(files_under(settings.data_dir / "documents")) == 2  # the file and its thumbnail
    page = await client.get(f"/documents/{doc}")
    report = re.search(r'href="(/p/\d+/signaler)"', page.text)
    assert report  # reporting the document is reporting its discussion's opening post
    await make_user(pool, "modo", role="moderator")
    async with new_client(app) as modo:
        await login(modo, "modo")
        token = await csrf(modo, f"/documents/{doc}/supprimer")
        without_reason = await modo.post(f"/documents/{doc}/supprimer", data={"csrf_token": token})
        assert without_reason.status_code == 400
        removed = await modo.post(
            f"/documents/{doc}/supprimer", data={"csrf_token": token, "reason": "Hors charte"}
        )
        assert removed.status_code == 303

    assert files_under(settings.data_dir / "documents") == []
    assert (await client.get(f"/documents/{doc}")).status_code == 404
    assert (await client.get(f"/documents/{doc}/v/1")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'document.delete'") == 1
    assert await pool.fetchval("SELECT count(*) FROM document_trash") == 0
    # and the removal goes out as a Delete of the document's Page (members-only: to the partners)
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'post.deleted'") == 1
