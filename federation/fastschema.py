"""A fast yes/no check compiled from our JSON Schemas, for the inbox's hot path.

``jsonschema`` walks a schema anew for every document (a ``$ref`` lookup, a
validator copy per keyword): about 3 ms for a Mastodon ``Create{Note}``, while the
inbox budget for verifying, validating and storing one activity is under 1 ms.
This module turns each schema, once, into nested Python closures that answer only
"valid or not" (tens of microseconds). ``jsonschema`` stays the authority: it
checks the schemas, explains every refusal, and the tests assert both agree on every
sample and on thousands of damaged copies.

Only the keywords our schemas use are compiled; any other keyword is refused when
compiling, so a schema cannot silently lose a constraint::

    type enum const pattern minLength maxLength minimum
    properties required additionalProperties items minItems maxItems contains
    allOf anyOf if/then/else $ref          (+ annotations: title, description …)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

Check = Callable[[Any], bool]

# LOOPS: the closures use plain for-loops rather than all()/any() over generators;
# CPython 3.11 runs them about twice as fast, and they run thousands of times a second.

ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default"}
)
COMPILED = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "contains",
        "allOf",
        "anyOf",
        "if",
        "then",
        "else",
        "$ref",
    }
)


def _is_integer(value: Any) -> bool:
    # As jsonschema: booleans are not numbers; 3.0 is an integer.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "null": type(None),
    "boolean": bool,
    "number": (int, float),
}

TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": _is_integer,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _same(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Compiler:
    """Compiles schemas reachable from a ``referencing`` resolver; shared sub-schemas
    (and recursive ones, like an Announce embedding an Announce) compile once."""

    def __init__(self) -> None:
        self._done: dict[int, Check] = {}
        self._keep: list[object] = []  # keeps compiled schema objects alive: ids stay unique

    def compile(self, schema: Any, resolver: Resolver) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        key = id(schema)
        if key in self._done:
            return self._done[key]
        cell: list[Check] = []
        self._done[key] = lambda v: cell[0](v)  # recursion lands here until compiled
        self._keep.append(schema)
        check = self._schema(schema, resolver)
        cell.append(check)
        self._done[key] = check
        return check

    def _schema(self, schema: dict[str, Any], resolver: Resolver) -> Check:
        unknown = set(schema) - COMPILED - ANNOTATIONS
        if unknown:
            raise ValueError(f"keyword(s) not compiled: {sorted(unknown)}")
        if "$id" in schema:
            resolver = resolver.in_subresource(DRAFT202012.create_resource(schema))
        checks = [c for c in self._keywords(schema, resolver) if c is not None]
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda v: first(v) and second(v)

        def check(v: Any) -> bool:
            for c in checks:  # noqa: SIM110 - see LOOPS
                if not c(v):
                    return False
            return True

        return check

    def _keywords(self, s: dict[str, Any], resolver: Resolver) -> list[Check | None]:
        return [
            self._ref(s, resolver),
            _type(s),
            _enum(s),
            _strings(s),
            _minimum(s),
            self._object(s, resolver),
            self._array(s, resolver),
            self._combinators(s, resolver),
        ]

    def _ref(self, s: dict[str, Any], resolver: Resolver) -> Check | None:
        if "$ref" not in s:
            return None
        resolved = resolver.lookup(s["$ref"])
        return self.compile(resolved.contents, resolved.resolver)

    def _object(self, s: dict[str, Any], resolver: Resolver) -> Check | None:
        props = {k: self.compile(v, resolver) for k, v in s.get("properties", {}).items()}
        required = tuple(s.get("required", ()))
        extra = self.compile(s["additionalProperties"], resolver) if "additionalProperties" in s else None
        if not props and not required and extra is None:
            return None
        items = tuple(props.items())

        def check(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for k in required:
                if k not in v:
                    return False
            for k, c in items:
                if k in v and not c(v[k]):
                    return False
            if extra is not None:
                for k, x in v.items():
                    if k not in props and not extra(x):
                        return False
            return True

        return check

    def _array(self, s: dict[str, Any], resolver: Resolver) -> Check | None:
        item = self.compile(s["items"], resolver) if "items" in s else None
        contains = self.compile(s["contains"], resolver) if "contains" in s else None
        low, high = s.get("minItems", 0), s.get("maxItems")
        if item is None and contains is None and low == 0 and high is None:
            return None

        def check(v: Any) -> bool:
            if not isinstance(v, list):
                return True
            if len(v) < low or (high is not None and len(v) > high):
                return False
            if item is not None:
                for x in v:
                    if not item(x):
                        return False
            return contains is None or any(contains(x) for x in v)

        return check

    def _combinators(self, s: dict[str, Any], resolver: Resolver) -> Check | None:
        every = [self.compile(x, resolver) for x in s.get("allOf", ())]
        some = [self.compile(x, resolver) for x in s.get("anyOf", ())]
        condition = self.compile(s["if"], resolver) if "if" in s else None
        then = self.compile(s["then"], resolver) if "then" in s else None
        otherwise = self.compile(s["else"], resolver) if "else" in s else None
        if not every and not some and condition is None:
            return None

        def check(v: Any) -> bool:
            for c in every:
                if not c(v):
                    return False
            if some:
                for c in some:
                    if c(v):
                        break
                else:
                    return False
            if condition is not None:
                branch = then if condition(v) else otherwise
                return branch is None or branch(v)
            return True

        return check


def _type(s: dict[str, Any]) -> Check | None:
    if "type" not in s:
        return None
    names = set(s["type"] if isinstance(s["type"], list) else [s["type"]])
    python = tuple(PYTHON_TYPES[n] for n in names if n in PYTHON_TYPES)
    # bool is an int in Python, not a number in JSON
    bool_ok = "boolean" in names
    integer_only = "integer" in names and "number" not in names
    if not integer_only:
        return lambda v: isinstance(v, python) and (bool_ok or not isinstance(v, bool))
    return lambda v: (isinstance(v, python) and (bool_ok or not isinstance(v, bool))) or _is_integer(v)


def _enum(s: dict[str, Any]) -> Check | None:
    if "enum" in s and "const" in s:
        raise ValueError("enum and const together are not compiled")
    if "enum" not in s and "const" not in s:
        return None
    allowed = list(s["enum"]) if "enum" in s else [s["const"]]
    if all(isinstance(a, str) for a in allowed):
        options = frozenset(allowed)
        return lambda v: isinstance(v, str) and v in options
    return lambda v: any(_same(v, a) for a in allowed)


def _strings(s: dict[str, Any]) -> Check | None:
    pattern = re.compile(s["pattern"]) if "pattern" in s else None
    low, high = s.get("minLength", 0), s.get("maxLength")
    if pattern is None and low == 0 and high is None:
        return None

    def check(v: Any) -> bool:
        if not isinstance(v, str):
            return True
        if len(v) < low or (high is not None and len(v) > high):
            return False
        return pattern is None or pattern.search(v) is not None

    return check


def _minimum(s: dict[str, Any]) -> Check | None:
    if "minimum" not in s:
        return None
    low = s["minimum"]
    return lambda v: not TYPES["number"](v) or v >= low
