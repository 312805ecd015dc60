"""Documents space benchmark (issue 14): uploads and the library page.

1. Upload: a 25 MB PDF (one page, a large image) POSTed through the upload form of a
   running `vbg-node serve` (one web process), as a member's browser does: wall time
   (MB/s), the server's CPU, and its processes' peak RSS above their idle RSS, sampled
   every 10 ms while the file streams to disk, is typed, rewritten by pikepdf, its text
   extracted and its first page drawn. The upload is never held whole in memory; the
   PDF rewrite holds the file's objects (qpdf), which this figure shows.
2. Library: a community with 5,000 documents; its first library page (30 documents,
   featured first) and the node library `/documents` loaded as a member with 64
   concurrent clients (wrk when installed, else aiohttp), against the thread page's
   bars (bench/thread_page.py): ≥ 800 pages per CPU-second (app + PostgreSQL),
   p50 ≤ 50 ms, p99 ≤ 150 ms, ≤ 60 KB raw and ≤ 20 KB gzip. A page is served from its
   rendered copy while the library version holds (node.web.document_views), so this
   is the steady state; what a miss costs in SQL is measured apart (3).
3. The list query alone (what a page costs when its copy is replaced): the first page
   and a page 4,000 documents deep (keyset), community and node libraries, median of 50.

Prints figures; asserts nothing.

    .venv/bin/python bench/documents.py [--documents 5000] [--upload-mb 25] [--uploads 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import pikepdf
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
from procs import cpu_of, pct, tree  # noqa: E402
from thread_page import load, postgres_processes, start_server, wrk_load  # noqa: E402

from node import db, documents, sessions, threads  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.communities import create_community  # noqa: E402

TITLES = ["Protocole", "Fiche pratique", "Support de formation", "Rapport annuel", "Modèle de certificat"]
TOPICS = ["prise en charge médicale", "accueil des survivantes", "PEP", "certificat", "orientation juridique"]
FILL = f"""
WITH t AS (
    INSERT INTO threads (community_id, author_id, title, created_at, last_activity_at)
    SELECT $1, $2, (ARRAY{TITLES!r})[1 + g % 5] || ' ' || (ARRAY{TOPICS!r})[1 + g % 5] || ' n° ' || g,
           now() - g * interval '1 hour', now() - g * interval '1 hour'
    FROM generate_series(1, $3) g
    RETURNING id, title, created_at
), p AS (
    INSERT INTO posts (thread_id, author_id, is_opening, source, content_html)
    SELECT id, $2, true, 'Document partagé : ' || title, '<p>Document partagé : ' || title || '</p>' FROM t
), d AS (
    INSERT INTO documents (community_id, thread_id, author_id, title, description, doc_type, tags, language,
                           origin, licence, updated_at, featured_at)
    SELECT $1, id, $2, title, 'Document partagé : ' || title,
           (ARRAY['protocole','fiche','formation','rapport','modele','autre'])[1 + id % 6],
           ARRAY['accueil', 'urgence'], 'fr', 'Hôpital de référence', 'CC BY 4.0', created_at,
           CASE WHEN id % 1000 = 0 THEN now() END
    FROM t
    RETURNING id
)
INSERT INTO document_versions (document_id, number, stored_name, media_type, size, file_name, extracted_text)
SELECT id, 1, NULL, 'application/pdf', 100000 + id * 37 % 900000, 'document.pdf', 'texte extrait du document'
FROM d
"""
SEARCH = """
UPDATE documents d SET search_vector =
       setweight(to_tsvector('french', vbg_fold(d.title || ' ' || array_to_string(d.tags, ' '))), 'A')
    || setweight(to_tsvector('french', vbg_fold(d.description)), 'B')
