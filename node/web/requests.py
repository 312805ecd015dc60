"""Request helpers shared by every view: the app's settings and pool, the member
making the request, ids and numbers read from the URL, the client's address."""

from __future__ import annotations

import ipaddress

import asyncpg
from starlette.requests import Request

from node.errors import NotFound
from node.sessions import User
from node.settings import Settings


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


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


MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints


def path_id(request: Request, name: str = "id") -> int:
    """A positive integer id from the path; anything else, or out of a bigint's range,
    is a missing page."""
    value = request.path_params.get(name)
    try:
        number = value if isinstance(value, int) else int(str(value))
    except ValueError as exc:
        raise NotFound() from exc
    if not 0 < number <= MAX_ID:
        raise NotFound()
    return number


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
