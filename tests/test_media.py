"""Remote media end to end: a fake Mastodon (or Lemmy) delivers posts with attachments to our
node over HTTP, the media worker fetches the images from it through the guarded fetcher,
cleans and stores them, the thread page shows them and /media/… serves them to who may
read the post."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from federation import media, policy
from federation import worker as federation_worker
from federation.attachments import IMAGE_TYPES
from federation.errors import FetchRefused
from federation.fetcher import AddressPolicy, Fetcher
from federation.handlers import follow as follow_handler
from node import threads
from node.media import media_dir
from node.sessions import User
from node.settings import Settings, load
from tests import inboxnode as ap
from tests.conftest import TEST_SECRET
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import eventually, login, make_community, make_user, without_next
from tests.image_samples import GPS_MARKERS, assert_no_metadata, jpeg_with_metadata
from tests.inboxnode import InboxNode, fake_fixture, node_fixture

fixture_node = node_fixture("medical")
fixture_masto = fake_fixture("masto", "127.0.0.71")
fixture_lemmy = fake_fixture("lemmy", "127.0.0.72", "lemmy")

PHOTO = "/system/media_attachments/files/113/original/affiche.jpg"
ALT = "Affiche de la permanence juridique du mardi"


# -- Given ------------------------------------------------------------------------------


def serve_photo(fake: FakeInstance, path: str = PHOTO, **kw: Any) -> bytes:
    """A phone photo (EXIF with GPS, XMP, ICC, comment) served by the fake instance."""
    data = jpeg_with_metadata()
    fake.add_response(path, data, content_type=kw.pop("content_type", "image/jpeg"), **kw)
    return data


def photo_note(
    fake: FakeInstance, actor: FakeActor, group: str, url: str, *, sensitive: bool = False, **kw: Any
) -> dict[str, Any]:
    """Create{Note} as Mastodon sends a toot with one photo."""
    activity = ap.mastodon_note(fake, actor, group, "Permanence juridique\nVoici l'affiche.", **kw)
    activity["object"]["sensitive"] = sensitive
    activity["object"]["attachment"] = [
        {"type": "Document", "mediaType": "image/jpeg", "url": url, "name": ALT,
         "blurhash": "UHRp8-xu~qof-;ofWBj[", "width": 300, "height": 100},
    ]  # fmt: skip
    return activity


async def deliver(node: InboxNode, fake: FakeInstance, activity: dict[str, Any], actor: FakeActor) -> None:
    response = await fake.send(node.url("/inbox"), activity, actor=actor)
    assert response.status == 202, response.text
    await node.process()


async def run_media(node: InboxNode, fetcher: Fetcher | None = None) -> int:
    """The media worker, run until nothing is due."""
    total = 0
    while done := await media.process_due(node.pool, node.settings, fetcher or node.fetcher):
        total += done
    return total


async def rows(node: InboxNode) -> list[dict[str, Any]]:
    found = await node.pool.fetch("SELECT * FROM remote_media ORDER BY post_id, position")
    return [dict(r) for r in found]


async def thread_of(node: InboxNode, object_id: str) -> int:
    thread_id: int = await node.pool.fetchval("SELECT thread_id FROM posts WHERE ap_id = $1", object_id)
    return thread_id


def files(node: InboxNode) -> list[Path]:
    folder = media_dir(node.settings)
    return sorted(folder.iterdir()) if folder.exists() else []


def image_requests(fake: FakeInstance, path: str = PHOTO) -> list[Any]:
    return [r for r in fake.received if r.path == path]


async def stored_photo(
    node: InboxNode, masto: FakeInstance, community: str = "medical"
) -> tuple[FakeActor, dict[str, Any], dict[str, Any]]:
    """alice's toot with the photo, delivered and its photo stored: (alice, activity, row)."""
    serve_photo(masto)
    alice = masto.add_actor("alice")
    activity = photo_note(masto, alice, node.group(community), masto.url(PHOTO))
    await deliver(node, masto, activity, alice)
    await run_media(node)
    [row] = await rows(node)
    return alice, activity, row


@pytest.fixture
async def browser(node: InboxNode) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=node.app, client=("203.0.113.9", 50002))
    async with httpx.AsyncClient(transport=transport, base_url=node.base_url) as client:
        yield client


