"""Typed outbox events (node/events.py): what node writes is what federation reads."""

from __future__ import annotations

from node import events


def test_typed_outbox_events_round_trip_through_json() -> None:
    post = events.PostEvent(post_id=7, thread_id=3, community_id=2, actor_user_id=5)
    assert events.PostEvent.from_json(post.to_json()) == post
    assert events.PostEvent.from_json({**post.to_json(), "post_id": None}).post_id is None
    report = events.ReportForwarded(report_id=11)
    assert events.ReportForwarded.from_json(report.to_json()) == report


def test_member_and_message_events_round_trip_through_json() -> None:
    updated = events.PersonUpdated(user_id=4)
    deleted = events.PersonDeleted(
        user_id=4, communities=(events.WroteIn(1, "public"), events.WroteIn(2, "members"))
    )
    message = events.MessageCreated(message_id=9)
    assert events.PersonUpdated.from_json(updated.to_json()) == updated
    assert events.PersonDeleted.from_json(deleted.to_json()) == deleted
    assert deleted.to_json() == {
        "user_id": 4,
        "communities": [{"id": 1, "visibility": "public"}, {"id": 2, "visibility": "members"}],
    }
    assert events.MessageCreated.from_json(message.to_json()) == message
