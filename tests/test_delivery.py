"""Signed deliveries to fake instances on loopback: fan-out, retries, health, limits, leases.

Every POST goes over real HTTP to ``tests.fakefedi.FakeInstance`` servers that verify
our signatures (Date, Digest, Signature) with two independent verifiers.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from federation import delivery, policy
from node.settings import Settings
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    community,
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    jobs,
    kinds,
    member,
    new_reply,
    new_thread,
    posted,
    public_thread_followed_by,
    trust_us,
    worker,
)
from tests.fakefedi import FakeInstance
from tests.helpers import eventually

Setup = tuple[Settings, asyncpg.Pool]


def status_route(fake: FakeInstance, statuses: list[int], headers: dict[str, str] | None = None) -> None:
    """The shared inbox answers the given statuses in turn (the last one repeats)."""

    async def handler(request: web.Request) -> web.Response:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return web.Response(status=status, headers=headers or {})

    fake.add_route("POST", "/inbox", handler)


async def job_rows(pool: asyncpg.Pool, domain: str) -> list[asyncpg.Record]:
    return [r for r in await jobs(pool) if r["domain"] == domain]


async def instance(pool: asyncpg.Pool, domain: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM instances WHERE domain = $1", domain)
    assert row is not None
    return row


async def make_due(pool: asyncpg.Pool) -> None:
    """Time passes: every waiting retry falls due."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE delivery_jobs SET next_attempt_at = now() WHERE state = 'pending'")


# ── fan-out over HTTP ─────────────────────────────────────────────────────────


