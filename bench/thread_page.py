"""Thread page benchmark (issue 2): weight, throughput per CPU-second, latency, memory.

Starts its own embedded PostgreSQL (so its CPU time can be counted apart from
anything else on the machine), fills a thread with 50 replies written by several
members, runs the node as `vbg-node serve` (granian; `--server uvicorn` to compare) with
its default two web processes (VBG_WEB_WORKERS, about one per core; `--web-workers 1` to
see one process alone), app CPU = every web process and granian's supervisor,
and loads the thread page as a logged-in member with N concurrent clients. The load
comes from `wrk` (Debian package `wrk`; one thread, N kept-alive connections) when it
is installed, so the load generator takes as little of the 2 cores as possible;
otherwise (or with `--client aiohttp`) from an aiohttp client in this process.

Prints figures; asserts nothing. Targets (issue 2): ≤ 60 KB raw and ≤ 20 KB gzip,
CSS included; ≥ 800 pages per CPU-second (app + PostgreSQL); p50 ≤ 50 ms and
p99 ≤ 150 ms at 64 concurrent clients; one web process ≤ 80 MB RSS.

    .venv/bin/python bench/thread_page.py [--requests 4000] [--concurrency 64] [--server granian|uvicorn]
                                          [--client wrk|aiohttp] [--duration 10] [--web-workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
from procs import cpu_of, pct, postmaster_pid, tree  # noqa: E402

from node import db, sessions, threads  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.communities import create_community, find  # noqa: E402
from node.sessions import User  # noqa: E402

SENTENCES = [
    "La survivante a été reçue dans les 48 heures et un kit PEP a été proposé.",
    "Il faut documenter les lésions avec précision pour le certificat médical.",
    "Le consentement éclairé doit être recueilli à chaque étape de l'examen.",
    "Nous orientons systématiquement vers l'accompagnement psychosocial.",
    "Le suivi sérologique est prévu à six semaines, trois mois et six mois.",
    "L'accès à la contraception d'urgence reste difficile en zone rurale.",
    "La juriste du centre peut accompagner la plainte si la personne le souhaite.",
    "Attention à ne jamais noter le nom de la personne dans les échanges ici.",
]


def body(rng: random.Random) -> str:
    paras = [
        " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(1, 3))
    ]
    if rng.random() < 0.3:
        paras.append("- premier point\n- **second** point")
    return "\n\n".join(paras)


async def fill(dsn: str, data_dir: Path) -> tuple[str, str]:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        rng = random.Random(7)
        ids = [
            await create_user(
                conn, f"membre{i}", "mot-de-passe-bench", display_name=f"Dr Membre {i}", profession="medical"
            )
            for i in range(8)
        ]
        await create_community(conn, "medical", "Prise en charge médicale", visibility="members")
        community = await find(conn, "medical")
        assert community is not None
        users = [User(i, f"membre{n}", f"Dr Membre {n}", "member", "approved") for n, i in enumerate(ids)]
        created = await threads.create_thread(
            conn, community, users[0], "Prophylaxie post-exposition au-delà de 72 heures", body(rng)
        )
        for _ in range(50):
            await threads.create_reply(conn, created.thread_id, rng.choice(users), body(rng))
        token = await sessions.create(conn, ids[1], "bench", "127.0.0.1")
        return f"/t/{created.thread_id}", token
    finally:
        await conn.close()


def start_server(kind: str, dsn: str, port: int, data_dir: Path, web_workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "VBG_PORT": str(port),
        "VBG_DATA_DIR": str(data_dir),
        "VBG_WORKERS_IN_SERVE": "0",
        "VBG_LOG_LEVEL": "WARNING",
        "VBG_WEB_WORKERS": str(web_workers),
    }
    if kind == "granian":
        cmd = [sys.executable, "-m", "node.cli", "serve"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "node.web.app:app_from_env", "--port", str(port),
               "--log-level", "warning", "--no-access-log", "--workers", str(web_workers)]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster and its children."""
    return tree(postmaster_pid(pgdata))