# -- fetched, cleaned, shown, served ------------------------------------------------------


async def test_a_mastodon_photo_is_fetched_cleaned_shown_and_served(
    node: InboxNode, masto: FakeInstance, browser: httpx.AsyncClient
) -> None:
    # Given a Mastodon toot with a phone photo carrying GPS coordinates, in a public community
    original = serve_photo(masto)
    alice = masto.add_actor("alice")
    activity = photo_note(masto, alice, node.group("medical"), masto.url(PHOTO))
    await deliver(node, masto, activity, alice)
    thread_id = await thread_of(node, activity["object"]["id"])
    [row] = await rows(node)
    assert (row["kind"], row["status"], row["name"]) == ("image", "pending", ALT)
    page = await browser.get(f"/t/{thread_id}")
    assert "Image en cours de récupération" in page.text

    # When the media worker runs
    assert await run_media(node) == 1

    # Then it fetched the photo once, with a GET signed by our instance actor
    [request] = image_requests(masto)
    assert request.method == "GET" and request.signature_ok
    assert request.key_id == node.url("/actor#main-key")
    # and stored a copy without any metadata
    [row] = await rows(node)
    assert row["status"] == "stored" and row["attempts"] == 1
    [stored] = files(node)
    assert stored.name == row["stored_name"] and not stored.name.startswith(".")
    data = stored.read_bytes()
    assert data != original and any(m in original for m in GPS_MARKERS)
    assert_no_metadata(data)
    assert Image.open(io.BytesIO(data)).size == (row["width"], row["height"]) == (100, 300)

    # and the thread page (cached before: its version was bumped) shows the image
    page = await browser.get(f"/t/{thread_id}")
    assert "Image en cours de récupération" not in page.text
    img = f'<img src="/media/{row["stored_name"]}" alt="{ALT}" width="100" height="300" loading="lazy">'
    assert img in page.text
    assert "<details" not in page.text

    # and /media/… serves it with safe headers
    served = await browser.get(f"/media/{row['stored_name']}")
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'"
    assert served.headers["content-disposition"] == 'inline; filename="image.jpg"'
    assert served.headers["cache-control"].startswith("private, max-age=")


async def test_a_sensitive_photo_is_behind_a_details_element(
    node: InboxNode, masto: FakeInstance, browser: httpx.AsyncClient
) -> None:
    serve_photo(masto)
    alice = masto.add_actor("alice")
    activity = photo_note(masto, alice, node.group("medical"), masto.url(PHOTO), sensitive=True)
    await deliver(node, masto, activity, alice)

    await run_media(node)

    [row] = await rows(node)
    page = await browser.get(f"/t/{await thread_of(node, activity['object']['id'])}")
    assert (
        '<details class="sensitive"><summary>Image sensible — afficher</summary>'
        f'<img src="/media/{row["stored_name"]}"'
    ) in page.text


async def test_a_reply_with_a_photo_gets_its_image(node: InboxNode, masto: FakeInstance) -> None:
    serve_photo(masto)
    alice, bob = masto.add_actor("alice"), masto.add_actor("bob")
    opening = ap.mastodon_note(masto, alice, node.group("medical"), "Question")
    await deliver(node, masto, opening, alice)
    reply = photo_note(
        masto, bob, node.group("medical"), masto.url(PHOTO), in_reply_to=opening["object"]["id"]
    )

    await deliver(node, masto, reply, bob)
    await run_media(node)

    reply_post = await node.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", reply["object"]["id"])
    assert [(r["post_id"], r["status"]) for r in await rows(node)] == [(reply_post, "stored")]


async def test_the_worker_is_woken_by_notify(node: InboxNode, masto: FakeInstance) -> None:
    # Given the media worker running (it polls only every 30 s)
    worker = federation_worker.MediaWorker(node.settings, node.pool)
    await worker.start()
    try:
        await asyncio.wait_for(worker.asleep.wait(), 5)  # it has looked once and is now asleep
        serve_photo(masto)
        alice = masto.add_actor("alice")

        # When a post with a photo arrives
        await deliver(node, masto, photo_note(masto, alice, node.group("medical"), masto.url(PHOTO)), alice)

        # Then the photo is stored within moments
        async def stored() -> bool:
            return bool((await rows(node))[0]["status"] == "stored")

        await eventually(stored, "the photo is stored", within=5)
    finally:
        await worker.stop()
    assert (await rows(node))[0]["status"] == "stored"
    assert not worker.running


