"""Members: creation, registration and approval, passwords, profiles, member management.

A member's life cycle (``users.status``)::

    register ──> pending ──approve──> approved <──reactivate── suspended
                    │                     └────────suspend────────┘
                    └──refuse──> refused (the reason is shown to the person)

Every moderator or admin decision is written to the audit log in the same
transaction as the change it records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from node import audit, events, keyset, mail, notifications, sessions
from node.db import Conn
from node.errors import BadRequest, Conflict, NotFound
from node.i18n import _
from node.security import hash_password, needs_rehash, verify_password
from node.sessions import User
from node.settings import Settings

ROLES = ("member", "expert", "moderator", "admin")
ROLE_LABELS = {
    "member": "Membre",
    "expert": "Expert·e",
    "moderator": "Modérateur·rice",
    "admin": "Administrateur·rice",
}
PROFESSIONS = {
    "medical": "Médical",
    "paramedical": "Paramédical",
    "psychosocial": "Psychosocial",
    "juridique": "Juridique",
    "projet": "Chargé·e de projet",
    "autre": "Autre",
}
STATUS_LABELS = {
    "pending": "En attente",
    "approved": "Validé",
    "refused": "Refusé",
    "suspended": "Suspendu",
    "deleted": "Supprimé",
}
USERNAME_RE = re.compile(r"^[a-z0-9_]{3,30}$")
EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
# Longest accepted value of each text field (characters).
MAX_LENGTHS = {
    "username": 30,
    "display_name": 80,
    "email": 254,
    "password": MAX_PASSWORD,
    "password_confirm": MAX_PASSWORD,
    "current_password": MAX_PASSWORD,
    "new_password": MAX_PASSWORD,
    "new_password_confirm": MAX_PASSWORD,
    "email_password": MAX_PASSWORD,
    "profession": 20,
    "profession_detail": 120,
    "organisation": 120,
    "country": 80,
    "motivation": 2000,
    "bio": 1000,
    "reason": 1000,
}

INSERT_USER = """
INSERT INTO users (username, display_name, email, password_hash, role, status, profession,
                   profession_detail, organisation, country, motivation, charter_accepted_at, email_conflict)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), $12)
RETURNING id
"""
NAME_TAKEN = """
SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1))
    OR EXISTS (SELECT 1 FROM communities WHERE lower(name) = lower($1))
