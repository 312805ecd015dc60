"""The hot queries have an index path: none of them reads all of ``posts`` or ``threads``
(nor ``reports``, ``users``, ``notifications``, ``bookmarks``, ``delivery_jobs``,
``instances``, ``community_followers``), and a
listing page reads about what it shows, however deep in the history it starts.

A sequential scan, or an index walked from its start and filtered, is what makes a page's
cost grow with the node's history. So the check runs on a node in miniature with enough
rows that the planner, left free (``enable_seqscan`` on, fresh statistics), would scan a
table whenever no index serves the query: 6,000 threads and 32,000 posts in three
communities, a thread of 2,000 replies, 2,000 members, 25,000 notifications, 10,000
bookmarks, 3,000 reports, 30,000 delivery jobs, 4,000 private conversations (half of
them the member's) of two messages each and one of hers of 3,000, 3,000 reports of private
messages, 4,000 blocks (and, apart, the federation of a node: 3,000 instances, 12,000 remote
follows, 30 of them pending). Each statement is run under
``EXPLAIN (ANALYZE)``; the test fails on a ``Seq Scan`` of a watched table, or when a
listing reads more than ``ROWS_READ`` rows of one of the ``BUDGETED`` tables (rows returned plus
rows removed by a filter, over every loop). ``test_the_check_sees_a_missing_index`` drops
an index and expects the check to fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from federation import delivery
from federation.admin_pages import policy as admin_policy
from node import accounts, db, messages, notifications, published, reports, search, threads
from tests.conftest import create_test_database, drop_test_database
from tests.helpers import make_community, make_user

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
WATCHED = re.compile(
    r"posts|threads|reports|users|notifications|bookmarks|delivery_jobs|instances|community_followers"
    r"|conversations|conversation_participants|messages|message_reports|message_blocks"
)
BUDGETED = (
    "posts", "threads", "conversations", "conversation_participants", "messages", "message_reports", "instances",
    "community_followers",
)  # fmt: skip
ROWS_READ = 600  # a page shows at most ~50 rows; each may cost a lookup or two


@dataclass(frozen=True)
class Node:
    """The miniature node: its pool and the ids the statements are asked about."""

    pool: asyncpg.Pool
    member: int
    community: int
    long_thread: int
    deep_thread: int  # a thread far down the community's history
    deep_at: datetime  # its last activity
    deep_post: int  # a reply deep in the long thread
    deep_notification: int  # one of the member's notifications, far down her list
    deep_bookmark: int  # a post she bookmarked long ago
    deep_member: int  # a member far down the directory
    deep_application: int  # an application far down the moderators' queue
    deep_conversation: int  # one of the member's private conversations, far down her list
    deep_message_report: int  # a handled report of a private message, far down its list
    other_member: int  # someone the member writes with
    long_conversation: int  # one of the member's conversations, 3,000 messages long
    deep_message: int  # a message far back in it


@dataclass(frozen=True)
class Hot:
    query: str
    args: Any  # a function of the Node giving the arguments
    budget: int | None = ROWS_READ  # None: no row budget (search reads spans of ids by design)


HOT_QUERIES: dict[str, Hot] = {
    # search (its spans read many ids by design: only scans are checked)
    "search newest posts, member": Hot(
        search.SCAN_MATCHES, lambda n: ("survivante", True, 0, 40_000, 500), None
    ),
    "search newest posts, visitor": Hot(
        search.SCAN_MATCHES, lambda n: ("zone rurale", False, 0, 40_000, 500), None
    ),
    "search span, member": Hot(search.SPAN_MATCHES, lambda n: ("survivante", True, 0, 10_000, 500), None),
    "search span, visitor": Hot(
        search.SPAN_MATCHES, lambda n: ("survivante prise en charge", False, 100, 200, 500), None
    ),
    # a word of the 2,000-reply thread, in a span of 200 of its ids: the span's matches are
    # read, not the word's 2,000 (node/search.py, step 2)
    "search span, a word of one thread": Hot(
        search.SPAN_MATCHES, lambda n: ("reponse", True, n.deep_post - 200, n.deep_post, 500)
    ),
    "search results shown": Hot(search.SHOWN, lambda n: ([1, 2, 3],)),
    # the forum's pages
    "community page": Hot(
        threads.LIST_COMMUNITY_THREADS["older"],
        lambda n: (n.member, n.community, True, FAR_FUTURE, 2**62, 31),
    ),
    "community page, deep": Hot(
        threads.LIST_COMMUNITY_THREADS["older"],
        lambda n: (n.member, n.community, False, n.deep_at, n.deep_thread, 31),
    ),
    "community page, newer": Hot(
        threads.LIST_COMMUNITY_THREADS["newer"],
        lambda n: (None, n.community, False, n.deep_at, n.deep_thread, 31),
    ),
    "community page, newer, member": Hot(
        threads.LIST_COMMUNITY_THREADS["newer"],
        lambda n: (n.member, n.community, False, n.deep_at, n.deep_thread, 31),
    ),
    "member home": Hot(
        threads.LIST_FOLLOWED_THREADS["older"], lambda n: (n.member, True, FAR_FUTURE, 2**62, 31)
    ),
    "member home, deep": Hot(
        threads.LIST_FOLLOWED_THREADS["older"], lambda n: (n.member, True, n.deep_at, n.deep_thread, 31)
    ),
    "member home, newer": Hot(
        threads.LIST_FOLLOWED_THREADS["newer"], lambda n: (n.member, True, n.deep_at, n.deep_thread, 31)
    ),
    "visitor home": Hot(threads.LIST_PUBLIC_THREADS, lambda n: (None, 10)),
    "thread page posts": Hot(threads.SELECT_PAGE_POSTS, lambda n: (n.deep_thread, *threads.page_numbers(1))),
    # page 39 of the 2,000-reply thread: its 50 numbers, not the 1,900 posts before them
    "thread page posts, deep": Hot(
        threads.SELECT_PAGE_POSTS, lambda n: (n.long_thread, *threads.page_numbers(39))
    ),
    "thread page count": Hot(threads.SELECT_LAST_NUMBER, lambda n: (n.long_thread,)),
    "permalink, deep": Hot(threads.SELECT_POST_NUMBER, lambda n: (n.deep_post,)),
    # a member's lists
    "notifications": Hot(notifications.LIST["first"], lambda n: (n.member, 31, False)),
    "notifications, deep": Hot(
        notifications.LIST["onwards"], lambda n: (n.member, 31, False, n.deep_notification)
    ),
    "notifications, newer": Hot(
        notifications.LIST["backwards"], lambda n: (n.member, 31, True, n.deep_notification)
    ),
    "bookmarks": Hot(notifications.LIST_BOOKMARKS["first"], lambda n: (n.member, 31)),
    "bookmarks, deep": Hot(
        notifications.LIST_BOOKMARKS["onwards"], lambda n: (n.member, 31, n.deep_bookmark)
    ),
    "bookmarks, newer": Hot(
        notifications.LIST_BOOKMARKS["backwards"], lambda n: (n.member, 31, n.deep_bookmark)
    ),
    "member directory": Hot(accounts.DIRECTORY["first"], lambda n: ("", 51)),
    "member directory, deep": Hot(accounts.DIRECTORY["onwards"], lambda n: ("", 51, n.deep_member)),
    "member directory, previous": Hot(accounts.DIRECTORY["backwards"], lambda n: ("", 51, n.deep_member)),
    # private messages (their tables: conversation_participants, messages, message_reports)
    "private conversations": Hot(messages.LIST["first"], lambda n: (n.member, 31)),
    "private conversations, deep": Hot(
        messages.LIST["onwards"], lambda n: (n.member, 31, n.deep_conversation)
    ),
    "private conversations, newer": Hot(
        messages.LIST["backwards"], lambda n: (n.member, 31, n.deep_conversation)
    ),
    # a message sent: its participants' unread counts and the list's order
    "private message, its participants told": Hot(
        messages.COUNT_UNREAD, lambda n: (n.deep_conversation, n.other_member, None, FAR_FUTURE)
    ),
    # a lifted block re-sorts the member's conversations: bounded by hers (a rare action),
    # not by the node's
    "private messages, a block lifted": Hot(messages.RESORT_AFTER_UNBLOCK, lambda n: (n.member,), None),
    # a conversation's page: its latest messages, then back by keyset on a message of it
    "private conversation page": Hot(
        messages.MESSAGES_PAGE["first"], lambda n: (n.long_conversation, n.member, 51)
    ),
    "private conversation page, deep": Hot(
        messages.MESSAGES_PAGE["onwards"], lambda n: (n.long_conversation, n.member, 51, n.deep_message)
    ),
    "private conversation page, newer": Hot(
        messages.MESSAGES_PAGE["backwards"], lambda n: (n.long_conversation, n.member, 51, n.deep_message)
    ),
    "reported private messages": Hot(messages.LIST_REPORTS["first"], lambda n: ("open", 51)),
    "reported private messages, deep": Hot(
        messages.LIST_REPORTS["onwards"], lambda n: ("resolved", 51, n.deep_message_report)
    ),
    "reported private messages, newer": Hot(
        messages.LIST_REPORTS["backwards"], lambda n: ("resolved", 51, n.deep_message_report)
    ),
    # moderation and administration
    "open reports": Hot(reports.LIST_OPEN["older"], lambda n: (21, FAR_FUTURE, 2**62)),
    "open reports, newer": Hot(reports.LIST_OPEN["newer"], lambda n: (21, FAR_FUTURE, 2**62)),
    "handled reports": Hot(reports.LIST_HANDLED["older"], lambda n: (21, FAR_FUTURE, 2**62, "resolved")),
    "applications queue": Hot(accounts.SELECT_PENDING["first"], lambda n: (51,)),
    "applications queue, deep": Hot(accounts.SELECT_PENDING["onwards"], lambda n: (51, n.deep_application)),
    "admin member list": Hot(accounts.SEARCH_MEMBERS["next"], lambda n: ("", 51, "amina")),
    # (A search by part of a name, "ami", reads every member: bounded by the members, a few
    # ms at 20,000; a trigram index would serve it.)
    "admin member list, previous": Hot(accounts.SEARCH_MEMBERS["previous"], lambda n: ("", 51, "zora")),
    "delivery failures (admin)": Hot(delivery.RECENT_FAILURES, lambda n: (50,)),
    # ActivityPub collections
    "outbox": Hot(published.SELECT_OUTBOX["first"], lambda n: (n.community, 21)),
    "outbox, deep": Hot(published.SELECT_OUTBOX["after"], lambda n: (n.community, 21, n.deep_thread)),
    "context": Hot(published.SELECT_CONTEXT_ITEMS["first"], lambda n: (n.long_thread, 51)),
    "context, deep": Hot(published.SELECT_CONTEXT_ITEMS["after"], lambda n: (n.long_thread, 51, n.deep_post)),
    "replies": Hot(published.SELECT_REPLIES["first"], lambda n: (n.long_thread, 0, True, 51)),
    "replies, deep": Hot(
        published.SELECT_REPLIES["after"], lambda n: (n.long_thread, 0, True, 51, n.deep_post)
    ),
}

# --- the miniature node --------------------------------------------------------------

USERS = """
INSERT INTO users (username, display_name, email, password_hash, status, in_directory, created_at)
SELECT 'membre' || g, 'Membre ' || g, 'membre' || g || '@example.org', 'x',
       CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'approved' END, g % 2 = 0, now() - g * interval '1 hour'
