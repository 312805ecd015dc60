"""Members: creation, registration and approval, passwords, profiles."""

from __future__ import annotations

import re

import asyncpg

from node import audit
from node.errors import BadRequest, Conflict
from node.security import hash_password

ROLES = ("member", "expert", "moderator", "admin")
PROFESSIONS = {
    "medical": "Médical",
    "paramedical": "Paramédical",
    "psychosocial": "Psychosocial",
    "juridique": "Juridique",
    "projet": "Chargé·e de projet",
    "autre": "Autre",
}
USERNAME_RE = re.compile(r"^[a-z0-9_]{3,30}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256

INSERT_USER = """
INSERT INTO users (username, display_name, email, password_hash, role, status, profession,
                   profession_detail, organisation, country, motivation, charter_accepted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
RETURNING id
"""
NAME_TAKEN = """
SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1))
    OR EXISTS (SELECT 1 FROM communities WHERE lower(name) = lower($1))
"""


def check_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise BadRequest(
            fields={"username": "3 à 30 caractères : lettres minuscules sans accent, chiffres ou « _ »."}
        )
    return username


def check_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(fields={field: f"Le mot de passe doit compter au moins {MIN_PASSWORD} caractères."})
    if len(password) > MAX_PASSWORD:
        raise BadRequest(fields={field: f"Le mot de passe doit compter au plus {MAX_PASSWORD} caractères."})


async def name_taken(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    """Members and communities share one namespace (design §3: WebFinger)."""
    taken: bool = await conn.fetchval(NAME_TAKEN, name)
    return taken


async def create_user(
    conn: asyncpg.Connection,
    username: str,
    password: str,
    *,
    email: str | None = None,
    display_name: str | None = None,
    role: str = "member",
    status: str = "approved",
    profession: str = "autre",
    profession_detail: str = "",
    organisation: str = "",
    country: str = "",
    motivation: str = "",
    audit_label: str | None = None,
) -> int:
    """Create a member (approved by default, as from the command line); return its id."""
    username = check_username(username)
    check_password(password)
    if role not in ROLES:
        raise BadRequest(fields={"role": "Rôle inconnu."})
    if profession not in PROFESSIONS:
        raise BadRequest(fields={"profession": "Profession inconnue."})
    async with conn.transaction():
        if await name_taken(conn, username):
            raise Conflict(fields={"username": "Ce nom d'utilisateur est déjà pris."})
        try:
            user_id: int = await conn.fetchval(
                INSERT_USER,
                username,
                display_name or username,
                email or f"{username}@localhost",
                hash_password(password),
                role,
                status,
                profession,
                profession_detail,
                organisation,
                country,
                motivation,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(
                fields={"username": "Ce nom d'utilisateur ou cette adresse est déjà utilisé."}
            ) from exc
        if audit_label is not None:
            await audit.record(
                conn,
                "user.create",
                actor_label=audit_label,
                target_type="user",
                target_id=user_id,
                details={"username": username, "role": role},
            )
    return user_id
