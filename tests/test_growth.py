"""Several processes on one PostgreSQL (issue 16, "growing past one machine").

- First start: on an empty database, ``serve`` with two web processes and two
  ``worker`` processes started at the same instant all come up, with no deadlock and no
  retry in their logs, and the shared first-start rows (the instance actor and its keys)
  exist once. The Prometheus exporter of ``serve`` adds up its web processes' counters.
- Two ``serve`` and two ``worker`` processes on one database: every activity reaches
  every follower instance exactly once, and both web servers show the same pages.

Real ``vbg-node`` processes: run under ``flock /tmp/vbg-heavy.lock``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from federation import policy
from node import db, threads
from node.settings import load
from tests.conftest import TEST_SECRET, _with_database, drop_test_database
from tests.delivery_kit import community, follower, member, new_reply, new_thread, trust_us
from tests.fakefedi import FakeInstance
from tests.helpers import eventually
from tests.interop import VBG_NODE
from tests.liveserver import free_port, stop_process

pytestmark = pytest.mark.federation

HOST = "127.0.0.41"
TROUBLE = re.compile(r"deadlock|retry|retrying|Traceback|\bERROR\b|exception", re.IGNORECASE)


class Proc:
    """One ``vbg-node serve`` or ``vbg-node worker`` process and its log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self.process = subprocess.Popen(
            [VBG_NODE, *args], env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def processes(specs: list[tuple[str, list[str], dict[str, str]]], logdir: Path) -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        for name, args, env in specs:
            started.append(Proc(name, args, env, logdir))
        yield started
    finally:
        for proc in started:
            proc.stop()


def base_env(dsn: str, data_dir: Path, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VBG_")}
    return {**env, "DATABASE_URL": dsn, "VBG_DATA_DIR": str(data_dir), "VBG_BASE_URL": base_url,
            "VBG_SECRET_KEY": TEST_SECRET, "VBG_DEV_ALLOW_PRIVATE_PEERS": "1"}  # fmt: skip


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def wait_up(url: str, procs: list[Proc]) -> None:
    async def up() -> bool:
        for proc in procs:
            assert proc.process.poll() is None, f"{proc.name} exited:\n{proc.log()}"
        return await asyncio.to_thread(http_ok, url)

    await eventually(up, f"{url} answers", within=60)


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    name = f"vbgt_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = _with_database(server_dsn, name)
    try:
        yield dsn
    finally:
        await drop_test_database(server_dsn, dsn)


async def test_processes_starting_together_on_an_empty_database(empty_dsn: str, tmp_path: Path) -> None:
    port, metrics_port, worker_metrics_port = free_port(HOST), free_port(), free_port()
    base_url = f"http://{HOST}:{port}"
    env = base_env(empty_dsn, tmp_path / "data", base_url)
    serve_env = {**env, "VBG_HOST": HOST, "VBG_PORT": str(port), "VBG_WEB_WORKERS": "2",
                 "VBG_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}"}  # fmt: skip
    # Given an empty database, when serve (two web processes) and two workers start at once
    worker1 = ["worker", "--metrics-address", f"127.0.0.1:{worker_metrics_port}"]
    specs = [("serve", ["serve"], serve_env), ("worker1", worker1, env), ("worker2", ["worker"], env)]
    with processes(specs, tmp_path) as procs:
        await wait_up(base_url + "/readyz", procs)

        async def workers_started() -> bool:
            return all("federation workers started" in p.log() for p in procs[1:])

        await eventually(workers_started, "both workers start")
        # Then the database is migrated and the instance actor exists once, made at first start
        conn = await asyncpg.connect(empty_dsn)
        try:
            assert await db.pending_migrations(conn) == []
            assert await conn.fetchval("SELECT count(*) FROM actors WHERE kind = 'Application'") == 1
        finally:
            await conn.close()
        # And the exporter adds up what both web processes counted
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                async with http.get(base_url + "/healthz") as r:
                    assert r.status == 200
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                scraped = await r.text()
            # (a worker exports its own, on the address given to it)
            async with http.get(f"http://127.0.0.1:{worker_metrics_port}/metrics") as r:
                from_worker = await r.text()
        assert (
            "\nvbg_up 1.0\n" in from_worker
            and 'vbg_queue_depth{queue="delivery",state="pending"}' in from_worker
        )
        served = re.search(
            r'vbg_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)', scraped
        )
        assert served is not None and float(served.group(1)) >= 20, scraped[-2000:]
        pids = {p.process.pid for p in procs}
    # And no process logged a deadlock, a retry or an error
    for proc in procs:
        trouble = [line for line in proc.log().splitlines() if TROUBLE.search(line)]
        assert trouble == [], f"{proc.name} (pid in {pids}):\n" + "\n".join(trouble)


async def relayed(pool: asyncpg.Pool) -> set[str]:
    """Ids of the activities the group relayed to its followers (its Announces)."""
    rows = await pool.fetch("SELECT uri FROM activities WHERE actor_uri LIKE '%/c/medical'")
    return {r["uri"] for r in rows}


def post_ids(html: str) -> list[str]:
    return re.findall(r'<article class="post[^"]*" id="p(\d+)"', html)


async def test_two_serve_and_two_worker_processes_share_one_database(
    database_url: str, tmp_path: Path
) -> None:
    port1, port2 = free_port(HOST), free_port(HOST)
    base_url = f"http://{HOST}:{port1}"  # the public address; the second server stands beside it
    env = {**base_env(database_url, tmp_path / "data", base_url), "VBG_WORKERS_IN_SERVE": "0",
           "VBG_WEB_WORKERS": "1"}  # fmt: skip
    settings = load(env)
    pool = await db.create_pool(database_url, min_size=1, max_size=4)
    fakes = [FakeInstance(f"127.0.0.{61 + n}", software="mastodon") for n in range(3)]
    try:
        for fake in fakes:
            await fake.start()
        # Given an open node whose public community is followed from three instances
        async with pool.acquire() as conn:
            await policy.set_federation_mode(conn, "open")
        group = await community(pool, "medical", "public")
        for fake in fakes:
            await follower(pool, group, fake, "lea")
        amina = await member(pool, "amina")
        await trust_us(pool, settings, fakes, users=[amina], groups=[group])
        specs = [
            ("serve1", ["serve"], {**env, "VBG_HOST": HOST, "VBG_PORT": str(port1)}),
            ("serve2", ["serve"], {**env, "VBG_HOST": HOST, "VBG_PORT": str(port2)}),
            ("worker1", ["worker"], env),
            ("worker2", ["worker"], env),
        ]
        with processes(specs, tmp_path) as procs:
            await wait_up(f"http://{HOST}:{port1}/readyz", procs)
            await wait_up(f"http://{HOST}:{port2}/readyz", procs)
            # When members write eight threads with a reply each while both workers run
            created = []
            for n in range(8):
                thread = await new_thread(pool, group, amina, f"Fil {n}")
                await new_reply(pool, thread.thread_id, amina)
                created.append(thread)

            async def all_delivered() -> bool:
                # every outbox event turned into activities, every delivery job done
                waiting = await pool.fetchval(
                    "SELECT (SELECT count(*) FROM outbox_events WHERE processed_at IS NULL)"
                    " + (SELECT count(*) FROM delivery_jobs)"
                )
                if waiting:
                    return False
                sent = await relayed(pool)
                return all({a["id"] for a in fake.inbox_activities()} >= sent for fake in fakes)

            try:
                await eventually(all_delivered, "every activity reaches every instance", within=60)
            except AssertionError:
                sent = await relayed(pool)
                jobs = await pool.fetch("SELECT domain, state, last_status, last_error FROM delivery_jobs")
                got = {f.domain: len({a["id"] for a in f.inbox_activities()} & sent) for f in fakes}
                bad = [(r.path, r.signature_error) for f in fakes for r in f.received if not r.signature_ok]
                raise AssertionError(
                    f"sent {len(sent)}, received {got}, jobs {jobs[:5]}, refused {bad[:3]}"
                ) from None
            sent = await relayed(pool)
            assert (
                len(sent) >= 24
            )  # per thread at least Announce{Create Page}, Announce{Page}, Announce{Create Note}
            # (nothing is left to send: no job, every event processed; a duplicate would
            # have to come from a job, so none can arrive later)
            # Then each instance received each activity exactly once
            for fake in fakes:
                counts = Counter(a["id"] for a in fake.inbox_activities())
                assert {i: c for i, c in counts.items() if c > 1} == {}, fake.domain
                assert set(counts) == sent
            # And both web servers show the same pages, an edit included
            first = created[0]
            async with pool.acquire() as conn:
                await threads.edit_post(conn, first.post_id, amina, "Texte révisé pour tout le monde.")
            async with aiohttp.ClientSession() as http:
                pages = []
                for port in (port1, port2):
                    async with http.get(f"http://{HOST}:{port}/t/{first.thread_id}") as r:
                        assert r.status == 200
                        pages.append(await r.text())
                    async with http.get(f"http://{HOST}:{port}/c/medical") as r:
                        listing = await r.text()
                        assert all(f"Fil {n}" in listing for n in range(8))
            assert post_ids(pages[0]) == post_ids(pages[1]) and len(post_ids(pages[0])) == 2
            assert all("Texte révisé pour tout le monde." in page for page in pages)
        for proc in procs:
            trouble = [line for line in proc.log().splitlines() if TROUBLE.search(line)]
            assert trouble == [], f"{proc.name}:\n" + "\n".join(trouble)
    finally:
        for fake in fakes:
            await fake.stop()
        await pool.close()