FROM generate_series(1, 2000) g
"""
THREADS = """
INSERT INTO threads (community_id, author_id, title, created_at, last_activity_at, reply_count)
SELECT ($1::bigint[])[1 + g % 3], $2, 'Fil ' || g, now() - g * interval '10 minutes',
       now() - g * interval '7 minutes', 4
FROM generate_series(1, 6000) g
"""
POSTS = """
INSERT INTO posts (thread_id, author_id, is_opening, source, content_html, created_at)
SELECT t.id, $1, r = 0,
       CASE WHEN r % 2 = 0 THEN 'La survivante est reçue.' ELSE 'Prise en charge médicale en zone rurale.' END,
       '<p>…</p>', t.created_at + r * interval '1 minute'
FROM threads t CROSS JOIN generate_series(0, 4) r
"""
LONG_THREAD = """
INSERT INTO posts (thread_id, author_id, source, content_html, created_at)
SELECT $1, $2, 'Réponse ' || g, '<p>…</p>', now() + g * interval '1 second' FROM generate_series(1, 2000) g
"""
NOTIFICATIONS = """
INSERT INTO notifications (user_id, kind, thread_id, post_id, created_at)
SELECT u.id, 'reply_followed', p.thread_id, p.id, p.created_at
FROM (SELECT id FROM users ORDER BY id LIMIT 5) u
CROSS JOIN (SELECT id, thread_id, created_at FROM posts WHERE NOT is_opening ORDER BY id LIMIT 5000) p
"""
BOOKMARKS = """
INSERT INTO bookmarks (user_id, post_id, created_at)
SELECT u.id, p.id, p.created_at
FROM (SELECT id FROM users ORDER BY id LIMIT 5) u
CROSS JOIN (SELECT id, created_at FROM posts ORDER BY id LIMIT 2000) p
"""
REPORTS = """
INSERT INTO reports (reporter_user_id, post_ids, content, state, created_at, resolved_at)
SELECT $1, ARRAY[p.id], 'Signalement', CASE WHEN p.id % 3 = 0 THEN 'open' ELSE 'resolved' END, p.created_at,
       CASE WHEN p.id % 3 = 0 THEN NULL ELSE p.created_at + interval '1 hour' END
