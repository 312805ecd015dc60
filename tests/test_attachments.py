"""Attachments read from remote objects: the shapes Mastodon, Lemmy, Mbin, WordPress and
others send (real payloads from ../shared/samples and tests/samples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from federation.attachments import MAX_ATTACHMENTS, NAME_MAX, Attachment, from_ap
from tests.conftest import ROOT, SHARED_SAMPLES

OUR_SAMPLES = ROOT / "tests" / "samples"


def shared(path: str) -> dict[str, Any]:
    file = SHARED_SAMPLES / path
    if not file.exists():
        pytest.skip(f"shared samples folder absent ({SHARED_SAMPLES})")
    doc: dict[str, Any] = json.loads(file.read_text())
    return doc


def ours(path: str) -> dict[str, Any]:
    """The object of one of our samples (the activity's, when it embeds one)."""
    doc: dict[str, Any] = json.loads((OUR_SAMPLES / path).read_text())
    obj = doc.get("object")
    return obj if isinstance(obj, dict) else doc


def test_a_mastodon_photo_is_an_image_with_its_alt_text() -> None:
    note = shared("mastodon/objects/note_2.json")

    [photo] = from_ap(note)

    assert photo.kind == "image" and photo.status == "pending"
    assert photo.media_type == "image/jpeg"
    assert photo.url.startswith("https://cdn.masto.host/") and photo.url.endswith(".jpg")
    assert photo.name.startswith("The KDE dragons Katie and Konqi")
    assert photo.sensitive is False


def test_lemmy_image_and_link_attachments_keep_their_kinds_and_the_page_image_is_not_added() -> None:
    page = shared("lemmy/objects/page_image_and_link.json")

    image, link = from_ap(page)

    assert (image.kind, image.url) == ("image", "https://enterprise.lemmy.ml/pictrs/image/eOtYb9iEiB.png")
    assert (link.kind, link.status, link.url) == ("link", "link", "https://example.com/some-article")


def test_a_lemmy_link_post_is_a_link_never_an_image_to_fetch() -> None:
    create = shared("lemmy/activities/create_or_update/create_page.json")

    [link] = from_ap(create["object"])

    assert link == Attachment("https://lemmy.ml/pictrs/image/xl8W7FZfk9.jpg", "link", "", "", False)


def test_an_mbin_link_to_a_pdf_is_a_link() -> None:
    [link] = from_ap(ours("mbin/create_page_link_to_group.json"))

    assert (link.kind, link.url) == ("link", "https://observatoire.example/rapport-2024.pdf")


def test_wordpress_images_are_images() -> None:
    page = shared("wordpress/objects/page.json")

    found = from_ap(page)

    assert found and all(a.kind == "image" for a in found)
    assert found[0].name == "A fleet of varied spacships"


def test_empty_attachments_of_the_usual_posts_give_nothing() -> None:
    for path in (
        "mastodon/create_note_reply_mentioning_group.json",
        "lemmy/page.json",
        "nodebb/create_note_reply.json",
    ):
        assert from_ap(ours(path)) == ()


def test_a_page_image_is_used_only_without_attachments() -> None:
    page = {"type": "Page", "image": {"type": "Image", "url": "https://lemmy.example/pictrs/image/a.png"}}

    [image] = from_ap(page)

    assert (image.kind, image.url, image.media_type) == (
        "image",
        "https://lemmy.example/pictrs/image/a.png",
        "",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x.webp", "https://a.example/x.webp"),
        (
            {"type": "Link", "href": "https://a.example/y.png", "mediaType": "image/png"},
            "https://a.example/y.png",
        ),
        (
            [
                {"type": "Link", "href": "https://a.example/page.html", "mediaType": "text/html"},
                {"type": "Link", "href": "https://a.example/z.gif", "mediaType": "image/gif"},
            ],
            "https://a.example/z.gif",
        ),
    ],
)
def test_url_as_a_string_a_link_object_or_a_list_of_them(url: Any, expected: str) -> None:
    [found] = from_ap(
        {"type": "Note", "attachment": {"type": "Document", "mediaType": "image/webp", "url": url}}
    )

    assert (found.url, found.kind) == (expected, "image")


def test_only_http_urls_at_most_four_distinct_and_names_capped() -> None:
    entries = [
        {"type": "Document", "mediaType": "image/png", "url": "javascript:alert(1)"},
        {"type": "Document", "mediaType": "image/png", "url": "data:image/png;base64,AAAA"},
        {"type": "Document", "mediaType": "image/png", "url": "https://a.example/1.png", "name": "x" * 5000},
        {"type": "Document", "mediaType": "image/png", "url": "https://a.example/1.png"},
        *[
            {"type": "Document", "mediaType": "image/jpeg", "url": f"https://a.example/{i}.jpg"}
            for i in range(2, 9)
        ],
    ]

    found = from_ap({"type": "Note", "attachment": entries, "sensitive": True})

    assert len(found) == MAX_ATTACHMENTS
    assert [a.url for a in found] == [f"https://a.example/{n}" for n in ("1.png", "2.jpg", "3.jpg", "4.jpg")]
    assert len(found[0].name) == NAME_MAX
    assert all(a.sensitive for a in found)


def test_other_media_types_are_links() -> None:
    video = {"type": "Document", "mediaType": "video/mp4", "url": "https://a.example/v.mp4", "name": "Vidéo"}
    svg = {"type": "Document", "mediaType": "image/svg+xml", "url": "https://a.example/i.svg"}

    found = from_ap({"type": "Note", "attachment": [video, svg]})

    assert [(a.kind, a.name) for a in found] == [("link", "Vidéo"), ("link", "")]


def test_shared_samples_never_break_the_parser() -> None:
    if not SHARED_SAMPLES.exists():
        pytest.skip(f"shared samples folder absent ({SHARED_SAMPLES})")
    for file in sorted(Path(SHARED_SAMPLES).rglob("*.json")):
        doc = json.loads(file.read_text())
        obj = doc.get("object") if isinstance(doc.get("object"), dict) else doc
        for found in from_ap(obj):
            assert found.url.startswith(("https://", "http://")) and found.kind in ("image", "link")
