"""Typed outbox events (node/events.py): what node writes is what federation reads."""

from __future__ import annotations

from node import events


def test_typed_outbox_events_round_trip_through_json() -> None:
    post = events.PostEvent(post_id=7, thread_id=3, community_id=2, actor_user_id=5)
    assert events.PostEvent.from_json(post.to_json()) == post
    assert events.PostEvent.from_json({**post.to_json(), "post_id": None}).post_id is None
    report = events.ReportForwarded(report_id=11)
    assert events.ReportForwarded.from_json(report.to_json()) == report