FROM (SELECT id, created_at FROM posts ORDER BY id LIMIT 3000) p
"""
# A fan-out under way: 30,000 jobs waiting, 300 of them after an error, 100 given up.
DELIVERY_JOBS = """
WITH a AS (
    INSERT INTO activities (uri, actor_uri, json) VALUES ('https://node.example/a/1', 'https://node.example/c/x', '{}')
    RETURNING id
)
INSERT INTO delivery_jobs (activity_id, inbox, domain, state, last_error, updated_at)
SELECT a.id, 'https://i' || g || '.example/inbox', 'i' || g || '.example',
       CASE WHEN g % 300 = 0 THEN 'dead' ELSE 'pending' END, CASE WHEN g % 100 = 0 THEN 'HTTP 500' ELSE '' END,
       now() - g * interval '1 second'
FROM a, generate_series(1, 30000) g
"""
# Private conversations (contents are not read by these statements: placeholder bytes):
# the member is in the even ones (one in ten of them left), two other members in each.
CONVERSATIONS = """
INSERT INTO conversations (ap_context, key_id, wrapped_key, subject_sealed, created_at, last_message_at)
SELECT 'https://node.example/messages/c/' || g, 'k', '\\x00', '\\x00', now() - g * interval '1 hour',
       now() - g * interval '1 hour'
