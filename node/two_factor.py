"""Two-factor authentication: TOTP codes (RFC 6238, ``pyotp``) and recovery codes.

A member's second factor (columns of ``users`` and table ``totp_recovery_codes``,
owned here)::

    off ──start(password)──> pending (a new secret, shown as a QR code)
                               └──activate(a valid code)──> on (+ 10 recovery codes, shown once)
    on ──disable(password + code)──> off          (refused when the node requires it of her role)
    on ──an admin turns it off (lost phone)──> off (audited)

At login, a member whose factor is on gives her password, then a code: a 30-second
TOTP code (each one accepted once: ``totp_last_step``) or one of her recovery codes
(each usable once). The secret is sealed with AES-GCM under a key derived from the
node secret, so a dump of the database alone does not yield the codes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

import asyncpg
import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node import audit
from node.errors import BadRequest
from node.security import verify_password
from node.sessions import User

RECOVERY_CODES = 10
VALID_WINDOW = 1  # one 30-second step early or late: phones' clocks drift
ISSUER = "Réseau VBG"

SELECT_STATE = """
SELECT username, password_hash, role, status, totp_secret_sealed, totp_pending_sealed, totp_enabled_at,
       totp_last_step
FROM users WHERE id = $1
"""
SET_PENDING = "UPDATE users SET totp_pending_sealed = $2 WHERE id = $1"
ENABLE = """
UPDATE users SET totp_secret_sealed = totp_pending_sealed, totp_pending_sealed = NULL, totp_enabled_at = now(),
       totp_last_step = $2
WHERE id = $1
"""
DISABLE = """
UPDATE users SET totp_secret_sealed = NULL, totp_pending_sealed = NULL, totp_enabled_at = NULL, totp_last_step = 0
WHERE id = $1 RETURNING username
"""
SET_LAST_STEP = "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2 RETURNING id"
DELETE_CODES = "DELETE FROM totp_recovery_codes WHERE user_id = $1"
INSERT_CODE = "INSERT INTO totp_recovery_codes (user_id, code_hash) VALUES ($1, $2)"
USE_CODE = """
UPDATE totp_recovery_codes SET used_at = now()
WHERE id = (SELECT id FROM totp_recovery_codes WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL
            LIMIT 1 FOR UPDATE)