"""
# The account that owns an address (a flagged registration owns nothing: migration 0076).
EMAIL_OWNER = "SELECT id FROM users WHERE lower(email) = lower($1) AND NOT email_conflict"
SELECT_ID_BY_NAME = "SELECT id FROM users WHERE lower(username) = lower($1)"
SELECT_APPROVED_MEMBER_BY_ID = """
SELECT id, username, display_name, bio, created_at FROM users WHERE id = $1 AND status = 'approved'
"""
SELECT_APPROVED_MEMBER = """
SELECT id, username, display_name, bio, created_at FROM users
WHERE lower(username) = lower($1) AND status = 'approved'
"""
SELECT_IDS_BY_NAMES = "SELECT id FROM users WHERE lower(username) = ANY ($1::text[])"


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


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > MAX_LENGTHS["email"] or not EMAIL_RE.match(email):
        raise BadRequest(fields={"email": "Adresse e-mail invalide."})
    return email


async def name_taken(conn: Conn, name: str) -> bool:
    """Members and communities share one namespace (docs/architecture.md §3: WebFinger)."""
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
    account = NewAccount(
        username, password, email, display_name, role, status, profession,
        profession_detail, organisation, country, motivation,
    )  # fmt: skip
    async with conn.transaction():
        user_id, owner_id = await _insert_account(conn, account, flag_taken_email=False)
        if audit_label is not None:
            await audit.record(
                conn,
                "user.create",
                actor_label=audit_label,
                target_type="user",
                target_id=user_id,
                details={"username": account.username, "role": role},
            )
    return user_id


@dataclass(frozen=True)
class NewAccount:
    username: str
    password: str
    email: str | None
    display_name: str | None
    role: str
    status: str
    profession: str
    profession_detail: str
    organisation: str
    country: str
    motivation: str


async def _insert_account(
    conn: asyncpg.Connection, account: NewAccount, *, flag_taken_email: bool
) -> tuple[int, int | None]:
    """Insert ``account``; return its id and the id of the account already owning its
    e-mail address (None when the address is new).

    An address already used is refused (Conflict), or, with ``flag_taken_email``
    (registration: the registrant must not learn whose address it is), kept with
    ``email_conflict`` set. Both outcomes do the same work: look the address up, hash
    the password, insert — no stopwatch tells them apart."""
    username = check_username(account.username)
    check_password(account.password)
    if account.role not in ROLES:
        raise BadRequest(fields={"role": "Rôle inconnu."})
    if account.profession not in PROFESSIONS:
        raise BadRequest(fields={"profession": "Profession inconnue."})
    if await name_taken(conn, username):
        raise Conflict(fields={"username": "Ce nom d'utilisateur est déjà pris."})
    owner_id: int | None = await conn.fetchval(EMAIL_OWNER, account.email) if account.email else None
    if owner_id is not None and not flag_taken_email:
        raise Conflict(fields={"email": "Cette adresse e-mail est déjà utilisée par un compte."})
    password_hash = hash_password(account.password)
    try:
        async with conn.transaction():  # a savepoint: the race below may retry
            user_id = await _insert(conn, account, username, password_hash, owner_id is not None)
    except asyncpg.UniqueViolationError as exc:
        if flag_taken_email and exc.constraint_name != "users_email_key":
            raise Conflict(fields={"username": "Ce nom d'utilisateur est déjà pris."}) from exc
        if not flag_taken_email:
            raise Conflict(
                fields={"username": "Ce nom d'utilisateur ou cette adresse est déjà utilisé."}
            ) from exc
        # The address was taken between the look-up and the insert (a concurrent registration).
        owner_id = await conn.fetchval(EMAIL_OWNER, account.email)
        user_id = await _insert(conn, account, username, password_hash, True)
    return user_id, owner_id


async def _insert(
    conn: asyncpg.Connection, account: NewAccount, username: str, password_hash: str, conflict: bool
) -> int:
    user_id: int = await conn.fetchval(
        INSERT_USER,
        username,
        account.display_name or username,
        account.email or f"{username}@localhost",
        password_hash,
        account.role,
        account.status,
        account.profession,
        account.profession_detail,
        account.organisation,
        account.country,
        account.motivation,
        conflict,
    )
    return user_id


async def approved_member(conn: Conn, username: str) -> asyncpg.Record | None:
    """The approved member named ``username`` (id, username, display_name, bio,
    created_at); None for anyone else (pending, suspended, unknown)."""
    return await conn.fetchrow(SELECT_APPROVED_MEMBER, username)


async def approved_member_by_id(conn: Conn, user_id: int) -> asyncpg.Record | None:
    """As :func:`approved_member`, by id."""
    return await conn.fetchrow(SELECT_APPROVED_MEMBER_BY_ID, user_id)


async def user_ids_by_names(conn: Conn, names: list[str]) -> list[int]:
    """The ids of the accounts named ``names`` (case-insensitive); unknown names are skipped."""
    return [r["id"] for r in await conn.fetch(SELECT_IDS_BY_NAMES, [n.lower() for n in names])]


async def user_id_by_name(conn: Conn, username: str) -> int | None:
    user_id: int | None = await conn.fetchval(SELECT_ID_BY_NAME, username.strip())
    return user_id


# ---------------------------------------------------------------- registration


@dataclass(frozen=True)
class Registration:
    """What a person fills in on the registration page."""

    username: str
    display_name: str
    email: str
    password: str
    password_confirm: str
    profession: str
    profession_detail: str
    organisation: str
    country: str
    motivation: str
    charter_accepted: bool


def _error_of(check: Callable[[str], object], value: str) -> dict[str, str]:
    try:
        check(value)
    except BadRequest as exc:
        return exc.fields
    return {}


def registration_errors(reg: Registration) -> dict[str, str]:
    """Every problem of ``reg`` at once, as French messages by field name."""
    errors: dict[str, str] = {}
    errors.update(_error_of(check_username, reg.username))
    errors.update(_error_of(check_email, reg.email))
    errors.update(_error_of(check_password, reg.password))
    if not errors.get("password") and reg.password != reg.password_confirm:
        errors["password_confirm"] = "Les deux mots de passe ne correspondent pas."
    if reg.profession not in PROFESSIONS:
        errors["profession"] = "Choisissez une profession dans la liste."
    if reg.profession == "autre" and not reg.profession_detail.strip():
        errors["profession_detail"] = "Précisez votre profession."
    for name in ("display_name", "organisation", "country", "motivation"):
        if not getattr(reg, name).strip():
            errors[name] = "Ce champ est obligatoire."
    if not reg.charter_accepted:
        errors["charter"] = "Vous devez accepter la charte du réseau pour demander un compte."
    return errors


async def username_errors(conn: Conn, username: str) -> dict[str, str]:
    """A taken username, said with the form's other errors (one round, not two). Only
    usernames: whether an e-mail address is a member's is never said (issue 8)."""
    if _error_of(check_username, username) or not await name_taken(conn, check_username(username)):
        return {}
    return {"username": "Ce nom d'utilisateur est déjà pris."}