FROM generate_series(1, 4000) g
"""
PARTICIPANTS = """
WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM users WHERE id <> $1)
INSERT INTO conversation_participants (conversation_id, user_id, last_message_at, left_at)
SELECT c.id, CASE WHEN c.id % 2 = 0 THEN $1 ELSE u.ids[1 + c.id % 999] END, c.last_message_at,
       CASE WHEN c.id % 20 = 0 THEN now() END
FROM conversations c, u
UNION ALL
SELECT c.id, u.ids[1001 + c.id % 900], c.last_message_at, NULL FROM conversations c, u
"""
MESSAGES = """
INSERT INTO messages (conversation_id, uuid, author_user_id, source_sealed, html_sealed, created_at)
SELECT c.id, gen_random_uuid(), p.user_id, '\\x00', '\\x00', c.last_message_at - r * interval '1 minute'
FROM conversations c CROSS JOIN generate_series(0, 1) r
JOIN LATERAL (SELECT user_id FROM conversation_participants WHERE conversation_id = c.id ORDER BY id
              OFFSET r LIMIT 1) p ON true
"""
MESSAGE_REPORTS = """
INSERT INTO message_reports (message_id, reporter_id, reason_sealed, state, created_at)
SELECT m.id, NULL, '\\x00', CASE WHEN m.id % 3 = 0 THEN 'open' ELSE 'resolved' END, m.created_at
FROM (SELECT id, created_at FROM messages ORDER BY id LIMIT 3000) m
"""
# Members' blocks: each member blocks two others.
MESSAGE_BLOCKS = """
INSERT INTO message_blocks (user_id, blocked_user_id, created_at)
SELECT a.id, b.id, now() - interval '1 day' FROM users a JOIN users b ON b.id IN (a.id + 1, a.id + 7)
"""
# One long conversation of the member's: 3,000 messages, she and the other writing in turn.
LONG_CONVERSATION = """
INSERT INTO messages (conversation_id, uuid, author_user_id, source_sealed, html_sealed, created_at)
SELECT $1, gen_random_uuid(), CASE WHEN g % 2 = 0 THEN $2::bigint ELSE $3::bigint END, '\\x00', '\\x00',
       now() - g * interval '1 minute'
