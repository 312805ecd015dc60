"""Reports for the moderators: Flags from other servers (``federation.handlers.flag``)
and « Signaler » by our members (``file_report``).

A report is ``open`` until a moderator decides: ``resolved`` (« traité ») or
``dismissed`` (« classé sans suite »), with an optional note. Each decision records
who and when on the report and a line in the audit log, in one transaction::

    open ──resolve──▶ resolved
      └───dismiss──▶ dismissed

A member reports a post they may read (not their own, not deleted), once while
the report is open. When the author is remote and the member asks for it, the
report is also forwarded to the author's instance — and, for a post in a community
of another server, to that community's group, whose moderators rule there: a
``report.forwarded`` outbox event in the same transaction, which ``federation.outbox``
turns into ``Flag``s from the instance actor (the member is never named). Our own
moderators get the report in every case.

Only moderators and admins read reports (the views check it): a report can name
posts of members-only communities and quote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from node import audit, events, keyset, notifications, threads
from node.db import MAX_BIGINT, Conn
from node.errors import Conflict, Forbidden, NotFound
from node.i18n import _
from node.sessions import User

PAGE_SIZE = 20
NOTE_MAX = 1000
REASON_MAX = 1000
DUPLICATE = "Vous avez déjà signalé ce message ; l'équipe de modération ne l'a pas encore traité."
EXCERPT_CHARS = 300
STATES = ("open", "resolved", "dismissed")
DECISIONS = {"resolved": "report.resolve", "dismissed": "report.dismiss"}


COUNT_OPEN = "SELECT count(*) FROM reports WHERE state = 'open'"
COUNT_BY_STATE = "SELECT state, count(*) AS n FROM reports GROUP BY state"
REPORT_COLUMNS = """
SELECT r.id, r.state, r.content, r.target_ids, r.post_ids, r.created_at, r.resolved_at,
       r.resolution_note, a.uri AS reporter_uri, coalesce(a.url, a.uri) AS reporter_url,
       a.username AS reporter_username, a.domain AS reporter_domain, a.display_name AS reporter_name,
       ru.username AS reporter_user, rb.username AS resolved_by_name,
       c.name AS community_name, c.title AS community_title
FROM reports r
LEFT JOIN actors a ON a.id = r.reporter_actor_id
LEFT JOIN users ru ON ru.id = r.reporter_user_id
LEFT JOIN users rb ON rb.id = r.resolved_by
LEFT JOIN communities c ON c.id = r.community_id
"""
# Open reports newest first (index reports_open), handled ones by the date of the
# decision (index reports_handled); a page starts after (``older``) or before (``newer``,
# read upwards then reversed) the report of a cursor: keyset pages, never OFFSET, so a page
# deep in the history costs what the first one does. $1 how many, ($2, $3) the cursor.
_LIST = f"""{REPORT_COLUMNS}
WHERE {{state}} AND ({{at}}, r.id) {{side}} ($2, $3)
ORDER BY {{at}} {{order}}, r.id {{order}}
LIMIT $1
"""
LIST_OPEN = {
    "older": _LIST.format(state="r.state = 'open'", at="r.created_at", side="<", order="DESC"),
    "newer": _LIST.format(state="r.state = 'open'", at="r.created_at", side=">", order="ASC"),
}
LIST_HANDLED = {  # $4 the state
    "older": _LIST.format(state="r.state = $4", at="r.resolved_at", side="<", order="DESC"),
    "newer": _LIST.format(state="r.state = $4", at="r.resolved_at", side=">", order="ASC"),
}
# The posts named by a page of reports, with where they are and who wrote them.
SELECT_POSTS = """
SELECT p.id, p.ap_id, p.author_id, p.is_opening, p.deleted_at, left(p.source, $2) AS excerpt,
       length(p.source) > $2 AS cut, p.thread_id, t.title AS thread_title,
       c.name AS community_name, c.title AS community_title, c.visibility,
       coalesce(nullif(u.display_name, ''), u.username, a.username || '@' || a.domain, '?') AS author,
       a.domain AS author_domain