async def test_new_public_thread_reaches_two_instances_signed(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as peers:
        # Given followers on two instances of a public community
        thread_id = await public_thread_followed_by(fed_settings, pool, peers)
        # When the worker runs
        await deliver_all(fed_settings, pool)
        # Then each instance received the group's Announce{Create} then its Announce of the Page id (no bare
        # Create from the member: the group is the relay), all well signed
        for peer in peers:
            assert all(r.signature_ok for r in peer.received), [r.signature_error for r in peer.received]
            got = posted(peer)
            assert [kinds([a]) for a in got] == [["Announce/Create"], ["Announce/id"]]
            assert {a["actor"] for a in got} == {"http://testserver/c/medical"}
            assert got[0]["object"]["actor"] == "http://testserver/u/amina"
            assert {r.headers["Host"] for r in peer.received} == {peer.domain}
            assert all("digest" in r.headers["Signature"] for r in peer.received)
        # And delivered jobs left the queue, the ledger knows both instances, their health is good
        assert await jobs(pool) == []
        page = f"http://testserver/t/{thread_id}"
        assert await delivery.ledger_domains(pool, page) == sorted(p.domain for p in peers)
        for peer in peers:
            health = await instance(pool, peer.domain)
            assert health["last_success_at"] is not None and health["failure_count"] == 0


async def test_three_followers_on_one_instance_get_one_post_per_activity(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given three followers on the same instance
        await public_thread_followed_by(fed_settings, pool, peers, per_peer=3)
        # When the worker runs
        await deliver_all(fed_settings, pool)
        # Then the shared inbox got each activity once
        (peer,) = peers
        assert [r.path for r in peer.received] == ["/inbox"] * 2
        assert kinds(posted(peer)) == ["Announce/Create", "Announce/id"]


async def test_a_reply_is_delivered_relayed_then_boosted_by_id(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given a delivered thread
        thread_id = await public_thread_followed_by(fed_settings, pool, peers)
        await deliver_all(fed_settings, pool)
        peers[0].received.clear()
        # When its author replies
        async with pool.acquire() as conn:
            author = await conn.fetchval("SELECT author_id FROM threads WHERE id = $1", thread_id)
        from node.sessions import User

        await new_reply(pool, thread_id, User(author, "amina", "Amina", "member", "approved"))
        await deliver_all(fed_settings, pool)
        # Then the instance gets the group's Announce{Create{Note}}, then its Announce of the Note's id
        got = posted(peers[0])
        assert [kinds([a]) for a in got] == [["Announce/Create"], ["Announce/id"]]
        assert got[0]["object"]["object"]["type"] == "Note"
        assert got[1]["object"] == got[0]["object"]["object"]["id"]


# ── answers and the state machine ─────────────────────────────────────────────


@pytest.mark.parametrize(
    ("status", "state", "delay", "instance_failures"),
    [
        (500, "pending", timedelta(minutes=1), 2),
        (503, "pending", timedelta(minutes=1), 2),
        (429, "pending", timedelta(minutes=1), 0),
        (401, "pending", timedelta(minutes=1), 0),
        (404, "failed", None, 0),
        (410, "failed", None, 0),
        (400, "failed", None, 0),
    ],
)
async def test_answer_decides_the_next_state(
    fed_settings: Settings,
    pool: asyncpg.Pool,
    open_node: None,
    status: int,
    state: str,
    delay: timedelta | None,
    instance_failures: int,
) -> None:
    async with fakes(1) as peers:
        # Given an instance whose inbox answers `status`
        status_route(peers[0], [status])
        await public_thread_followed_by(fed_settings, pool, peers)
        # When the worker delivers
        await deliver_all(fed_settings, pool)
        # Then each job is in the expected state, with the expected wait before a retry
        rows = await job_rows(pool, peers[0].domain)
        assert len(rows) == 2
        for row in rows:
            assert (row["state"], row["attempts"], row["last_status"]) == (state, 1, status)
            assert row["last_error"] == f"HTTP {status}"
            if delay is not None:
                wait = row["next_attempt_at"] - row["updated_at"]
                assert delay - timedelta(seconds=2) < wait <= delay + timedelta(seconds=2)
        # And only server errors count against the instance's health
        assert (await instance(pool, peers[0].domain))["failure_count"] == instance_failures


async def test_retries_follow_the_growing_delays_then_succeed(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given an inbox that fails twice for each activity, then accepts
        status_route(peers[0], [500, 500, 502, 502, 202])
        await public_thread_followed_by(fed_settings, pool, peers)
        # When the worker delivers, and again after the first delay
        await deliver_all(fed_settings, pool)
        await make_due(pool)
        await deliver_all(fed_settings, pool)
        # Then the second retry waits the second delay (5 min)
        rows = await job_rows(pool, peers[0].domain)
        assert {(r["state"], r["attempts"]) for r in rows} == {("pending", 2)}
        wait = rows[0]["next_attempt_at"] - rows[0]["updated_at"]
        assert timedelta(minutes=5) - timedelta(seconds=2) < wait <= timedelta(minutes=5, seconds=2)
        # When that delay passes
        await make_due(pool)
        await deliver_all(fed_settings, pool)
        # Then everything is delivered and the instance is healthy again
        assert await job_rows(pool, peers[0].domain) == []
        assert len(posted(peers[0])) == 6  # three attempts of two activities, all well signed
        assert (await instance(pool, peers[0].domain))["failure_count"] == 0


async def test_connection_refused_is_retried_and_counted(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a follower whose instance has gone away (nothing listens on its port)
    async with fakes(1) as peers:
        await public_thread_followed_by(fed_settings, pool, peers)
    # When the worker tries to deliver
    await deliver_all(fed_settings, pool)
    # Then the jobs wait for a retry and the instance has two failures (one per job)
    rows = await job_rows(pool, peers[0].domain)
    assert {(r["state"], r["last_status"]) for r in rows} == {("pending", None)}
    assert all(r["last_error"].startswith("connexion impossible") for r in rows)
    health = await instance(pool, peers[0].domain)
    assert health["failure_count"] == 2 and health["failing_since"] is not None


async def test_last_attempt_failure_makes_the_job_dead(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given jobs already at their last attempt
        status_route(peers[0], [500])
        await public_thread_followed_by(fed_settings, pool, peers)
        async with pool.acquire() as conn:
            from federation import outbox

            await outbox.process_pending(pool, fed_settings)
            await conn.execute("UPDATE delivery_jobs SET attempts = $1", delivery.MAX_ATTEMPTS - 1)
        # When the last attempt fails
        await deliver_all(fed_settings, pool)
        # Then they are dead
        rows = await job_rows(pool, peers[0].domain)
        assert {(r["state"], r["attempts"]) for r in rows} == {("dead", delivery.MAX_ATTEMPTS)}


# ── instance health ───────────────────────────────────────────────────────────


async def test_repeated_failures_over_days_mark_the_instance_unreachable(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given an instance failing for three days already
        status_route(peers[0], [503])
        await public_thread_followed_by(fed_settings, pool, peers)
        async with pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO instances (domain, failure_count, failing_since, last_failure_at)
                   VALUES ($1, $2, now() - interval '3 days', now() - interval '7 hours')""",
                peers[0].domain,
                delivery.UNREACHABLE_AFTER_FAILURES - 1,
            )
        # When another delivery fails
        await deliver_all(fed_settings, pool)
        # Then the instance is unreachable
        assert (await instance(pool, peers[0].domain))["unreachable_since"] is not None


async def test_a_short_burst_of_failures_does_not_mark_unreachable(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given an instance failing many times within a few minutes
        status_route(peers[0], [500])
        await public_thread_followed_by(fed_settings, pool, peers)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO instances (domain, failure_count, failing_since) VALUES ($1, 50, now())",
                peers[0].domain,
            )
        # When more deliveries fail
        await deliver_all(fed_settings, pool)
        # Then it is still considered reachable (failures must span days)
        health = await instance(pool, peers[0].domain)
        assert health["failure_count"] == 52 and health["unreachable_since"] is None


async def _mark_unreachable(pool: asyncpg.Pool, domain: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO instances (domain, failure_count, failing_since, last_failure_at, unreachable_since)
               VALUES ($1, 40, now() - interval '3 days', now() - interval '1 minute', now() - interval '1 day')
               ON CONFLICT (domain) DO UPDATE SET failure_count = 40, last_failure_at = now() - interval '1 minute',
                   unreachable_since = now() - interval '1 day', failing_since = now() - interval '3 days'""",
            domain,
        )


async def test_unreachable_instance_is_skipped_then_revived_by_a_signed_request(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as (down, up):
        # Given one of two follower instances marked unreachable
        await _mark_unreachable(pool, down.domain)
        await public_thread_followed_by(fed_settings, pool, [down, up])
        # When the worker runs
        await deliver_all(fed_settings, pool)
        # Then the healthy one got everything and the unreachable one nothing (jobs wait)
        assert len(posted(up)) == 2 and down.received == []
        assert {r["state"] for r in await job_rows(pool, down.domain)} == {"pending"}
        # When a signed request from it verifies (the inbox calls mark_alive)
        async with pool.acquire() as conn:
            await delivery.mark_alive(conn, down.domain)
        await deliver_all(fed_settings, pool)
        # Then its deliveries go out and its health is reset
        assert len(posted(down)) == 2
        health = await instance(pool, down.domain)
        assert health["unreachable_since"] is None and health["failure_count"] == 0


async def test_unreachable_instance_is_probed_and_revived_by_a_success(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given an unreachable instance whose last failure is older than the probe interval
        await _mark_unreachable(pool, peers[0].domain)
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE instances SET last_failure_at = now() - $2::interval WHERE domain = $1",
                peers[0].domain,
                delivery.PROBE_EVERY + timedelta(minutes=1),
            )
        await public_thread_followed_by(fed_settings, pool, peers)
        # When the worker runs
        await deliver_all(fed_settings, pool)
        # Then the probe succeeded and revived the instance
        assert len(posted(peers[0])) == 2
        assert (await instance(pool, peers[0].domain))["unreachable_since"] is None


async def test_jobs_stuck_behind_an_unreachable_instance_expire(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given jobs for an unreachable instance, queued longer than the maximum age
        await _mark_unreachable(pool, peers[0].domain)
        await public_thread_followed_by(fed_settings, pool, peers)
        async with worker(fed_settings, pool) as w:
            await w.run_until_idle()
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE delivery_jobs SET created_at = now() - $1::interval",
                delivery.JOB_MAX_AGE + timedelta(hours=1),
            )
            # When maintenance runs
            await delivery.maintain(conn)
        # Then they are dead
        assert {r["state"] for r in await jobs(pool)} == {"dead"}


# ── limits ────────────────────────────────────────────────────────────────────


async def test_a_slow_instance_never_holds_up_the_others(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as (slow, fast):
        # Given a slow instance (each POST takes 0.3 s) and a fast one
        in_flight = {"now": 0, "max": 0}

        async def sleepy(request: web.Request) -> web.Response:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            await asyncio.sleep(0.3)
            in_flight["now"] -= 1
            return web.Response(status=202)

        slow.add_route("POST", "/inbox", sleepy)
        group = await community(pool, "medical", "public")
        await follower(pool, group, slow, "sam")
        await follower(pool, group, fast, "fred")
        author = await member(pool)
        await trust_us(pool, fed_settings, [slow, fast], users=[author], groups=[group])
        # When five threads are opened (10 activities per instance) and the worker runs
        for n in range(5):
            await new_thread(pool, group, author, f"Fil {n}")
        async with worker(fed_settings, pool, per_host=2) as w:
            task = asyncio.create_task(w.run_until_idle())
            # Then the fast instance has everything while the slow one is still busy
            await fast.wait_for(lambda r: len(fast.received) >= 10, within=10)
            assert len(slow.received) < 10
            await task
        # And the slow instance never had more than the per-host limit at once
        assert len(slow.received) == 10
        assert in_flight["max"] == 2


async def test_global_limit_caps_what_one_worker_runs(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(3) as peers:
        # Given three instances that each take 0.2 s per POST
        counter = {"now": 0, "max": 0}

        async def sleepy(request: web.Request) -> web.Response:
            counter["now"] += 1
            counter["max"] = max(counter["max"], counter["now"])
            await asyncio.sleep(0.2)
            counter["now"] -= 1
            return web.Response(status=202)

        for peer in peers:
            peer.add_route("POST", "/inbox", sleepy)
        await public_thread_followed_by(fed_settings, pool, peers)
        # When a worker limited to 2 in flight (4 per host) delivers
        await deliver_all(fed_settings, pool, max_in_flight=2)
        # Then never more than 2 requests were open at once, and all 6 arrived
        assert counter["max"] == 2
        assert sum(len(p.received) for p in peers) == 6


# ── crash safety and policy changes ───────────────────────────────────────────


async def test_a_job_left_in_flight_by_a_dead_worker_is_reclaimed(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given jobs claimed by a worker that then died (its lease is over)
        await public_thread_followed_by(fed_settings, pool, peers)
        from federation import outbox

        await outbox.process_pending(pool, fed_settings)
        claimed = await delivery.claim(pool, 10, lease=timedelta(seconds=0))
        assert len(claimed) == 2
        # When maintenance reclaims them (once the clock is past their lease) and a live worker runs
        assert await eventually(lambda: delivery.reclaim_expired(pool), "the dead worker's lease ends") == 2
        await deliver_all(fed_settings, pool)
        # Then everything is delivered once, and the queue is empty
        assert len(posted(peers[0])) == 2
        assert await jobs(pool) == []
        # And the dead worker's late report changes nothing
        async with pool.acquire() as conn:
            await delivery.complete(conn, [delivery.Result(job, 500, "HTTP 500") for job in claimed])
        assert await jobs(pool) == []
        assert (await instance(pool, peers[0].domain))["failure_count"] == 0


async def test_an_answer_past_the_deadline_is_a_timeout_and_the_sender_goes_on(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    answer = asyncio.Event()  # set once the test has looked: the stuck answer never comes in time
    async with fakes(2) as (slow, fast):
        # Given an instance that never answers in time and one that does
        async def stuck(request: web.Request) -> web.Response:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answer.wait(), 5)
            return web.Response(status=202)

        slow.add_route("POST", "/inbox", stuck)
        await public_thread_followed_by(fed_settings, pool, [slow, fast])
        # When one sender (one POST at a time) with a 0.5 s deadline delivers
        async with worker(fed_settings, pool, max_in_flight=1, request_timeout=0.5) as w:
            await w.run_until_idle()
        # Then the stuck instance's jobs wait for a retry, marked as timed out …
        left = await jobs(pool)
        assert {(r["domain"], r["state"], r["last_error"]) for r in left} == {
            (slow.domain, "pending", "délai dépassé")
        }
        # … and the same sender delivered everything else afterwards
        assert len(posted(fast)) == 2
        answer.set()


async def test_a_stopping_worker_gives_back_the_jobs_it_claimed_ahead(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(3) as peers:
        # Given six jobs, instances that take 0.3 s per POST, and a worker sending one at a time
        started = asyncio.Event()

        async def sleepy(request: web.Request) -> web.Response:
            started.set()
            await asyncio.sleep(0.3)
            return web.Response(status=202)

        for peer in peers:
            peer.add_route("POST", "/inbox", sleepy)
        await public_thread_followed_by(fed_settings, pool, peers)
        from federation.delivery_worker import DeliveryWorker, WorkerConfig

        one = DeliveryWorker(fed_settings, pool, WorkerConfig(max_in_flight=1, poll_interval=60))
        await one.start()
        await asyncio.wait_for(started.wait(), timeout=10)
        # When it stops while its first POST is open (the rest claimed ahead, queued)
        await one.stop()
        # Then the POST it had begun was finished and recorded, the others are pending
        # again without an attempt counted
        left = await jobs(pool)
        assert len(left) == 5
        assert {(r["state"], r["attempts"]) for r in left} == {("pending", 0)}
        # And another worker delivers each activity once to each instance
        await deliver_all(fed_settings, pool)
        assert sorted(len(p.received) for p in peers) == [2, 2, 2]
        assert await jobs(pool) == []


async def test_two_workers_share_the_queue_without_double_delivery(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(3) as peers:
        # Given a thread for three instances
        await public_thread_followed_by(fed_settings, pool, peers)
        # When two workers run at the same time
        async with worker(fed_settings, pool) as one, worker(fed_settings, pool) as two:
            await asyncio.gather(one.run_until_idle(), two.run_until_idle())
        # Then each activity reached each instance exactly once
        for peer in peers:
            assert len(peer.received) == 2
        assert await jobs(pool) == []


async def test_each_worker_prefers_its_share_of_the_instances(pool: asyncpg.Pool) -> None:
    # Given two activities (a thread's two Announces) for twelve instances
    inboxes = [f"https://h{n}.example/inbox" for n in range(12)]
    async with pool.acquire() as conn:
        for kind in ("Create", "Page"):
            activity = {"id": f"https://node.example/activities/{kind}", "actor": "https://node.example/c/x"}
            await delivery.enqueue(conn, activity, inboxes)
        owner = {
            r["domain"]: r["k"]
            for r in await conn.fetch("SELECT domain, abs(hashtext(domain)) % 2 AS k FROM instances")
        }
    # And two workers, each holding a slot on its own connection
    async with pool.acquire() as one, pool.acquire() as two:
        first, second = delivery.Affinity(), delivery.Affinity()
        await first.join(one)
        await second.join(two)
        shares = [await a.current(c, 0.0) for a, c in ((first, one), (second, two))]
        assert shares == [delivery.Share(0, 2), delivery.Share(1, 2)]
        # When the first claims as many jobs as its share has instances
        mine = sorted(d for d, k in owner.items() if k == 0)
        claimed = await delivery.claim(one, len(mine), share=shares[0])
        # Then it got the oldest activity's jobs for its own instances
        assert sorted(job.domain for job in claimed) == mine
        assert len({job.activity_id for job in claimed}) == 1
        # And the second gets the Create's jobs for the other instances, before any Page
        theirs = sorted(d for d, k in owner.items() if k == 1)
        rest = await delivery.claim(two, len(theirs), share=shares[1])
        assert sorted(job.domain for job in rest) == theirs
        assert {job.activity_id for job in rest} == {job.activity_id for job in claimed}


async def test_an_instance_suspended_after_fan_out_gets_nothing(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given jobs queued for an instance
        await public_thread_followed_by(fed_settings, pool, peers)
        from federation import outbox

        await outbox.process_pending(pool, fed_settings)
        # When the admins suspend it before the worker runs
        async with pool.acquire() as conn:
            await policy.suspend_domain(conn, peers[0].domain, reason="test")
        await deliver_all(fed_settings, pool)
        # Then nothing was sent and the jobs are final
        assert peers[0].received == []
        assert {r["state"] for r in await jobs(pool)} == {"failed"}


async def test_a_claim_reads_the_policy_version_of_its_moment(pool: asyncpg.Pool) -> None:
    # Given jobs for two instances
    activity = {"id": "https://node.example/activities/1", "actor": "https://node.example/c/x"}
    async with pool.acquire() as conn:
        await delivery.enqueue(conn, activity, ["https://a.example/inbox", "https://b.example/inbox"])
        before = await conn.fetchval(policy.SELECT_VERSION) or ""
        # When a claim takes one, the admins suspend an instance, and a claim takes the other
        first = await delivery.claim_batch(conn, 1)
        await policy.suspend_domain(conn, "c.example", reason="test")
        second = await delivery.claim_batch(conn, 1)
        after = await conn.fetchval(policy.SELECT_VERSION)
        nothing = await delivery.claim_batch(conn, 1)
    # Then each claim carries the version read with it: the policy it is decided under
    assert len(first.jobs) == len(second.jobs) == 1
    assert first.policy_version == before
    assert second.policy_version == after != before
    assert nothing == delivery.Claimed([], "")


async def test_delete_reaches_every_instance_of_the_ledger(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as (stays, leaves):
        # Given a thread delivered to two instances, one of which then stops following
        thread_id = await public_thread_followed_by(fed_settings, pool, [stays, leaves])
        await deliver_all(fed_settings, pool)
        async with pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM community_followers WHERE actor_id IN (SELECT id FROM actors WHERE domain = $1)",
                leaves.domain,
            )
            author_id = await conn.fetchval("SELECT author_id FROM threads WHERE id = $1", thread_id)
            post_id = await conn.fetchval("SELECT id FROM posts WHERE thread_id = $1", thread_id)
            from node import threads
            from node.sessions import User

            # When the author deletes the thread's post
            await threads.delete_post(conn, post_id, User(author_id, "amina", "Amina", "member", "approved"))
        await deliver_all(fed_settings, pool)
        # Then both instances receive the author's Delete{Tombstone} (Mastodon ignores a group's
        # Announce{Delete}), and the follower the group's Announce{Delete} too
        for peer, expected in ((stays, ["Announce", "Delete"]), (leaves, ["Delete"])):
            deletes = [a for a in posted(peer) if "Delete" in (a["type"], _inner_type(a))]
            assert sorted(a["type"] for a in deletes) == expected


def _inner_type(activity: dict[str, Any]) -> str:
    inner = activity.get("object")
    return str(inner.get("type")) if isinstance(inner, dict) else ""


async def test_maintenance_forgets_jobs_given_up_a_month_ago(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as peers:
        # Given jobs refused for good (404), one of them long ago
        status_route(peers[0], [404])
        await public_thread_followed_by(fed_settings, pool, peers)
        await deliver_all(fed_settings, pool)
        async with pool.acquire() as conn:
            oldest = await conn.fetchval("SELECT min(id) FROM delivery_jobs")
            await conn.execute(
                "UPDATE delivery_jobs SET updated_at = now() - $2::interval WHERE id = $1",
                oldest,
                delivery.KEEP_FAILED + timedelta(days=1),
            )
            # When maintenance runs
            await delivery.maintain(conn)
        # Then the old one is forgotten and the recent ones stay visible to admins
        rows = await jobs(pool)
        assert [r["state"] for r in rows] == ["failed"]
        assert oldest not in {r["id"] for r in rows}
