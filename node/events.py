"""Outbox events, typed: what node's services tell the federation workers.

A service that changes something other servers must learn writes one event with
:func:`emit`, in the transaction of its change (docs/architecture.md §2); the outbox
worker (``federation.outbox``) reads the payload back with the event's ``from_json``
and turns it into activities. The payload is JSON in ``outbox_events.payload``; the
dataclass is the one description of its fields for both sides.

Every kind is typed here: what node's services write (posts and threads, documents'
pages, forwarded reports, members' profiles and deletions, private messages) and what
federation's inbox handlers write for the groups (relays, follow answers). The relay
events of new remote threads are built inside ``node.threads``' single INSERT
statements with the same fields (``jsonb_build_object``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from node.db import Conn

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


@dataclass(frozen=True)
class PersonUpdated:
    """A member changed what their Person actor shows (name, bio)."""

    user_id: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> PersonUpdated:
        return cls(int(payload["user_id"]))


@dataclass(frozen=True)
class WroteIn:
    """A federated community where a deleted member had written (their followers knew them)."""

    id: int
    visibility: str


@dataclass(frozen=True)
class PersonDeleted:
    """A member deleted their account; ``communities``: where they had written."""

    user_id: int
    communities: tuple[WroteIn, ...]

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "communities": [asdict(c) for c in self.communities]}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> PersonDeleted:
        wrote_in = tuple(WroteIn(int(c["id"]), str(c["visibility"])) for c in payload.get("communities", []))
        return cls(int(payload["user_id"]), wrote_in)


@dataclass(frozen=True)
class MessageCreated:
    """A private message to deliver to the participants on other servers."""

    message_id: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> MessageCreated:
        return cls(int(payload["message_id"]))


@dataclass(frozen=True)
class RelayAnnounce:
    """The group relays an accepted remote activity, unmodified (FEP-1b12)."""

    community_id: int
    activity: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"community_id": self.community_id, "activity": self.activity}  # no copy of the activity

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> RelayAnnounce:
        activity = payload.get("activity")
        return cls(int(payload["community_id"]), activity if isinstance(activity, dict) else {})


@dataclass(frozen=True)
class RelayAnnouncePage:
    """A public group boosts a remote member's new thread (its Page, by id) for Mastodon."""

    community_id: int
    thread_id: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> RelayAnnouncePage:
        return cls(int(payload["community_id"]), int(payload["thread_id"]))


@dataclass(frozen=True)
class RelayAnnounceObject:
    """A public group boosts a remote member's thread or reply (by id) for Mastodon-API servers."""

    community_id: int
    post_id: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> RelayAnnounceObject:
        return cls(int(payload["community_id"]), int(payload["post_id"]))


@dataclass(frozen=True)
class FollowAnswer:
    """Accept or Reject of a remote actor's Follow (``follow``: the Follow as received),
    spoken by our ``local_actor_id`` or else by the community's group."""

    community_id: int | None
    local_actor_id: int | None
    follow: dict[str, Any]
    actor_id: int  # the follower

    def to_json(self) -> dict[str, Any]:
        return {
            "community_id": self.community_id,
            "local_actor_id": self.local_actor_id,
            "follow": self.follow,
            "actor_id": self.actor_id,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> FollowAnswer:
        community_id, local_actor_id, follow = (
            payload.get("community_id"),
            payload.get("local_actor_id"),
            payload.get("follow"),
        )
        return cls(
            None if community_id is None else int(community_id),
            None if local_actor_id is None else int(local_actor_id),
            follow if isinstance(follow, dict) else {},
            int(payload["actor_id"]),
        )


Kind = (
    PostKind
    | Literal["report.forwarded", "person.updated", "person.deleted", "message.created"]
    | Literal[
        "relay.announce", "relay.announce_page", "relay.announce_object", "follow.accept", "follow.reject"
    ]
)
Event = (
    PostEvent
    | ReportForwarded
    | PersonUpdated
    | PersonDeleted
    | MessageCreated
    | RelayAnnounce
    | RelayAnnouncePage
    | RelayAnnounceObject
    | FollowAnswer
)

INSERT_EVENT = "INSERT INTO outbox_events (kind, payload) VALUES ($1, $2)"


async def emit(conn: Conn, kind: Kind, event: Event) -> None:
    """Write ``event`` in the caller's transaction."""
    await conn.execute(INSERT_EVENT, kind, event.to_json())
