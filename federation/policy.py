"""Instance policy: who may federate with this node (docs/architecture.md §1 and §3).

Three inputs decide, for a remote domain, what it may do:

    federation mode ── allowlist (default of a new node): only listed domains
                    └─ open: anyone not suspended
    domain blocks   ── suspend       nothing in, nothing out, follows dropped, content hidden
                    ├─ silence       content kept out of public lists
                    ├─ reject_media  its media are never fetched
                    └─ noop          (Mastodon imports) only the flags below
                       + reject_media / reject_reports flags on any block
    our own domain  ── always allowed

Domains are compared in one normalised form (:func:`normalise_domain`): lowercase
ASCII (IDNA), no trailing dot, ``host`` or ``host:port`` for a non-default port —
the form of ``actors.domain``. A rule covers its host and every subdomain; a rule
without a port covers every port of that host, one with a port only that port.
The pure functions here (``normalise_domain``, ``covers``, ``decide``) have SQL
twins in migration 0050 (``vbg_domain_covers``, ``vbg_actor_hidden`` …).

Freshness: every change to blocks, allows or the mode sets a new random
``policy_version`` (database triggers). :func:`decision` reads that token (one
primary-key lookup) and reuses the policy cached under it, so a change takes
effect in every process at the next decision after its commit — no TTL window.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import idna

from node import audit
from node.db import Conn
from node.errors import BadRequest, NotFound
from node.i18n import _

MODES = ("allowlist", "open")
SEVERITIES = ("suspend", "silence", "reject_media")  # offered to admins; 'noop' comes from imports
STORED_SEVERITIES = (*SEVERITIES, "noop")
DEFAULT_PORTS = (80, 443)
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class InvalidDomain(BadRequest):
    default_message = "Nom de domaine invalide."


# ---------------------------------------------------------------------------
# Pure functions: normalising and matching domains
# ---------------------------------------------------------------------------


def _ascii_host(host: str) -> str:
    """Lowercase ASCII form of a DNS name, or raise InvalidDomain."""
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidDomain() from exc
    host = host.lower()
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidDomain()
    if all(label.isdigit() for label in labels):  # "10.1" or "999.1.1.1": neither a name nor an IP
        raise InvalidDomain()
    return host


@lru_cache(maxsize=16384)  # a fan-out, its policy decisions and its digests ask it per instance
def normalise_domain(text: str) -> str:
    """The canonical form of a domain typed by an admin or taken from a URL.

    ``"Bücher.Example."`` → ``"xn--bcher-kva.example"``; ``"https://a.example:8443/x"``
    → ``"a.example:8443"``; ``"EXAMPLE.com:443"`` → ``"example.com"``; ``"*.example.com"``
    → ``"example.com"`` (blocks cover subdomains anyway); IPv6 keeps its brackets.
    """
    text = (text or "").strip()
    if not text or len(text) > 300 or any(c.isspace() or c == "\x00" for c in text):
        raise InvalidDomain(_("Nom de domaine invalide : « {text} »").format(text=text[:100]))
    try:
        return _normalise(text)
    except InvalidDomain as exc:
        raise InvalidDomain(_("Nom de domaine invalide : « {text} »").format(text=text[:100])) from exc


def _normalise(text: str) -> str:
    if text.startswith("*."):
        text = text[2:]
    parts = urlsplit(text if "://" in text else "//" + text)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number in 0..65535
        raise InvalidDomain() from exc
    if parts.username is not None or not host or "*" in host:
        raise InvalidDomain()
    host = host.rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    except ValueError:
        host = _ascii_host(host)
    if port == 0:
        raise InvalidDomain()
    if port is None or port in DEFAULT_PORTS:
        return host
    return f"{host}:{port}"


def split_domain(domain: str) -> tuple[str, int | None]:
    """``"host:port"`` → ``("host", port)`` for a normalised domain."""
    if domain.startswith("["):
        host, _sep, rest = domain.partition("]")
        return host + "]", int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = domain.partition(":")
    return host, int(port) if sep else None


def _is_ip(host: str) -> bool:
    return host.startswith("[") or all(label.isdigit() for label in host.split("."))


def suffixes(host: str) -> list[str]:
    """The host and its parent domains, most specific first; an IP only itself."""
    if _is_ip(host):
        return [host]
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def covers(rule: str, domain: str) -> bool:
    """Does the (normalised) rule domain cover ``domain``: same host or a subdomain,
    and the same port when the rule names one?"""
    rule_host, rule_port = split_domain(rule)
    host, port = split_domain(domain)
    return rule_host in suffixes(host) and (rule_port is None or rule_port == port)


def domain_of_url(url: str) -> str:
    """The normalised domain of an absolute http(s) URL (an actor id, a key id …)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidDomain()
    return normalise_domain(parts.netloc)


