"""The wire shapes: schemas/ and federation.validation.

Given the payloads of tests/samples/ (written from the public documentation and code
of Mastodon, Lemmy, PieFed, Mbin and NodeBB), every one validates; malformed
documents are refused with a ValidationError naming the failing path; our emitted
shapes validate against schemas/emitted/.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from federation import validation
from federation.validation import (
    PUBLIC,
    UnsupportedType,
    ValidationError,
    is_public,
    is_supported,
    normalise,
    validate_emitted,
    validate_incoming,
    validate_object,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "samples"
SCHEMAS = ROOT / "schemas"
SOFTWARE = ("mastodon", "lemmy", "piefed", "mbin", "nodebb")

SAMPLE_FILES = sorted(SAMPLES.rglob("*.json"))
SCHEMA_FILES = sorted(SCHEMAS.rglob("*.json"))


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def validate_sample(doc: dict[str, Any]) -> str:
    """Activities go through the inbox check, everything else through the object check."""
    if is_supported(doc.get("type")):
        return validate_incoming(doc)
    return validate_object(doc)


# --- the schema files themselves ----------------------------------------------------


def test_every_schema_is_draft_2020_12_documented_and_named_after_its_path() -> None:
    # Given the schema folder, when every file is loaded by the validation module
    names = validation.load_all()

    # Then each one is a documented Draft 2020-12 schema whose $id mirrors its path
    assert len(names) == len(SCHEMA_FILES) >= 40
    for path in SCHEMA_FILES:
        schema = load(path)
        relative = path.relative_to(SCHEMAS).as_posix()
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", relative
        assert schema["$id"] == validation.SCHEMA_BASE + relative, relative
        assert schema.get("description") and schema.get("title"), relative


def test_one_schema_per_accepted_verb_and_per_object_kind() -> None:
    verbs = {p.stem for p in (SCHEMAS / "activities").glob("*.json")}
    objects = {p.stem for p in (SCHEMAS / "objects").glob("*.json")}
    emitted = {p.stem for p in (SCHEMAS / "emitted").glob("*.json")}

    assert verbs == {t.lower() for t in validation.ACTIVITY_TYPES}
    assert objects == set(validation.OBJECT_TYPES.values())
    # context and key_only_actor are named explicitly (validate_emitted(doc, schema))
    assert set(validation.EMITTED_TYPES.values()) | {"context", "key_only_actor", "defs"} == emitted


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_schemas_only_refer_to_each_other_never_to_the_network() -> None:
    # Given every $ref of every schema
    refs = [ref for path in SCHEMA_FILES for ref in _refs(load(path))]

    # Then all are relative (resolved inside schemas/) ...
    assert refs
    assert all("://" not in ref for ref in refs), [r for r in refs if "://" in r]
    # ... and an outside URI fails instead of being fetched
    with pytest.raises(jsonschema_rs.ReferencingError):
        validation._resolver().lookup("https://json-schema.org/draft/2020-12/schema#")


def test_the_registry_retriever_refuses_instead_of_fetching() -> None:
    # Given a schema referring to a server on loopback (port 9: discard, nothing listens)
    outside = "http://127.0.0.1:9/other.json"
    resources = [("https://schemas.vbg-node.invalid/test.json", {"$ref": outside})]

    # When a registry is built with our retriever, then it refuses by name, never fetching
    with pytest.raises(ValueError, match="is never fetched"):
        jsonschema_rs.Registry(resources, retriever=validation._refuse_retrieval)


# --- the samples we wrote ------------------------------------------------------------


def test_samples_cover_the_five_servers() -> None:
    assert len(SAMPLE_FILES) >= 30
    assert {p.parent.name for p in SAMPLE_FILES} == set(SOFTWARE)
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for path in SAMPLE_FILES:
        assert path.relative_to(SAMPLES).as_posix() in readme, f"{path.name}: provenance missing from README"


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_every_sample_validates(path: Path) -> None:
    # Given a payload shaped like what its server sends
    doc = load(path)

    # When it is validated, then its type comes back
    assert validate_sample(doc) == doc["type"]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_every_sample_normalises_to_lists_and_ids(path: Path) -> None:
    doc = load(path)
    before = copy.deepcopy(doc)

    result = normalise(doc)

    assert doc == before
    for key in ("to", "cc", "bto", "bcc"):
        assert isinstance(result[key], list)
        assert not any(a in ("as:Public", "Public") for a in result[key])
    assert result.get("actor") is None or isinstance(result["actor"], str)


# --- refusals --------------------------------------------------------------------------


def create_note() -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "https://remote.example/activities/1",
        "type": "Create",
        "actor": "https://remote.example/users/ana",
        "to": [PUBLIC],
        "cc": ["https://vbg.example/c/accompagnement"],
        "object": {
            "id": "https://remote.example/notes/1",
            "type": "Note",
            "attributedTo": "https://remote.example/users/ana",
            "content": "<p>Bonjour</p>",
            "inReplyTo": "https://vbg.example/t/1",
            "published": "2025-02-11T09:41:07Z",
            "to": [PUBLIC],
            "tag": [{"type": "Mention", "href": "https://vbg.example/c/accompagnement"}],
        },
    }


def drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def put(value: object, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing id", drop("id"), "id: missing"),
    ("id not a URI", put("activity-1", "id"), "id: must be an absolute http(s) URI"),
    (
        "id with a trailing newline",
        put("https://remote.example/a\n", "id"),
        "id: must be an absolute http(s) URI",
    ),
    ("id with another scheme", put("ftp://remote.example/a", "id"), "id: must be an absolute http(s) URI"),
    (
        "id with user information",
        put("https://vbg.example@remote.example/a", "id"),
        "id: must be an absolute",
    ),
    ("actor missing", drop("actor"), "actor: missing"),
    ("actor object without id", put({"type": "Person"}, "actor"), "actor.id: missing"),
    ("actor a number", put(7, "actor"), "actor: must be a URI string or an object with an id"),
    ("object missing on Create", drop("object"), "object: missing"),
    (
        "Create with an object id only",
        put("https://remote.example/notes/1", "object"),
        "object: must be an embedded",
    ),
    ("to not a string or array", put(5, "to"), "to: must be a URI or an array of URIs"),
    ("to holding a number", put([PUBLIC, 3], "to"), "to[1]: must be an http(s) URI or the public address"),
    ("cc an object", put({"id": PUBLIC}, "cc"), "cc: must be a URI or an array of URIs"),
    ("content not a string", put(42, "object", "content"), "object.content: must be a string or null"),
    ("content a map", put({"fr": "x"}, "object", "content"), "object.content: must be a string or null"),
    (
        "published not a date-time",
        put("hier", "object", "published"),
        "object.published: must be an RFC 3339",
    ),
    ("published without zone", put("2025-02-11T09:41:07", "object", "published"), "object.published"),
    (
        "inReplyTo a number",
        put(12, "object", "inReplyTo"),
        "object.inReplyTo: must be an http(s) URI or null",
    ),
    ("post without author", drop("object", "attributedTo"), "object.attributedTo: missing"),
    ("post id not a URI", put("note-1", "object", "id"), "object.id: must be an absolute http(s) URI"),
    (
        "Mention without a URI href",
        put([{"type": "Mention", "href": "ana"}], "object", "tag"),
        "object.tag[0].href",
    ),
    ("tag a string", put("#vbg", "object", "tag"), "object.tag: must be a tag, an array of tags or null"),
    ("@context a number", put(1, "@context"), "@context: must be a JSON-LD @context"),
    ("type not a string", put(12, "type"), "type: missing or not a string"),
    ("type an empty array", put([], "type"), "type: missing or not a string"),
    ("type missing", drop("type"), "type: missing or not a string"),
]


@pytest.mark.parametrize(("mutate", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_activity_is_refused_naming_the_path(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    # Given a correct Create{Note} broken in one place
    doc = create_note()
    mutate(doc)

    # When it is validated, then a 400 ValidationError names the failing path
    with pytest.raises(ValidationError) as refused:
        validate_incoming(doc)
    assert not isinstance(refused.value, UnsupportedType)
    assert refused.value.status == 400
    assert expected in refused.value.reason
    assert refused.value.message.startswith("Document ActivityPub invalide")


def test_the_correct_base_document_validates() -> None:
    assert validate_incoming(create_note()) == "Create"


@pytest.mark.parametrize("document", [None, "Create", 3, ["Create"]])
def test_a_document_that_is_not_an_object_is_refused(document: object) -> None:
    with pytest.raises(ValidationError, match="is not a JSON object"):
        validate_incoming(document)


def test_unknown_activity_type_is_unsupported_not_malformed() -> None:
    doc = create_note() | {"type": "Frobnicate"}

    with pytest.raises(UnsupportedType) as refused:
        validate_incoming(doc)

    assert refused.value.reason == "unsupported activity type Frobnicate"
    assert refused.value.status == 400
    assert not is_supported("Frobnicate")
    assert is_supported("Create") and is_supported("Dislike") and is_supported("Lock")


def test_create_of_an_unknown_object_type_is_unsupported() -> None:
    # Lemmy 0.19 private messages are ChatMessage objects: not ours to handle
    doc = create_note()
    doc["object"]["type"] = "ChatMessage"

    with pytest.raises(UnsupportedType, match="unsupported object type ChatMessage"):
        validate_incoming(doc)


def test_hostile_values_are_never_echoed_in_the_message() -> None:
    doc = create_note() | {"type": "<script>alert(1)</script>"}
    with pytest.raises(UnsupportedType) as unsupported:
        validate_incoming(doc)

    doc = create_note() | {"id": "<img src=x onerror=alert(1)>"}
    with pytest.raises(ValidationError) as invalid:
        validate_incoming(doc)

    for refusal in (unsupported.value, invalid.value):
        assert "<" not in refusal.message and "<" not in refusal.reason


def nested_announces(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "https://remote.example/p/1",
        "type": "Page",
        "attributedTo": "https://remote.example/u/a",
    }
    for level in range(levels):
        doc = {
            "id": f"https://remote.example/activities/{level}",
            "type": "Announce",
            "actor": "https://remote.example/c/g",
            "object": doc,
        }
    return doc


def test_nesting_is_bounded_without_exhausting_the_stack() -> None:
    # Given announces nested up to the limit, they validate
    assert validate_incoming(nested_announces(validation.MAX_DEPTH - 1)) == "Announce"

    # Given a document nested far deeper, it is refused cleanly (no RecursionError)
    deep: list[Any] = []
    for _ in range(50_000):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested deeper than"):
        validate_incoming(create_note() | {"extra": deep})
    with pytest.raises(ValidationError, match="nested deeper than"):
        validate_incoming(nested_announces(validation.MAX_DEPTH + 1))


# --- what we accept that peers vary on -------------------------------------------------


@pytest.mark.parametrize("public", [PUBLIC, "as:Public", "Public"])
def test_every_spelling_of_public_is_accepted_and_normalised(public: str) -> None:
    doc = create_note() | {"to": public, "cc": [public, "https://remote.example/users/ana/followers"]}

    assert validate_incoming(doc) == "Create"
    assert is_public(public)
    normalised = normalise(doc)
    assert normalised["to"] == [PUBLIC]
    assert normalised["cc"] == [PUBLIC, "https://remote.example/users/ana/followers"]


@pytest.mark.parametrize(
    "context",
    [
        "https://www.w3.org/ns/activitystreams",
        ["https://www.w3.org/ns/activitystreams", {"toot": "http://joinmastodon.org/ns#"}],
        {"@vocab": "https://www.w3.org/ns/activitystreams#"},
    ],
)
def test_context_is_accepted_as_string_array_or_object(context: object) -> None:
    assert validate_incoming(create_note() | {"@context": context}) == "Create"


def test_extra_fields_from_peers_pass() -> None:
    doc = create_note() | {"lemmy:distinguished": True, "signature": {"type": "RsaSignature2017"}}
    doc["object"] |= {"sensitive": False, "language": {"identifier": "fr"}, "flair": []}

    assert validate_incoming(doc) == "Create"


def test_normalise_collapses_the_actor_and_walks_embedded_activities() -> None:
    inner = create_note() | {
        "actor": {"id": "https://remote.example/users/ana", "type": "Person"},
        "to": "as:Public",
    }
    announce = {
        "id": "https://remote.example/activities/9",
        "type": "Announce",
        "actor": {"id": "https://remote.example/c/g"},
        "audience": {"id": "https://remote.example/c/g"},
        "object": inner,
    }

    assert validate_incoming(announce) == "Announce"
    result = normalise(announce)

    assert result["actor"] == "https://remote.example/c/g"
    assert result["audience"] == ["https://remote.example/c/g"]
    assert result["to"] == [] and result["cc"] == []
    assert result["object"]["actor"] == "https://remote.example/users/ana"
    assert result["object"]["to"] == [PUBLIC]
    assert announce["actor"] == {"id": "https://remote.example/c/g"}


def test_undo_checks_the_embedded_activity_against_its_own_schema() -> None:
    undo: dict[str, Any] = {
        "id": "https://remote.example/activities/u1",
        "type": "Undo",
        "actor": "https://remote.example/users/ana",
        "object": {
            "id": "https://remote.example/likes/1",
            "type": "Like",
            "actor": "https://remote.example/users/ana",
        },
    }

    with pytest.raises(ValidationError, match="object.object: missing"):
        validate_incoming(undo)
    undo["object"]["object"] = "https://vbg.example/t/1"
    assert validate_incoming(undo) == "Undo"


def test_accept_matches_a_follow_given_by_id_or_embedded_without_id() -> None:
    base = {"id": "https://remote.example/a/1", "type": "Accept", "actor": "https://remote.example/c/g"}

    assert validate_incoming(base | {"object": "https://vbg.example/activities/f1"}) == "Accept"
    follow = {"type": "Follow", "actor": "https://vbg.example/actor", "object": "https://remote.example/c/g"}
    assert validate_incoming(base | {"object": follow}) == "Accept"
    with pytest.raises(ValidationError, match="object"):
        validate_incoming(base | {"object": follow | {"type": "Invite"}})


def test_add_and_remove_need_a_target() -> None:
    add = {
        "id": "https://remote.example/a/2",
        "type": "Add",
        "actor": "https://remote.example/u/mod",
        "object": "https://remote.example/p/1",
    }
    with pytest.raises(ValidationError, match="target: missing"):
        validate_incoming(add)
    assert validate_incoming(add | {"target": "https://remote.example/c/g/featured"}) == "Add"


def test_fetched_objects_are_checked_by_type() -> None:
    actor = {
        "id": "https://remote.example/users/ana",
        "type": "Person",
        "inbox": "https://remote.example/users/ana/inbox",
        "publicKey": {
            "id": "https://remote.example/users/ana#main-key",
            "owner": "https://remote.example/users/ana",
            "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
        },
    }

    assert validate_object(actor) == "Person"
    with pytest.raises(ValidationError, match="publicKey: missing"):
        validate_object({k: v for k, v in actor.items() if k != "publicKey"})
    with pytest.raises(ValidationError, match="inbox: must be an absolute http"):
        validate_object(actor | {"inbox": "/inbox"})
    with pytest.raises(UnsupportedType, match="unsupported object type Event"):
        validate_object({"id": "https://remote.example/e/1", "type": "Event"})
    collection = {"id": "https://remote.example/c/g/followers", "type": "Collection", "totalItems": 3}
    assert validate_object(collection) == "Collection"
    with pytest.raises(ValidationError, match="totalItems"):
        validate_object(collection | {"totalItems": -1})


# --- what we emit ------------------------------------------------------------------

BASE = "https://vbg.example"
AS = "https://www.w3.org/ns/activitystreams"
GROUP = f"{BASE}/c/juridique"
PEM = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"


def emitted_actor(kind: str, path: str) -> dict[str, Any]:
    uri = f"{BASE}{path}"
    doc: dict[str, Any] = {
        "@context": [AS, "https://w3id.org/security/v1"],
        "id": uri,
        "type": kind,
        "preferredUsername": path.rsplit("/", 1)[-1],
        "name": "Nom",
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "endpoints": {"sharedInbox": f"{BASE}/inbox"},
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": PEM},
    }
    if kind != "Application":
        doc["followers"] = f"{uri}/followers"
    if kind == "Group":
        doc |= {
            "attributedTo": f"{uri}/moderators",
            "featured": f"{uri}/featured",
            "manuallyApprovesFollowers": True,
            "postingRestrictedToMods": False,
        }
    return doc


def emitted_post(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"{BASE}/t/1" if kind == "Page" else f"{BASE}/p/2",
        "type": kind,
        "attributedTo": f"{BASE}/u/nadia",
        "to": [GROUP, f"{GROUP}/followers"],
        "cc": [],
        "content": "<p>Bonjour</p>",
        "contentMap": {"fr": "<p>Bonjour</p>"},
        "mediaType": "text/html",
        "source": {"content": "Bonjour", "mediaType": "text/markdown"},
        "audience": GROUP,
        "context": f"{BASE}/t/1/context",
        "tag": [{"type": "Mention", "href": GROUP, "name": "@juridique@vbg.example"}],
        "published": "2025-02-11T09:41:07+00:00",
    }
    if kind == "Page":
        doc["name"] = "Ordonnances de protection"
    else:
        doc["inReplyTo"] = f"{BASE}/t/1"
    return doc


def emitted_activity(kind: str, obj: object, actor: str = f"{BASE}/u/nadia") -> dict[str, Any]:
    return {
        "@context": AS,
        "id": f"{BASE}/activities/0d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "type": kind,
        "actor": actor,
        "to": [GROUP, f"{GROUP}/followers"],
        "cc": [],
        "object": obj,
    }


def top(doc: dict[str, Any]) -> dict[str, Any]:
    return {"@context": AS, **doc}


def remote_follow() -> dict[str, Any]:
    return {
        "id": "https://mastodon.example/f/1",
        "type": "Follow",
        "actor": "https://mastodon.example/users/claire",
        "object": GROUP,
    }


EMITTED: dict[str, tuple[dict[str, Any], str | None]] = {
    "person": (emitted_actor("Person", "/u/nadia"), None),
    "group": (emitted_actor("Group", "/c/juridique"), None),
    "application": (emitted_actor("Application", "/actor"), None),
    "page": (top(emitted_post("Page")), None),
    "note": (top(emitted_post("Note")), None),
    "tombstone": (top({"id": f"{BASE}/p/2", "type": "Tombstone", "formerType": "Note"}), None),
    "create page": (emitted_activity("Create", emitted_post("Page")), None),
    "create note": (emitted_activity("Create", emitted_post("Note")), None),
    "update note": (emitted_activity("Update", emitted_post("Note")), None),
    "update group": (emitted_activity("Update", emitted_actor("Group", "/c/juridique"), GROUP), None),
    "delete": (emitted_activity("Delete", f"{BASE}/p/2"), None),
    "delete tombstone": (emitted_activity("Delete", {"id": f"{BASE}/p/2", "type": "Tombstone"}), None),
    "like": (emitted_activity("Like", f"{BASE}/t/1"), None),
    "undo like": (emitted_activity("Undo", emitted_activity("Like", f"{BASE}/t/1")), None),
    "accept": (emitted_activity("Accept", remote_follow(), GROUP), None),
    "reject": (emitted_activity("Reject", remote_follow(), GROUP), None),
    "announce page": (emitted_activity("Announce", f"{BASE}/t/1", GROUP), None),
    "announce embedded page": (emitted_activity("Announce", emitted_post("Page"), GROUP), None),
    "add featured": (
        emitted_activity("Add", f"{BASE}/t/1", f"{BASE}/u/modo") | {"target": f"{GROUP}/featured"},
        None,
    ),
    "remove featured": (
        emitted_activity("Remove", f"{BASE}/t/1", f"{BASE}/u/modo") | {"target": f"{GROUP}/featured"},
        None,
    ),
    "announce relayed create": (
        emitted_activity("Announce", emitted_activity("Create", emitted_post("Note")), GROUP),
        None,
    ),
    "announce relayed remote like": (
        emitted_activity(
            "Announce",
            {
                "id": "https://lemmy.example/a/1",
                "type": "Like",
                "actor": "https://lemmy.example/u/bob",
                "object": f"{BASE}/t/1",
            },
            GROUP,
        ),
        None,
    ),
    "flag": (
        {
            "@context": AS,
            "id": f"{BASE}/activities/f1",
            "type": "Flag",
            "actor": f"{BASE}/actor",
            "object": ["https://mastodon.example/users/troll", "https://mastodon.example/statuses/1"],
            "content": "Harcèlement",
        },
        None,
    ),
    "context": (
        top(
            {
                "id": f"{BASE}/t/1/context",
                "type": "OrderedCollection",
                "attributedTo": GROUP,
                "totalItems": 2,
                "orderedItems": [f"{BASE}/t/1", f"{BASE}/p/2"],
            }
        ),
        "context",
    ),
    "outbox page": (
        top(
            {
                "id": f"{BASE}/c/juridique/outbox?page=1",
                "type": "OrderedCollectionPage",
                "partOf": f"{BASE}/c/juridique/outbox",
                "orderedItems": [],
            }
        ),
        None,
    ),
    "followers count": (
        top({"id": f"{GROUP}/followers", "type": "OrderedCollection", "totalItems": 12}),
        None,
    ),
}


@pytest.mark.parametrize(("doc", "schema"), list(EMITTED.values()), ids=list(EMITTED))
def test_our_emitted_shapes_validate(doc: dict[str, Any], schema: str | None) -> None:
    assert validate_emitted(doc, schema) == doc["type"]


def test_our_emitted_activities_are_also_accepted_by_peers_schemas() -> None:
    # What we send must pass our own inbox too (nodes federate with each other)
    for name, (doc, _schema) in EMITTED.items():
        if is_supported(doc["type"]):
            assert validate_incoming(doc) == doc["type"], name


def broken(name: str, mutate: Callable[[dict[str, Any]], None]) -> tuple[dict[str, Any], str | None]:
    doc, schema = copy.deepcopy(EMITTED[name])
    mutate(doc)
    return doc, schema


EMITTED_BROKEN: list[tuple[str, tuple[dict[str, Any], str | None], str]] = [
    ("no @context", broken("page", drop("@context")), "@context: missing"),
    (
        "public alias",
        broken("create note", put(["as:Public"], "to")),
        "to[0]: must be an absolute http(s) URI",
    ),
    (
        "actor embedded",
        broken("like", put({"id": f"{BASE}/u/nadia"}, "actor")),
        "actor: must be an absolute http(s) URI",
    ),
    ("page without French", broken("page", put({"en": "x"}, "contentMap")), "contentMap.fr: missing"),
    (
        "page without group mention",
        broken("page", put([], "tag")),
        "tag: must be an array of tags with a Mention",
    ),
    ("note without inReplyTo", broken("note", drop("inReplyTo")), "inReplyTo: missing"),
    ("page without title", broken("page", put("", "name")), "name"),
    ("group without moderators", broken("group", drop("attributedTo")), "attributedTo: missing"),
    ("group without sharedInbox", broken("group", put({}, "endpoints")), "endpoints.sharedInbox: missing"),
    (
        "accept embedding the actor",
        broken("accept", put({"id": "https://mastodon.example/users/claire"}, "object", "actor")),
        "object.actor: must be an absolute http(s) URI",
    ),
    ("context without group", broken("context", drop("attributedTo")), "attributedTo: missing"),
    ("pin without target", broken("add featured", drop("target")), "target: missing"),
]


@pytest.mark.parametrize(
    ("case", "expected"), [b[1:] for b in EMITTED_BROKEN], ids=[b[0] for b in EMITTED_BROKEN]
)
def test_emitted_shapes_we_must_not_send_are_refused(
    case: tuple[dict[str, Any], str | None], expected: str
) -> None:
    doc, schema = case
    with pytest.raises(ValidationError) as refused:
        validate_emitted(doc, schema)
    assert expected in refused.value.reason


# --- the library boundary -------------------------------------------------------------


def test_a_document_that_is_not_plain_json_is_refused_as_invalid() -> None:
    # Given a document holding a value no JSON parser produces (bytes where a date goes)
    doc = create_note()
    doc["object"]["published"] = b"2025-02-11T09:41:07Z"

    # When it is validated, then jsonschema-rs's ValueError is translated at the boundary
    with pytest.raises(ValidationError) as refused:
        validate_incoming(doc)
    assert refused.value.reason == "document: not plain JSON"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), True])
def test_numbers_json_does_not_have_are_refused(number: object) -> None:
    # Given a collection whose totalItems is NaN, infinity or a boolean
    doc = {"id": "https://remote.example/c/1", "type": "OrderedCollection", "totalItems": number}

    # Then it is refused naming the path
    with pytest.raises(ValidationError, match="totalItems"):
        validate_object(doc)