FROM generate_series(1, 3000) g
"""
FOLLOW_ALL = "INSERT INTO community_follows (user_id, community_id) SELECT $1, id FROM communities"


async def _fill(pool: asyncpg.Pool) -> Node:
    member = await make_user(pool, "amina")
    ids = [
        await make_community(pool, "juridique", visibility="public"),
        await make_community(pool, "medical"),
        await make_community(pool, "psychosocial"),
    ]
    async with pool.acquire() as conn:
        await conn.execute(USERS)
        await conn.execute(THREADS, ids, member)
        await conn.execute(POSTS, member)
        long_thread = await conn.fetchval("SELECT min(id) FROM threads WHERE community_id = $1", ids[0])
        await conn.execute(LONG_THREAD, long_thread, member)
        await conn.execute(NOTIFICATIONS)
        await conn.execute(BOOKMARKS)
        await conn.execute(REPORTS, member)
        await conn.execute(FOLLOW_ALL, member)
        await conn.execute(DELIVERY_JOBS)
        await conn.execute(CONVERSATIONS)
        await conn.execute(PARTICIPANTS, member)
        await conn.execute(MESSAGES)
        await conn.execute(MESSAGE_REPORTS)
        await conn.execute(MESSAGE_BLOCKS)
        deep = await conn.fetchrow(
            "SELECT id, last_activity_at FROM threads WHERE community_id = $1 ORDER BY last_activity_at"
            " OFFSET 100 LIMIT 1",
            ids[0],
        )
        deep_post = await conn.fetchval(
            "SELECT id FROM posts WHERE thread_id = $1 ORDER BY created_at DESC, id DESC OFFSET 100 LIMIT 1",
            long_thread,
        )
        far = {
            name: await conn.fetchval(query, member)
            for name, query in (
                ("notification", "SELECT min(id) + 100 FROM notifications WHERE user_id = $1"),
                (
                    "bookmark",
                    "SELECT post_id FROM bookmarks WHERE user_id = $1 ORDER BY created_at OFFSET 100 LIMIT 1",
                ),
                (
                    "application",
                    "SELECT id FROM users WHERE id <> $1 AND status = 'pending' ORDER BY created_at, id"
                    " OFFSET 150 LIMIT 1",
                ),
                (
                    "member",
                    "SELECT id FROM users WHERE id <> $1 AND in_directory AND status = 'approved'"
                    " ORDER BY lower(display_name), id OFFSET 300 LIMIT 1",
                ),
                (
                    "conversation",
                    "SELECT conversation_id FROM conversation_participants WHERE user_id = $1 AND left_at IS NULL"
                    " ORDER BY last_message_at DESC, conversation_id DESC OFFSET 1000 LIMIT 1",
                ),
                (
                    "message report",
                    "SELECT id FROM message_reports WHERE state = 'resolved' AND reporter_id IS DISTINCT FROM $1"
                    " ORDER BY created_at DESC, id DESC OFFSET 1000 LIMIT 1",
                ),
                (
                    "other member",
                    "SELECT o.user_id FROM conversation_participants p JOIN conversation_participants o"
                    " ON o.conversation_id = p.conversation_id AND o.user_id <> p.user_id"
                    " WHERE p.user_id = $1 ORDER BY p.conversation_id LIMIT 1",
                ),
            )
        }
        long_conversation = await conn.fetchval(
            "SELECT conversation_id FROM conversation_participants WHERE user_id = $1 AND left_at IS NULL"
            " ORDER BY conversation_id LIMIT 1",
            member,
        )
        other = await conn.fetchval(
            "SELECT user_id FROM conversation_participants WHERE conversation_id = $1 AND user_id <> $2 LIMIT 1",
            long_conversation,
            member,
        )
        await conn.execute(LONG_CONVERSATION, long_conversation, member, other)
        deep_message = await conn.fetchval(
            "SELECT id FROM messages WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC OFFSET 1500 LIMIT 1",
            long_conversation,
        )
        await conn.execute("ANALYZE")
    return Node(
        pool, member, ids[0], long_thread, deep["id"], deep["last_activity_at"], deep_post,
        far["notification"], far["bookmark"], far["member"], far["application"], far["conversation"],
        far["message report"], far["other member"], long_conversation, deep_message,
    )  # fmt: skip


@pytest.fixture(scope="module")
async def node(server_dsn: str, template_db: str) -> AsyncIterator[Node]:
    dsn = await create_test_database(server_dsn, template_db)
    try:
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        try:
            yield await _fill(pool)
        finally:
            await pool.close()
    finally:
        await drop_test_database(server_dsn, dsn)


# --- reading plans ---------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def problems(plan: dict[str, Any], budget: int | None) -> list[str]:
    """What is wrong with an executed plan: sequential scans of the watched tables, and
    more than ``budget`` rows read from ``posts`` or ``threads``."""
    found: list[str] = []
    read: dict[str, int] = {}
    for step in _nodes(plan):
        table = step.get("Relation Name", "")
        if step["Node Type"] == "Seq Scan" and WATCHED.fullmatch(table):
            found.append(f"Seq Scan on {table}")
        if table in BUDGETED:
            rows = step["Actual Rows"] + step.get("Rows Removed by Filter", 0)
            rows += step.get("Rows Removed by Index Recheck", 0)
            read[table] = read.get(table, 0) + rows * step["Actual Loops"]
    if budget is not None:
        found += [f"{n} rows read from {t} (budget {budget})" for t, n in read.items() if n > budget]
    return found


async def explain(conn: asyncpg.Connection, hot: Hot, node: Node) -> dict[str, Any]:
    """The executed plan of a statement (in a transaction rolled back)."""
    async with conn.transaction():
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + hot.query, *hot.args(node))
    doc = json.loads(raw) if isinstance(raw, str) else raw  # the pool decodes json
    plan: dict[str, Any] = doc[0]["Plan"]
    return plan


def shown(plan: dict[str, Any]) -> str:
    return "\n".join(
        f"{s['Node Type']} {s.get('Relation Name', '')} {s.get('Index Name', '')} rows={s['Actual Rows']}"
        f" removed={s.get('Rows Removed by Filter', 0)} loops={s['Actual Loops']}"
        for s in _nodes(plan)
    )


@pytest.mark.parametrize("name", sorted(HOT_QUERIES))
async def test_hot_query_reads_posts_and_threads_by_index(node: Node, name: str) -> None:
    hot = HOT_QUERIES[name]
    async with node.pool.acquire() as conn:
        plan = await explain(conn, hot, node)
    assert not problems(plan, hot.budget), shown(plan)


# --- the federation admin page, on a node of its own -----------------------------------
# (Its thousands of remote actors would change the plans of the forum's statements above,
# whose miniature tables are small enough for the planner to hesitate.)

FEDERATION_QUERIES: dict[str, Hot] = {
    "federation instances (admin)": Hot(admin_policy.SELECT_INSTANCES["onwards"], lambda _: (0, "", 101)),
    "federation instances (admin), deep": Hot(
        admin_policy.SELECT_INSTANCES["onwards"], lambda _: (1, "i2000.example", 101)
    ),
    "federation instances (admin), previous": Hot(
        admin_policy.SELECT_INSTANCES["backwards"], lambda _: (1, "i2000.example", 101)
    ),
    "federation instances (admin), previous among pending": Hot(
        admin_policy.SELECT_INSTANCES["backwards"], lambda _: (0, "p15.example", 101)
    ),
}
# 3,000 known instances; 4,000 remote followers of three communities (12,000 follows), of
# which 30, on 20 domains (half of them without an instance row), wait for approval.
INSTANCES = """
INSERT INTO instances (domain)
SELECT 'i' || g || '.example' FROM generate_series(1, 3000) g
UNION ALL
SELECT 'p' || g || '.example' FROM generate_series(0, 9) g
"""
FOLLOWERS = """
WITH a AS (
    INSERT INTO actors (uri, kind, local, username, domain)
    SELECT 'https://' || d || '/u/' || g, 'Person', false, 'u' || g, d
    FROM generate_series(1, 4000) g,
         LATERAL (SELECT CASE WHEN g <= 30 THEN 'p' || g % 20 ELSE 'i' || g % 3000 END || '.example' AS d) x
    RETURNING id, substr(username, 2)::int AS g
)
INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state)
SELECT c.id, a.id, 'https://f.example/' || a.id || '/' || c.id,
       CASE WHEN a.g <= 30 AND c.name = 'medical' THEN 'pending' ELSE 'accepted' END