FROM posts p
JOIN threads t ON t.id = p.thread_id
JOIN communities c ON c.id = t.community_id
LEFT JOIN users u ON u.id = p.author_id
LEFT JOIN actors a ON a.id = p.remote_author_id
WHERE p.id = ANY ($1::bigint[])
"""
DECIDE = """
UPDATE reports SET state = $2, resolved_at = now(), resolved_by = $3, resolution_note = $4
WHERE id = $1 AND state = 'open'
RETURNING id, activity_id, target_ids, post_ids, reporter_user_id,
          (SELECT uri FROM actors WHERE id = reporter_actor_id) AS reporter
"""
EXISTS = "SELECT state FROM reports WHERE id = $1"
# Does the report name a post of this moderator's? (She may not decide it.)
ABOUT_OWN_POST = """
SELECT EXISTS (SELECT 1 FROM reports r JOIN posts p ON p.id = ANY (r.post_ids)
               WHERE r.id = $1 AND p.author_id = $2)
"""
OWN_POST_MESSAGE = "Ce signalement concerne un de vos messages : une autre personne de l'équipe de modération doit le traiter."


@dataclass
class Report:
    """A report as the moderators' page shows it: the row, its posts and its other targets."""

    row: asyncpg.Record
    posts: list[asyncpg.Record] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    @property
    def domains(self) -> list[str]:
        """The other servers this report involves, the reporter's first, then the
        reported posts' remote authors' (what an admin may choose to block)."""
        found = [self.row["reporter_domain"], *(p["author_domain"] for p in self.posts)]
        return list(dict.fromkeys(d for d in found if d))


@dataclass
class ReportPage:
    """One page of reports, with the tokens of the pages around it (None: no such page)."""

    reports: list[Report]
    newer: str | None
    older: str | None
    counts: dict[str, int]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"(\d{1,17})\.(\d{1,19})")


@dataclass(frozen=True)
class Cursor:
    """A place in a list of reports: the (date, id) of a report, the date being when it
    was received (open reports) or decided (the others)."""

    at: datetime
    id: int

    def token(self) -> str:
        return f"{(self.at - _EPOCH) // timedelta(microseconds=1)}.{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The cursor a token names; anything else is a missing page."""
        match = _CURSOR.fullmatch(token)
        if match is None or not 0 < int(match[2]) <= MAX_BIGINT:
            raise NotFound()
        try:
            at = _EPOCH + timedelta(microseconds=int(match[1]))
        except OverflowError as exc:
            raise NotFound() from exc
        return cls(at, int(match[2]))


START = Cursor(datetime.max.replace(tzinfo=UTC), MAX_BIGINT)


@dataclass(frozen=True)
class Position:
    """Where a page of reports starts: at the top, after a report (``avant``: older
    ones) or before one (``apres``: newer ones)."""

    cursor: Cursor = START
    newer: bool = False

    @classmethod
    def from_query(cls, older_than: str | None, newer_than: str | None) -> Position:
        if newer_than:
            return cls(Cursor.parse(newer_than), newer=True)
        return cls(Cursor.parse(older_than)) if older_than else cls()

    @property
    def at_top(self) -> bool:
        return self.cursor == START


async def count_open(conn: Conn) -> int:
    count: int = await conn.fetchval(COUNT_OPEN)
    return count


def post_uris(post: asyncpg.Record, base_url: str) -> set[str]:
    """The ids a Flag may use for this post: its ActivityPub id, our permalink, and for
    an opening post the thread's URL."""
    base = base_url.rstrip("/")
    uris = {f"{base}/p/{post['id']}"}
    if post["ap_id"]:
        uris.add(post["ap_id"])
    if post["is_opening"]:
        uris.add(f"{base}/t/{post['thread_id']}")
    return uris


