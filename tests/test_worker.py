"""Workers running for real: inside the app's life span (``serve``), woken by NOTIFY,
and as the ``vbg-node worker`` process stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg

from federation.app_state import federation_of
from federation.delivery_worker import DeliveryWorker, WorkerConfig
from federation.worker import FACTORIES
from node.communities import Community
from node.sessions import User
from node.settings import Settings, load
from node.web.app import create_app
from tests.conftest import ROOT, TEST_SECRET
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    community,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    member,
    new_thread,
    posted,
    trust_us,
)
from tests.fakefedi import FakeInstance


async def _followed_group(
    settings: Settings, pool: asyncpg.Pool, peers: list[FakeInstance]
) -> tuple[Community, User]:
    group = await community(pool, "medical", "public")
    for peer in peers:
        await follower(pool, group, peer, "alice")
    author = await member(pool)
    await trust_us(pool, settings, peers, users=[author], groups=[group])
    return group, author


async def test_worker_runs_in_the_app_life_span_and_stops_cleanly(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None, database_url: str
) -> None:
    async with fakes(1) as peers:
        # Given an app that owns its pool and runs workers (serve)
        group, author = await _followed_group(fed_settings, pool, peers)
        settings = load(
            {
                "VBG_BASE_URL": fed_settings.base_url,
                "VBG_DATA_DIR": str(fed_settings.data_dir),
                "VBG_SECRET_KEY": TEST_SECRET,
                "DATABASE_URL": database_url,
                "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
                "VBG_WORKERS_IN_SERVE": "1",
            }
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            workers = federation_of(app).workers
            assert [type(w) for w in workers] == FACTORIES
            assert all(w.running for w in workers)
            # When a member opens a thread
            await new_thread(pool, group, author)
            # Then the in-process worker delivers it without being asked
            await peers[0].wait_for(lambda r: len(peers[0].received) >= 2, within=10)
        # And leaving the life span stops the workers
        assert not any(w.running for w in workers)
        assert federation_of(app).workers == []
        assert len(posted(peers[0])) == 2


async def test_an_app_on_a_borrowed_pool_runs_no_worker(settings: Settings, pool: asyncpg.Pool) -> None:
    # Given the test app (the caller owns the pool); When its life span runs
    app = create_app(settings, pool=pool)
    async with app.router.lifespan_context(app):
        # Then no worker was started
        assert federation_of(app).workers == []


async def test_notify_wakes_a_sleeping_worker(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given a started worker that would otherwise poll only once a minute
        group, author = await _followed_group(fed_settings, pool, peers)
        worker = DeliveryWorker(fed_settings, pool, WorkerConfig(poll_interval=60))
        await worker.start()
        try:
            await asyncio.wait_for(worker.asleep.wait(), 5)  # it has looked once and is now asleep
            # When a thread is opened (outbox_events INSERT → NOTIFY)
            await new_thread(pool, group, author)
            # Then deliveries arrive within a second or two
            await peers[0].wait_for(lambda r: len(peers[0].received) >= 2, within=5)
        finally:
            await worker.stop()
        assert not worker.running


async def test_vbg_node_worker_delivers_and_exits_on_sigterm(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None, database_url: str, tmp_path: Path
) -> None:
    async with fakes(1) as peers:
        # Given the worker command running beside the test
        group, author = await _followed_group(fed_settings, pool, peers)
        env = {
            **os.environ,
            "VBG_BASE_URL": fed_settings.base_url,
            "VBG_DATA_DIR": str(tmp_path / "worker-data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
            "VBG_LOG_LEVEL": "WARNING",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli", "worker", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            # When a member opens a thread
            await new_thread(pool, group, author)
            # Then the worker process delivers it
            await peers[0].wait_for(lambda r: len(peers[0].received) >= 2, within=20)
        finally:
            # And stops cleanly on SIGTERM
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0, stderr.decode()
        assert len(posted(peers[0])) == 2
