"""The segment router finds, for any request, the route the full list finds."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence

import httpx
import pytest
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from node.web.app import all_routes
from node.web.routing import SegmentRouter, path_segment, route_segment

SAMPLES = {
    "IntegerConvertor": "12",
    "IdConvertor": "12",
    "FloatConvertor": "1.5",
    "UUIDConvertor": str(uuid.UUID(int=7)),
    "PathConvertor": "a/b.txt",
    "StringConvertor": "amina",
}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
ACCEPTS = ("text/html", "application/activity+json")


def sample_paths(route: BaseRoute) -> Iterator[str]:
    """A path ``route`` matches (its parameters filled in), and the same path with the
    trailing slash added or taken away."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return
    if isinstance(route, Mount):
        path += "/{path:path}"
    convertors = getattr(route, "param_convertors", {})
    filled = PARAM.sub(lambda m: SAMPLES[type(convertors[m.group(1)]).__name__], path)
    if isinstance(route, Mount):
        filled = filled.replace("{path:path}", "a/b.txt")
    yield filled
    yield filled.rstrip("/") if filled.endswith("/") and filled != "/" else filled + "/"


def scope(method: str, path: str, accept: str) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"accept", accept.encode())],
    }


def first_match(routes: Sequence[BaseRoute], request: Scope) -> tuple[BaseRoute | None, Match]:
    partial: BaseRoute | None = None
    for route in routes:
        match, _ = route.matches(request)
        if match is Match.FULL:
            return route, match
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, Match.PARTIAL if partial else Match.NONE


def requests() -> Iterator[Scope]:
    routes = all_routes()
    paths = {p for route in routes for p in sample_paths(route)}
    paths |= {
        "/",
        "/inconnu",
        "/inconnu/12",
        "/t",
        "/t/",
        "/t/x",
        "/c/medical/x/y",
        "/messages/3/zz",
        "//t/12",
    }
    for path in sorted(paths):
        for method in ("GET", "POST", "DELETE"):
            for accept in ACCEPTS:
                yield scope(method, path, accept)


def test_every_request_finds_the_route_the_full_list_finds() -> None:
    routes = all_routes()
    router = SegmentRouter(routes)
    reached: set[int] = set()
    for request in requests():
        expected = first_match(routes, request)
        assert first_match(router.group_for(request).routes, request) == expected, request["path"]
        if expected[1] is Match.FULL and expected[0] is not None:
            reached.add(id(expected[0]))
    # Every route with a path was found by one of its samples (UnreadableURL matches none of them).
    assert reached == {id(r) for r in routes if isinstance(r, Route | Mount)}


def test_routes_are_grouped_by_their_fixed_first_segment() -> None:
    router = SegmentRouter(all_routes())
    gets = [scope("GET", path, "text/html") for path in ("/t/12", "/messages/3", "/zzz")]
    sizes = {path_segment(r): len(router.group_for(r).routes) for r in gets}
    # A request is matched against a handful of routes, not the ~160 of the full list.
    assert sizes["t"] < 30 and sizes["messages"] < 30 and sizes["zzz"] < 10
    assert route_segment(Route("/t/{id:int}", lambda r: None)) == "t"
    assert route_segment(Route("/{name}", lambda r: None)) is None
    assert route_segment(Mount("", routes=[])) is None


@pytest.mark.parametrize(
    ("path", "status"),
    [("/inconnu/12", 404), ("/connexion/", 307), ("/static/inconnu.css", 404), ("/t/x", 404)],
)
async def test_missing_pages_and_slash_redirects_answer_as_before(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    assert (await client.get(path)).status_code == status


async def test_a_known_path_with_another_method_is_refused(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/connexion")).status_code == 405
