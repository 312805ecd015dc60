"""Admin page ``/admin/federation``: federation mode, domain blocks, allowlist,
CSV import/export and partner instance approval. Admins only (others: 404)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from federation import policy, policy_csv
from federation.handlers import follow  # approving an instance answers its pending follows
from node import communities, keyset
from node.errors import AppError, BadRequest, NotFound
from node.i18n import _
from node.sessions import User
from node.web import forms
from node.web.requests import pool_of, require_admin, settings_of
from node.web.templating import redirect, render

PAGE = "/admin/federation"
MAX_CSV_BYTES = 1024 * 1024
MAX_COMMENT = 1000

# ?fait=… after a successful change (Post/Redirect/Get): a fixed set, nothing echoed.
DONE_MESSAGES = {
    "mode": "Mode de fédération enregistré.",
    "bloque": "Blocage enregistré.",
    "debloque": "Blocage levé.",
    "autorise": "Domaine ajouté à la liste d'autorisation.",
    "retire": "Domaine retiré de la liste d'autorisation.",
    "importe": "Liste de blocages importée.",
    "approuve": "Instance approuvée.",
    "refuse": "Instance refusée.",
}

# Known instances and every domain with a pending follow (even one we hold no row for
# yet), with the communities approving it would open to that domain: the domains with
# pending follows first, then the others, each part by domain, a page at a time by keyset
# — the page after a (part, domain) cursor, or the page before it (read in the other
# order, then reversed). Each part is read from its cursor by its own order and stops at
# the page's count: the known instances by instances_pkey, the pending follows (a queue
# the admins empty) by community_followers_pending (migration 0186).
# $1 the cursor's part (0: pending, 1: the others), $2 its domain, $3 how many.
_PENDING = """
WITH pending AS MATERIALIZED (
    SELECT a.domain, count(*) AS pending, array_agg(DISTINCT f.community_id) AS community_ids
    FROM community_followers f
    JOIN actors a ON a.id = f.actor_id
    WHERE f.state = 'pending'
    GROUP BY a.domain
)"""
# Each part reads the instance rows of its own domains: the known ones by walking them,
# the pending ones each by its key (a LATERAL with LIMIT is not merged into a join, which
# the planner, misjudging the pending count, would make a scan of every instance).
_PENDING_PART = """
    SELECT 0 AS part, p.domain, i.software, i.approved, i.approved_at, i.unreachable_since, p.pending,
           p.community_ids
    FROM pending p LEFT JOIN LATERAL (SELECT * FROM instances i WHERE i.domain = p.domain LIMIT 1) i ON true"""
_OTHERS_PART = """
    SELECT 1 AS part, i.domain, i.software, i.approved, i.approved_at, i.unreachable_since, 0 AS pending,
           '{}'::bigint[] AS community_ids
    FROM instances i
    WHERE NOT EXISTS (SELECT FROM pending p WHERE p.domain = i.domain)"""
_SHOWN = """
SELECT part, domain, software, coalesce(approved, false) AS approved, approved_at, unreachable_since,
       pending, community_ids
FROM shown
"""
SELECT_INSTANCES = {
    "onwards": f"""{_PENDING}, shown AS (
    ({_PENDING_PART}
     WHERE $1 = 0 AND p.domain > $2 ORDER BY p.domain LIMIT $3)
    UNION ALL
    ({_OTHERS_PART} AND i.domain > CASE WHEN $1 = 0 THEN '' ELSE $2 END
     ORDER BY i.domain LIMIT $3)
){_SHOWN}ORDER BY part, domain
LIMIT $3
""",
    "backwards": f"""{_PENDING}, shown AS (
    ({_OTHERS_PART} AND $1 = 1 AND i.domain < $2
     ORDER BY i.domain DESC LIMIT $3)
    UNION ALL
    ({_PENDING_PART}
     WHERE $1 = 1 OR p.domain < $2 ORDER BY p.domain DESC LIMIT $3)
){_SHOWN}ORDER BY part DESC, domain DESC
LIMIT $3
""",
}
INSTANCES_PAGE_SIZE = 100
_INSTANCE_CURSOR = re.compile(r"([01])\.(\S{1,300})")


@dataclass(frozen=True)
class InstancesAt:
    """Where a page of instances starts: at the top, after an instance
    (``?instances_apres=``), or before one (``?instances_avant=``); a cursor is the
    instance's part and domain, « 0.chu.example » (pending follows) or « 1.… »."""

    part: int = 0
    domain: str = ""
    backwards: bool = False

    @classmethod
    def parse(cls, after: str | None, before: str | None) -> InstancesAt:
        """The position the query names; a malformed cursor is a missing page."""
        token, backwards = (before, True) if before else (after, False)
        if not token:
            return cls()
        match = _INSTANCE_CURSOR.fullmatch(token)
        if match is None:
            raise NotFound()
        return cls(int(match[1]), match[2], backwards)

    @property
    def at_top(self) -> bool:
        return not self.domain