@lru_cache(maxsize=4096)  # actors' and key ids' URIs come again and again
def host_of(uri: str | None) -> str:
    """The one host normaliser of the federation: the domain of an http(s) URI as
    :func:`domain_of_url` gives it (lower case, IDNA, default port dropped, no trailing
    dot) — the form of ``actors.domain`` and of the instance policy; "" for anything
    that is not an http(s) URL with a valid host."""
    if not uri:
        return ""
    return _host_of(uri)


@lru_cache(maxsize=16384)
def _host_of(uri: str) -> str:
    """Cached: a fan-out asks it for every inbox of a group's followers (FEP-8fcf digests)."""
    try:
        return domain_of_url(uri)
    except InvalidDomain:
        return ""


# ---------------------------------------------------------------------------
# The policy and the decision for one domain
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    domain: str
    severity: str
    reject_media: bool = False
    reject_reports: bool = False
    public_comment: str = ""
    private_comment: str = ""
    obfuscate: bool = False


@dataclass(frozen=True)
class Decision:
    """What ``domain`` may do. ``reason``: own, allowed, silenced, suspended,
    not_allowlisted or invalid (for logs, never shown to the remote server)."""

    domain: str
    allowed_inbound: bool  # may deliver to our inboxes and fetch from us
    allowed_outbound: bool  # we may deliver to it and serve it our content
    silenced: bool = False
    reject_media: bool = False
    reject_reports: bool = False
    reason: str = "allowed"


@dataclass(frozen=True)
class Policy:
    mode: str
    blocks: dict[str, tuple[Block, ...]]  # by host
    allows: dict[str, tuple[str, ...]]  # by host: the allowed domains
    local_domains: frozenset[str] = frozenset()


def make_policy(
    mode: str, blocks: list[Block], allows: list[str], local_domains: frozenset[str] = frozenset()
) -> Policy:
    by_host: dict[str, list[Block]] = {}
    for block in blocks:
        by_host.setdefault(split_domain(block.domain)[0], []).append(block)
    allowed: dict[str, list[str]] = {}
    for domain in allows:
        allowed.setdefault(split_domain(domain)[0], []).append(domain)
    return Policy(
        mode if mode in MODES else "allowlist",
        {h: tuple(b) for h, b in by_host.items()},
        {h: tuple(a) for h, a in allowed.items()},
        local_domains,
    )


def _matching_blocks(policy: Policy, domain: str) -> list[Block]:
    host = split_domain(domain)[0]
    found = [b for h in suffixes(host) for b in policy.blocks.get(h, ())]
    return [b for b in found if covers(b.domain, domain)]


def _allowlisted(policy: Policy, domain: str) -> bool:
    host = split_domain(domain)[0]
    return any(covers(rule, domain) for h in suffixes(host) for rule in policy.allows.get(h, ()))