async def register(conn: asyncpg.Connection, reg: Registration, settings: Settings) -> int:
    """Create a *pending* account from a registration; nothing is written on error.

    A taken username is said (usernames are public handles); an e-mail address already
    used is NOT (issue 8: whose address belongs to a member is nobody's business). The
    registrant gets the same answer either way, and the address receives one e-mail
    either way: "we received your request" for a new address, "someone asked for an
    account with your address, which already has one" for a used one — only the owner
    of the address learns which. The flagged request waits in the moderators' queue,
    which says so and cannot approve it."""
    errors = registration_errors(reg)
    if errors:
        errors = {**await username_errors(conn, reg.username), **errors}
        raise BadRequest(fields=errors)
    email = check_email(reg.email)
    account = NewAccount(
        reg.username, reg.password, email, reg.display_name.strip(), "member", "pending", reg.profession,
        reg.profession_detail.strip(), reg.organisation.strip(), reg.country.strip(), reg.motivation.strip(),
    )  # fmt: skip
    async with conn.transaction():
        user_id, owner_id = await _insert_account(conn, account, flag_taken_email=True)
        if owner_id is None:
            await _mail_received(conn, settings, email, user_id, account.username)
            await notifications.notify_moderators(conn, "new_application", applicant_id=user_id)
        else:
            await _mail_address_in_use(conn, settings, email, owner_id)
    return user_id


async def _mail_received(
    conn: asyncpg.Connection, settings: Settings, email: str, user_id: int, username: str
) -> None:
    body = _(
        "Bonjour,\n\nNous avons bien reçu votre demande de compte « %(username)s » sur %(node)s.\n"
        "Les modérateur·rice·s du nœud vont l'examiner ; vous pourrez vous connecter "
        "dès qu'elle sera validée : %(url)s\n\n"
        "Si vous n'avez pas fait cette demande, vous pouvez ignorer ce message."
    ) % {"username": username, "node": settings.node_name, "url": settings.url("/connexion")}
    subject = _("Votre demande d'inscription sur %(node)s") % {"node": settings.node_name}
    await mail.enqueue_mail(conn, to=email, subject=subject, body=body, kind="registration", user_id=user_id)


async def _mail_address_in_use(
    conn: asyncpg.Connection, settings: Settings, email: str, owner_id: int
) -> None:
    body = _(
        "Bonjour,\n\nQuelqu'un vient de demander un compte sur %(node)s avec votre adresse e-mail, "
        "qui est déjà celle de votre compte. Cette demande ne sera pas validée.\n\n"
        "Si c'était vous : vous avez déjà un compte, connectez-vous ici : %(url)s "
        "(mot de passe oublié : page « Mot de passe oublié ? » de la connexion, ou un lien demandé aux administrateur·rice·s du nœud).\n"
        "Sinon, vous pouvez ignorer ce message."
    ) % {"node": settings.node_name, "url": settings.url("/connexion")}
    subject = _("Votre demande d'inscription sur %(node)s") % {"node": settings.node_name}
    await mail.enqueue_mail(conn, to=email, subject=subject, body=body, kind="registration", user_id=owner_id)


# ---------------------------------------------------------------- login

