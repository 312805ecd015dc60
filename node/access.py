"""Who may read what: the one access rule of every HTML and ActivityPub URL (issue 8).

Pure functions, no I/O. The web side (``node.web``) and the federation side
(``federation.access``) each say WHO is asking, as a :class:`Requester`, and the rule
here says what that requester may read; no route decides on its own.

    requester (HTML)            public   members   local
    visitor, pending            yes      no        no
    member, expert, moderator,  yes      yes       yes
    admin

    requester (ActivityPub)     public           members   local   actor document
    unsigned / unverifiable     open mode only   no        no      key only
    signed, refused by policy   no               no        no      key only
    allowed instance            yes              no        no      full if it may read
    approved partner instance   yes              yes       no      full if it may read
    blocked (suspended) inst.   no               no        no      nothing (404)

    content of a remote community (a group on host H our node follows; our members'
    posts there are ours to serve): public as above; members-only to the signed,
    verified, allowed host H (partner or not), and to another allowed instance only
    when H vouches that it follows the group (asked by ``federation.access``).

"Actor document" is a Person or Group: the full document (name, summary, icon, counts)
goes to who may read the actor's visibility — a community's own, a member's is
``public`` once they posted in a public community (their name is on public pages
already), else ``members``. Anyone else gets the key-only form, which is what verifying
the actor's signatures needs (Mastodon's authorized-fetch shape); a blocked instance
gets the same 404 as a missing actor.

A refusal is always answered exactly like a missing object (404): no oracle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.sessions import User


class Kind(enum.StrEnum):
    """Who is asking."""

    # HTML (a browser; a session or none)
    VISITOR = "visitor"
    PENDING = "pending"  # also refused and suspended accounts: they read like visitors
    MEMBER = "member"
    EXPERT = "expert"
    MODERATOR = "moderator"
    ADMIN = "admin"
    # ActivityPub (a server; an HTTP signature or none)
    UNSIGNED = "unsigned"  # no signature, or one that does not verify
    REFUSED = "refused"  # signed by an instance the policy does not let in (allowlist mode)
    ALLOWED = "allowed"  # signed, verified, let in by the policy
    PARTNER = "partner"  # the same, and approved by our moderators for members-only content
    BLOCKED = "blocked"  # signed by a suspended instance


HTML_KINDS = frozenset({Kind.VISITOR, Kind.PENDING, Kind.MEMBER, Kind.EXPERT, Kind.MODERATOR, Kind.ADMIN})
AP_KINDS = frozenset({Kind.UNSIGNED, Kind.REFUSED, Kind.ALLOWED, Kind.PARTNER, Kind.BLOCKED})
READERS = frozenset({Kind.MEMBER, Kind.EXPERT, Kind.MODERATOR, Kind.ADMIN})
VISIBILITIES = ("public", "members", "local")


@dataclass(frozen=True)
class Requester:
    """Who is asking. ``open_mode``: the node federates with anyone not blocked (public
    content is then served to unsigned GETs too); meaningless for HTML kinds."""

    kind: Kind
    open_mode: bool = False
    domain: str | None = None  # the signing instance, for ActivityPub kinds

    @property
    def is_reader(self) -> bool:
        """An approved member of this node (any role): reads every community here."""
        return self.kind in READERS


VISITOR = Requester(Kind.VISITOR)
UNSIGNED = Requester(Kind.UNSIGNED)
_PENDING = Requester(Kind.PENDING)
_MEMBER = Requester(Kind.MEMBER)
_ROLES = {k.value: Requester(k) for k in (Kind.EXPERT, Kind.MODERATOR, Kind.ADMIN)}


class Decision(enum.Enum):
    FULL = "full"
    KEY_ONLY = "key_only"
    NONE = "none"


def of_role(status: str, role: str) -> Requester:
    """The HTML requester of a signed-in account (``users.status``, ``users.role``)."""
    if status != "approved":
        return _PENDING
    return _ROLES.get(role, _MEMBER)


def of_user(user: User | None) -> Requester:
    """The HTML requester of a browser: its signed-in account, or a visitor."""
    return VISITOR if user is None else of_role(user.status, user.role)


def may_read(
    requester: Requester, visibility: str, origin: str | None = None, *, vouched: bool = False
) -> bool:
    """May ``requester`` read content (a page, a post, a collection) of this visibility?

    ``origin``: the content belongs to a community of another server that our node
    follows (a remote group on host ``origin``). Its public content reads as ours; its
    members-only content is that group's to share, so over ActivityPub only the
    group's own host reads it — and a server that host vouches for (``vouched``: the
    group's server said the requester's instance follows the group) — while our members
    still read it in HTML."""
    kind = requester.kind
    if visibility == "public":
        if kind in HTML_KINDS:
            return True
        return kind in (Kind.ALLOWED, Kind.PARTNER) or (kind == Kind.UNSIGNED and requester.open_mode)
    if visibility == "members":
        if origin is not None and kind in AP_KINDS:
            return kind in (Kind.ALLOWED, Kind.PARTNER) and (requester.domain == origin or vouched)
        return kind in READERS or kind == Kind.PARTNER
    if visibility == "local":
        return kind in READERS
    return False  # an unknown visibility is nobody's


def actor_decision(requester: Requester, visibility: str, origins: frozenset[str] = frozenset()) -> Decision:
    """Which form of a Person or Group actor of this visibility ``requester`` gets.
    ``origins``: the hosts of the remote groups where a member posted — each shows her
    posts, so a signed, allowed request from one of them gets her actor in full."""
    if requester.kind == Kind.BLOCKED or visibility not in ("public", "members"):
        return Decision.NONE
    if requester.kind in (Kind.ALLOWED, Kind.PARTNER) and requester.domain in origins:
        return Decision.FULL
    return Decision.FULL if may_read(requester, visibility) else Decision.KEY_ONLY


def member_visibility(posts_publicly: bool) -> str:
    """A member's actor visibility: ``public`` once they posted in a public community."""
    return "public" if posts_publicly else "members"


def may_discover(requester: Requester, visibility: str) -> bool:
    """May WebFinger resolve a Person or Group of this visibility for ``requester``?

    A public actor (a public community, a member who posted in one) is found by anyone
    not blocked: its name is on public pages already, and Mastodon checks WebFinger
    before accepting an author. A members-only one only by who may read it (a signed
    request from an approved partner): to anyone else the name is unknown (404)."""
    if requester.kind == Kind.BLOCKED or visibility not in ("public", "members"):
        return False
    return visibility == "public" or may_read(requester, visibility)
