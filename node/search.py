"""Full-text search over threads (their title) and replies.

PostgreSQL does the matching and the ranking with the ``french`` configuration on
accent-folded text (``vbg_fold``/``vbg_tsvector`` from migration 0001, vectors kept
by the trigger of migration 0020), so « medicale » finds « médicale ». Results are
filtered by what the viewer may read and never include deleted posts, nor posts and
threads of authors on suspended instances (silenced ones too for visitors). Snippets are
cut and highlighted here, from the original text, and escaped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from markupsafe import Markup, escape

from node.communities import author_listed_sql, is_reader, readable_sql
from node.db import Conn
from node.sessions import User
from node.threads import AUTHOR_NAME

PAGE_SIZE = 20
MAX_QUERY = 200
SNIPPET_CHARS = 240

# Ranking every match grows with the node (a common word: 0.9 s at 120,000 posts), and so
# does any plan that reads a word's whole GIN posting list (~0.15 µs an entry) or visits
# every match in the table: at 1,200,000 posts, two common words (« zone rurale ») cost
# 60-90 ms per window in the GIN lists alone, and the planner, which takes words as
# independent, underestimates how often correlated ones appear together and picks that
# plan. So matches are gathered newest first, until CANDIDATES are found:
# 1. the FIRST newest post ids are read in id order and each post's vector is tested
#    (no GIN); from the rate of matches so far, the ids still needed are estimated and,
#    while the ids read in order past the FIRST stay within SCAN, read the same way:
#    common words, or common words together, stop here after a few thousand posts,
#    whatever the size of the node;
# 2. what is still needed is rare in the newest posts: the next span of ids the rate
#    says is needed (all the older ones when nothing matched yet) is read by the GIN
#    index ANDed with a BRIN index of post ids (migration 0152), so only the heap pages
#    of that span holding matches are read; again with the new rate while too few are
#    found. (ANDed with the primary key instead, the range alone cost 20 ms for 320,000
#    ids; the GIN index alone visits every match in the table: 100 ms for 24,000.)
# Only those candidates are ranked; recency breaks ties.
CANDIDATES = 500
FIRST = 2_000
SCAN = 20_000
# Each statement planned for its words and its range (a prepared statement's generic plan,
# PostgreSQL's pick after five runs, cannot know whether the words are common or rare);
# no JIT: a bounded scan's estimated cost can cross jit_above_cost, and compiling costs
# hundreds of milliseconds to save a few.
PLANNING = "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off"
NEWEST_POST = "SELECT coalesce(max(id), 0) FROM posts"
# Whether the viewer may see a match, in two parts. On the post alone, tested on every
# match: not deleted, its author listed, its community (posts.community_id, migration
# 0151) among those the viewer reads ($2: the viewer reads members-only communities, so
# every community: the test folds away), gathered once per statement into a hash. Under
# the OR, the IN stays that hashed subplan: alone, the planner turns it into a join that
# walked the communities for each post read (27 ms for a visitor's common word at 10×).
POST_READABLE = f"""p.deleted_at IS NULL AND {author_listed_sql("p.remote_author_id", "$2::boolean")}
  AND ($2::boolean OR p.community_id IN (SELECT c.id FROM communities c WHERE {readable_sql("c", "$2")}))"""
# Then by its thread's primary key, only for the posts that passed (a scalar subquery
# stays a lookup: as a join, the planner hashes every thread at 10×).
THREAD_READABLE = f"""(SELECT t.deleted_at IS NULL AND {author_listed_sql("t.remote_author_id", "$2::boolean")}
       FROM threads t WHERE t.id = p.thread_id)"""
# $1 query, ids in ($3, $4], $5 how many. Step 1: the subquery reads the newest posts
# from $4 down by the primary key, as many as the range holds ids (a LIMIT, so the planner
# walks the key backwards instead of sorting a bitmap scan's rows); the vector test and
# the visibility are a filter on what it reads, the thread's part last (the cheaper
# conditions come first in a filter).
SCAN_MATCHES = f"""
SELECT p.id, ts_rank(p.search_vector, q) AS rank, p.created_at
FROM websearch_to_tsquery('french', vbg_fold($1)) q,
     (SELECT id, search_vector, created_at, thread_id, community_id, remote_author_id, deleted_at FROM posts
      WHERE id <= $4 ORDER BY id DESC LIMIT $4::bigint - $3::bigint) p
WHERE p.search_vector @@ q AND p.id > $3 AND {POST_READABLE} AND {THREAD_READABLE}
ORDER BY p.id DESC
LIMIT $5
"""
# Step 2: the matches of ids in ($3, $4] by the GIN and BRIN indexes, tested on the post
# alone and sorted newest first in the innermost subquery (OFFSET 0 keeps it apart: the
# thread's part is asked only of the rows read from its result, until $5 have passed),
# narrow rows (with their vectors, 24,000 matches overflowed work_mem); the vectors of
# those kept are read again by primary key for their rank (a scalar subquery: as a join,
# the planner may hash the whole table).
SPAN_MATCHES = f"""
SELECT m.id, ts_rank((SELECT v.search_vector FROM posts v WHERE v.id = m.id), q) AS rank, m.created_at
FROM websearch_to_tsquery('french', vbg_fold($1)) q,
     (SELECT p.id, p.created_at
      FROM (SELECT p.id, p.created_at, p.thread_id
            FROM posts p
            WHERE p.search_vector @@ websearch_to_tsquery('french', vbg_fold($1)) AND p.id > $3 AND p.id <= $4
              AND {POST_READABLE}
            ORDER BY p.id DESC OFFSET 0) p
      WHERE {THREAD_READABLE}
      ORDER BY p.id DESC
      LIMIT $5) m
