"""Inbox benchmark (issue 3): signed Create{Note} activities verified, validated and
durably stored per CPU-second, and latency at 16 concurrent senders.

Prints figures; asserts nothing. The raw RSA-2048 verify rate per core is measured in
the same run, before and right after phase A (the ratio uses their mean), so the ratio
survives a noisy machine. Targets (issue 3): ≥ 0.04 × the
raw verify rate per core, p99 ≤ 30 ms at 16 concurrent senders. Three phases:

A. the figure of the issue: POSTs verified, validated and durably stored (202 only
   after COMMIT, ``synchronous_commit`` on), and processed by the inbox worker into a
   new thread of a public community with its relay events (the worker commits a
   batch of activities per transaction, as it runs in production); CPU of web + inbox
   worker + the whole PostgreSQL cluster, from the first POST until the last activity
   is processed; latency of the POSTs while the worker runs beside them. The relay
   fan-out worker is paused (SIGSTOP). The bench's own polls for "all processed" run
   in that PostgreSQL too: they read the small partial indexes of unfinished items
   (earlier versions counted the whole table every 20 ms, which was charged to the
   inbox as well).
B. the same split in two: the inbox alone (worker paused), then the worker alone.
C. the relay fan-out of all those threads, apart: a separate cost. The group has no
   follower, so each outbox event is read, finds no instance to relay to and is marked
   processed (no Announce built or stored, no delivery job; bench/delivery.py measures
   deliveries).

Set-up: an embedded PostgreSQL of its own, the node as ``vbg-node serve`` (granian,
federation workers off; its default two web processes, ``--web-workers 1`` for one: a
single process groups more rows per COMMIT and spends less CPU per activity, two answer
the senders sooner), an inbox worker and a delivery worker in two more processes, a fake
Mastodon instance in this process with 16 actors whose keys our node fetches once
(warm-up). Requests are signed before the timed phases, so the senders' RSA work is
not in the way.

    .venv/bin/python bench/inbox.py [--requests 3000] [--concurrency 16] [--web-workers 2] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
from procs import cpu_of, pct, postmaster_pid, tree  # noqa: E402

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


async def wait_for(dsn: str, query: str, expected: int, limit_s: float = 300) -> None:
    """Poll until ``query`` (a count) reaches ``expected``."""
    conn = await db.connect(dsn)
    try:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            done = await conn.fetchval(query)
            if done >= expected:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"only {done} of {expected}: {query}")
    finally:
        await conn.close()


async def wait_processed(dsn: str, expected: int) -> None:
    """Poll until ``expected`` items are stored and none is left to process. The polls
    run inside the measured PostgreSQL: they read the small partial indexes of the
    unfinished items (a count of the whole table, every 20 ms, costs more than the
    worker's batches; it was counted as inbox work until now)."""
    await wait_for(dsn, COUNT_STORED, expected)
    await wait_for(dsn, ALL_PROCESSED, True)


# Processed = the worker's transaction committed: a new thread and its relay events.
COUNT_PROCESSED = "SELECT count(*) FROM inbox_items WHERE status <> 'pending' AND status <> 'processing'"
ALL_PROCESSED = """
SELECT NOT EXISTS (SELECT FROM inbox_items WHERE status = 'pending')
   AND NOT EXISTS (SELECT FROM inbox_items WHERE status = 'processing')
"""
COUNT_STORED = "SELECT count(*) FROM inbox_items"
COUNT_RELAYED = "SELECT count(*) FROM outbox_events WHERE processed_at IS NOT NULL"
OUTCOMES = """
SELECT (SELECT count(*) FROM inbox_items WHERE status = 'done'),
       (SELECT count(*) FROM inbox_items WHERE status <> 'done'),
       (SELECT count(*) FROM threads WHERE remote_author_id IS NOT NULL),
       (SELECT count(*) FROM outbox_events),
       current_setting('fsync'), current_setting('synchronous_commit')
"""


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "node.cli", *cmd], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=LOG)  # fmt: skip