SELECT_LOGIN_NAME = """
SELECT username FROM users
WHERE CASE WHEN strpos($1, '@') > 0 THEN lower(email) = lower($1) ELSE lower(username) = lower($1) END
"""


async def login_name(conn: asyncpg.Connection | asyncpg.Pool, login: str) -> str | None:
    """The username a login identifier (username or e-mail) names, if any."""
    login = login.strip()
    if not login or len(login) > 254:
        return None
    name: str | None = await conn.fetchval(SELECT_LOGIN_NAME, login)
    return name


# A member logs in with her username or her e-mail address (usernames cannot hold « @ »).
SELECT_LOGIN = """
SELECT id, status, password_hash FROM users
WHERE CASE WHEN strpos($1, '@') > 0 THEN lower(email) = lower($1) ELSE lower(username) = lower($1) END
"""
UPDATE_HASH = "UPDATE users SET password_hash = $2 WHERE id = $1"


@dataclass(frozen=True)
class Credentials:
    user_id: int
    status: str


async def authenticate(conn: Conn, username: str, password: str) -> Credentials | None:
    """The account when ``password`` is right, else None.

    An unknown name costs one (dummy) argon2 verification too, so the answer and
    its timing are the same as for a wrong password.
    """
    row = await conn.fetchrow(SELECT_LOGIN, username.strip()) if len(username) <= 254 else None
    if not verify_password(row["password_hash"] if row else None, password) or row is None:
        return None
    if needs_rehash(row["password_hash"]):
        await conn.execute(UPDATE_HASH, row["id"], hash_password(password))
    return Credentials(row["id"], row["status"])


# ---------------------------------------------------------------- review of registrations

# The moderators' queue, oldest application first, by users_pending (migration 0162); $1
# how many, $2 the cursor (a pending application; see node.keyset).
_PENDING_KEY = "((SELECT created_at FROM users WHERE id = $2 AND status = 'pending'), $2)"
SELECT_PENDING = keyset.forms(
    """
SELECT id, username, display_name, email, profession, profession_detail, organisation, country,
       motivation, created_at, email_conflict
FROM users WHERE status = 'pending' {cursor}
ORDER BY created_at {order}, id {order}
LIMIT $1
""",
    onwards=f"(created_at, id) > {_PENDING_KEY}",
    backwards=f"(created_at, id) < {_PENDING_KEY}",
    order="ASC",
)
COUNT_PENDING = "SELECT count(*) FROM users WHERE status = 'pending'"
PENDING_PAGE = 50
APPROVE = """
UPDATE users SET status = 'approved', reviewed_at = now(), reviewed_by = $2, refusal_reason = NULL
WHERE id = $1 AND status = 'pending' AND NOT email_conflict RETURNING username
"""
IS_EMAIL_CONFLICT = "SELECT email_conflict FROM users WHERE id = $1 AND status = 'pending'"
REFUSE = """
UPDATE users SET status = 'refused', reviewed_at = now(), reviewed_by = $2, refusal_reason = $3
WHERE id = $1 AND status = 'pending' RETURNING username
"""
SELECT_REVIEW = "SELECT status, refusal_reason FROM users WHERE id = $1"


async def pending_registrations(conn: Conn, at: keyset.At = keyset.At()) -> keyset.Page:
    """A page of the applications waiting for a moderator, oldest first, from ``at``."""
    rows = await conn.fetch(SELECT_PENDING[at.form], PENDING_PAGE + 1, *keyset.cursor_args(at))
    return keyset.page(list(rows), at, PENDING_PAGE)


async def pending_count(conn: Conn) -> int:
    count: int = await conn.fetchval(COUNT_PENDING)
    return count


async def approve(conn: asyncpg.Connection, user_id: int, moderator: User) -> None:
    """Approve a pending account; the person's open sessions see it at once."""
    async with conn.transaction():
        username = await conn.fetchval(APPROVE, user_id, moderator.id)
        if username is None and await conn.fetchval(IS_EMAIL_CONFLICT, user_id):
            raise Conflict(
                "Cette adresse e-mail est déjà celle d'un autre compte : cette demande ne peut pas être "
                "validée (refusez-la)."
            )
        if username is None:
            raise NotFound("Cette demande n'existe pas ou a déjà été traitée.")
        await audit.record(
            conn,
            "registration.approve",
            actor_id=moderator.id,
            actor_label=moderator.username,
            target_type="user",
            target_id=user_id,
            details={"username": username},
        )
        await notifications.notify_member(conn, user_id, "registration_approved", actor_id=moderator.id)


