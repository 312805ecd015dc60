"""Pages at the size of a busy node (issue 17): do the costs stay flat as the data grows?

Builds the data set of bench/dataset.py at each scale asked (1× = 20,000 threads and
120,000 posts; 10× = 200,000 and 1,200,000) in a database of its own, kept between runs
(``--fresh`` rebuilds them: the 10× set takes minutes to write), then asks the real app in this process
(ASGI, no network) for each page in turn, as the logged-in bench member unless said:
search (a common word, two words, a rare word, as a visitor), the member's home, a
community's first page and a page deep in its history, a thread page. One request at a
time, so a figure is the page's own latency (app + PostgreSQL on this machine).

Prints p50 / p99 per page and scale, side by side; asserts nothing. Targets (issue 17) at
10×: search p99 ≤ 50 ms, member home and community pages p99 ≤ 30 ms, the thread page
within 10 % of its 1× figure.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/scale.py \
        [--scales 1,10] [--requests 200] [--pages home,community] [--fresh] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
from dataset import BENCH_MEMBER, BENCH_PASSWORD, Sizes, generate  # noqa: E402
from procs import pct  # noqa: E402

from node import db  # noqa: E402
from node.settings import load  # noqa: E402
from node.threads import ListCursor  # noqa: E402
from node.web.app import create_app  # noqa: E402

SECRET = "bench-secret-" + "x" * 40
TARGETS_MS = {"search": 50.0, "home": 30.0, "community": 30.0}


def _dsn(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


async def _kept(dsn: str, scale: float) -> bool:
    """Whether a data set kept from an earlier run has this scale's threads (then it is
    brought up to the current migrations and reused)."""
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        return bool(await conn.fetchval("SELECT count(*) FROM threads") == Sizes.at(scale).threads)
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


async def ensure_dataset(server: str, scale: float, keep: bool) -> str:
    """A database holding the data set at ``scale`` (built now unless kept from a run before)."""
    name = f"vbg_bench_scale_{scale:g}x".replace(".", "_")
    admin = await asyncpg.connect(server)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and keep and await _kept(_dsn(server, name), scale):
            return _dsn(server, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await db.connect(_dsn(server, name))
    try:
        await db.migrate(conn)
        started = time.perf_counter()
        sizes = await generate(conn, scale)
        print(f"  data set {scale:g}×: {sizes} written in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await conn.close()
    return _dsn(server, name)


async def _login(client: httpx.AsyncClient) -> None:
    page = await client.get("/connexion")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/connexion", data={"username": BENCH_MEMBER, "password": BENCH_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303, response.status_code


async def _pages(conn: asyncpg.Connection) -> dict[str, str]:
    community = await conn.fetchrow(
        "SELECT c.name, count(*) AS threads FROM communities c JOIN threads t ON t.community_id = c.id "
        "WHERE c.visibility = 'members' GROUP BY c.name ORDER BY count(*) DESC LIMIT 1"
    )
    # The first thread of 20 to 40 replies (else the nearest to 30: the smoke run's tiny
    # data set may have none).
    thread = await conn.fetchval(
        "SELECT id FROM threads WHERE reply_count BETWEEN 20 AND 40 ORDER BY id LIMIT 1"
    ) or await conn.fetchval("SELECT id FROM threads ORDER BY abs(reply_count - 30), id LIMIT 1")
    return {
        "search: one common word": "/recherche?q=survivante",
        "search: two words": "/recherche?q=zone+rurale",
        "search: rare word": "/recherche?q=fistule",
        "search: common word, page 5": "/recherche?q=survivante&page=5",
        "home (member)": "/",
        "community, page 1": f"/c/{community['name']}",
        "community, halfway down": f"/c/{community['name']}?avant={await _halfway(conn, community['name'])}",
        "thread page": f"/t/{thread}",
    }


async def _halfway(conn: asyncpg.Connection, community: str) -> str:
    """The list cursor of the thread halfway down a community's history (a page a
    member reaches by following « Plus anciennes » a hundred times at 10×)."""
    row = await conn.fetchrow(
        "SELECT t.pinned, t.last_activity_at, t.id FROM threads t JOIN communities c ON c.id = t.community_id "
        "WHERE c.name = $1 AND t.deleted_at IS NULL ORDER BY t.pinned DESC, t.last_activity_at DESC, t.id DESC "
        "OFFSET (SELECT count(*) / 2 FROM threads WHERE community_id = (SELECT id FROM communities WHERE name = $1)) "
        "LIMIT 1",
        community,
    )
    return ListCursor(row["pinned"], row["last_activity_at"], row["id"]).token()


async def _measure(client: httpx.AsyncClient, path: str, requests: int) -> list[float]:
    for _ in range(5):
        (await client.get(path)).raise_for_status()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def _chosen(label: str, only: tuple[str, ...]) -> bool:
    """Whether ``--pages`` asks for this page (each word a prefix of its label; none: all)."""
    return not only or any(label.startswith(word) for word in only)


async def measure_scale(dsn: str, requests: int, only: tuple[str, ...] = ()) -> dict[str, list[float]]:
    data = tempfile.mkdtemp(prefix="vbg-bench-scale-")
    settings = load(
        {
            "VBG_BASE_URL": "http://testserver",
            "VBG_DATA_DIR": data,
            "VBG_SECRET_KEY": SECRET,
            "DATABASE_URL": dsn,
        }
    )
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            pages = await _pages(conn)
        app = create_app(settings, pool=pool)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        results: dict[str, list[float]] = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as member:
            await _login(member)
            for label, path in pages.items():
                if _chosen(label, only):
                    results[label] = await _measure(member, path, requests)
        visitor_label = "search: common word (visitor)"
        if _chosen(visitor_label, only):
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as visitor:
                results[visitor_label] = await _measure(visitor, "/recherche?q=survivante", requests)
        return results
    finally:
        await pool.close()


def _target(label: str) -> float | None:
    for prefix, target in TARGETS_MS.items():
        if label.startswith(prefix):
            return target
    return None


def report(by_scale: dict[float, dict[str, list[float]]]) -> None:
    scales = sorted(by_scale)
    labels: list[str] = list(by_scale[scales[0]])
    head = "".join(f"{f'{s}× p50 / p99 (ms)':>26}" for s in scales)
    print(f"\n{'page':<36}{head}   target p99")
    for label in labels:
        cells = "".join(
            f"{statistics.median(by_scale[s][label]):>13.1f} / {pct(by_scale[s][label], 0.99):>8.1f}  "
            for s in scales
        )
        target = _target(label)
        last = pct(by_scale[scales[-1]][label], 0.99)
        verdict = "" if target is None else f"≤ {target:.0f}  {'✓' if last <= target else '✗'}"
        print(f"{label:<36}{cells} {verdict}")
    for s in scales:
        for label in labels:
            p99 = pct(by_scale[s][label], 0.99)
            figures.record(f"{label}, p99", p99, "ms", target=_target(label), better="lower", group=f"{s:g}×")


def summary(by_scale: dict[float, dict[str, list[float]]]) -> dict[str, dict[str, dict[str, float]]]:
    agg: Callable[[list[float]], dict[str, float]] = lambda t: {  # noqa: E731
        "p50_ms": round(statistics.median(t), 2),
        "p99_ms": round(pct(t, 0.99), 2),
    }
    return {f"{s}x": {label: agg(t) for label, t in by_scale[s].items()} for s in sorted(by_scale)}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="1,10")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--fresh", action="store_true", help="rebuild the data sets even if an earlier run kept them"
    )
    parser.add_argument(
        "--pages",
        default="",
        help="only the pages whose label starts with one of these comma-separated words "
        "(e.g. home,community,thread); default: every page",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    if figures.smoke():
        args.scales, args.requests = "0.01", 5
    server = os.environ.get("DATABASE_URL")
    embedded = None
    if not server:
        embedded = db.EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="vbg-bench-pg-")))
        server = embedded.start("postgres")
    try:
        by_scale: dict[float, dict[str, list[float]]] = {}
        for scale in (float(s) for s in args.scales.split(",")):
            dsn = await ensure_dataset(server, scale, keep=not args.fresh)
            only = tuple(word.strip() for word in args.pages.split(",") if word.strip())
            by_scale[scale] = await measure_scale(dsn, args.requests, only)
        report(by_scale)
        if args.json:
            args.json.write_text(json.dumps(summary(by_scale), indent=2))
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
