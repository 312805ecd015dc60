"""``vbg-node admin check``: the node's configuration and surroundings, in plain French.

Each check returns findings of three levels::

    ok         nothing to do
    attention  works today, fix it soon (disk filling up, certificate ending in 3 weeks)
    erreur     unsafe or broken (http in production, a test setting on, a weak secret…)

The command exits with 1 when any finding is an ``erreur``. Checks that need the network
(a peer's clock, our own TLS certificate) live in ``federation.checks`` and register
themselves here: ``node`` makes no network call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

import asyncpg

from node import db
from node.settings import Settings

OK, WARNING, ERROR = "ok", "attention", "erreur"
LABELS = {OK: "OK", WARNING: "ATTENTION", ERROR: "ERREUR"}
MIN_POSTGRES = 130000  # PostgreSQL 13: the oldest version the migrations are tested on
DISK_WARNING = 0.10  # free share of the data folder's disk below which we warn
DISK_ERROR_BYTES = 512 * 1024 * 1024
WEAK_SECRET_MARKERS = ("change", "example", "secret", "password", "motdepasse")


@dataclass(frozen=True)
class Finding:
    level: str
    text: str

    def line(self) -> str:
        return f"[{LABELS[self.level]}] {self.text}"


@dataclass
class Context:
    settings: Settings
    conn: asyncpg.Connection | None  # None when the database does not answer
    env: dict[str, str]
    # peers whose clock to compare with: domains (https) or origins (``http://host:port``)
    peers: list[str] = field(default_factory=list)


Check = Callable[[Context], Awaitable[list[Finding]]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    """Register a check (run in the order registered)."""
    CHECKS.append(fn)
    return fn


def is_local_host(host: str) -> bool:
    if host in {"localhost", ""} or host.endswith(".localhost") or host.endswith(".test"):
        return True
    try:
        return ip_address(host).is_loopback or ip_address(host).is_private
    except ValueError:
        return False


def in_production(settings: Settings) -> bool:
    """A node whose public URL names a real host (not loopback, not a .test name)."""
    return not is_local_host(urlsplit(settings.base_url).hostname or "")


@check
async def base_url(ctx: Context) -> list[Finding]:
    url = ctx.settings.base_url
    if url.startswith("https://"):
        return [Finding(OK, f"L'adresse publique est en https : {url}")]
    if in_production(ctx.settings):
        return [
            Finding(
                ERROR,
                f"L'adresse publique {url} n'est pas en https. En production, fixez VBG_BASE_URL=https://… "
                "(les autres serveurs refusent de fédérer en http et les cookies ne seraient pas protégés).",
            )
        ]
    return [
        Finding(
            WARNING,
            f"L'adresse publique {url} est locale et en http : bien pour un essai, pas en production.",
        )
    ]


@check
async def dev_settings(ctx: Context) -> list[Finding]:
    if not ctx.settings.dev_allow_private_peers:
        return [Finding(OK, "Aucun réglage de développement n'est activé.")]
    level = ERROR if in_production(ctx.settings) else WARNING
    return [
        Finding(
            level,
            "VBG_DEV_ALLOW_PRIVATE_PEERS=1 est activé : le nœud accepte de parler en http et à des adresses "
            "privées. Réglage réservé aux tests : retirez-le en production.",
        )
    ]


def weak_secret(value: str) -> str | None:
    """Why ``value`` is a weak secret, or None."""
    if len(value) < 32:
        return "moins de 32 caractères"
    if len(set(value)) < 12:
        return "trop peu de caractères différents"
    lowered = value.lower()
    for marker in WEAK_SECRET_MARKERS:
        if marker in lowered:
            return f"contient « {marker} » (une valeur d'exemple ?)"
    return None


def _file_secret_findings(path: os.PathLike[str] | str, what: str) -> list[Finding]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return []
    if mode & 0o077:
        return [Finding(ERROR, f"{what} ({path}) est lisible par d'autres comptes : chmod 600 {path}")]
    return [Finding(OK, f"{what} est dans {path}, lisible par le seul compte du nœud.")]


@check
async def secrets_(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    from_env = ctx.env.get("VBG_SECRET_KEY")
    reason = weak_secret(ctx.settings.secret_key.reveal())
    if reason:
        findings.append(
            Finding(
                ERROR,
                f"Le secret du nœud (VBG_SECRET_KEY) est faible : {reason}. Générez-en un : "
                'python3 -c "import secrets; print(secrets.token_urlsafe(48))"',
            )  # fmt: skip
        )
    elif from_env:
        findings.append(Finding(OK, "Le secret du nœud (VBG_SECRET_KEY) est long et varié."))
    else:
        findings += _file_secret_findings(ctx.settings.data_dir / "secret_key", "Le secret du nœud")
    if not ctx.env.get("VBG_MESSAGES_KEY"):
        findings += _file_secret_findings(
            ctx.settings.data_dir / "messages_key", "La clé de chiffrement des messages privés"
        )
    return findings


@check
async def data_folder(ctx: Context) -> list[Finding]:
    folder = ctx.settings.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vbg-check-"):
            pass
    except OSError as exc:
        return [
            Finding(
                ERROR,
                f"Le dossier de données {folder} n'est pas inscriptible ({exc.strerror}) : donnez-le au compte "
                "qui lance le nœud (chown -R vbg:vbg).",
            )
        ]
    findings = [Finding(OK, f"Le dossier de données {folder} est inscriptible.")]
    usage = shutil.disk_usage(folder)
    free_share = usage.free / usage.total if usage.total else 0
    free = _size(usage.free)
    if usage.free < DISK_ERROR_BYTES:
        findings.append(Finding(ERROR, f"Disque presque plein : {free} libres sous {folder}."))
    elif free_share < DISK_WARNING:
        findings.append(
            Finding(WARNING, f"Disque bientôt plein : {free} libres ({free_share:.0%}) sous {folder}.")
        )
    else:
        findings.append(Finding(OK, f"Espace disque : {free} libres ({free_share:.0%}) sous {folder}."))
    return findings


def _size(n: float) -> str:
    for unit in ("o", "Ko", "Mo", "Go"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} To"


@check
async def database(ctx: Context) -> list[Finding]:
    if ctx.conn is None:
        return [Finding(ERROR, "La base PostgreSQL ne répond pas (DATABASE_URL) : est-elle démarrée ?")]
    findings: list[Finding] = []
    version = int(await ctx.conn.fetchval("SHOW server_version_num"))
    shown = await ctx.conn.fetchval("SHOW server_version")
    if version < MIN_POSTGRES:
        findings.append(
            Finding(ERROR, f"PostgreSQL {shown} est trop ancien : il faut la version 13 ou plus.")
        )
    else:
        findings.append(Finding(OK, f"PostgreSQL {shown}."))
    pending = await db.pending_migrations(ctx.conn)
    if pending:
        listed = ", ".join(f"{v:04d}" for v in pending)
        findings.append(
            Finding(
                WARNING,
                f"Migrations en attente : {listed}. Elles s'appliquent au prochain démarrage "
                "(ou avec vbg-node migrate).",
            )
        )
    else:
        findings.append(Finding(OK, "La base est à jour (aucune migration en attente)."))
    return findings


async def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for fn in CHECKS:
        findings += await fn(ctx)
    return findings
