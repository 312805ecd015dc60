"""Outbox events, typed: what node's services tell the federation workers.

A service that changes something other servers must learn writes one event with
:func:`emit`, in the transaction of its change (docs/architecture.md §2); the outbox
worker (``federation.outbox``) reads the payload back with the event's ``from_json``
and turns it into activities. The payload is JSON in ``outbox_events.payload``; the
dataclass is the one description of its fields for both sides.

Typed here: the forum's post and thread events and forwarded reports. Other kinds
(relays and follow answers written by federation's handlers, person, message and
document events) still carry plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import asyncpg

PostKind = Literal[
    "post.created",
    "post.updated",
    "post.deleted",
    "post.liked",
    "post.unliked",
    "thread.pinned",
    "thread.unpinned",
]


@dataclass(frozen=True)
class PostEvent:
    """Something happened to a post of a federated community (``post_id`` None: the
    thread itself, for pins without an opening post id)."""

    post_id: int | None
    thread_id: int
    community_id: int
    actor_user_id: int  # the member who did it (author, editor, liker, moderator)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> PostEvent:
        post_id = payload.get("post_id")
        return cls(
            None if post_id is None else int(post_id),
            int(payload["thread_id"]),
            int(payload["community_id"]),
            int(payload["actor_user_id"]),
        )


@dataclass(frozen=True)
class ReportForwarded:
    """A member asked that their report of a remote author's post go to its server."""

    report_id: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ReportForwarded:
        return cls(int(payload["report_id"]))


INSERT_EVENT = "INSERT INTO outbox_events (kind, payload) VALUES ($1, $2)"


async def emit(
    conn: asyncpg.Connection,
    kind: PostKind | Literal["report.forwarded"],
    event: PostEvent | ReportForwarded,
) -> None:
    """Write ``event`` in the caller's transaction."""
    await conn.execute(INSERT_EVENT, kind, event.to_json())