@dataclass
class InstancesPage:
    """A page of instances, with the cursors of the pages around it (None: no such page)."""

    rows: list[dict[str, Any]]
    previous: str | None
    next: str | None


def _token(row: Mapping[str, Any]) -> str:
    return f"{row['part']}.{row['domain']}"


async def _instances(pool: asyncpg.Pool, at: InstancesAt) -> InstancesPage:
    """A page of known instances and pending ones, each with the titles of the
    communities its pending follows ask for (what approving it would open). An empty
    page away from the top is a missing page."""
    query = SELECT_INSTANCES["backwards" if at.backwards else "onwards"]
    fetched = list(await pool.fetch(query, at.part, at.domain, INSTANCES_PAGE_SIZE + 1))
    rows, has_previous, has_next = keyset.window(
        fetched, INSTANCES_PAGE_SIZE, backwards=at.backwards, at_top=at.at_top
    )
    async with pool.acquire() as conn:
        titles = await communities.titles(conn, sorted({i for r in rows for i in r["community_ids"]}))
    shown = [
        {**dict(r), "communities": sorted(titles[i] for i in r["community_ids"] if i in titles)} for r in rows
    ]
    return InstancesPage(
        shown, _token(rows[0]) if has_previous else None, _token(rows[-1]) if has_next else None
    )


def _who(user: User) -> policy.Who:
    return policy.Who(label=user.username, user_id=user.id)


async def _page(
    request: Request, status_code: int = 200, at: InstancesAt = InstancesAt(), **context: Any
) -> Response:
    pool = pool_of(request)
    done = request.query_params.get("fait", "")
    return render(
        request,
        "admin/federation_policy.html",
        status_code=status_code,
        mode=await policy.federation_mode(pool),
        blocks=await policy.list_blocks(pool),
        allows=await policy.list_allows(pool),
        instances=await _instances(pool, at),
        severities=policy.SEVERITIES,
        done=_(DONE_MESSAGES[done]) if done in DONE_MESSAGES else "",
        own_domain=settings_of(request).domain,
        **context,
    )


async def show(request: Request) -> Response:
    """The policy page; ``?bloquer=DOMAIN&signalement=N`` (the reports page's link)
    fills the block form in, nothing more: blocking stays a POST with its CSRF token."""
    require_admin(request)
    query = request.query_params
    domain = query.get("bloquer", "").strip()[:300]
    report = query.get("signalement", "")
    at = InstancesAt.parse(query.get("instances_apres"), query.get("instances_avant"))
    return await _page(
        request,
        at=at,
        prefill_domain=domain,
        prefill_report=int(report) if report.isdigit() and len(report) <= 18 else None,
    )


def _checkbox(data: FormData, name: str) -> bool:
    return data.get(name) in ("1", "on", "true")


async def _change(request: Request, action: Any) -> Response:
    """Run one change for an admin: CSRF-checked form, French error shown on the page."""
    user = require_admin(request)
    data = await forms.form(request)
    try:
        async with pool_of(request).acquire() as conn:
            done = await action(conn, data, user)
    except policy_csv.BlocklistError as exc:
        return await _page(request, exc.status, error=_("Rien n'a été importé."), line_errors=exc.errors)
    except AppError as exc:
        return await _page(request, exc.status, error=exc.message, fields=exc.fields)
    return redirect(f"{PAGE}?fait={done}")


