"""Every table and the one module that owns it: the forum's (``node``), federation's,
and the few both sides write on purpose.

The owner holds the named SQL that writes the table and the typed functions other
code calls; ``federation`` never runs SQL on these tables (``tests/test_boundaries.py``
reads every SQL string under ``federation/`` and fails on one that names them).
``node_settings`` is a key/value table shared by both sides: each key belongs to the
module that reads it (``federation.policy``: the federation mode; ``node.messages``:
who may write from other servers).

A new table gets its line here, in the commit whose migration creates it
(``tests/test_schema.py`` compares this file with ``node/schema.sql``).
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
    "email_changes": "node.email_changes",
    "totp_recovery_codes": "node.two_factor",
    "documents": "node.documents",
    "document_versions": "node.documents",
    "document_trash": "node.documents",
    "notifications": "node.notifications",
    "notification_settings": "node.notifications",
    "thread_follows": "node.notifications",
    "bookmarks": "node.notifications",
    "site_pages": "node.site_pages",
    "backfill_jobs": "node.backfill",
    "remote_moderators": "node.backfill",
}

# Federation's own tables and the module that keeps each (its queue, cache or ledger).
FEDERATION_TABLES: dict[str, str] = {
    "actors": "federation.actors",
    "activities": "federation.outbox",
    "community_followers": "federation.handlers.follow",
    "follow_answers": "federation.handlers.accept",
    "group_follows": "federation.remote",
    "inbox_items": "federation.inbox",
    "remote_tombstones": "federation.handlers.base",
    "delivery_jobs": "federation.delivery",
    "deliveries_ledger": "federation.delivery",
    "instances": "federation.delivery",
    "domain_allows": "federation.policy",
    "domain_blocks": "federation.policy",
    "remote_media": "federation.attachments",
    "remote_media_trash": "federation.media",
}

# Written by both sides on purpose:
# - outbox_events: node's services INSERT an event in the transaction of their change;
#   federation.outbox turns each into deliveries and deletes it (docs/architecture.md §2).
# - node_settings: a key/value table, each key read and written by one module.
# - schema_migrations: node.db's record of applied migrations.
SHARED_TABLES = frozenset({"outbox_events", "node_settings", "schema_migrations"})
