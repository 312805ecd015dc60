"""Every work queue is declared with one QueueSpec (node/queues.py) and holds to the
shape they share."""

from __future__ import annotations

from federation import backfill, delivery, documents_worker, inbox_worker, media
from node import mail
from node.queues import QueueSpec
from node.tables import FEDERATION_TABLES, FORUM_TABLES

QUEUES: list[QueueSpec] = [
    inbox_worker.INBOX,
    delivery.DELIVERY,
    media.MEDIA,
    documents_worker.DOCUMENTS,
    backfill.BACKFILL,
    mail.MAIL,
]


def test_each_queue_has_its_own_channel_and_a_known_table() -> None:
    assert len({q.channel for q in QUEUES}) == len(QUEUES)
    assert len({q.name for q in QUEUES}) == len(QUEUES)
    for queue in QUEUES:
        assert queue.table in FORUM_TABLES or queue.table in FEDERATION_TABLES, queue


def test_retries_wait_longer_each_time_and_end() -> None:
    for queue in QUEUES:
        delays = list(queue.retry_delays)
        assert delays and delays == sorted(delays) and len(set(delays)) == len(delays), queue.name
        assert queue.retry_delay(1) == delays[0]
        assert queue.retry_delay(queue.max_attempts) is None  # the last attempt is final


def test_a_lease_outlives_a_poll() -> None:
    for queue in QUEUES:
        assert queue.poll_interval > 0 and queue.batch >= 1
        assert queue.lease.total_seconds() > queue.poll_interval, queue.name