def decide(policy: Policy, domain: str, own_domain: str | None = None) -> Decision:
    """The decision for ``domain`` under ``policy`` (pure: no I/O)."""
    try:
        domain = normalise_domain(domain)
    except InvalidDomain:
        return Decision(domain, False, False, reason="invalid")
    own = {normalise_domain(own_domain)} if own_domain else set(policy.local_domains)
    if domain in own:
        return Decision(domain, True, True, reason="own")
    blocks = _matching_blocks(policy, domain)
    if any(b.severity == "suspend" for b in blocks):
        return Decision(domain, False, False, True, True, True, reason="suspended")
    silenced = any(b.severity == "silence" for b in blocks)
    reject_media = any(b.reject_media or b.severity == "reject_media" for b in blocks)
    reject_reports = any(b.reject_reports for b in blocks)
    if policy.mode == "allowlist" and not _allowlisted(policy, domain):
        return Decision(domain, False, False, silenced, reject_media, reject_reports, "not_allowlisted")
    reason = "silenced" if silenced else "allowed"
    return Decision(domain, True, True, silenced, reject_media, reject_reports, reason)


SELECT_VERSION = "SELECT value #>> '{}' FROM node_settings WHERE key = 'policy_version'"
SELECT_MODE = "SELECT value #>> '{}' FROM node_settings WHERE key = 'federation_mode'"
SELECT_BLOCK_RULES = """
SELECT domain, severity, reject_media, reject_reports, public_comment, private_comment, obfuscate
FROM domain_blocks
"""
SELECT_ALLOW_RULES = "SELECT domain FROM domain_allows"
SELECT_LOCAL_DOMAINS = "SELECT DISTINCT domain FROM actors WHERE local"

_CACHE_SIZE = 16
_cache: OrderedDict[str, Policy] = OrderedDict()


async def load_policy(conn: Conn) -> Policy:
    """The current policy, read from the database (no cache)."""
    mode = await conn.fetchval(SELECT_MODE)
    blocks = [Block(**dict(r)) for r in await conn.fetch(SELECT_BLOCK_RULES)]
    allows = [r["domain"] for r in await conn.fetch(SELECT_ALLOW_RULES)]
    local = frozenset(r["domain"] for r in await conn.fetch(SELECT_LOCAL_DOMAINS))
    return make_policy(mode or "allowlist", blocks, allows, local)


async def current_policy(conn: Conn, version: str | None = None) -> Policy:
    """The policy, cached per process under the database's ``policy_version`` token;
    ``version``: that token as a statement of the caller has just read it (SELECT_VERSION
    as a sub-select: ``delivery.claim_batch``), so it is not read again."""
    if version is None:
        version = await conn.fetchval(SELECT_VERSION) or ""
    policy = _cache.get(version)
    if policy is not None:
        _cache.move_to_end(version)
        return policy
    policy = await load_policy(conn)
    # A node without local actors yet does not know its own domain from the database:
    # do not cache that answer (only true before the instance actor is created).
    if version and policy.local_domains:
        _cache[version] = policy
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return policy


async def decision(conn: Conn, domain: str, *, own_domain: str | None = None) -> Decision:
    """What ``domain`` (a domain, ``host:port`` or URL netloc) may do now.

    Pass ``own_domain=settings.domain`` when you have the settings; otherwise our
    domain is recognised from the local actors.
    """
    return decide(await current_policy(conn), domain, own_domain)


async def inbound_allowed(conn: Conn, domain: str, *, own_domain: str | None = None) -> bool:
    """May ``domain`` deliver to our inboxes or fetch from us?"""
    return (await decision(conn, domain, own_domain=own_domain)).allowed_inbound


async def outbound_allowed(conn: Conn, domain: str, *, own_domain: str | None = None) -> bool:
    """May we deliver to ``domain``, fetch from it, or serve it our content?"""
    return (await decision(conn, domain, own_domain=own_domain)).allowed_outbound


async def url_allowed(conn: Conn, url: str, *, own_domain: str | None = None) -> bool:
    """The fetcher's and delivery's check for one URL (an invalid URL is refused)."""
    try:
        domain = domain_of_url(url)
    except InvalidDomain:
        return False
    return await outbound_allowed(conn, domain, own_domain=own_domain)


# ---------------------------------------------------------------------------
# Services (one transaction each, audited)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    """Who makes a policy change: an admin (user id) or the command line."""

    label: str = "cli"
    user_id: int | None = None


CLI = Who()