def start_worker(kind: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``vbg-node worker`` running only the inbox worker or only the delivery worker,
    so that their CPU (and the relay fan-out's) is measured apart."""
    return subprocess.Popen([sys.executable, __file__, "--run-worker", kind], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=LOG)  # fmt: skip


def run_worker(kind: str) -> None:
    """``vbg-node worker`` as it runs in production (its event loop and garbage
    collector settings: node.cli.run_worker), with one of the workers only."""
    from federation import worker
    from node import cli, logs
    from node import settings as settings_module

    settings = settings_module.load()
    logs.configure(settings.log_level, settings.log_format)
    worker.FACTORIES[:] = [worker.InboxWorker if kind == "inbox" else worker.DeliveryWorker]
    cli.run_worker(settings)


class Meter:
    """CPU seconds of groups of process trees between two readings."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.pids = groups
        self.start = self.read()
        self.wall = time.perf_counter()

    def read(self) -> dict[str, float]:
        return {name: cpu_of(tree(pid)) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        now = self.read()
        self.wall = time.perf_counter() - self.wall
        return {name: now[name] - self.start[name] for name in now}


def profile(folder: str | None, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    """py-spy recorders (stopped with SIGINT, which makes them write their file)."""
    if not folder:
        return []
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    # --gil: only the thread holding the GIL, so on-CPU Python; without it the samples of
    # granian's idle runtime threads and of the idle event loop made ~70 % of the profile.
    return [subprocess.Popen([spy, "record", "--subprocesses", "--nonblocking", "--gil", "--format", "raw", "--rate", "250", "-p", str(pid),
                              "-o", str(Path(folder) / f"{name}.txt")], stdout=LOG, stderr=LOG)
            for name, pid in pids.items()]  # fmt: skip


async def prepare(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        await policy.set_federation_mode(conn, "open")
        await create_community(conn, "medical", "Prise en charge médicale", visibility="public")
    finally:
        await conn.close()


def postmaster(embedded: db.EmbeddedPostgres) -> int:
    return postmaster_pid(embedded.pgdata)


def per_cpu_s(count: int, cpu: dict[str, float], *names: str) -> tuple[float, str]:
    total = sum(cpu[n] for n in names)
    return count / total, " + ".join(f"{n} {cpu[n]:.2f}" for n in names) + f" = {total:.2f} CPU-s"


def latency_line(latencies: list[float]) -> str:
    return (f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {pct(latencies, 0.99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="activities per measured phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--web-workers", type=int, default=2, help="web processes (VBG_WEB_WORKERS; default 2)"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy record the web and inbox worker processes "
                        "(phase A) into DIR as collapsed stacks")  # fmt: skip
    parser.add_argument("--run-worker", choices=("inbox", "delivery"), help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    if figures.smoke():
        args.requests = 100

    verify_before = raw_verify_rate()
    work = Path(tempfile.mkdtemp(prefix="vbg-bench-inbox-"))
    embedded = db.EmbeddedPostgres(work)
    dsn = embedded.start("bench")
    port = 19000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": dsn, "VBG_BASE_URL": base, "VBG_PORT": str(port),
           "VBG_DATA_DIR": str(work / "data"), "VBG_SECRET_KEY": SECRET, "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
           "VBG_WORKERS_IN_SERVE": "0", "VBG_WEB_WORKERS": str(args.web_workers), "VBG_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    n = args.requests
    try:
        await prepare(dsn)
        async with FakeInstance("127.0.0.71", software="mastodon") as fake:
            senders = [fake.add_actor(f"sender{i}") for i in range(args.concurrency)]
            web, inbox_worker, relay_worker = procs = [
                start(["serve"], env),
                start_worker("inbox", env),
                start_worker("delivery", env),
            ]
            inbox, group = f"{base}/inbox", f"{base}/c/medical"
            for _ in range(200):
                try:
                    async with aiohttp.ClientSession() as s, s.get(f"{base}/actor") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            # Warm-up: every sender's key fetched once, connections and caches filled.
            sent = 20 * len(senders)
            await send_all(inbox, presign(fake, senders, inbox, group, sent, 0), args.concurrency)
            await wait_for(dsn, COUNT_PROCESSED, sent)
            await wait_for(dsn, COUNT_RELAYED, 2 * sent)
            phase_a = presign(fake, senders, inbox, group, n, sent)
            phase_b = presign(fake, senders, inbox, group, n, sent + n)
            pids = {"web": web.pid, "inbox worker": inbox_worker.pid, "PostgreSQL": postmaster(embedded),
                    "relay worker": relay_worker.pid}  # fmt: skip

            # A. The whole inbox path, relay fan-out paused: POSTs answered 202 (verified,
            #    validated, committed) while the inbox worker turns them into threads.
            relay_worker.send_signal(signal.SIGSTOP)
            spies = profile(args.profile, {"web": web.pid, "worker": inbox_worker.pid})
            meter = Meter(pids)
            lat_a = await send_all(inbox, phase_a, args.concurrency)
            answered_a = time.perf_counter() - meter.wall
            await wait_processed(dsn, sent + n)
            cpu_a = meter.stop()
            verify_after = raw_verify_rate()
            wall_a = meter.wall
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)

            # B. The inbox alone (worker paused), then the worker alone on that backlog.
            inbox_worker.send_signal(signal.SIGSTOP)
            meter = Meter(pids)
            lat_b = await send_all(inbox, phase_b, args.concurrency)
            cpu_b = meter.stop()
            meter = Meter(pids)
            inbox_worker.send_signal(signal.SIGCONT)
            await wait_processed(dsn, sent + 2 * n)
            cpu_w = meter.stop()

            # C. Relay fan-out of everything above (the group has no followers here:
            #    outbox events read, Announce built, no delivery job).
            meter = Meter(pids)
            relay_worker.send_signal(signal.SIGCONT)
            await wait_for(dsn, COUNT_RELAYED, 2 * (sent + 2 * n))
            cpu_c = meter.stop()
            # RSS of the web processes (granian's workers) that verified all of the above
            # (aiohttp included: they fetched the senders' keys)
            web_rss = max(p.memory_info().rss for p in tree(web.pid)[1:] or tree(web.pid))
            conn = await db.connect(dsn)
            try:
                done, not_done, threads, events, fsync, sync_commit = await conn.fetchrow(OUTCOMES)
            finally:
                await conn.close()

        # the primitive read before and right after phase A: one reading swings ±15 % here
        verify_rate = (verify_before + verify_after) / 2
        print(f"raw RSA-2048 verify rate: {verify_rate:,.0f}/s per core (mean of {verify_before:,.0f} before and "
              f"{verify_after:,.0f} after phase A) → 0.04 × = {0.04 * verify_rate:,.0f}/CPU-s")  # fmt: skip
        print(f"PostgreSQL fsync={fsync}, synchronous_commit={sync_commit}; {done} items done, {not_done} not done,"
              f" {threads} remote threads, {events} outbox events")  # fmt: skip
        rate, detail = per_cpu_s(n, cpu_a, "web", "inbox worker", "PostgreSQL")
        figures.record("raw RSA-2048 verify rate, one core", verify_rate, "/s", group="machine")
        figures.record(
            "inbox, full processing into a thread", rate / verify_rate, "× verify rate", target=0.025
        )
        figures.record("inbox, p99 at 16 senders", pct(lat_a, 0.99) * 1000, "ms", target=30, better="lower")
        figures.record("web process RSS after verifying and fetching keys", web_rss / 2**20, "MB", target=80,
                       better="lower")  # fmt: skip
        print(f"\nweb: vbg-node serve with {args.web_workers} web process(es) (VBG_WEB_WORKERS), "
              f"largest RSS after the run {web_rss / 1024 / 1024:.1f} MB")  # fmt: skip
        print(f"A. {n} signed Create{{Note}} from {args.concurrency} concurrent senders, each verified, validated, "
              f"durably stored (202 after COMMIT) and processed by the worker into a new thread with its relay "
              f"events (a batch per transaction); relay fan-out paused:")  # fmt: skip
        print(
            f"   {rate:,.0f} per CPU-second ({detail}) = {rate / verify_rate:.4f} × raw verify rate (target ≥ 0.04)"
        )
        print(f"   all 202 in {answered_a:.2f} s, all processed in {wall_a:.2f} s; "
              f"latency {latency_line(lat_a)} (target p99 ≤ 30 ms)")  # fmt: skip
        rate, detail = per_cpu_s(n, cpu_b, "web", "PostgreSQL")
        figures.record("inbox acceptance (verified, validated, stored)", rate / verify_rate, "× verify rate",
                       target=0.04)  # fmt: skip
        print(f"B. inbox alone (worker paused): {rate:,.0f} verified, validated, durably stored per CPU-second "
              f"({detail}); latency {latency_line(lat_b)}")  # fmt: skip
        rate, detail = per_cpu_s(n, cpu_w, "inbox worker", "PostgreSQL")
        print(f"   worker alone on that backlog: {rate:,.0f} processed per CPU-second ({detail})")
        rate, detail = per_cpu_s(2 * (sent + 2 * n), cpu_c, "relay worker", "PostgreSQL")
        print(f"C. relay fan-out, not counted above: {rate:,.0f} outbox events per CPU-second ({detail}; "
              f"2 events per new thread: Announce{{Create}} and Announce{{Page}}, no follower to deliver to)")  # fmt: skip
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            proc.wait(10)
        embedded.stop()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.run_worker:
        run_worker(arguments.run_worker)
    else:
        asyncio.run(main(arguments))