async def refuse(conn: asyncpg.Connection, user_id: int, moderator: User, reason: str) -> None:
    """Refuse a pending account; ``reason`` is shown to the person."""
    reason = reason.strip()
    if not reason:
        raise BadRequest(fields={"reason": "Indiquez la raison du refus : elle sera montrée à la personne."})
    async with conn.transaction():
        username = await conn.fetchval(REFUSE, user_id, moderator.id, reason)
        if username is None:
            raise NotFound("Cette demande n'existe pas ou a déjà été traitée.")
        await audit.record(
            conn,
            "registration.refuse",
            actor_id=moderator.id,
            actor_label=moderator.username,
            target_type="user",
            target_id=user_id,
            reason=reason,
            details={"username": username},
        )
        await notifications.notify_member(
            conn, user_id, "registration_refused", actor_id=moderator.id, reason=reason
        )


async def review_state(conn: Conn, user_id: int) -> asyncpg.Record | None:
    """Status and refusal reason, for the person's waiting page."""
    return await conn.fetchrow(SELECT_REVIEW, user_id)


# ---------------------------------------------------------------- profile and password

SELECT_PROFILE = """
SELECT id, username, display_name, role, profession, profession_detail, organisation, country, bio,
       created_at
FROM users WHERE lower(username) = lower($1) AND status = 'approved'
"""
SELECT_OWN_PROFILE = """
SELECT id, username, display_name, email, role, profession, profession_detail, organisation, country, bio,
       in_directory
FROM users WHERE id = $1
"""
SELECT_EXPERT_OF = """
SELECT c.id, c.name, c.title FROM community_experts e JOIN communities c ON c.id = e.community_id
WHERE e.user_id = $1 ORDER BY c.title
"""
UPDATE_PROFILE = """
UPDATE users SET display_name = $2, profession = $3, profession_detail = $4, organisation = $5,
                 country = $6, bio = $7
WHERE id = $1
"""
# What a member's ActivityPub ``Person`` shows (federation.objects.person_to_ap): when it
# changes, the federation workers send an ``Update{Person}`` (federation.outbox).
SELECT_PERSON_FIELDS = "SELECT display_name, bio FROM users WHERE id = $1 FOR UPDATE"
SELECT_HASH = "SELECT password_hash FROM users WHERE id = $1"
UPDATE_PASSWORD = "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1"


@dataclass(frozen=True)
class ProfileUpdate:
    display_name: str
    profession: str
    profession_detail: str
    organisation: str
    country: str
    bio: str


def profile_errors(update: ProfileUpdate) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not update.display_name.strip():
        errors["display_name"] = "Ce champ est obligatoire."
    if update.profession not in PROFESSIONS:
        errors["profession"] = "Choisissez une profession dans la liste."
    if update.profession == "autre" and not update.profession_detail.strip():
        errors["profession_detail"] = "Précisez votre profession."
    return errors


async def profile(conn: Conn, username: str) -> asyncpg.Record | None:
    """The public-to-members profile of an approved member, or None."""
    return await conn.fetchrow(SELECT_PROFILE, username) if len(username) <= 64 else None