UPSERT_BLOCK = """
INSERT INTO domain_blocks (domain, severity, reject_media, reject_reports, public_comment,
                           private_comment, obfuscate, created_by, created_by_label)
VALUES ($1, $2, $3, $4, coalesce($5, ''), coalesce($6, ''), $7, $8, $9)
ON CONFLICT (domain) DO UPDATE SET
    severity = EXCLUDED.severity,
    reject_media = EXCLUDED.reject_media,
    reject_reports = EXCLUDED.reject_reports,
    public_comment = coalesce($5, domain_blocks.public_comment),
    private_comment = coalesce($6, domain_blocks.private_comment),
    obfuscate = EXCLUDED.obfuscate,
    updated_at = now()
RETURNING (xmax = 0) AS created
"""
# Remote follows of our communities by actors of the suspended domain (and its subdomains).
DROP_FOLLOWS = """
DELETE FROM community_followers cf USING actors a
WHERE a.id = cf.actor_id AND NOT a.local AND vbg_domain_covers($1, a.domain)
"""
DELETE_BLOCK = "DELETE FROM domain_blocks WHERE domain = $1 RETURNING severity"
SELECT_BLOCKS = """
SELECT domain, severity, reject_media, reject_reports, public_comment, private_comment, obfuscate,
       created_by_label, created_at, updated_at
FROM domain_blocks ORDER BY domain
"""
UPSERT_ALLOW = """
INSERT INTO domain_allows (domain, note, created_by, created_by_label) VALUES ($1, $2, $3, $4)
ON CONFLICT (domain) DO UPDATE SET note = EXCLUDED.note
"""
DELETE_ALLOW = "DELETE FROM domain_allows WHERE domain = $1 RETURNING id"
SELECT_ALLOWS = "SELECT domain, note, created_by_label, created_at FROM domain_allows ORDER BY domain"
UPSERT_MODE = """
INSERT INTO node_settings (key, value) VALUES ('federation_mode', to_jsonb($1::text))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
"""


@dataclass(frozen=True)
class BlockRequest:
    """A block as asked by an admin, the CLI or an imported line (domain not yet normalised)."""

    domain: str
    severity: str = "suspend"
    reject_media: bool = False
    reject_reports: bool = False
    public_comment: str | None = None  # None: keep the current one when updating
    private_comment: str | None = None
    obfuscate: bool = False


def _check_not_own(domain: str, own_domain: str | None) -> None:
    if own_domain and domain == normalise_domain(own_domain):
        raise BadRequest(_("Ce domaine est celui de ce nœud : il ne peut pas être bloqué ni retiré."))


def _check_severity(severity: str) -> None:
    if severity not in STORED_SEVERITIES:
        raise BadRequest(_("Sévérité inconnue : choisissez suspend, silence ou reject_media."))


async def apply_block(
    conn: asyncpg.Connection,
    request: BlockRequest,
    who: Who,
    *,
    own_domain: str | None = None,
    via: str = "",
) -> dict[str, Any]:
    """Create or update one block inside the caller's transaction; return what was done.

    A suspension also drops the domain's follows of our communities (they do not come
    back when it is lifted). Its cached content is hidden by ``vbg_actor_hidden``, and its
    replies leave the reply counts and activity dates of threads (recounted by the database
    when the actors' ``hidden`` flag changes, migration 0072).
    """
    domain = normalise_domain(request.domain)
    _check_not_own(domain, own_domain)
    _check_severity(request.severity)
    reject_media = request.reject_media or request.severity == "reject_media"
    created = await conn.fetchval(
        UPSERT_BLOCK,
        domain,
        request.severity,
        reject_media,
        request.reject_reports,
        request.public_comment,
        request.private_comment,
        request.obfuscate,
        who.user_id,
        who.label,
    )
    dropped = 0
    if request.severity == "suspend":
        status = await conn.execute(DROP_FOLLOWS, domain)
        dropped = int(status.split()[-1])
    details = {
        "severity": request.severity,
        "reject_media": reject_media,
        "reject_reports": request.reject_reports,
        "obfuscate": request.obfuscate,
        "created": bool(created),
        "follows_dropped": dropped,
    }
    if via:
        details["via"] = via
    await audit.record(
        conn,
        "federation.block_domain",
        actor_id=who.user_id,
        actor_label=who.label,
        target_type="domain",
        target_id=domain,
        reason=request.public_comment or request.private_comment or "",
        details=details,
    )
    return {"domain": domain, **details}


