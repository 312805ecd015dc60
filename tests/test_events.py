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


def test_relay_and_follow_events_round_trip_through_json() -> None:
    activity = {"id": "https://masto.example/a/1", "type": "Create"}
    relay = events.RelayAnnounce(community_id=1, activity=activity)
    assert relay.to_json()["activity"] is activity  # the activity is written as received, not copied
    assert events.RelayAnnounce.from_json(relay.to_json()) == relay
    page, boost = events.RelayAnnouncePage(1, 2), events.RelayAnnounceObject(1, 3)
    assert events.RelayAnnouncePage.from_json(page.to_json()) == page
    assert events.RelayAnnounceObject.from_json(boost.to_json()) == boost
    answer = events.FollowAnswer(community_id=None, local_actor_id=5, follow={"id": "f"}, actor_id=6)
    assert events.FollowAnswer.from_json(answer.to_json()) == answer


def test_every_kind_the_outbox_builds_is_a_typed_event_kind() -> None:
    from typing import get_args

    from federation import outbox

    def literals(tp: object) -> set[str]:
        args = get_args(tp)
        return {a for a in args if isinstance(a, str)} | {x for a in args for x in literals(a)}

    assert set(outbox.BUILDERS) == literals(events.Kind)
