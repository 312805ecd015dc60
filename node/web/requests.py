"""Request helpers shared by every view: the app's settings and pool, the member
making the request, ids and numbers read from the URL, the client's address."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import asyncpg
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import State
from starlette.requests import Request

from node import keyset
from node.communities import Community, RemoteCard
from node.db import MAX_BIGINT
from node.errors import NotFound
from node.sessions import SessionCache, User
from node.settings import Settings


class FederationParts(Protocol):
    """What node knows of the federation's objects kept per app
    (``federation.app_state.FederationState``, installed by the composition root; node
    never imports federation): they are closed when the app stops."""

    async def close(self) -> None: ...


class AppState(State):
    """What the app shares between requests: Starlette's ``app.state``, typed.
    ``create_app`` installs it; read it with :func:`state_of` (federation reads its own
    part with ``federation.app_state.federation_of``)."""

    settings: Settings
    pool: asyncpg.Pool
    read_pool: asyncpg.Pool | None  # the replica, when VBG_REPLICA_DATABASE_URL is set
    session_cache: SessionCache  # only in a process that owns its pool (serve)
    server_may_read: Callable[[Request, str], Awaitable[bool]]
    # federation.private_messages.learn_remote_member: WebFinger + actor of « nom@domaine »
    learn_remote_member: Callable[[Request, str], Awaitable[None]]
    # federation.remote_pages: remote communities (find by address, follow, leave, admin)
    find_remote_community: Callable[[Request, str], Awaitable[RemoteCard]]
    subscribe_remote: Callable[[Request, Community, User], Awaitable[str]]
    unsubscribe_remote: Callable[[Request, Community, User], Awaitable[None]]
    admin_follow_remote: Callable[[Request, str, User], Awaitable[Community]]
    admin_drop_remote: Callable[[Request, Community, User], Awaitable[bool]]
    federation: FederationParts


def state_of(app_or_request: Starlette | Request) -> AppState:
    app = app_or_request.app if isinstance(app_or_request, Request) else app_or_request
    return cast(AppState, app.state)


def settings_of(request: Request) -> Settings:
    return state_of(request).settings


def pool_of(request: Request) -> asyncpg.Pool:
    return state_of(request).pool


RECENT_WRITE_COOKIE = "vbg_w"
RECENT_WRITE_SECONDS = 15  # longer than any replica lag we accept before /readyz-style alarms


def read_pool_of(request: Request) -> asyncpg.Pool:
    """The pool a page reads from: the read replica (``VBG_REPLICA_DATABASE_URL``) for
    GET requests, except from a browser that wrote something in the last
    ``RECENT_WRITE_SECONDS`` (``RECENT_WRITE_COOKIE``, set on its POSTs by the session
    middleware): it must see its own write, which the replica may not have yet. Views
    whose GET writes (a member's thread page marks it read) use :func:`pool_of`."""
    replica: asyncpg.Pool | None = getattr(request.app.state, "read_pool", None)
    if replica is None or request.method not in ("GET", "HEAD") or RECENT_WRITE_COOKIE in request.cookies:
        return pool_of(request)
    return replica


def current_user(request: Request) -> User | None:
    user: User | None = getattr(request.state, "user", None)
    return user


def require_member(request: Request) -> User:
    """The approved member making the request; anyone else sees a missing page."""
    user = current_user(request)
    if user is None or not user.is_approved:
        raise NotFound()
    return user


def require_moderator(request: Request) -> User:
    user = require_member(request)
    if not user.is_moderator:
        raise NotFound()
    return user


def require_admin(request: Request) -> User:
    user = require_member(request)
    if not user.is_admin:
        raise NotFound()
    return user


def int_param(value: str | None, default: int = 1, *, minimum: int = 1, maximum: int = 10_000) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return max(minimum, min(maximum, number))


MAX_ID = MAX_BIGINT


def keyset_position(request: Request, onwards: str = "avant", backwards: str = "apres") -> keyset.At:
    """Where a keyset list page starts (``?avant=ID`` the items after it in the list's
    order, ``?apres=ID`` those before it; see ``node.keyset``)."""
    params = request.query_params
    return keyset.At.parse(params.get(onwards), params.get(backwards))


def numbered_page(request: Request) -> bool:
    """Does the request ask for an old numbered page (``?page=N``, N > 1, a link or a
    bookmark from before keyset pages)? Its answer is a redirect to the first page."""
    page = request.query_params.get("page")
    return page is not None and page != "1"


def _ids_up_to(maximum: int) -> str:
    """A regex matching exactly the decimal numbers 1..``maximum``, without leading zeros."""
    top = str(maximum)
    shorter = f"[1-9][0-9]{{0,{len(top) - 2}}}"
    same_length = []
    for i, digit in enumerate(top):
        low = "1" if i == 0 else "0"
        if digit > low:
            rest = len(top) - i - 1
            same_length.append(f"{top[:i]}[{low}-{int(digit) - 1}][0-9]{{{rest}}}")
    return "|".join([shorter, *same_length, top])


class IdConvertor(Convertor[int]):
    """``{name:id}``: the one converter of every id in a URL (HTML and ActivityPub).

    It matches only 1..2**63-1 written plainly, so anything else (letters, a sign,
    leading zeros, a number beyond a bigint) matches no route: the app's 404, exactly
    what a missing object answers — never a 500 from the database."""

    regex = f"(?:{_ids_up_to(MAX_ID)})"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 < int(value) <= MAX_ID:
            raise ValueError("an id is a positive bigint")
        return str(int(value))


# Registered when this module is first imported: every module that declares routes with
# ``{…:id}`` imports it first (starlette compiles a route's pattern when it is built).
register_url_convertor("id", IdConvertor())


def path_id(request: Request, name: str = "id") -> int:
    """The id ``{name:id}`` of the path (the converter already checked its range)."""
    value = request.path_params.get(name)
    if not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise NotFound()
    return value


def client_ip(request: Request) -> str:
    """The client's address; X-Forwarded-For is believed only from a trusted proxy."""
    peer = request.client.host if request.client else ""
    trusted = settings_of(request).trusted_proxies
    if peer not in trusted:
        return peer
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",") if p.strip()]
    for candidate in reversed(forwarded):
        if candidate not in trusted:
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                return peer
    return peer