async def block_domain(
    conn: asyncpg.Connection, request: BlockRequest, who: Who = CLI, *, own_domain: str | None = None
) -> dict[str, Any]:
    """Block (or update the block of) a domain, in one transaction."""
    async with conn.transaction():
        return await apply_block(conn, request, who, own_domain=own_domain)


async def suspend_domain(
    conn: asyncpg.Connection,
    domain: str,
    who: Who = CLI,
    *,
    reason: str | None = None,
    private_comment: str | None = None,
    own_domain: str | None = None,
) -> dict[str, Any]:
    """Suspend a domain: record the block, drop its follows, hide its content — one transaction."""
    request = BlockRequest(domain, "suspend", public_comment=reason, private_comment=private_comment)
    return await block_domain(conn, request, who, own_domain=own_domain)


async def unblock_domain(conn: asyncpg.Connection, domain: str, who: Who = CLI, *, reason: str = "") -> None:
    """Lift a block: hidden content shows again (and counts again in thread lists);
    dropped follows stay dropped."""
    domain = normalise_domain(domain)
    async with conn.transaction():
        severity = await conn.fetchval(DELETE_BLOCK, domain)
        if severity is None:
            raise NotFound(_("Ce domaine n'est pas bloqué : {domain}").format(domain=domain))
        await audit.record(
            conn,
            "federation.unblock_domain",
            actor_id=who.user_id,
            actor_label=who.label,
            target_type="domain",
            target_id=domain,
            reason=reason,
            details={"severity": severity},
        )


async def list_blocks(conn: Conn) -> list[asyncpg.Record]:
    return list(await conn.fetch(SELECT_BLOCKS))


async def allow_domain(conn: asyncpg.Connection, domain: str, who: Who = CLI, *, note: str = "") -> str:
    """Add a domain (and its subdomains) to the allowlist; return its normalised form."""
    domain = normalise_domain(domain)
    async with conn.transaction():
        await conn.execute(UPSERT_ALLOW, domain, note, who.user_id, who.label)
        await audit.record(
            conn,
            "federation.allow_domain",
            actor_id=who.user_id,
            actor_label=who.label,
            target_type="domain",
            target_id=domain,
            reason=note,
        )
    return domain


async def disallow_domain(conn: asyncpg.Connection, domain: str, who: Who = CLI, *, reason: str = "") -> str:
    domain = normalise_domain(domain)
    async with conn.transaction():
        if await conn.fetchval(DELETE_ALLOW, domain) is None:
            raise NotFound(
                _("Ce domaine n'est pas dans la liste d'autorisation : {domain}").format(domain=domain)
            )
        await audit.record(
            conn,
            "federation.disallow_domain",
            actor_id=who.user_id,
            actor_label=who.label,
            target_type="domain",
            target_id=domain,
            reason=reason,
        )
    return domain


async def list_allows(conn: Conn) -> list[asyncpg.Record]:
    return list(await conn.fetch(SELECT_ALLOWS))


async def federation_mode(conn: Conn) -> str:
    mode = await conn.fetchval(SELECT_MODE)
    return mode if mode in MODES else "allowlist"


async def set_federation_mode(
    conn: asyncpg.Connection, mode: str, who: Who = CLI, *, reason: str = ""
) -> None:
    if mode not in MODES:
        raise BadRequest(_("Mode de fédération inconnu : choisissez allowlist ou open."))
    async with conn.transaction():
        previous = await conn.fetchval(SELECT_MODE)
        await conn.execute(UPSERT_MODE, mode)
        await audit.record(
            conn,
            "federation.mode",
            actor_id=who.user_id,
            actor_label=who.label,
            target_type="node",
            target_id="federation_mode",
            reason=reason,
            details={"from": previous, "to": mode},
        )