# -- never fetched: policy, links ----------------------------------------------------------


async def block_media(node: InboxNode, domain: str) -> None:
    async with node.pool.acquire() as conn:
        await policy.block_domain(conn, policy.BlockRequest(domain, "reject_media"))


@pytest.mark.parametrize("blocked", ["media host", "author's domain"])
async def test_reject_media_means_never_fetched_and_shown_as_a_link(
    node: InboxNode, masto: FakeInstance, lemmy: FakeInstance, browser: httpx.AsyncClient, blocked: str
) -> None:
    # Given a toot by a Mastodon user whose photo is hosted on another server (a CDN),
    # and a reject_media block on one of the two
    serve_photo(lemmy)
    alice = masto.add_actor("alice")
    await block_media(node, lemmy.domain if blocked == "media host" else masto.domain)
    activity = photo_note(masto, alice, node.group("medical"), lemmy.url(PHOTO))
    await deliver(node, masto, activity, alice)

    # When the media worker runs
    await run_media(node)

    # Then the photo is refused without any request, and the page links to it
    assert image_requests(lemmy) == []
    [row] = await rows(node)
    assert row["status"] == "refused" and files(node) == []
    page = await browser.get(f"/t/{await thread_of(node, activity['object']['id'])}")
    link = f'<a href="{lemmy.url(PHOTO)}" rel="nofollow noopener noreferrer">Image distante non affichée : ouvrir le lien</a>'
    assert link in page.text
    assert "<img" not in page.text


async def test_a_redirect_to_a_reject_media_domain_is_not_followed(
    node: InboxNode, masto: FakeInstance, lemmy: FakeInstance
) -> None:
    serve_photo(lemmy)
    masto.redirect(PHOTO, lemmy.url(PHOTO))
    await block_media(node, lemmy.domain)
    alice = masto.add_actor("alice")
    await deliver(node, masto, photo_note(masto, alice, node.group("medical"), masto.url(PHOTO)), alice)

    await run_media(node)

    assert len(image_requests(masto)) == 1 and image_requests(lemmy) == []
    assert [r["status"] for r in await rows(node)] == ["refused"]


async def test_a_lemmy_link_post_is_shown_as_a_link_and_never_fetched(
    node: InboxNode, lemmy: FakeInstance, browser: httpx.AsyncClient
) -> None:
    bob = lemmy.add_actor("bob")
    activity = ap.lemmy_page(lemmy, bob, node.group("medical"), "Rapport annuel", "À lire.")
    activity["object"]["attachment"] = [{"type": "Link", "href": lemmy.url("/rapport-2024")}]
    await deliver(node, lemmy, activity, bob)

    assert await run_media(node) == 0

    [row] = await rows(node)
    assert (row["kind"], row["status"]) == ("link", "link")
    assert image_requests(lemmy, "/rapport-2024") == []
    page = await browser.get(f"/t/{await thread_of(node, activity['object']['id'])}")
    url = lemmy.url("/rapport-2024")
    assert f'<a href="{url}" rel="nofollow noopener noreferrer">{url}</a>' in page.text


# -- refused answers, retries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("text/html", None, "unexpected content type"),
        ("image/jpeg", b"<!doctype html><html><body>Pas une image</body></html>", "not an image"),
        ("image/jpeg", None, "size limit"),
    ],
)
async def test_answers_that_are_not_small_images_are_refused(
    node: InboxNode,
    masto: FakeInstance,
    monkeypatch: pytest.MonkeyPatch,
    content_type: str,
    body: bytes | None,
    why: str,
) -> None:
    if why == "size limit":
        monkeypatch.setattr(media, "MAX_BYTES", 1000)
    photo = jpeg_with_metadata()
    masto.add_response(PHOTO, body if body is not None else photo, content_type=content_type)
    alice = masto.add_actor("alice")
    await deliver(node, masto, photo_note(masto, alice, node.group("medical"), masto.url(PHOTO)), alice)

    await run_media(node)

    [row] = await rows(node)
    assert row["status"] == "refused" and why in row["error"]
    assert row["attempts"] == 1 and files(node) == []


