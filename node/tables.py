"""The forum's tables and the one module of ``node`` that owns each.

The owner holds the named SQL that writes the table and the typed functions other
code calls; ``federation`` never runs SQL on these tables (``tests/test_boundaries.py``
reads every SQL string under ``federation/`` and fails on one that names them).
Federation's own tables (actors, inbox_items, delivery_jobs, outbox_events' worker
side, remote_media, instances, domain policy …) are not listed here.

``node_settings`` is a key/value table shared by both sides: each key belongs to the
module that reads it (``federation.policy``: the federation mode; ``node.messages``:
who may write from other servers).

A new forum table gets its line here, in the commit whose migration creates it.
"""

from __future__ import annotations

FORUM_TABLES: dict[str, str] = {
    "users": "node.accounts",
    "sessions": "node.sessions",
    "password_resets": "node.recovery",
    "rate_limits": "node.ratelimit",
    "audit_log": "node.audit",
    "communities": "node.communities",
    "community_experts": "node.communities",
    "community_follows": "node.communities",
    "threads": "node.threads",
    "posts": "node.threads",
    "post_likes": "node.threads",
    "post_shares": "node.shares",
    "post_edits": "node.threads",
    "thread_reads": "node.threads",
    "reports": "node.reports",
    "conversations": "node.messages",
    "conversation_participants": "node.messages",
    "messages": "node.messages",
    "message_blocks": "node.messages",
    "message_preferences": "node.messages",
    "message_reports": "node.messages",
    "message_attachments": "node.messages",
    "mail_queue": "node.mail",
}
