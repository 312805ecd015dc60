"""Inbox benchmark (issue 3): signed Create{Note} activities verified, validated and
durably stored per CPU-second, and latency at 16 concurrent senders.

Prints figures; asserts nothing. The raw RSA-2048 verify rate per core is measured in
the same run, so the ratio survives a noisy machine. Targets (issue 3):

- activities verified, validated, stored (202 = committed) AND processed by the worker
  (each one a new thread in a public community, relayed) per CPU-second of
  app + worker + PostgreSQL ≥ 0.04 × the raw verify rate per core;
- p99 ≤ 30 ms at 16 concurrent senders.

Set-up: an embedded PostgreSQL of its own (its whole cluster's CPU is counted), the
node as ``vbg-node serve`` (granian, workers off) and ``vbg-node worker`` in two
processes (their CPU is reported apart), a fake Mastodon instance in this process with
16 actors whose keys our node fetches once (warm-up). Requests are signed before the
timed phase, so the senders' RSA work is not in the way.

    .venv/bin/python bench/inbox.py [--requests 3000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from federation import policy  # noqa: E402
from node import db  # noqa: E402
from node.communities import create_community  # noqa: E402
from tests.fakefedi import FakeActor, FakeInstance, signed_headers  # noqa: E402

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
LOG = open(os.environ.get("BENCH_LOG", os.devnull), "ab")  # noqa: SIM115
SECRET = "bench-secret-" + "x" * 40


def raw_verify_rate(seconds: float = 1.0) -> float:
    """RSA-2048 PKCS#1 v1.5 SHA-256 verifications per second on one core (cryptography)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"(request-target): post /inbox\nhost: example.org\ndate: x\ndigest: SHA-256=y"
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    done, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(200):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        done += 200
    return done / (time.process_time() - start)


def create_note(fake: FakeInstance, actor: FakeActor, group: str, n: int) -> dict[str, Any]:
    note_id = fake.url(f"/users/{actor.username}/statuses/{uuid.uuid4().int >> 64}")
    mention = f'<span class="h-card"><a href="{group}" class="u-url mention">@<span>medical</span></a></span>'
    note = {
        "id": note_id, "type": "Note", "attributedTo": actor.id, "to": [PUBLIC],
        "cc": [actor.id + "/followers", group], "published": "2025-01-05T10:00:00Z",
        "content": f"<p>{mention} Question n°{n} sur la prise en charge</p><p>Bonjour, un cas à discuter.</p>",
        "tag": [{"type": "Mention", "href": group, "name": "@medical"}],
    }  # fmt: skip
    return {"@context": "https://www.w3.org/ns/activitystreams", "id": note_id + "/activity", "type": "Create",
            "actor": actor.id, "to": note["to"], "cc": note["cc"], "object": note}  # fmt: skip


def presign(
    fake: FakeInstance, senders: list[FakeActor], inbox: str, group: str, count: int, first: int
) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for i in range(count):
        actor = senders[i % len(senders)]
        body = json.dumps(create_note(fake, actor, group, first + i)).encode()
        headers = signed_headers(
            "POST", inbox, body, actor.key, extra={"Content-Type": "application/activity+json"}
        )
        out.append((body, headers))
    return out


async def send_all(inbox: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = list(reversed(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            while queue:
                body, headers = queue.pop()
                start = time.perf_counter()
                async with session.post(inbox, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"inbox answered {response.status}: {await response.text()}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return latencies


async def wait_processed(dsn: str, expected: int, limit_s: float = 300) -> None:
    conn = await db.connect(dsn)
    try:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            done = await conn.fetchval("SELECT count(*) FROM inbox_items WHERE status IN ('done', 'ignored')")
            if done >= expected:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"only {done} of {expected} items processed")
    finally:
        await conn.close()


def cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "node.cli", *cmd], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=LOG)  # fmt: skip


async def prepare(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        await policy.set_federation_mode(conn, "open")
        await create_community(conn, "medical", "Prise en charge médicale", visibility="public")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    verify_rate = raw_verify_rate()
    work = Path(tempfile.mkdtemp(prefix="vbg-bench-inbox-"))
    embedded = db.EmbeddedPostgres(work)
    dsn = embedded.start("bench")
    port = 19000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": dsn, "VBG_BASE_URL": base, "VBG_PORT": str(port),
           "VBG_DATA_DIR": str(work / "data"), "VBG_SECRET_KEY": SECRET, "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
           "VBG_WORKERS_IN_SERVE": "0", "VBG_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await prepare(dsn)
        async with FakeInstance("127.0.0.71", software="mastodon") as fake:
            senders = [fake.add_actor(f"sender{i}") for i in range(args.concurrency)]
            procs = [start(["serve"], env), start(["worker"], env)]
            inbox, group = f"{base}/inbox", f"{base}/c/medical"
            for _ in range(200):
                try:
                    async with aiohttp.ClientSession() as s, s.get(f"{base}/actor") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            # Warm-up: every sender's key fetched once, connections and caches filled.
            warm = presign(fake, senders, inbox, group, 20 * len(senders), 0)
            await send_all(inbox, warm, args.concurrency)
            await wait_processed(dsn, len(warm))
            timed = presign(fake, senders, inbox, group, args.requests, len(warm))

            app_procs, worker_procs = tree(procs[0].pid), tree(procs[1].pid)
            pg_procs = tree(int((embedded.pgdata / "postmaster.pid").read_text().split()[0]))
            app0, worker0, pg0 = cpu_of(app_procs), cpu_of(worker_procs), cpu_of(pg_procs)
            wall0 = time.perf_counter()
            latencies = await send_all(inbox, timed, args.concurrency)
            stored_wall = time.perf_counter() - wall0
            await wait_processed(dsn, len(warm) + len(timed))
            wall = time.perf_counter() - wall0
            pg_procs = tree(int((embedded.pgdata / "postmaster.pid").read_text().split()[0]))
            app_cpu, worker_cpu = cpu_of(app_procs) - app0, cpu_of(worker_procs) - worker0
            pg_cpu = cpu_of(pg_procs) - pg0
        total = app_cpu + worker_cpu + pg_cpu
        rate = args.requests / total
        print(
            f"raw RSA-2048 verify rate: {verify_rate:,.0f}/s per core → target 0.04 × = {0.04 * verify_rate:,.0f}/CPU-s"
        )
        print(f"{args.requests} signed Create{{Note}}, {args.concurrency} concurrent senders: all answered 202 in "
              f"{stored_wall:.2f} s, all processed (new threads) in {wall:.2f} s wall")  # fmt: skip
        print(
            f"CPU: web {app_cpu:.2f} s + worker {worker_cpu:.2f} s + PostgreSQL {pg_cpu:.2f} s = {total:.2f} s"
        )
        print(f"activities verified, validated, stored and processed per CPU-second: {rate:,.0f} "
              f"({rate / verify_rate:.3f} × raw verify rate; target ≥ 0.04)")  # fmt: skip
        inbox_only = args.requests / (app_cpu + pg_cpu * stored_wall / wall)
        print(f"  (inbox alone, web + PostgreSQL share, ≈ {inbox_only:,.0f}/CPU-s)")
        print(f"latency: p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {pct(latencies, 0.99) * 1000:.1f} ms "
              f"(target p99 ≤ 30 ms)")  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
