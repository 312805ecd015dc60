"""Communities: creation, listing, visibility rules, experts and follows."""

from __future__ import annotations

import re

import asyncpg

from node import audit
from node.accounts import name_taken
from node.errors import BadRequest, Conflict

VISIBILITIES = ("members", "public", "local")
NAME_RE = re.compile(r"^[a-z0-9_]{3,30}$")

INSERT_COMMUNITY = """
INSERT INTO communities (name, title, description, rules, visibility, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""


async def create_community(
    conn: asyncpg.Connection,
    name: str,
    title: str,
    *,
    description: str = "",
    rules: str = "",
    visibility: str = "members",
    created_by: int | None = None,
    audit_label: str = "",
) -> int:
    name = name.strip().lower()
    if not NAME_RE.match(name):
        raise BadRequest(
            fields={"name": "3 à 30 caractères : lettres minuscules sans accent, chiffres ou « _ »."}
        )
    title = title.strip()
    if not title or len(title) > 120:
        raise BadRequest(fields={"title": "Le titre est obligatoire (120 caractères au plus)."})
    if visibility not in VISIBILITIES:
        raise BadRequest(fields={"visibility": "Visibilité inconnue : members, public ou local."})
    async with conn.transaction():
        if await name_taken(conn, name):
            raise Conflict(fields={"name": "Ce nom est déjà pris par un membre ou une communauté."})
        community_id: int = await conn.fetchval(
            INSERT_COMMUNITY, name, title, description, rules, visibility, created_by
        )
        await audit.record(
            conn,
            "community.create",
            actor_id=created_by,
            actor_label=audit_label,
            target_type="community",
            target_id=community_id,
            details={"name": name, "visibility": visibility},
        )
    return community_id
