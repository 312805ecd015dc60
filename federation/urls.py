"""The node's ActivityPub ids. Ids are permanent URLs that also serve the HTML page
(content negotiation on ``Accept``), so this scheme is shared with the web pages."""

from __future__ import annotations

import uuid

from node.settings import Settings


def person(s: Settings, username: str) -> str:
    return f"{s.base_url}/u/{username}"


def group(s: Settings, name: str) -> str:
    return f"{s.base_url}/c/{name}"


def instance_actor(s: Settings) -> str:
    return f"{s.base_url}/actor"


def shared_inbox(s: Settings) -> str:
    return f"{s.base_url}/inbox"


def thread(s: Settings, thread_id: int) -> str:
    """A thread: an ActivityPub ``Page`` (its opening post), HTML thread page."""
    return f"{s.base_url}/t/{thread_id}"


def thread_context(s: Settings, thread_id: int) -> str:
    return f"{s.base_url}/t/{thread_id}/context"


def post(s: Settings, post_id: int) -> str:
    """A reply: an ActivityPub ``Note``; HTML permalink to the reply in its thread."""
    return f"{s.base_url}/p/{post_id}"


def replies(object_url: str) -> str:
    """The ``replies`` collection of one of our posts (``/t/{id}`` or ``/p/{id}``)."""
    return f"{object_url}/replies"


def new_activity(s: Settings) -> str:
    return f"{s.base_url}/activities/{uuid.uuid4()}"


def key_id(actor_uri: str) -> str:
    return f"{actor_uri}#main-key"