"""


async def fill(dsn: str, documents: int) -> str:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        user = await create_user(conn, "membre", "mot-de-passe-bench", display_name="Dr Membre")
        community = await create_community(conn, "medical", "Prise en charge médicale", visibility="members")
        await conn.execute(FILL, community, user, documents)
        await conn.execute(SEARCH)
        await conn.execute("ANALYZE")
        return await sessions.create(conn, user, "bench", "127.0.0.1")
    finally:
        await conn.close()


def big_pdf(path: Path, megabytes: int) -> None:
    """A one-page PDF just under ``megabytes`` MiB: an uncompressed RGB image and a line of text."""
    side = int((megabytes * 1024 * 1024 * 0.98 / 3) ** 0.5)  # just under the cap with the PDF around it
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    image = pikepdf.Stream(pdf, os.urandom(side * side * 3))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width = image.Height = side
    image.ColorSpace, image.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
    )
    page = pdf.pages[0]
    page.obj.Resources = pikepdf.Dictionary(
        XObject=pikepdf.Dictionary(Im1=image), Font=pikepdf.Dictionary(F1=font)
    )
    page.obj.Contents = pdf.make_stream(
        b"BT /F1 12 Tf 40 800 Td (Protocole de prise en charge) Tj ET q 515 0 0 515 40 200 cm /Im1 Do Q"
    )
    pdf.docinfo["/Author"] = "Dr Bench"
    pdf.save(path)


class PeakRss:
    """Samples the RSS of the server's processes (summed) every 10 ms in a thread."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs, self.peak, self._stop = procs, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_of(self.procs))
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss_of(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


async def upload(base: str, token: str, pdf: Path) -> float:
    async with aiohttp.ClientSession(cookies={sessions.COOKIE: token}) as client:
        async with client.get(f"{base}/c/medical/documents/nouveau") as r:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', await r.text())
        assert csrf is not None
        form = aiohttp.FormData()
        form.add_field("csrf_token", csrf.group(1))
        form.add_field("title", "Protocole de prise en charge")
        form.add_field("doc_type", "protocole")
        with pdf.open("rb") as fh:
            form.add_field("file", fh, filename="protocole.pdf", content_type="application/pdf")
            start = time.perf_counter()
            async with client.post(
                f"{base}/c/medical/documents/nouveau", data=form, allow_redirects=False
            ) as r:
                await r.read()
                assert r.status == 303, r.status
        return time.perf_counter() - start


async def wait_ready(url: str, token: str) -> bytes:
    async with aiohttp.ClientSession(cookies={sessions.COOKIE: token}) as client:
        for _ in range(150):
            try:
                async with client.get(url) as r:
                    if r.status == 200:
                        return await r.read()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


async def measure_uploads(
    base: str, token: str, server_pid: int, megabytes: int, count: int, work: Path
) -> None:
    pdf = work / "big.pdf"
    await asyncio.to_thread(big_pdf, pdf, megabytes)
    size = pdf.stat().st_size
    walls, cpus, peaks = [], [], []
    for _ in range(count):
        procs = [p for p in tree(server_pid) if p.is_running()]
        idle = rss_of(procs)
        cpu0 = cpu_of(procs)
        with PeakRss(procs) as peak:
            walls.append(await upload(base, token, pdf))
        cpus.append(cpu_of(procs) - cpu0)
        peaks.append(peak.peak - idle)
    wall, cpu, extra = statistics.median(walls), statistics.median(cpus), max(peaks)
    mb = size / 2**20
    print(f"upload of a {mb:.1f} MB PDF (median of {count}): {wall:.2f} s wall, {mb / wall:.1f} MB/s; "
          f"server CPU {cpu:.2f} s; peak RSS above idle {extra / 2**20:.1f} MB "
          f"(the file is {mb:.1f} MB)")  # fmt: skip
    figures.record(f"upload {mb:.0f} MB PDF, throughput", mb / wall, "MB/s")
    figures.record(f"upload {mb:.0f} MB PDF, peak RSS above idle", extra / 2**20, "MB")


async def measure_page(
    name: str, url: str, token: str, server_pid: int, pgdata: Path, args: argparse.Namespace
) -> None:
    html = await wait_ready(url, token)
    static = re.sub(r"(https?://[^/]+).*", r"\1/static/site.css", url)
    async with aiohttp.ClientSession() as client, client.get(static) as r:
        css = await r.read()
    raw, zipped = len(html) + len(css), len(gzip.compress(html, 6)) + len(gzip.compress(css, 6))
    await load(url, token, 200, args.concurrency)  # warm-up
    app_procs, pg_procs = tree(server_pid), postgres_processes(pgdata)
    app0, pg0 = cpu_of(app_procs), cpu_of(pg_procs)
    wall0 = time.perf_counter()
    if args.client == "wrk":
        count, wall, p50, p99 = wrk_load(url, token, args.concurrency, args.duration)
    else:
        latencies = await load(url, token, args.requests, args.concurrency)
        count, wall = args.requests, time.perf_counter() - wall0
        p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
    app_cpu, pg_cpu = cpu_of(app_procs) - app0, cpu_of(postgres_processes(pgdata)) - pg0
    per_cpu = count / (app_cpu + pg_cpu)
    links = len(re.findall(rb'href="/documents/\d+"', html))
    print(f"{name}: {links} documents listed; {raw / 1024:.1f} KB raw, {zipped / 1024:.1f} KB gzip "
          f"(≤ 60, ≤ 20); {count / wall:.0f} pages/s wall; {per_cpu:.0f} pages per CPU-second (≥ 800; app "
          f"{app_cpu:.2f} s + PostgreSQL {pg_cpu:.2f} s); p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
          f"(≤ 50, ≤ 150) at {args.concurrency} clients")  # fmt: skip
    figures.record(f"{name}, weight gzip", zipped / 1024, "KB", target=20, better="lower")
    figures.record(f"{name}, pages per CPU-second", per_cpu, "/CPU-s", target=800)
    figures.record(f"{name}, p50 at {args.concurrency} clients", p50 * 1000, "ms", target=50, better="lower")
    figures.record(f"{name}, p99 at {args.concurrency} clients", p99 * 1000, "ms", target=150, better="lower")


async def measure_list_query(dsn: str, count: int) -> None:
    """The library's list statement, from the top and deep in its history (keyset)."""
    conn = await db.connect(dsn)
    try:
        member = await conn.fetchrow("SELECT id FROM users WHERE username = 'membre'")
        viewer = sessions.User(member["id"], "membre", "Dr Membre", "member", "approved")
        community = await conn.fetchval("SELECT id FROM communities WHERE name = 'medical'")
        depth = min(4000, count - 31)
        deep = await conn.fetchrow(
            "SELECT featured_at IS NOT NULL AS featured, updated_at, id FROM documents"
            " ORDER BY (featured_at IS NOT NULL) DESC, updated_at DESC, id DESC OFFSET $1 LIMIT 1",
            depth,
        )
        cursor = threads.ListCursor(deep["featured"], deep["updated_at"], deep["id"])
        for name, filters in (("community", documents.Filters(community)), ("node", documents.Filters())):
            for where, at in (
                ("first page", threads.ListPosition()),
                (f"{depth:,} deep", threads.ListPosition(cursor)),
            ):
                times = []
                for _ in range(50):
                    start = time.perf_counter()
                    listing = await documents.list_documents(conn, viewer, filters, at)
                    times.append(time.perf_counter() - start)
                assert len(listing.documents) == documents.PAGE_SIZE
                median = statistics.median(times) * 1000
                print(f"{name} library list query, {where}: {median:.2f} ms (median of 50, one connection)")
                figures.record(f"{name} library list query, {where}", median, "ms", better="lower")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--upload-mb", type=int, default=25)
    parser.add_argument("--uploads", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--client", choices=["wrk", "aiohttp"], default="wrk" if shutil.which("wrk") else "aiohttp"
    )
    args = parser.parse_args()
    if figures.smoke():
        args.documents, args.upload_mb, args.uploads, args.duration, args.requests = 200, 2, 1, 1.0, 200

    work = Path(tempfile.mkdtemp(prefix="vbg-bench-docs-"))
    embedded = db.EmbeddedPostgres(work)
    dsn = embedded.start("bench")
    server = None
    try:
        token = await fill(dsn, args.documents)
        await measure_list_query(dsn, args.documents)
        port = 19000 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        # Uploads: one web process, so the one to watch is known.
        server = start_server("granian", dsn, port, work / "data", 1)
        await wait_ready(f"{base}/c/medical/documents", token)
        print(f"granian; {args.documents} documents in the community; client: {args.client}")
        await measure_uploads(base, token, server.pid, args.upload_mb, args.uploads, work)
        server.terminate()
        server.wait(10)
        # Pages: the default two web processes, as bench/thread_page.py.
        server = start_server("granian", dsn, port, work / "data", 2)
        for name, path in (
            ("community library page", "/c/medical/documents"),
            ("node library page", "/documents"),
        ):
            await measure_page(name, base + path, token, server.pid, embedded.pgdata, args)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        embedded.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