ORDER BY m.id DESC
"""
SHOWN = f"""
SELECT p.id, p.thread_id, p.is_opening, left(p.source, 5000) AS source, t.title,
       c.name AS community_name, c.title AS community_title, {AUTHOR_NAME.format(u="u", a="a")} AS author_name
FROM posts p
JOIN threads t ON t.id = p.thread_id
JOIN communities c ON c.id = t.community_id
LEFT JOIN users u ON u.id = p.author_id
LEFT JOIN actors a ON a.id = p.remote_author_id
WHERE p.id = ANY($1::bigint[])
"""

# Same folding as the SQL function vbg_fold (migration 0001), word by word.
_FOLD = str.maketrans(
    "àâäáãåāçćčéèêëēėęíìîïīįñńóòôöõøōúùûüūýÿžźż", "aaaaaaaccceeeeeeeiiiiiinnooooooouuuuuyyzzz"
)
_WORD = re.compile(r"\w+")
_MARKDOWN_NOISE = re.compile(r"[*_`#>~|\[\]]+")


def fold(text: str) -> str:
    return text.lower().translate(_FOLD).replace("œ", "oe").replace("æ", "ae")


@dataclass
class Result:
    post_id: int
    thread_id: int
    title: str
    community_name: str
    community_title: str
    author_name: str
    is_opening: bool
    snippet: Markup


@dataclass
class Results:
    query: str
    results: list[Result]
    page: int
    has_next: bool


def query_terms(query: str) -> list[str]:
    """Folded words of the query worth highlighting (not excluded with « - »)."""
    words = []
    for match in _WORD.finditer(query):
        start = match.start()
        if start > 0 and query[start - 1] == "-":
            continue
        word = fold(match.group())
        if len(word) >= 3 and word not in {"or", "and"}:
            words.append(word[: max(4, len(word) - 2)])
    return words


def snippet(source: str, terms: list[str]) -> Markup:
    """A short escaped excerpt of ``source`` around the first matching word, with
    matching words in ``<mark>``."""
    text = " ".join(_MARKDOWN_NOISE.sub(" ", source).split())
    words = list(_WORD.finditer(text))
    hits = [w for w in words if any(fold(w.group()).startswith(t) for t in terms)]
    start = 0
    if hits and hits[0].start() > SNIPPET_CHARS // 3:
        start = text.rfind(" ", 0, hits[0].start() - SNIPPET_CHARS // 3) + 1
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        end = max(text.rfind(" ", start, end), start + 1)
    parts: list[str] = ["… " if start else ""]
    cursor = start
    for hit in hits:
        if hit.start() < start or hit.end() > end:
            continue
        parts.append(str(escape(text[cursor : hit.start()])))
        parts.append(f"<mark>{escape(hit.group())}</mark>")
        cursor = hit.end()
    parts.append(str(escape(text[cursor:end])))
    parts.append(" …" if end < len(text) else "")
    return Markup("".join(parts))


async def _candidates(conn: asyncpg.Connection, query: str, reader: bool) -> list[asyncpg.Record]:
    """The CANDIDATES most recent matches the viewer may read: the newest posts read in
    order while matches are frequent enough, then span by span by the indexes."""
    newest: int = await conn.fetchval(NEWEST_POST)
    low = max(0, newest - FIRST)
    found: list[asyncpg.Record] = list(await conn.fetch(SCAN_MATCHES, query, reader, low, newest, CANDIDATES))
    while len(found) < CANDIDATES and low > 0:
        needed = CANDIDATES - len(found)
        # ids still to read for what is needed, at the rate of matches so far (+25 %)
        span = needed * (newest - low) * 5 // (4 * len(found)) + 1 if found else low
        high, low = low, max(0, low - span)
        in_order = newest - low - FIRST <= SCAN
        found += await conn.fetch(
            SCAN_MATCHES if in_order else SPAN_MATCHES, query, reader, low, high, needed
        )
    return found


async def _matches(conn: Conn, query: str, reader: bool, page: int) -> tuple[list[asyncpg.Record], bool]:
    """The page's posts, best first, and whether another page follows."""
    async with _connection(conn) as c, c.transaction():
        await c.execute(PLANNING)
        candidates = await _candidates(c, query, reader)
        candidates.sort(key=lambda r: (r["rank"], r["created_at"], r["id"]), reverse=True)
        start = (page - 1) * PAGE_SIZE
        ids = [r["id"] for r in candidates[start : start + PAGE_SIZE]]
        rows = {r["id"]: r for r in await c.fetch(SHOWN, ids)} if ids else {}
    return [rows[i] for i in ids if i in rows], len(candidates) > start + PAGE_SIZE


@asynccontextmanager
async def _connection(conn: Conn) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired:
            yield acquired
    else:
        yield conn


async def search(conn: Conn, query: str, viewer: User | None, page: int = 1) -> Results:
    """Posts matching ``query`` that ``viewer`` may read, best first."""
    query = " ".join(query.split())[:MAX_QUERY]
    if not query:
        return Results(query, [], page, False)
    rows, has_next = await _matches(conn, query, is_reader(viewer), page)
    terms = query_terms(query)
    results = [
        Result(
            r["id"],
            r["thread_id"],
            r["title"],
            r["community_name"],
            r["community_title"],
            r["author_name"],
            r["is_opening"],
            snippet(r["source"], terms),
        )
        for r in rows
    ]
    return Results(query, results, page, has_next)