async def load(url: str, cookie: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, cookies={sessions.COOKIE: cookie}) as client:

        async def one_client() -> None:
            for _ in queue:
                start = time.perf_counter()
                async with client.get(url) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk_load(url: str, cookie: str, concurrency: int, duration: float) -> tuple[int, float, float, float]:
    """Runs wrk; returns (requests, wall seconds, p50, p99) in seconds."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{round(duration)}s", "--latency", "--timeout", "10s",
         "-H", f"Cookie: {sessions.COOKIE}={cookie}", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failures:\n{out}")
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))

    def seconds(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return float(number) * UNITS[unit]

    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert done is not None, out
    return int(done[1]), seconds(done[2] + done[3]), seconds(found["50"]), seconds(found["99"])


# Writes what the page shows, given the database and the node's data directory (its
# key file: messages are sealed with the keys the server reads); returns the page's
# path and a member's session token.
Fill = Callable[[str, Path], Awaitable[tuple[str, str]]]


async def main(fill: Fill = fill, label: str = "thread page") -> None:
    """Measure the page ``fill`` writes (by default a thread's); figures are named
    after ``label``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument(
        "--client", choices=["wrk", "aiohttp"], default="wrk" if shutil.which("wrk") else "aiohttp"
    )
    parser.add_argument(
        "--web-workers", type=int, default=2, help="web processes (VBG_WEB_WORKERS; default 2)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load with wrk")
    args = parser.parse_args()
    if figures.smoke():
        args.duration, args.requests = 1.0, 200

    work = Path(tempfile.mkdtemp(prefix="vbg-bench-"))
    embedded = db.EmbeddedPostgres(work)
    dsn = embedded.start("bench")
    server = None
    try:
        path, token = await fill(dsn, work / "data")
        port = 18000 + os.getpid() % 1000
        server = start_server(args.server, dsn, port, work / "data", args.web_workers)
        url = f"http://127.0.0.1:{port}{path}"
        async with aiohttp.ClientSession(cookies={sessions.COOKIE: token}) as client:
            for _ in range(100):
                try:
                    async with client.get(url) as r:
                        html = await r.read()
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            async with client.get(f"http://127.0.0.1:{port}/static/site.css") as r:
                css = await r.read()
        assert b"<script" not in html
        page_bytes = len(html) + len(css)
        page_gzip = len(gzip.compress(html, 6)) + len(gzip.compress(css, 6))
        replies = html.count(b'class="post')

        await load(url, token, 300, args.concurrency)  # warm-up: caches, connections, JIT-free paths
        app_procs = tree(server.pid)
        pg_procs = postgres_processes(embedded.pgdata)
        app_cpu0, pg_cpu0 = cpu_of(app_procs), cpu_of(pg_procs)
        wall0 = time.perf_counter()
        if args.client == "wrk":
            count, wall, p50, p99 = wrk_load(url, token, args.concurrency, args.duration)
        else:
            latencies = await load(url, token, args.requests, args.concurrency)
            count, wall = args.requests, time.perf_counter() - wall0
            p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
        app_cpu = cpu_of(app_procs) - app_cpu0
        pg_cpu = cpu_of(postgres_processes(embedded.pgdata)) - pg_cpu0
        rss = max(p.memory_info().rss for p in app_procs if p.is_running())

        print(
            f"server: {args.server} with {args.web_workers} web processes (VBG_WEB_WORKERS); client: {args.client}; "
            f"{label} with {replies} posts; "
            f"{count} requests, {args.concurrency} concurrent"
        )
        print(f"page weight: {len(html) / 1024:.1f} KB HTML + {len(css) / 1024:.1f} KB CSS = {page_bytes / 1024:.1f} KB raw; "
              f"{page_gzip / 1024:.1f} KB gzip (targets ≤ 60 KB, ≤ 20 KB); JavaScript: none")  # fmt: skip
        print(
            f"throughput: {count / wall:.0f} pages/s wall; CPU app {app_cpu:.2f} s + PostgreSQL {pg_cpu:.2f} s"
        )
        print(f"pages per CPU-second (app + PostgreSQL): {count / (app_cpu + pg_cpu):.0f} (target ≥ 800)")
        print(f"latency: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
              f"(targets ≤ 50 ms, ≤ 150 ms)")  # fmt: skip
        print(f"largest web process RSS: {rss / 1024 / 1024:.1f} MB (target ≤ 80 MB per process)")
        figures.record(f"{label}, weight gzip", page_gzip / 1024, "KB", target=20, better="lower")
        figures.record(f"{label}, pages per CPU-second", count / (app_cpu + pg_cpu), "/CPU-s", target=800)
        figures.record(f"{label}, p50 at 64 clients", p50 * 1000, "ms", target=50, better="lower")
        figures.record(f"{label}, p99 at 64 clients", p99 * 1000, "ms", target=150, better="lower")
        rss_name = (
            "web process RSS serving pages" if label == "thread page" else f"web process RSS serving {label}s"
        )
        figures.record(rss_name, rss / 2**20, "MB", target=80, better="lower")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
