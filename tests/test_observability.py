"""Health checks, Prometheus metrics, JSON logs and the admin status page (issue 16)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import pytest

from node import db, logs, metrics
from node.settings import Settings
from node.web.app import create_app
from tests import inboxnode as ap
from tests import pgcluster
from tests.conftest import TEST_SECRET
from tests.delivery_kit import (  # noqa: F401
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    public_thread_followed_by,
)
from tests.helpers import login, make_user
from tests.liveserver import free_port


async def test_healthz_says_the_process_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")


async def test_readyz_is_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert (response.status_code, response.text) == (200, "prêt")


async def test_readyz_names_the_migrations_still_pending(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a database one migration behind the code
    last = db.migrations()[-1].version
    await pool.execute("DELETE FROM schema_migrations WHERE version = $1", last)
    # Then the node is not ready, and says why
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.text == f"migrations en attente : {last:04d}"


async def test_readyz_fails_when_postgresql_is_down(settings: Settings, tmp_path: Path) -> None:
    if reason := pgcluster.missing():
        pytest.skip(reason)
    # Given a node on a PostgreSQL server of its own, ready
    cluster = pgcluster.Cluster(free_port()).init().start()
    try:
        pool = await db.create_pool(cluster.dsn, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await db.migrate(conn)
        transport = httpx.ASGITransport(app=create_app(settings, pool=pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/readyz")).status_code == 200
            # When PostgreSQL stops
            cluster.stop()
            # Then /readyz answers 503 (and /healthz still says the process is up)
            response = await c.get("/readyz")
            assert (response.status_code, response.text) == (503, "base de données injoignable")
            assert (await c.get("/healthz")).status_code == 200
        pool.terminate()
    finally:
        cluster.destroy()


NAMED_METRICS = (
    "vbg_http_requests_total",
    "vbg_http_request_duration_seconds_bucket",
    "vbg_inbox_activities_total",
    "vbg_deliveries_total",
    "vbg_queue_depth",
    "vbg_queue_lag_seconds",
    "vbg_instances",
    "vbg_instance_failures",
    "vbg_up",
)


def values(text: str, name: str) -> dict[str, float]:
    """``{label text: value}`` of one metric in the exposition format."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :]] = float(value)
    return found


async def test_the_exporter_serves_every_named_metric(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None, tmp_path: Path
) -> None:
    async with fakes(1) as peers:
        peer = peers[0]
        # Given a thread delivered to a follower instance (a delivery succeeded)
        await public_thread_followed_by(fed_settings, pool, peers)
        await deliver_all(fed_settings, pool)
        # And an instance failing, and one activity waiting in the inbox queue
        await pool.execute("INSERT INTO instances (domain, failure_count) VALUES ('down.example', 4)")
        async with ap.running_node(pool, tmp_path) as node:
            alice = peer.add_actor("alice")
            follow = ap.follow(peer, alice, node.group("medical"))
            # And the inbox accepted a signed activity and refused an unsigned one
            assert (await peer.send(node.url("/inbox"), follow, actor=alice)).status == 202
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    node.url("/inbox"), data=b"{}", headers={"content-type": "application/activity+json"}
                ) as refused:
                    assert refused.status == 401
                async with http.get(node.url("/c/medical")) as page:
                    assert page.status == 200

    # When Prometheus scrapes the exporter
    port = free_port()
    exporter = metrics.serve_exporter(f"127.0.0.1:{port}", fed_settings.database_url or "")
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    finally:
        exporter.shutdown()

    # Then every named metric is there, with the figures of what happened
    for name in NAMED_METRICS:
        assert values(text, name), f"{name} missing from the scrape"
    assert values(text, "vbg_up") == {"": 1.0}
    assert values(text, "vbg_deliveries_total")['{outcome="success"}'] >= 1
    assert values(text, "vbg_inbox_activities_total")['{reason="",result="accepted"}'] >= 1
    inbox_counts = values(text, "vbg_inbox_activities_total")
    assert inbox_counts['{reason="401 SignatureError",result="refused"}'] >= 1
    assert values(text, "vbg_queue_depth")['{queue="inbox",state="pending"}'] == 1
    assert values(text, "vbg_instances")['{health="failing"}'] == 1
    assert values(text, "vbg_instance_failures") == {'{domain="down.example",unreachable="0"}': 4.0}
    requests = values(text, "vbg_http_requests_total")
    assert requests['{method="GET",route="/c/{name}",status="200"}'] >= 1
    assert requests['{method="POST",route="/inbox",status="202"}'] >= 1
    assert requests['{method="POST",route="/inbox",status="401"}'] >= 1
    assert values(text, "vbg_queue_lag_seconds")['{queue="inbox"}'] >= 0
    # And no label carries a URL or content (only route templates)
    assert "/c/medical" not in text and "alice" not in text


async def test_the_admin_status_page_shows_the_same_figures_in_french(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given an admin, a failing instance and some traffic
    await make_user(pool, "admin", role="admin")
    await pool.execute("INSERT INTO instances (domain, failure_count) VALUES ('down.example', 4)")
    await client.get("/healthz")
    await login(client, "admin")
    # When the admin opens the status page
    response = await client.get("/admin/etat")
    # Then it shows queues, instance health and requests per route, in French
    assert response.status_code == 200
    page = response.text
    for text in ("Santé des instances distantes", "Envois vers les autres serveurs", "Retard des workers",
                 "down.example", "Requêtes par route", "<code>/healthz</code>"):  # fmt: skip
        assert text in page, text


async def test_the_status_page_is_missing_for_members(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina")
    await login(client, "amina")
    assert (await client.get("/admin/etat")).status_code == 404


def test_json_logs_carry_the_event_and_no_more() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("vbg-test-json")
    logger.addHandler(handler)
    try:
        logger.warning("delivery %s: %s", 42, "timeout")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert set(line) == {"time", "level", "logger", "event", "pid"}
    assert (line["level"], line["logger"], line["event"]) == (
        "WARNING",
        "vbg-test-json",
        "delivery 42: timeout",
    )


def test_the_metrics_address_is_checked(tmp_path: Path) -> None:
    from node.settings import SettingsError, load

    base = {"VBG_DATA_DIR": str(tmp_path), "VBG_SECRET_KEY": TEST_SECRET}
    assert load({**base, "VBG_METRICS_ADDRESS": "127.0.0.1:9400"}).metrics_address == "127.0.0.1:9400"
    with pytest.raises(SettingsError):
        load({**base, "VBG_METRICS_ADDRESS": "9400"})
    with pytest.raises(SettingsError):
        load({**base, "VBG_LOG_FORMAT": "xml"})