RETURNING id
"""
COUNT_CODES = "SELECT count(*) FROM totp_recovery_codes WHERE user_id = $1 AND used_at IS NULL"


def _key(node_secret: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"vbg-node totp secrets").derive(
        node_secret.encode()
    )


def seal(node_secret: str, user_id: int, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_key(node_secret)).encrypt(nonce, secret.encode(), str(user_id).encode())


def unseal(node_secret: str, user_id: int, sealed: bytes) -> str:
    return AESGCM(_key(node_secret)).decrypt(sealed[:12], sealed[12:], str(user_id).encode()).decode()


def _code_hash(code: str) -> bytes:
    return hashlib.sha256(normalise(code).encode()).digest()


def normalise(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())[:32]


def new_recovery_code() -> str:
    raw = secrets.token_hex(5)  # 40 bits; tried under the login limits
    return f"{raw[:5]}-{raw[5:]}"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str  # an <svg> element, inline in the page (no script, no outside resource)


def required_for(role: str, require_2fa: bool) -> bool:
    """Does the node require a second factor of this role?"""
    return require_2fa and role in ("moderator", "admin")


async def start(
    conn: asyncpg.Connection, node_secret: str, member: User, password: str, issuer: str = ISSUER
) -> Enrolment:
    """A new pending secret for ``member`` (her password confirms it is her)."""
    state = await conn.fetchrow(SELECT_STATE, member.id)
    if not verify_password(state["password_hash"], password):
        raise BadRequest(fields={"password": "Le mot de passe est incorrect."})
    secret = pyotp.random_base32()
    await conn.execute(SET_PENDING, member.id, seal(node_secret, member.id, secret))
    return enrolment(secret, member.username, issuer)


def enrolment(secret: str, username: str, issuer: str) -> Enrolment:
    import segno  # the QR code, drawn at enrolment only: ~2.5 MB a web process is spared until then

    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", title="QR code")
    return Enrolment(secret, uri, svg)


async def pending(
    conn: asyncpg.Connection | asyncpg.Pool, node_secret: str, member: User, issuer: str = ISSUER
) -> Enrolment | None:
    state = await conn.fetchrow(SELECT_STATE, member.id)
    if state is None or state["totp_pending_sealed"] is None:
        return None
    return enrolment(unseal(node_secret, member.id, state["totp_pending_sealed"]), member.username, issuer)


def _step_of(secret: str, code: str, after_step: int) -> int | None:
    """The time step ``code`` is valid for (within the window), if later than ``after_step``."""
    code = normalise(code)
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // totp.interval
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if step > after_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def activate(conn: asyncpg.Connection, node_secret: str, member: User, code: str) -> list[str]:
    """Turn the pending secret on once ``code`` proves the app holds it; returns the
    recovery codes (shown once, stored hashed)."""
    state = await conn.fetchrow(SELECT_STATE, member.id)
    if state["totp_pending_sealed"] is None:
        raise BadRequest(fields={"totp_code": "Recommencez l'activation : aucune clé n'est en attente."})
    step = _step_of(unseal(node_secret, member.id, state["totp_pending_sealed"]), code, 0)
    if step is None:
        raise BadRequest(
            fields={"totp_code": "Ce code ne correspond pas. Vérifiez l'heure du téléphone et réessayez."}
        )
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    async with conn.transaction():
        await conn.execute(ENABLE, member.id, step)
        await conn.execute(DELETE_CODES, member.id)
        for recovery in codes:
            await conn.execute(INSERT_CODE, member.id, _code_hash(recovery))
        await _audit(conn, member.id, member.username, "2fa.enable", member.id, member.username)
    return codes


async def check(conn: asyncpg.Connection, node_secret: str, user_id: int, code: str) -> bool:
    """At login: a TOTP code not used before, or an unused recovery code (spent now)."""
    state = await conn.fetchrow(SELECT_STATE, user_id)
    if state is None or state["totp_secret_sealed"] is None:
        return False
    secret = unseal(node_secret, user_id, state["totp_secret_sealed"])
    step = _step_of(secret, code, state["totp_last_step"])
    if step is not None:
        return await conn.fetchval(SET_LAST_STEP, user_id, step) is not None
    if len(normalise(code)) == 10:
        return await conn.fetchval(USE_CODE, user_id, _code_hash(code)) is not None
    return False


async def recovery_codes_left(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> int:
    left: int = await conn.fetchval(COUNT_CODES, user_id)
    return left


async def disable(
    conn: asyncpg.Connection, node_secret: str, member: User, password: str, code: str, require_2fa: bool
) -> None:
    """The member turns her second factor off (password and a code)."""
    if required_for(member.role, require_2fa):
        raise BadRequest(
            "Ce nœud exige la double authentification pour votre rôle : elle ne peut pas être désactivée."
        )
    state = await conn.fetchrow(SELECT_STATE, member.id)
    if not verify_password(state["password_hash"], password):
        raise BadRequest(fields={"password": "Le mot de passe est incorrect."})
    if not await check(conn, node_secret, member.id, code):
        raise BadRequest(fields={"totp_code": "Ce code ne correspond pas."})
    async with conn.transaction():
        await conn.execute(DISABLE, member.id)
        await conn.execute(DELETE_CODES, member.id)
        await _audit(conn, member.id, member.username, "2fa.disable", member.id, member.username)


async def disable_by_admin(conn: asyncpg.Connection, admin: User, user_id: int) -> None:
    """A member lost her phone and her recovery codes: an admin turns her factor off."""
    async with conn.transaction():
        username = await conn.fetchval(DISABLE, user_id)
        if username is None:
            raise BadRequest("Ce compte n'existe pas.")
        await conn.execute(DELETE_CODES, user_id)
        await _audit(conn, admin.id, admin.username, "2fa.disable_by_admin", user_id, username)


async def _audit(
    conn: asyncpg.Connection, actor_id: int, actor_label: str, action: str, user_id: int, username: str
) -> None:
    await audit.record(
        conn, action, actor_id=actor_id, actor_label=actor_label, target_type="user", target_id=user_id,
        details={"username": username},
    )  # fmt: skip


SELECT_ENABLED = "SELECT totp_enabled_at IS NOT NULL FROM users WHERE id = $1"


async def enabled(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> bool:
    on: bool | None = await conn.fetchval(SELECT_ENABLED, user_id)
    return bool(on)