FROM a CROSS JOIN communities c
"""


@pytest.fixture(scope="module")
async def federation_node(server_dsn: str, template_db: str) -> AsyncIterator[asyncpg.Pool]:
    dsn = await create_test_database(server_dsn, template_db)
    try:
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        try:
            for name in ("juridique", "medical", "psychosocial"):
                await make_community(pool, name)
            async with pool.acquire() as conn:
                await conn.execute(INSTANCES)
                await conn.execute(FOLLOWERS)
                await conn.execute("ANALYZE")
            yield pool
        finally:
            await pool.close()
    finally:
        await drop_test_database(server_dsn, dsn)


@pytest.mark.parametrize("name", sorted(FEDERATION_QUERIES))
async def test_federation_admin_pages_read_by_index(federation_node: asyncpg.Pool, name: str) -> None:
    hot = FEDERATION_QUERIES[name]
    async with federation_node.acquire() as conn, conn.transaction():
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + hot.query, *hot.args(None))
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    assert not problems(plan, hot.budget), shown(plan)


async def test_the_check_sees_a_missing_index(node: Node) -> None:
    # Given the community page, whose threads are read by threads_community_activity
    hot = HOT_QUERIES["community page, deep"]
    async with node.pool.acquire() as conn, conn.transaction():
        # When that index is gone (in a transaction rolled back)
        await conn.execute("DROP INDEX threads_community_activity")
        plan = await explain(conn, hot, node)
        # Then the check finds a page that reads the community's history
        assert problems(plan, hot.budget), shown(plan)
        # And likewise a deep thread page without posts_thread_number
        await conn.execute("DROP INDEX posts_thread_number")
        plan = await explain(conn, HOT_QUERIES["thread page posts, deep"], node)
        assert problems(plan, ROWS_READ), shown(plan)
