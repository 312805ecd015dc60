"""An instance marked unreachable comes back on its first verified signed request
(docs/architecture.md §4): the inbox worker, processing what that instance sent, clears its health
record and makes the deliveries waiting for it due at once."""

from __future__ import annotations

from tests import inboxnode as ap
from tests.fakefedi import FakeInstance
from tests.helpers import make_community
from tests.inboxnode import InboxNode, fake_fixture, local_thread, node_fixture

MARK_UNREACHABLE = """
INSERT INTO instances (domain, failure_count, failing_since, last_failure_at, unreachable_since)
VALUES ($1, 40, now() - interval '3 days', now() - interval '1 minute', now() - interval '1 day')
"""
WAITING_JOB = """
WITH a AS (
    INSERT INTO activities (uri, actor_uri, json) VALUES ($2, $2, '{}') RETURNING id
)
INSERT INTO delivery_jobs (activity_id, inbox, domain, attempts, next_attempt_at)
SELECT a.id, $3, $1, 12, now() + interval '6 hours' FROM a
"""
HEALTH = "SELECT failure_count, unreachable_since FROM instances WHERE domain = $1"
DUE_JOBS = "SELECT count(*) FROM delivery_jobs WHERE domain = $1 AND next_attempt_at <= now()"


fixture_node = node_fixture()


fixture_masto = fake_fixture("masto", "127.0.0.53")


async def test_a_signed_activity_from_an_unreachable_instance_revives_it(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a public thread, and masto's instance marked unreachable with a delivery waiting
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    await node.pool.execute(MARK_UNREACHABLE, masto.domain)
    await node.pool.execute(WAITING_JOB, masto.domain, node.url("/activities/1"), alice.inbox)
    assert await node.pool.fetchval(DUE_JOBS, masto.domain) == 0
    # When alice's signed Like arrives and the inbox worker processes it
    response = await masto.send(
        node.url("/inbox"), ap.like(masto, alice, node.url(f"/t/{thread_id}")), actor=alice
    )
    assert response.status == 202
    await node.process()
    # Then the instance is healthy again and its waiting delivery is due now
    health = await node.pool.fetchrow(HEALTH, masto.domain)
    assert health["failure_count"] == 0 and health["unreachable_since"] is None
    assert await node.pool.fetchval(DUE_JOBS, masto.domain) == 1


async def test_a_healthy_instance_is_left_alone(node: InboxNode, masto: FakeInstance) -> None:
    # Given a healthy instance that sent nothing wrong
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    await node.pool.execute(
        "INSERT INTO instances (domain, last_success_at) VALUES ($1, now() - interval '1 hour')", masto.domain
    )
    before = await node.pool.fetchrow("SELECT * FROM instances WHERE domain = $1", masto.domain)
    # When it sends a signed activity
    response = await masto.send(
        node.url("/inbox"), ap.like(masto, alice, node.url(f"/t/{thread_id}")), actor=alice
    )
    assert response.status == 202
    await node.process()
    # Then its health record is unchanged (no write for a healthy instance)
    after = await node.pool.fetchrow("SELECT * FROM instances WHERE domain = $1", masto.domain)
    assert dict(after) == dict(before)
