"""JSON Schema validation of the ActivityPub documents we accept and emit.

The wire shapes live in ``schemas/`` at the project root, one file per verb or
object (style rule 3: the wire shape apart from the behaviour)::

    schemas/defs.json           shared building blocks (URIs, dates, addressing …)
    schemas/activities/*.json   what the inbox accepts, one file per verb
    schemas/objects/*.json      posts, tombstones, actors, collections (fetched or embedded)
    schemas/emitted/*.json      what our builders produce (stricter, for tests)

Public surface::

    validate_incoming(doc) -> "Create" …   inbox, before anything is stored
    validate_object(doc)   -> "Note" …     fetcher: actors, posts, collections
    validate_emitted(doc)  -> "Page" …     our own output (builder tests)
    is_supported(type)     -> bool         is this activity verb one we accept?
    normalise(doc)         -> dict         actor → its id, to/cc → lists, Public spelt in full

Documents are plain JSON with known keys: no JSON-LD processing. Every schema is
read once from disk into a ``referencing`` registry that has no retriever, so a
``$ref`` outside ``schemas/`` fails instead of reaching the network. Checks run
on a compiled copy of each schema (:mod:`federation.fastschema`, tens of
microseconds); ``jsonschema``'s Draft 2020-12 validator explains each refusal.

A refusal is a :class:`federation.errors.ValidationError` (400) whose ``reason``
names the failing path (``object.to[1]: must be an absolute http(s) URI``); an
unknown verb or object type is the subclass :class:`UnsupportedType`, so the inbox
can answer 202-and-ignore instead of 400 if it prefers.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from federation.errors import ValidationError
from federation.fastschema import Check, Compiler
from node.i18n import _

__all__ = [
    "ACTIVITY_TYPES",
    "EMITTED_TYPES",
    "OBJECT_TYPES",
    "PUBLIC",
    "SCHEMA_DIR",
    "UnsupportedType",
    "ValidationError",
    "is_public",
    "is_supported",
    "normalise",
    "validate_emitted",
    "validate_incoming",
    "validate_object",
]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})

# Deeper documents are refused before validation: the schemas recurse through
# embedded activities (Announce{Announce{…}}), and no real payload nests this deep
# (the deepest of the 124 shared samples has 7 levels).
MAX_DEPTH = 16

# Activity verb → schema file under activities/ (lower-case verb).
ACTIVITY_TYPES = frozenset(
    {
        "Follow",
        "Accept",
        "Reject",
        "Undo",
        "Create",
        "Update",
        "Delete",
        "Like",
        "Dislike",
        "Announce",
        "Flag",
        "Block",
        "Add",
        "Remove",
        "Lock",
    }
)
ACTOR_TYPES = frozenset({"Person", "Group", "Service", "Application", "Organization"})
COLLECTION_TYPES = frozenset({"Collection", "OrderedCollection", "CollectionPage", "OrderedCollectionPage"})
# Object type → schema file under objects/.
OBJECT_TYPES: dict[str, str] = {
    "Note": "note",
    "Page": "page",
    "Article": "article",
    "Question": "question",
    "Tombstone": "tombstone",
    **{t: "actor" for t in ACTOR_TYPES},
    **{t: "collection" for t in COLLECTION_TYPES},
}
POST_TYPES = frozenset({"Note", "Page", "Article", "Question"})
# Verb → object types it may embed (the rest of the verbs take ids or any object).
EMBEDDABLE: dict[str, frozenset[str]] = {"Create": POST_TYPES, "Update": POST_TYPES | ACTOR_TYPES}
# Emitted type → schema file under emitted/.
EMITTED_TYPES: dict[str, str] = {
    "Person": "person",
    "Group": "group",
    "Application": "application",
    "Page": "page",
    "Note": "note",
    "Tombstone": "tombstone",
    "Follow": "follow",
    "Accept": "accept",
    "Reject": "reject",
    "Announce": "announce",
    "Create": "create",
    "Update": "update",
    "Delete": "delete",
    "Like": "like",
    "Undo": "undo",
    "Flag": "flag",
    "Add": "add",
    "Remove": "remove",
    "OrderedCollection": "collection",
    "OrderedCollectionPage": "collection",
}
SCHEMA_BASE = "https://schemas.vbg-node.invalid/"


class UnsupportedType(ValidationError):
    """A well-formed document of a type we do not handle (``Resolve``, ``Event`` …)."""


def is_supported(activity_type: object) -> bool:
    """Is ``activity_type`` an activity verb the inbox accepts?"""
    return isinstance(activity_type, str) and activity_type in ACTIVITY_TYPES


def is_public(address: object) -> bool:
    """Is ``address`` one of the spellings of the public collection?"""
    return isinstance(address, str) and address in PUBLIC_ALIASES


def validate_incoming(document: object) -> str:
    """Check an activity received in an inbox; return its type.

    Raises :class:`UnsupportedType` for a verb we do not handle and
    :class:`ValidationError` for anything malformed.
    """
    doc, kind = _check_envelope(document, "activity")
    if kind not in ACTIVITY_TYPES:
        raise _unsupported("activity", kind)
    _check_embedded_type(kind, doc)
    _run(f"activities/{kind.lower()}.json", doc)
    return kind


def validate_object(document: object) -> str:
    """Check a fetched (or embedded) object, actor or collection; return its type."""
    doc, kind = _check_envelope(document, "object")
    name = OBJECT_TYPES.get(kind)
    if name is None:
        raise _unsupported("object", kind)
    _run(f"objects/{name}.json", doc)
    return kind


def validate_emitted(document: object, schema: str | None = None) -> str:
    """Check a document we built before it leaves; return its type.

    The schema is chosen by type; ``schema`` names one explicitly (``"context"``
    for a thread's context collection, which is an ``OrderedCollection`` too).
    """
    doc, kind = _check_envelope(document, "document")
    name = schema or EMITTED_TYPES.get(kind)
    if name is None:
        raise _unsupported("emitted", kind)
    _run(f"emitted/{name}.json", doc)
    return kind


def normalise(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a *validated* document in the shape handlers expect.

    ``actor`` becomes its id; ``to``/``cc``/``bto``/``bcc``/``audience`` become lists
    (empty when absent; ``audience`` items are ids); the public address is spelt in
    full; embedded activities and objects are normalised the same way. The input is
    left untouched.
    """
    out = copy.deepcopy(document)
    _normalise_in_place(out)
    return out


# --- loading -----------------------------------------------------------------


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(contents)
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources.append((contents["$id"], resource))
    # No retrieve= argument: an unknown $ref raises instead of being fetched.
    return Registry().with_resources(resources).crawl()


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = _registry().contents(SCHEMA_BASE + name)
    return Draft202012Validator(schema, registry=_registry())


@cache
def _compiler() -> Compiler:
    return Compiler()


@cache
def _fast(name: str) -> Check:
    """The compiled yes/no check of one schema (see :mod:`federation.fastschema`)."""
    resolved = _registry().resolver().lookup(SCHEMA_BASE + name)
    return _compiler().compile(resolved.contents, resolved.resolver)


def load_all() -> list[str]:
    """Load and compile every schema now (at start-up); return their names."""
    names = [str(p.relative_to(SCHEMA_DIR)) for p in sorted(SCHEMA_DIR.rglob("*.json"))]
    for name in names:
        _validator(name)
        _fast(name)
    return names


# --- checks ------------------------------------------------------------------


def _check_envelope(document: object, what: str) -> tuple[dict[str, Any], str]:
    if not isinstance(document, dict):
        raise _invalid(f"{what} is not a JSON object")
    if _depth_exceeds(document, MAX_DEPTH):
        raise _invalid(f"{what} nested deeper than {MAX_DEPTH} levels")
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        raise _invalid("type: missing or not a string")
    return document, kind


def _check_embedded_type(kind: str, document: dict[str, Any]) -> None:
    """A Create or Update of a type we do not handle (Lemmy's ChatMessage, an Event)
    is unsupported rather than malformed: the peer did nothing wrong."""
    allowed = EMBEDDABLE.get(kind)
    inner = document.get("object")
    if allowed is None or not isinstance(inner, dict):
        return
    inner_kind = inner.get("type")
    if isinstance(inner_kind, str) and inner_kind not in allowed:
        raise _unsupported("object", inner_kind)


def _depth_exceeds(value: object, limit: int) -> bool:
    """Does ``value`` nest more than ``limit`` objects/arrays deep? The recursion stops
    at ``limit``, so a hostile document cannot exhaust the Python stack here."""
    if isinstance(value, dict):
        children: Iterable[object] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if limit == 0:
        return True
    return any(isinstance(child, dict | list) and _depth_exceeds(child, limit - 1) for child in children)


def _run(name: str, document: dict[str, Any]) -> None:
    """The compiled check decides quickly; jsonschema, the authority, explains a refusal
    (and has the last word should the two ever disagree)."""
    if _fast(name)(document):
        return
    error = best_match(_validator(name).iter_errors(document))
    if error is not None:
        raise _invalid(_describe(_innermost(error)))


def _innermost(error: SchemaError) -> SchemaError:
    """Inside an ``anyOf``, the failure of the branch that had the right JSON type.

    ``object: must be an id or an embedded activity`` says less than
    ``object.object: missing`` when an embedded activity was sent: branches that
    merely expected another type at the same place are set aside, and the deepest
    remaining failure is kept. When every branch expected another type, the
    ``anyOf`` itself is described (by its title).
    """
    while error.context:
        here = list(error.absolute_path)
        relevant = [e for e in error.context if not (e.validator == "type" and list(e.absolute_path) == here)]
        if not relevant:
            break
        error = max(relevant, key=lambda e: len(e.absolute_path))
    return error


def _describe(error: SchemaError) -> str:
    """``path: what was expected``, from our own schema titles and keys only."""
    path = _path(error.absolute_path)
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        return f"{_join(path, str(missing))}: missing"
    title = _outer_title(error)
    if error.validator in ("const", "enum") and title is None:
        return f"{path or 'document'}: unsupported value"
    if title is not None:
        return f"{path or 'document'}: must be {title}"
    if error.validator == "type":
        return f"{path or 'document'}: must be of type {_types(error.validator_value)}"
    return f"{path or 'document'}: fails {error.validator}"


def _outer_title(error: SchemaError) -> str | None:
    """The outermost schema title at the failing location (``a URI or an array of URIs``
    rather than the title of one of its branches)."""
    title = None
    location = list(error.absolute_path)
    current: SchemaError | None = error
    while current is not None and list(current.absolute_path) == location:
        schema = current.schema
        if isinstance(schema, dict) and isinstance(schema.get("title"), str):
            title = schema["title"]
        current = current.parent
    return title


_SAFE_KEY = re.compile(r"^[A-Za-z0-9_@:.-]{1,64}$")


def _path(parts: Iterator[str | int] | Any) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _SAFE_KEY.match(part) else "…"
            text = _join(text, key)
    return text


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _types(value: object) -> str:
    return " or ".join(value) if isinstance(value, list) else str(value)


def _invalid(reason: str) -> ValidationError:
    return ValidationError(reason, message=_("Document ActivityPub invalide : %s.") % reason[:200])


def _unsupported(what: str, kind: str) -> UnsupportedType:
    shown = kind if _SAFE_KEY.match(kind) else "…"
    return UnsupportedType(
        f"unsupported {what} type {shown}",
        message=_("Type ActivityPub non pris en charge : %s.") % shown,
    )


# --- normalisation -----------------------------------------------------------

_ADDRESS_KEYS = ("to", "cc", "bto", "bcc")


def _normalise_in_place(doc: dict[str, Any]) -> None:
    actor = doc.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("id"), str):
        doc["actor"] = actor["id"]
    for key in _ADDRESS_KEYS:
        doc[key] = [_canonical(a) for a in _as_list(doc.get(key))]
    if "audience" in doc:
        doc["audience"] = [_id_of(a) for a in _as_list(doc["audience"])]
    inner = doc.get("object")
    if isinstance(inner, dict):
        _normalise_in_place(inner)


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _canonical(address: object) -> object:
    return PUBLIC if is_public(address) else address


def _id_of(value: object) -> object:
    return value.get("id") if isinstance(value, dict) else value
