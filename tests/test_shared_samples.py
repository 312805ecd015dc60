"""The 124 real payloads of ../shared/samples (14 servers, collected by Lemmy's test assets).

Given each document as its server emits it, validation either accepts it (its type
comes back) or refuses it with a ValidationError — never any other exception. The
files are read in place (never copied into the project); the module skips where the
folder is absent (a fresh clone elsewhere). CI has it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from federation.validation import (
    COLLECTION_TYPES,
    UnsupportedType,
    ValidationError,
    normalise,
    validate_incoming,
    validate_object,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "samples"

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"shared samples folder {SHARED} is absent (it ships beside the project in CI)",
)

FILES = sorted(SHARED.rglob("*.json")) if SHARED.is_dir() else []

# Every file not listed here must validate. Each refusal is deliberate: the reason
# is what validation reports.
REFUSED: dict[str, str] = {
    # Lemmy moderation verbs we do not handle (report resolution, moderator warning).
    "lemmy/activities/community/resolve_report_page.json": "unsupported activity type Resolve",
    "lemmy/activities/community/warn.json": "unsupported activity type Warn",
    # Lemmy 0.19 private messages are ChatMessage objects; our private conversations are ours only.
    "lemmy/activities/create_or_update/create_private_message_0.19.json": "unsupported object type ChatMessage",
    # Filed under activities/ but a bare Note: not an activity an inbox can receive.
    "mastodon/activities/private_message.json": "unsupported activity type Note",
    # Object types a forum does not store: events, videos, Pleroma chats.
    "mobilizon/objects/event.json": "unsupported object type Event",
    "peertube/objects/video.json": "unsupported object type Video",
    "pleroma/objects/chat_message.json": "unsupported object type ChatMessage",
}


def name_of(path: Path) -> str:
    return path.relative_to(SHARED).as_posix()


def is_activity(path: Path) -> bool:
    return path.relative_to(SHARED).parts[1] == "activities"


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), name_of(path)
    return doc


def validate(path: Path, doc: object) -> str:
    return validate_incoming(doc) if is_activity(path) else validate_object(doc)


def test_the_folder_holds_the_124_payloads_of_its_readme() -> None:
    assert len(FILES) == 124
    assert all(name in map(name_of, FILES) for name in REFUSED)


@pytest.mark.parametrize("path", FILES, ids=name_of)
def test_each_payload_validates_or_is_refused_cleanly(path: Path) -> None:
    # Given a real payload
    doc = load(path)

    # When it is validated
    expected_refusal = REFUSED.get(name_of(path))
    if expected_refusal is None:
        # Then a supported one comes back with its type and normalises
        assert validate(path, doc) == doc["type"]
        normalised = normalise(doc)
        assert all(isinstance(normalised[key], list) for key in ("to", "cc"))
    else:
        # Then an unsupported one is refused as such (inbox: 202 and ignore)
        with pytest.raises(UnsupportedType) as refused:
            validate(path, doc)
        assert refused.value.reason == expected_refusal
        assert refused.value.status == 400


SUPPORTED_ACTIVITIES = {
    "Create",
    "Update",
    "Delete",
    "Like",
    "Dislike",
    "Undo",
    "Follow",
    "Accept",
    "Announce",
    "Flag",
}
SUPPORTED_OBJECTS = {"Note", "Page", "Article", "Group", "Person", "Application", "Organization", "Tombstone"}


def test_the_everyday_activities_and_objects_are_supported() -> None:
    # Given every activity and object of the kinds the forum lives on
    everyday = [
        path
        for path in FILES
        if load(path).get("type") in (SUPPORTED_ACTIVITIES if is_activity(path) else SUPPORTED_OBJECTS)
    ]

    # Then (bar the deliberate refusals) they validate, and there are many of them
    accepted = [path for path in everyday if name_of(path) not in REFUSED]
    assert len(accepted) >= 95
    for path in accepted:
        doc = load(path)
        assert validate(path, doc) == doc["type"], name_of(path)


COLLECTIONS = [path for path in FILES if path.relative_to(SHARED).parts[1] == "collections"]


@pytest.mark.parametrize("path", COLLECTIONS, ids=name_of)
def test_collections_validate_against_the_collection_schema(path: Path) -> None:
    doc = load(path)

    assert doc["type"] in COLLECTION_TYPES
    assert validate_object(doc) == doc["type"]


# Values that break what we rely on, put in place of each key we rely on.
JUNK: list[object] = [None, 5, True, "not a uri", {}, ["x", 3], {"id": 7}, "https://ok.example/\n"]
KEYS = (
    "@context",
    "id",
    "type",
    "actor",
    "object",
    "to",
    "cc",
    "content",
    "published",
    "inReplyTo",
    "attributedTo",
    "tag",
    "audience",
    "context",
    "inbox",
    "publicKey",
    "orderedItems",
)


@pytest.mark.parametrize("path", FILES, ids=name_of)
def test_damaged_payloads_are_refused_with_validation_errors_only(path: Path) -> None:
    # Given a real payload with one relied-on key replaced by junk (or removed)
    original = load(path)
    for key in (k for k in KEYS if k in original):
        for junk in [*JUNK, ...]:
            doc = dict(original)
            if junk is ...:
                del doc[key]
            else:
                doc[key] = junk
            # When it is validated, then it passes or fails as a ValidationError, nothing else
            try:
                validate(path, doc)
            except ValidationError as refused:
                assert refused.status == 400
                assert refused.reason
