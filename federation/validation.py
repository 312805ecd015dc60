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
read once from disk into a ``jsonschema_rs`` registry whose retriever refuses every
URI, and validators are built ``offline``: a ``$ref`` outside ``schemas/`` fails
instead of reaching the network or the disk. jsonschema-rs (Rust, Draft 2020-12)
compiles each schema once; ``is_valid`` answers the common case and its error
iterator, which carries instance paths, explains a refusal.

A refusal is a :class:`federation.errors.ValidationError` (400) whose ``reason``
names the failing path (``object.to[1]: must be an absolute http(s) URI``); an
unknown verb or object type is the subclass :class:`UnsupportedType`, so the inbox
can answer 202-and-ignore instead of 400 if it prefers.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema_rs import ValidationError as SchemaError

from federation.errors import ValidationError
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

    The shapes of :func:`canonicalise` are first spelt the one way handlers read
    (in place). Raises :class:`UnsupportedType` for a verb we do not handle and
    :class:`ValidationError` for anything malformed.
    """
    canonicalise(document)
    doc, kind = _check_envelope(document, "activity")
    if kind not in ACTIVITY_TYPES:
        raise _unsupported("activity", kind)
    _check_embedded_type(kind, doc)
    _run(f"activities/{kind.lower()}.json", doc)
    return kind


def validate_object(document: object) -> str:
    """Check a fetched (or embedded) object, actor or collection; return its type
    (after :func:`canonicalise`, in place)."""
    canonicalise(document)
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


def _refuse_retrieval(uri: str) -> Any:
    """The registry's retriever: a ``$ref`` outside ``schemas/`` is an error, never a fetch
    (without one, jsonschema-rs would fetch it over HTTP or read it from disk)."""
    raise LookupError(f"schema {uri} is not in schemas/ and is never fetched")


# The schemas end their patterns with ``(?![\s\S])`` ("nothing follows": Python's ``$``
# also matches before a final newline). That lookahead needs jsonschema-rs's backtracking
# engine; ``\z`` (end of text) says the same to the Rust ``regex`` crate, whose automata
# check the ~20 patterns of an activity several times faster. Applied when loading.
END_OF_TEXT = "(?![\\s\\S])"


def _for_rust(schema: Any) -> Any:
    r"""``schema`` with every pattern's end-of-text lookahead spelt ``\z``."""
    if isinstance(schema, dict):
        return {
            key: value.replace(END_OF_TEXT, "\\z")
            if key == "pattern" and isinstance(value, str)
            else _for_rust(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_for_rust(item) for item in schema]
    return schema


@cache
def _registry() -> jsonschema_rs.Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        contents = _for_rust(json.loads(path.read_text(encoding="utf-8")))
        resources.append((contents["$id"], contents))
    return jsonschema_rs.Registry(resources, draft=jsonschema_rs.Draft202012, retriever=_refuse_retrieval)


@cache
def _resolver() -> jsonschema_rs.Resolver:
    return _registry().resolver(SCHEMA_BASE)


@cache
def _validator(name: str) -> jsonschema_rs.Validator:
    """The compiled Draft 2020-12 validator of one schema file (``activities/create.json``)."""
    schema = _resolver().lookup(SCHEMA_BASE + name).contents
    if not isinstance(schema, dict):
        raise TypeError(f"schema {name} is not a JSON object")
    # Checked against the 2020-12 meta-schema, which jsonschema-rs ships (nothing is fetched).
    jsonschema_rs.meta.validate(schema, registry=_registry())
    # offline: no $ref may reach the network or the file system, whatever the registry holds.
    return jsonschema_rs.Draft202012Validator(
        schema, registry=_registry(), offline=True, pattern_options=jsonschema_rs.RegexOptions()
    )


def load_all() -> list[str]:
    """Load and compile every schema now (at start-up); return their names."""
    names = [p.relative_to(SCHEMA_DIR).as_posix() for p in sorted(SCHEMA_DIR.rglob("*.json"))]
    for name in names:
        _validator(name)
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


_CONTAINERS = (dict, list)


def _depth_exceeds(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Does ``value`` nest more than ``limit`` objects/arrays deep? The recursion stops
    at ``limit``, so a hostile document cannot exhaust the Python stack here (nor the
    Rust stack of jsonschema-rs, which recurses with our recursive schemas).

    It runs on every document: a plain loop and a tuple ``isinstance`` keep it about
    twice as fast as ``any()`` over a generator."""
    children: Iterable[object] = value.values() if isinstance(value, dict) else value
    if limit == 0:
        return True
    for child in children:  # noqa: SIM110 - see the docstring
        if isinstance(child, _CONTAINERS) and _depth_exceeds(child, limit - 1):
            return True
    return False


def _run(name: str, document: dict[str, Any]) -> None:
    """``is_valid`` stops at the first failure (the common, valid case stays cheap);
    only a refusal pays for collecting the errors that explain it."""
    validator = _validator(name)
    try:
        if validator.is_valid(document):
            return
        errors = list(validator.iter_errors(document))
    except ValueError as exc:  # jsonschema-rs refuses values JSON cannot hold (bytes, a datetime …)
        raise _invalid("document: not plain JSON") from exc
    if not errors:  # cannot happen (is_valid said no); refuse rather than let it through
        raise _invalid("document: invalid")
    raise _invalid(_describe(*_innermost(_best(errors), name)))


# WEAK: like jsonschema's best_match, an anyOf/oneOf failure says less than a plain one.
_WEAK = frozenset({"anyOf", "oneOf"})
# Failures whose context holds each branch's own failures (a oneOf with several valid
# branches has none worth descending into).
_BRANCHING = (jsonschema_rs.ValidationErrorKind.AnyOf, jsonschema_rs.ValidationErrorKind.OneOfNotValid)


def _best(errors: list[SchemaError]) -> SchemaError:
    """The failure highest in the document (the first one found among equals)."""
    return max(errors, key=lambda e: (-len(e.instance_path), e.kind.name not in _WEAK))


def _innermost(error: SchemaError, name: str) -> tuple[SchemaError, str | None]:
    """Inside an ``anyOf``, the failure of the branch that had the right JSON type,
    and the outermost schema title at the failing location.

    ``object: must be an id or an embedded activity`` says less than
    ``object.object: missing`` when an embedded activity was sent: branches that
    merely expected another type at the same place are set aside, and the deepest
    remaining failure is kept. When every branch expected another type, the
    ``anyOf`` itself is described (by its title).
    """
    titles = [_title(error, name)]
    while isinstance(error.kind, _BRANCHING):
        here = error.instance_path
        relevant = [
            e
            for branch in error.kind.context
            for e in branch
            if not (e.kind.name == "type" and e.instance_path == here)
        ]
        if not relevant:
            break
        deeper = max(relevant, key=lambda e: len(e.instance_path))
        if deeper.instance_path != here:
            titles = []  # titles above describe another place
        error = deeper
        titles.append(_title(error, name))
    outer = next((t for t in titles if t is not None), None)
    return error, outer


def _title(error: SchemaError, name: str) -> str | None:
    """The title of the schema holding the failing keyword, from our own schema files."""
    location = error.absolute_keyword_location or f"{SCHEMA_BASE}{name}#/" + "/".join(
        str(p).replace("~", "~0").replace("/", "~1") for p in error.schema_path
    )
    holder = location.rsplit("/", 1)[0]
    try:
        schema = _resolver().lookup(holder).contents
    except jsonschema_rs.ReferencingError:
        return None
    title = schema.get("title") if isinstance(schema, dict) else None
    return title if isinstance(title, str) else None


def _describe(error: SchemaError, title: str | None) -> str:
    """``path: what was expected``, from our own schema titles and keys only."""
    path = _path(error.instance_path)
    keyword = error.kind.name
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
        return f"{_join(path, _safe(error.kind.property))}: missing"
    if keyword in ("const", "enum") and title is None:
        return f"{path or 'document'}: unsupported value"
    if title is not None:
        return f"{path or 'document'}: must be {title}"
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Type):
        return f"{path or 'document'}: must be of type {' or '.join(error.kind.types)}"
    return f"{path or 'document'}: fails {keyword}"


_SAFE_KEY = re.compile(r"^[A-Za-z0-9_@:.-]{1,64}$")


def _safe(key: str) -> str:
    """A key of the sender's document, shown only when it looks like a plain key."""
    return key if _SAFE_KEY.match(key) else "…"


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text = f"{text}[{part}]" if isinstance(part, int) else _join(text, _safe(part))
    return text


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _invalid(reason: str) -> ValidationError:
    return ValidationError(reason, message=_("Document ActivityPub invalide : %s.") % reason[:200])


def _unsupported(what: str, kind: str) -> UnsupportedType:
    shown = _safe(kind)
    return UnsupportedType(
        f"unsupported {what} type {shown}",
        message=_("Type ActivityPub non pris en charge : %s.") % shown,
    )


# --- canonical shapes -----------------------------------------------------------

# Every type a handler tells apart; the first of these in a ``type`` array is kept.
KNOWN_TYPES = ACTIVITY_TYPES | frozenset(OBJECT_TYPES) | {"Link", "Mention", "Hashtag", "Image", "Document"}
REPLY_LINK_TYPES = frozenset({"Link"})
MAX_REPLY_TARGETS = 16


def canonicalise(document: object) -> bool:
    """Spell, in place, the shapes ActivityStreams allows but handlers do not read:

    - ``type`` as an array (``["Note", "Article"]``): the first type we know, else the first;
    - ``inReplyTo`` as an array, a ``Link`` (``href``), an embedded object (``id``) or a
      collection (``items``/``orderedItems``): the first http(s) URI it names (a reply
      answers one post here); one that names none is left for the schema to refuse.

    Applies to the document and to the objects it embeds (``object``, two levels).
    Returns whether anything changed (the inbox then stores the canonical text)."""
    if not isinstance(document, dict):
        return False
    changed = False
    node: Any = document
    for _level in range(3):
        if not isinstance(node, dict):
            break
        changed |= _canonical_type(node)
        target = node.get("inReplyTo")
        if isinstance(target, (list, dict)):
            found = _reply_target(target, 0)
            if found is not None:  # else left as sent: the schema refuses it, clearly
                node["inReplyTo"] = found
                changed = True
        node = node.get("object")
    return changed


def _canonical_type(node: dict[str, Any]) -> bool:
    kinds = node.get("type")
    if not isinstance(kinds, list):
        return False
    names = [k for k in kinds if isinstance(k, str) and k]
    node["type"] = next((k for k in names if k in KNOWN_TYPES), names[0] if names else None)
    return True


def _reply_target(value: object, depth: int) -> str | None:
    """The first http(s) URI a reply target names (see :func:`canonicalise`)."""
    if depth > 3:
        return None
    if isinstance(value, str):
        return value if value[:8].lower().startswith(("https://", "http://")) else None
    if isinstance(value, list):
        for item in value[:MAX_REPLY_TARGETS]:
            found = _reply_target(item, depth + 1)
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind in REPLY_LINK_TYPES or (isinstance(kind, list) and "Link" in kind):
        return _reply_target(value.get("href"), depth + 1)
    if kind in COLLECTION_TYPES:
        # Its first item; a collection given by id alone stays an unknown parent (never
        # None: that would turn the reply into a new thread at once).
        found = _reply_target(value.get("orderedItems", value.get("items")), depth + 1)
        return found or _reply_target(value.get("id"), depth + 1)
    return _reply_target(value.get("id", value.get("href")), depth + 1)


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
