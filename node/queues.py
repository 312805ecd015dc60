"""The shape every work queue shares, declared once per queue (``QueueSpec``).

A queue is a table of rows to work on. Workers claim due rows with ``SELECT … FOR
UPDATE SKIP LOCKED`` and hold each for ``lease`` (a worker that dies leaves its rows to
be claimed again when the lease ends); they sleep until a ``NOTIFY`` on ``channel`` or
``poll_interval`` (a safety net for a missed notification and for retries falling due);
a failed attempt is retried after ``retry_delays[attempt - 1]``, and the row is final
once the delays are spent. Each queue's own diagram of states is in its module:

    inbox     federation/inbox_worker.py   INBOX      inbox_items
    delivery  federation/delivery.py       DELIVERY   delivery_jobs
    media     federation/media.py          MEDIA      remote_media
    documents federation/documents_worker.py DOCUMENTS document_versions (remote files)
    backfill  federation/backfill.py       BACKFILL   backfill_jobs
    mail      node/mail.py                 MAIL       mail_queue

``tests/test_queues.py`` holds every spec to these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class QueueSpec:
    name: str
    table: str
    channel: str
    lease: timedelta
    retry_delays: tuple[timedelta, ...]
    poll_interval: float  # seconds
    batch: int = 1  # rows claimed at once

    @property
    def max_attempts(self) -> int:
        return len(self.retry_delays) + 1

    def retry_delay(self, attempts: int) -> timedelta | None:
        """The wait after attempt number ``attempts`` (1-based) failed; None: no retry left."""
        return self.retry_delays[attempts - 1] if 0 < attempts <= len(self.retry_delays) else None