async def list_reports(conn: Conn, state: str, at: Position, base_url: str) -> ReportPage:
    """One page of reports in ``state``, with the posts they name."""
    if state not in STATES:
        raise NotFound()
    side = "newer" if at.newer else "older"
    args: tuple[object, ...] = (PAGE_SIZE + 1, at.cursor.at, at.cursor.id)
    if state == "open":
        rows = list(await conn.fetch(LIST_OPEN[side], *args))
    else:
        rows = list(await conn.fetch(LIST_HANDLED[side], *args, state))
    shown, has_newer, has_older = keyset.window(rows, PAGE_SIZE, backwards=at.newer, at_top=at.at_top)
    date = "created_at" if state == "open" else "resolved_at"
    newer = Cursor(shown[0][date], shown[0]["id"]).token() if has_newer else None
    older = Cursor(shown[-1][date], shown[-1]["id"]).token() if has_older else None
    post_ids = sorted({pid for r in shown for pid in r["post_ids"]})
    posts = {p["id"]: p for p in await conn.fetch(SELECT_POSTS, post_ids, EXCERPT_CHARS)} if post_ids else {}
    counts = {state: 0 for state in STATES}
    counts.update({r["state"]: r["n"] for r in await conn.fetch(COUNT_BY_STATE)})
    return ReportPage([_report(r, posts, base_url) for r in shown], newer, older, counts)


def _report(row: asyncpg.Record, posts: dict[int, asyncpg.Record], base_url: str) -> Report:
    named = [posts[pid] for pid in row["post_ids"] if pid in posts]
    known = set().union(*(post_uris(p, base_url) for p in named)) if named else set()
    others = [t for t in row["target_ids"] if t not in known]
    return Report(row, named, others)


async def decide(conn: asyncpg.Connection, report_id: int, decision: str, moderator: User, note: str) -> None:
    """Close an open report as ``resolved`` or ``dismissed``, audited in the same transaction.
    A report about one of the moderator's own posts is Forbidden: another moderator decides."""
    action = DECISIONS[decision]
    async with conn.transaction():
        if await conn.fetchval(ABOUT_OWN_POST, report_id, moderator.id):
            raise Forbidden(_(OWN_POST_MESSAGE))
        row = await conn.fetchrow(DECIDE, report_id, decision, moderator.id, note)
        if row is None:
            if await conn.fetchval(EXISTS, report_id) is None:
                raise NotFound(_("Ce signalement n'existe pas."))
            raise Conflict(_("Ce signalement a déjà été traité."))
        await audit.record(
            conn,
            action,
            actor_id=moderator.id,
            actor_label=moderator.username,
            target_type="report",
            target_id=report_id,
            reason=note,
            details={
                "activity_id": row["activity_id"],
                "reporter": row["reporter"],
                "targets": list(row["target_ids"]),
                "post_ids": list(row["post_ids"]),
            },
        )
        if row["reporter_user_id"] is not None:
            await notifications.notify_member(
                conn, row["reporter_user_id"], "report_handled", actor_id=moderator.id, report_id=report_id
            )


# --- Reports by our members --------------------------------------------------------

# What a report needs beyond threads.load_post: the post's ActivityPub ids and its remote author.
SELECT_REPORTED = """
SELECT p.ap_id, t.ap_id AS thread_ap_id, a.uri AS remote_author, c.actor_id IS NOT NULL AS remote_community
FROM posts p
JOIN threads t ON t.id = p.thread_id
JOIN communities c ON c.id = t.community_id
LEFT JOIN actors a ON a.id = p.remote_author_id AND NOT a.local
WHERE p.id = $1
"""
# One open report per member and post (index reports_open_by_member, migration 0074).
INSERT_MEMBER_REPORT = """
INSERT INTO reports (reporter_user_id, target_ids, post_ids, community_id, content)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (reporter_user_id, post_ids) WHERE state = 'open' AND reporter_user_id IS NOT NULL
DO NOTHING
RETURNING id
"""
# A member's report of a remote author's post or of a post in a remote community, to
# forward to that author's server and to the community's group.
SELECT_FORWARDED = """
SELECT r.content, r.target_ids, p.remote_author_id, c.actor_id AS group_actor_id
FROM reports r
JOIN posts p ON p.id = r.post_ids[1]
JOIN threads t ON t.id = p.thread_id
JOIN communities c ON c.id = t.community_id
WHERE r.id = $1 AND r.reporter_user_id IS NOT NULL
  AND (p.remote_author_id IS NOT NULL OR c.actor_id IS NOT NULL)
"""
# A Flag from another server; a repeated Flag (same activity id) is one report.
INSERT_REMOTE_REPORT = """
INSERT INTO reports (reporter_actor_id, activity_id, target_ids, post_ids, community_id, content)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (activity_id) DO NOTHING
RETURNING id
"""


