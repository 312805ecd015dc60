"""The delivery state machine as declared in federation/delivery.py (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from federation import delivery
from federation.delivery import AttemptOutcome, DeliveryStep, classify, next_step


def test_every_transition_joins_declared_states() -> None:
    # Given the declared transitions, Then each names known states only
    for (state, _event), target in delivery.TRANSITIONS.items():
        assert state in delivery.STATES and target in delivery.STATES
    # And no final state has a way out
    assert not {s for s, _e in delivery.TRANSITIONS} & delivery.FINAL_STATES


def test_retry_delays_grow_and_cover_about_two_days() -> None:
    delays = delivery.RETRY_DELAYS
    assert list(delays) == sorted(delays)
    assert timedelta(hours=36) <= sum(delays, timedelta()) <= timedelta(hours=60)
    assert sum(delays, timedelta()) < delivery.JOB_MAX_AGE


@pytest.mark.parametrize(
    ("status", "event", "instance_failure"),
    [
        (200, "success", False),
        (202, "success", False),
        (204, "success", False),
        (301, "final", False),
        (400, "final", False),
        (403, "final", False),
        (404, "final", False),
        (410, "final", False),
        (422, "final", False),
        (401, "retry", False),
        (408, "retry", False),
        (429, "retry", False),
        (500, "retry", True),
        (502, "retry", True),
        (503, "retry", True),
        (None, "retry", True),
    ],
)
def test_classify(status: int | None, event: str, instance_failure: bool) -> None:
    assert classify(status) == AttemptOutcome(event, instance_failure)


def test_next_step_walks_the_delays_then_gives_up() -> None:
    retry = classify(500)
    steps = [next_step(retry, attempt) for attempt in range(1, delivery.MAX_ATTEMPTS + 1)]
    assert steps[:-1] == [DeliveryStep("pending", d) for d in delivery.RETRY_DELAYS]
    assert steps[-1] == DeliveryStep("dead")


def test_final_and_success_steps() -> None:
    assert next_step(classify(202), 1) == DeliveryStep("done")
    assert next_step(classify(410), 3) == DeliveryStep("failed")


def test_retry_after_is_honoured_within_a_cap() -> None:
    busy = classify(429)
    assert next_step(busy, 1, timedelta(minutes=20)) == DeliveryStep("pending", timedelta(minutes=20))
    assert next_step(busy, 1, timedelta(seconds=5)) == DeliveryStep("pending", timedelta(minutes=1))
    assert next_step(busy, 1, timedelta(days=9)) == DeliveryStep("pending", delivery.MAX_RETRY_AFTER)


def test_pick_inboxes_prefers_shared_and_skips_ours() -> None:
    recipients = [
        ("https://a.example/users/1/inbox", "https://a.example/inbox"),
        ("https://a.example/users/2/inbox", "https://a.example/inbox"),
        ("https://b.example/u/3/inbox", None),
        ("https://our.example/u/me/inbox", None),
        ("ftp://c.example/inbox", None),
        (None, None),
    ]
    assert delivery.pick_inboxes(recipients, "our.example") == [
        "https://a.example/inbox",
        "https://b.example/u/3/inbox",
    ]