async def own_profile(conn: Conn, user_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(SELECT_OWN_PROFILE, user_id)
    if row is None:
        raise NotFound()
    return row


async def expert_of(conn: Conn, user_id: int) -> list[asyncpg.Record]:
    """The communities ``user_id`` animates as an expert."""
    result: list[asyncpg.Record] = await conn.fetch(SELECT_EXPERT_OF, user_id)
    return result


async def update_profile(pool: asyncpg.Pool, user_id: int, update: ProfileUpdate) -> None:
    errors = profile_errors(update)
    if errors:
        raise BadRequest(fields=errors)
    async with pool.acquire() as tx, tx.transaction():
        before = await tx.fetchrow(SELECT_PERSON_FIELDS, user_id)
        await tx.execute(
            UPDATE_PROFILE,
            user_id,
            update.display_name.strip(),
            update.profession,
            update.profession_detail.strip(),
            update.organisation.strip(),
            update.country.strip(),
            update.bio.strip(),
        )
        if before is not None and (before["display_name"], before["bio"]) != (
            update.display_name.strip(),
            update.bio.strip(),
        ):
            await events.emit(tx, "person.updated", events.PersonUpdated(user_id))


SET_TIMEZONE = "UPDATE users SET timezone = $2 WHERE id = $1"


async def set_timezone(conn: Conn, user_id: int, name: str) -> None:
    """``name``: an IANA zone checked by the caller (node.timezones.valid), or '' for the node's."""
    await conn.execute(SET_TIMEZONE, user_id, name)


async def change_password(
    conn: asyncpg.Connection,
    session: sessions.Session,
    current: str,
    new: str,
    confirm: str,
    *,
    user_agent: str,
    ip: str,
) -> str:
    """Change the password of ``session``'s member; end every other session and
    rotate this one. Returns the new session token."""
    stored = await conn.fetchval(SELECT_HASH, session.user.id)
    if not verify_password(stored, current):
        raise BadRequest(fields={"current_password": "Le mot de passe actuel est incorrect."})
    check_password(new, "new_password")
    if new != confirm:
        raise BadRequest(fields={"new_password_confirm": "Les deux mots de passe ne correspondent pas."})
    async with conn.transaction():
        await conn.execute(UPDATE_PASSWORD, session.user.id, hash_password(new))
        await sessions.end_all(conn, session.user.id)
        return await sessions.create(conn, session.user.id, user_agent, ip)


# ---------------------------------------------------------------- member management (admins)

# Members by name, a page starting after (``next``) or before (``previous``, read
# backwards then reversed) a lowered username: keyset pages on users_username_key, never
# OFFSET. $1 the pattern, $2 how many, $3 the name of the cursor.
_SEARCH_MEMBERS = """
SELECT id, username, display_name, email, role, status, organisation, created_at
FROM users
WHERE ($1 = '' OR username ILIKE '%' || $1 || '%' OR display_name ILIKE '%' || $1 || '%'
       OR email ILIKE '%' || $1 || '%')
  AND lower(username) {side} $3
ORDER BY lower(username) {order}
LIMIT $2
"""
SEARCH_MEMBERS = {
    "next": _SEARCH_MEMBERS.format(side=">", order="ASC"),
    "previous": _SEARCH_MEMBERS.format(side="<", order="DESC"),
}
SELECT_MEMBER = """
SELECT id, username, display_name, email, role, status, profession, profession_detail, organisation,
       country, bio, refusal_reason, suspension_reason, created_at, reviewed_at
FROM users WHERE id = $1
"""
SET_ROLE = """
UPDATE users u SET role = $2 FROM (SELECT id, role FROM users WHERE id = $1 FOR UPDATE) old
WHERE u.id = old.id RETURNING old.role, u.username
"""
SUSPEND = """
UPDATE users SET status = 'suspended', suspension_reason = $2 WHERE id = $1 AND status IN ('approved', 'pending')
RETURNING username
"""
REACTIVATE = """
UPDATE users SET status = 'approved', suspension_reason = '' WHERE id = $1 AND status = 'suspended'
RETURNING username
"""
SUSPENSION_REASON = "SELECT suspension_reason FROM users WHERE id = $1 AND status = 'suspended'"
RECONSIDER = """
UPDATE users SET status = 'pending', refusal_reason = NULL, reviewed_at = NULL, reviewed_by = NULL
WHERE id = $1 AND status = 'refused' RETURNING username
"""
ERASE_REFUSED = "DELETE FROM users WHERE id = $1 AND status = 'refused' RETURNING username"
ALL_COMMUNITIES = "SELECT id, name, title FROM communities ORDER BY title"
EXPERT_IDS = "SELECT community_id FROM community_experts WHERE user_id = $1"
REMOVE_EXPERT = "DELETE FROM community_experts WHERE user_id = $1 AND community_id <> ALL($2::bigint[])"
ADD_EXPERT = """
INSERT INTO community_experts (community_id, user_id)
SELECT id, $1 FROM communities WHERE id = ANY($2::bigint[])
ON CONFLICT DO NOTHING
"""
MEMBERS_PAGE = 50
ESCAPE_LIKE = str.maketrans({"%": r"\%", "_": r"\_", "\\": "\\\\"})


@dataclass
class MemberPage:
    """One page of the admins' member list, with the cursors of the pages around it
    (None: no such page)."""

    members: list[asyncpg.Record]
    previous: str | None
    next: str | None


async def search_members(conn: Conn, query: str, after: str = "", before: str | None = None) -> MemberPage:
    """Members whose name, display name or e-mail contains ``query`` (admins only), by
    name: those after the name ``after``, or the page before the name ``before`` (an
    empty one is not given: the first page). A page that names a cursor and holds no
    one (past the last match, or a cursor from before the search changed) is a missing
    page, as in every keyset list (node.keyset.window)."""
    pattern = query.strip()[:100].translate(ESCAPE_LIKE)
    backwards = bool(before)
    cursor = (before if backwards else after) or ""
    rows = list(await conn.fetch(SEARCH_MEMBERS["previous" if backwards else "next"], pattern, MEMBERS_PAGE + 1,
                                 cursor.lower()[:100]))  # fmt: skip
    rows, has_previous, has_next = keyset.window(rows, MEMBERS_PAGE, backwards=backwards, at_top=not cursor)
    return MemberPage(
        rows,
        rows[0]["username"].lower() if has_previous else None,
        rows[-1]["username"].lower() if has_next else None,
    )


async def member(conn: Conn, user_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(SELECT_MEMBER, user_id)
    if row is None:
        raise NotFound()
    return row


async def all_communities(conn: Conn) -> list[asyncpg.Record]:
    result: list[asyncpg.Record] = await conn.fetch(ALL_COMMUNITIES)
    return result


def _not_self(admin: User, user_id: int, what: str) -> None:
    # An admin cannot lock themselves out; another admin must do it.
    if admin.id == user_id:
        raise BadRequest(f"Vous ne pouvez pas {what} votre propre compte.")


async def set_role(conn: asyncpg.Connection, admin: User, user_id: int, role: str) -> None:
    if role not in ROLES:
        raise BadRequest(fields={"role": "Rôle inconnu."})
    _not_self(admin, user_id, "changer le rôle de")
    async with conn.transaction():
        row = await conn.fetchrow(SET_ROLE, user_id, role)
        if row is None:
            raise NotFound()
        await audit.record(
            conn,
            "member.role",
            actor_id=admin.id,
            actor_label=admin.username,
            target_type="user",
            target_id=user_id,
            details={"username": row["username"], "from": row["role"], "to": role},
        )


async def set_expert_communities(
    conn: asyncpg.Connection, admin: User, user_id: int, community_ids: set[int]
) -> None:
    """Make ``user_id`` the expert of exactly ``community_ids``."""
    async with conn.transaction():
        target = await member(conn, user_id)
        before = {r["community_id"] for r in await conn.fetch(EXPERT_IDS, user_id)}
        await conn.execute(REMOVE_EXPERT, user_id, sorted(community_ids))
        await conn.execute(ADD_EXPERT, user_id, sorted(community_ids))
        after = {r["community_id"] for r in await conn.fetch(EXPERT_IDS, user_id)}
        await audit.record(
            conn,
            "member.experts",
            actor_id=admin.id,
            actor_label=admin.username,
            target_type="user",
            target_id=user_id,
            details={
                "username": target["username"],
                "added": sorted(after - before),
                "removed": sorted(before - after),
            },
        )


async def suspend(conn: asyncpg.Connection, admin: User, user_id: int, reason: str) -> None:
    """Suspend an account and end all its sessions."""
    _not_self(admin, user_id, "suspendre")
    async with conn.transaction():
        username = await conn.fetchval(SUSPEND, user_id, reason.strip()[:1000])
        if username is None:
            raise NotFound("Ce compte n'existe pas ou est déjà suspendu.")
        await sessions.end_all(conn, user_id)
        await audit.record(
            conn,
            "member.suspend",
            actor_id=admin.id,
            actor_label=admin.username,
            target_type="user",
            target_id=user_id,
            reason=reason.strip(),
            details={"username": username},
        )


async def _change_status(
    conn: asyncpg.Connection, admin: User, user_id: int, statement: str, action: str, missing: str
) -> None:
    """Run an admin's status change (``statement`` returns the username, or nothing when
    the account is not in the state it starts from) and audit it under ``action``."""
    async with conn.transaction():
        username = await conn.fetchval(statement, user_id)
        if username is None:
            raise NotFound(missing)
        await audit.record(
            conn,
            action,
            actor_id=admin.id,
            actor_label=admin.username,
            target_type="user",
            target_id=user_id,
            details={"username": username},
        )


async def reactivate(conn: asyncpg.Connection, admin: User, user_id: int) -> None:
    await _change_status(
        conn, admin, user_id, REACTIVATE, "member.reactivate", "Ce compte n'existe pas ou n'est pas suspendu."
    )


async def suspension_reason(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> str:
    """Why the account is suspended, shown to its owner at login (empty if none was given)."""
    reason: str | None = await conn.fetchval(SUSPENSION_REASON, user_id)
    return reason or ""


async def reconsider(conn: asyncpg.Connection, admin: User, user_id: int) -> None:
    """A refused application goes back to the moderators' queue (admins; audited)."""
    await _change_status(
        conn,
        admin,
        user_id,
        RECONSIDER,
        "registration.reconsider",
        "Cette demande n'existe pas ou n'est pas refusée.",
    )


async def erase_refused(conn: asyncpg.Connection, admin: User, user_id: int) -> None:
    """Erase a refused application and everything it held (admins; audited: the
    audit line keeps the username only, no personal data)."""
    async with conn.transaction():
        username = await conn.fetchval(ERASE_REFUSED, user_id)
        if username is None:
            raise NotFound("Cette demande n'existe pas ou n'est pas refusée.")
        await audit.record(
            conn,
            "registration.erase",
            actor_id=admin.id,
            actor_label=admin.username,
            target_type="user",
            target_id=user_id,
            details={"username": username},
        )


# ---------------------------------------------------------------- member directory

SET_IN_DIRECTORY = "UPDATE users SET in_directory = $2 WHERE id = $1"
# Approved members who chose to appear, with the communities they animate or follow, by
# name (index users_directory, migration 0161). $1 the text searched, $2 how many, $3 the
# cursor (a member of the directory; see node.keyset).
_DIRECTORY_KEY = """((SELECT lower(display_name) FROM users
                     WHERE id = $3 AND in_directory AND status = 'approved'), $3)"""
DIRECTORY = keyset.forms(
    """
SELECT u.id, u.username, u.display_name, u.profession, u.profession_detail, u.organisation, u.country,
       coalesce((SELECT array_agg(c.title ORDER BY c.title) FROM communities c
                 WHERE c.id IN (SELECT community_id FROM community_follows WHERE user_id = u.id
                                UNION SELECT community_id FROM community_experts WHERE user_id = u.id)),
                '{{}}') AS communities
FROM users u
WHERE u.in_directory AND u.status = 'approved'
  AND ($1 = '' OR vbg_fold(u.display_name || ' ' || u.organisation || ' ' || u.country || ' ' || u.username)
                  LIKE '%' || vbg_fold($1) || '%') {cursor}
ORDER BY lower(u.display_name) {order}, u.id {order}
LIMIT $2
""",
    onwards=f"(lower(u.display_name), u.id) > {_DIRECTORY_KEY}",
    backwards=f"(lower(u.display_name), u.id) < {_DIRECTORY_KEY}",
    order="ASC",
)
DIRECTORY_PAGE = 50


async def set_in_directory(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, shown: bool) -> None:
    """The member chooses to appear in the directory (or not: the default)."""
    await conn.execute(SET_IN_DIRECTORY, user_id, shown)


async def directory(
    conn: asyncpg.Connection | asyncpg.Pool, query: str, at: keyset.At = keyset.At()
) -> keyset.Page:
    """One page of the member directory, by name, from ``at``."""
    like = query.strip().replace("%", "").replace("_", "")[:100]
    rows = await conn.fetch(DIRECTORY[at.form], like, DIRECTORY_PAGE + 1, *keyset.cursor_args(at))
    return keyset.page(list(rows), at, DIRECTORY_PAGE)
