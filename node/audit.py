"""Append-only audit log of moderator and admin actions (docs/architecture.md §5)."""

from __future__ import annotations

from typing import Any

from node.db import Conn

INSERT = """
INSERT INTO audit_log (actor_id, actor_label, action, target_type, target_id, reason, details)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


async def record(
    conn: Conn,
    action: str,
    *,
    actor_id: int | None = None,
    actor_label: str = "",
    target_type: str = "",
    target_id: str | int = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Write one line; call it inside the transaction of the action it records."""
    await conn.execute(
        INSERT, actor_id, actor_label, action, target_type, str(target_id), reason, details or {}
    )