async def set_mode(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        mode = forms.field(data, "mode", max_length=20)
        reason = forms.field(data, "reason", max_length=MAX_COMMENT, required=False)
        await policy.set_federation_mode(conn, mode, _who(user), reason=reason)
        return "mode"

    return await _change(request, action)


async def add_block(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        severity = forms.field(data, "severity", max_length=20)
        if severity not in policy.SEVERITIES:
            raise BadRequest(fields={"severity": _("Sévérité inconnue.")})
        block = policy.BlockRequest(
            forms.field(data, "domain", max_length=300),
            severity,
            reject_media=_checkbox(data, "reject_media"),
            reject_reports=_checkbox(data, "reject_reports"),
            public_comment=forms.field(data, "reason", max_length=MAX_COMMENT, required=False),
            private_comment=forms.field(data, "private_comment", max_length=MAX_COMMENT, required=False),
            obfuscate=_checkbox(data, "obfuscate"),
        )
        own = settings_of(request).domain
        await policy.block_domain(conn, block, _who(user), own_domain=own)
        return "bloque"

    return await _change(request, action)


async def remove_block(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        domain = forms.field(data, "domain", max_length=300)
        await policy.unblock_domain(conn, domain, _who(user))
        return "debloque"

    return await _change(request, action)


async def add_allow(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        domain = forms.field(data, "domain", max_length=300)
        note = forms.field(data, "note", max_length=MAX_COMMENT, required=False)
        await policy.allow_domain(conn, domain, _who(user), note=note)
        return "autorise"

    return await _change(request, action)


async def remove_allow(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        domain = forms.field(data, "domain", max_length=300)
        await policy.disallow_domain(conn, domain, _who(user))
        return "retire"

    return await _change(request, action)


async def _uploaded_text(data: FormData) -> str:
    upload = data.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest(fields={"file": _("Choisissez un fichier CSV.")})
    raw = await upload.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise BadRequest(fields={"file": _("Fichier trop volumineux (1 Mio au plus).")})
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(fields={"file": _("Le fichier doit être un CSV encodé en UTF-8.")}) from exc


async def import_blocks(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        text = await _uploaded_text(data)
        own = settings_of(request).domain
        await policy_csv.import_csv(conn, text, _who(user), own_domain=own)
        return "importe"

    return await _change(request, action)


async def export_blocks(request: Request) -> Response:
    require_admin(request)
    text = await policy_csv.export_text(pool_of(request))
    filename = "blocages-" + settings_of(request).domain.replace(":", "_") + ".csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


async def decide_instance(request: Request) -> Response:
    async def action(conn: asyncpg.Connection, data: FormData, user: User) -> str:
        domain = policy.normalise_domain(forms.field(data, "domain", max_length=300))
        decision = forms.field(data, "decision", max_length=20)
        if decision == "approve":
            await follow.approve_instance(conn, domain, user.id)
            return "approuve"
        if decision == "refuse":
            await follow.refuse_instance(conn, domain, user.id)
            return "refuse"
        raise BadRequest(fields={"decision": _("Décision inconnue.")})

    return await _change(request, action)


routes: list[BaseRoute] = [
    Route(PAGE, show, methods=["GET"]),
    Route(PAGE + "/mode", set_mode, methods=["POST"]),
    Route(PAGE + "/blocages", add_block, methods=["POST"]),
    Route(PAGE + "/blocages/lever", remove_block, methods=["POST"]),
    Route(PAGE + "/autorises", add_allow, methods=["POST"]),
    Route(PAGE + "/autorises/retirer", remove_allow, methods=["POST"]),
    Route(PAGE + "/import", import_blocks, methods=["POST"]),
    Route(PAGE + "/export.csv", export_blocks, methods=["GET"]),
    Route(PAGE + "/instances", decide_instance, methods=["POST"]),
]