@dataclass(frozen=True)
class Reportable:
    """A post a member may report: ``post`` is ``threads.load_post``'s row."""

    post: asyncpg.Record
    ap_id: str
    remote_author: str | None
    remote_community: bool = False  # in a community of another server (its group moderates it)

    @property
    def id(self) -> int:
        value: int = self.post["id"]
        return value

    @property
    def forwardable(self) -> bool:
        """Another server's moderators may be told: the remote author's, or the group's."""
        return self.remote_author is not None or self.remote_community


def _ap_id(post: asyncpg.Record, ids: asyncpg.Record, base_url: str) -> str:
    """The post's ActivityPub id (as ``federation.objects.ap_id_of``)."""
    base = base_url.rstrip("/")
    if ids["ap_id"]:
        return str(ids["ap_id"])
    if post["is_opening"]:
        return str(ids["thread_ap_id"] or f"{base}/t/{post['thread_id']}")
    return f"{base}/p/{post['id']}"


async def reportable(conn: Conn, post_id: int, member: User, base_url: str) -> Reportable:
    """The post, if ``member`` may report it: an approved member who may read it
    (the thread page's rules), not its author, and the post not deleted; else NotFound."""
    if not member.is_approved:
        raise NotFound()
    post = await threads.load_post(conn, post_id, member)
    if post["deleted_at"] is not None or post["author_id"] == member.id:
        raise NotFound()
    ids = await conn.fetchrow(SELECT_REPORTED, post_id)
    if ids is None:
        raise NotFound()
    return Reportable(post, _ap_id(post, ids, base_url), ids["remote_author"], ids["remote_community"])


async def file_report(
    conn: asyncpg.Connection, target: Reportable, member: User, reason: str, *, forward: bool
) -> int:
    """Open a report of ``target`` by ``member`` (audited; forwarded to the remote
    author's instance when asked), in one transaction. A second open report of the
    same post by the same member is a Conflict."""
    async with conn.transaction():
        report_id: int | None = await conn.fetchval(
            INSERT_MEMBER_REPORT,
            member.id,
            [target.ap_id],
            [target.id],
            target.post["community_id"],
            reason,
        )
        if report_id is None:
            raise Conflict(_(DUPLICATE))
        forwarded = forward and target.forwardable
        if forwarded:
            await events.emit(conn, "report.forwarded", events.ReportForwarded(report_id))
        await audit.record(
            conn,
            "report.create",
            actor_id=member.id,
            actor_label=member.username,
            target_type="report",
            target_id=report_id,
            details={"post_id": target.id, "target": target.ap_id, "forwarded": forwarded},
        )
        await notifications.notify_moderators(conn, "new_report", actor_id=member.id, report_id=report_id)
    return report_id


async def file_remote_report(
    conn: asyncpg.Connection,
    reporter_actor_id: int,
    activity_id: str | None,
    target_ids: list[str],
    post_ids: list[int],
    community_id: int | None,
    content: str,
) -> int | None:
    """A report received from another server (a Flag), kept for our moderators; None
    when that Flag was received already. The moderators are notified."""
    report_id: int | None = await conn.fetchval(
        INSERT_REMOTE_REPORT, reporter_actor_id, activity_id, target_ids, post_ids, community_id, content
    )
    if report_id is not None:
        await notifications.notify_moderators(conn, "new_report", report_id=report_id)
    return report_id


async def forwarded_report(conn: Conn, report_id: int) -> asyncpg.Record | None:
    """content, target_ids, the reported post's remote_author_id and its remote
    community's group_actor_id of a member's report (``report.forwarded`` event); None
    when it is not a member's report of a remote author's post or of a post in a
    community of another server."""
    return await conn.fetchrow(SELECT_FORWARDED, report_id)