async def test_server_errors_are_retried_later_and_a_404_is_final(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a photo its server cannot give right now
    masto.add_response(PHOTO, b"busy", status=503, content_type="text/plain")
    alice = masto.add_actor("alice")
    await deliver(node, masto, photo_note(masto, alice, node.group("medical"), masto.url(PHOTO)), alice)

    # When the worker runs: the row waits for its next attempt
    await run_media(node)
    [row] = await rows(node)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    delay = await node.pool.fetchval("SELECT next_attempt_at - now() FROM remote_media")
    assert delay.total_seconds() > 50
    assert await run_media(node) == 0  # not due yet

    # When it falls due and the server now answers 404: final
    masto.add_response(PHOTO, b"gone", status=404, content_type="text/plain")
    await node.pool.execute("UPDATE remote_media SET next_attempt_at = now()")
    await run_media(node)
    [row] = await rows(node)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert len(image_requests(masto)) == 2


def strict_settings(tmp_path: Path) -> Settings:
    return load(
        {
            "VBG_BASE_URL": "https://vbg.example",
            "VBG_DATA_DIR": str(tmp_path / "strict"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "0",
        }
    )


async def test_loopback_media_are_refused_when_private_peers_are_not_allowed(
    node: InboxNode, masto: FakeInstance, tmp_path: Path
) -> None:
    # Given a photo on a loopback address, and a fetcher with the production guards
    serve_photo(masto)
    alice = masto.add_actor("alice")
    await deliver(node, masto, photo_note(masto, alice, node.group("medical"), masto.url(PHOTO)), alice)
    settings = strict_settings(tmp_path)
    signer = alice.signer
    async with Fetcher(settings, signer) as strict:
        # When the worker fetches through it: refused, final, nothing sent
        await run_media(node, strict)
        # and however the URL is written: http refused, loopback refused even over an
        # allowed scheme, a name resolving to loopback refused at connect time
        for url in (masto.url(PHOTO), masto.url(PHOTO).replace("http:", "https:")):
            with pytest.raises(FetchRefused):
                await strict.fetch_media(url, IMAGE_TYPES, 1000)
    async with Fetcher(settings, signer, policy=AddressPolicy(allow_http=True)) as http_only:
        for url in (masto.url(PHOTO), f"http://localhost:{masto.port}{PHOTO}"):
            with pytest.raises(FetchRefused, match="forbidden address"):
                await http_only.fetch_media(url, IMAGE_TYPES, 100_000)

    assert [r["status"] for r in await rows(node)] == ["refused"]
    assert image_requests(masto) == []


# -- who may see it ------------------------------------------------------------------------


async def test_members_only_media_are_served_to_members_only(
    node: InboxNode, masto: FakeInstance, browser: httpx.AsyncClient
) -> None:
    # Given a photo posted by an approved partner instance in a members-only community
    await make_community(node.pool, "psy", visibility="members")
    async with node.pool.acquire() as conn:
        await follow_handler.approve_instance(conn, masto.domain, None)
    _, _, row = await stored_photo(node, masto, "psy")
    path = f"/media/{row['stored_name']}"

    # Then a visitor gets the same 404 as for a file that does not exist
    denied = await browser.get(path)
    missing = await browser.get("/media/" + "A" * 32 + ".jpg")
    assert denied.status_code == missing.status_code == 404
    assert without_next(denied.text) == without_next(missing.text)
    assert (await browser.get("/media/..%2Fsecret_key")).status_code == 404

    # and an approved member gets the image, cached privately and briefly
    await make_user(node.pool, "amina")
    await login(browser, "amina")
    served = await browser.get(path)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "private, max-age=600"


async def test_media_of_a_suspended_domain_are_not_served(
    node: InboxNode, masto: FakeInstance, browser: httpx.AsyncClient
) -> None:
    _, _, row = await stored_photo(node, masto)
    assert (await browser.get(f"/media/{row['stored_name']}")).status_code == 200

    async with node.pool.acquire() as conn:
        await policy.suspend_domain(conn, masto.domain)

    assert (await browser.get(f"/media/{row['stored_name']}")).status_code == 404


# -- deletion and edits ---------------------------------------------------------------------


async def test_deleting_the_post_removes_its_file(
    node: InboxNode, masto: FakeInstance, browser: httpx.AsyncClient
) -> None:
    alice, activity, row = await stored_photo(node, masto)
    [stored] = files(node)

    # When the author deletes the toot
    await deliver(node, masto, ap.delete_of(masto, alice, activity["object"]["id"]), alice)

    # Then the row is gone at once, the file is no longer served, and the worker deletes it
    assert await rows(node) == []
    assert (await browser.get(f"/media/{row['stored_name']}")).status_code == 404
    assert await run_media(node) == 1
    assert not stored.exists() and files(node) == []
    assert await node.count("remote_media_trash") == 0


async def test_a_moderator_removal_or_the_authors_account_deletion_removes_the_files(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given two toots with photos by alice, one of them removed by a moderator
    serve_photo(masto)
    alice = masto.add_actor("alice")
    first = photo_note(masto, alice, node.group("medical"), masto.url(PHOTO))
    second = photo_note(masto, alice, node.group("medical"), masto.url(PHOTO))
    await deliver(node, masto, first, alice)
    await deliver(node, masto, second, alice)
    await run_media(node)
    assert len(files(node)) == 2
    moderator = User(
        await make_user(node.pool, "modo", role="moderator"), "modo", "Modo", "moderator", "approved"
    )
    post_id = await node.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", first["object"]["id"])

    async with node.pool.acquire() as conn:
        await threads.delete_post(conn, post_id, moderator, "Photo d'une personne identifiable")
    await run_media(node)

    assert len(await rows(node)) == 1 and len(files(node)) == 1

    # When alice's account is deleted: her other post's file goes too
    delete_actor = {"id": ap.activity_id(masto, "Delete"), "type": "Delete", "actor": alice.id,
                    "to": [ap.PUBLIC], "object": alice.id}  # fmt: skip
    await deliver(node, masto, delete_actor, alice)
    await run_media(node)

    assert await rows(node) == [] and files(node) == []


async def test_an_update_replaces_the_attachment(
    node: InboxNode, masto: FakeInstance, browser: httpx.AsyncClient
) -> None:
    # Given a stored photo
    serve_photo(masto, "/files/nouvelle.jpg")
    alice, activity, old = await stored_photo(node, masto)
    [old_file] = files(node)

    # When the author edits the toot with another photo
    edited = dict(activity["object"])
    edited["attachment"] = [{"type": "Document", "mediaType": "image/jpeg", "url": masto.url("/files/nouvelle.jpg"), "name": "Nouvelle affiche"}]  # fmt: skip
    await deliver(node, masto, ap.update_of(masto, alice, edited), alice)
    await run_media(node)

    # Then the old row and file are gone and the new photo is stored and shown
    [new] = await rows(node)
    assert new["id"] != old["id"] and new["status"] == "stored" and new["name"] == "Nouvelle affiche"
    assert not old_file.exists() and [f.name for f in files(node)] == [new["stored_name"]]
    page = await browser.get(f"/t/{await thread_of(node, activity['object']['id'])}")
    assert f'<img src="/media/{new["stored_name"]}" alt="Nouvelle affiche"' in page.text
    assert old["stored_name"] not in page.text

    # When an edit keeps the photo (same URL): no second fetch, the same file
    edited["content"] = "<p>Texte corrigé</p>"
    await deliver(node, masto, ap.update_of(masto, alice, edited), alice)
    assert await run_media(node) == 0
    assert [r["id"] for r in await rows(node)] == [new["id"]]
    assert len(image_requests(masto, "/files/nouvelle.jpg")) == 1


async def test_a_file_written_after_its_post_was_deleted_does_not_stay(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a photo whose server answers slowly
    data = jpeg_with_metadata()
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(body=data, content_type="image/jpeg")

    masto.add_route("GET", PHOTO, slow)
    alice = masto.add_actor("alice")
    activity = photo_note(masto, alice, node.group("medical"), masto.url(PHOTO))
    await deliver(node, masto, activity, alice)

    # When the post is deleted while the worker is fetching its photo
    fetching = asyncio.create_task(run_media(node))
    await started.wait()
    await deliver(node, masto, ap.delete_of(masto, alice, activity["object"]["id"]), alice)
    release.set()
    await fetching

    # Then nothing is left behind
    assert await rows(node) == [] and files(node) == []
