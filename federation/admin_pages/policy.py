"""Admin page ``/admin/federation``: federation mode, domain blocks, allowlist,
CSV import/export and partner instance approval. Admins only (others: 404)."""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from federation import policy, policy_csv
from federation.handlers import follow  # approving an instance answers its pending follows
from node import communities
from node.errors import AppError, BadRequest
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

# Known instances and every domain with a pending follow (even one we hold no row
# for yet), with the communities approving it would open to that domain.
SELECT_INSTANCES = """
WITH pending AS (
    SELECT a.domain, count(*) AS pending, array_agg(DISTINCT f.community_id) AS community_ids
    FROM community_followers f
    JOIN actors a ON a.id = f.actor_id
    WHERE f.state = 'pending'
    GROUP BY a.domain
)
SELECT d.domain, i.software, coalesce(i.approved, false) AS approved, i.approved_at, i.unreachable_since,
       coalesce(p.pending, 0) AS pending, coalesce(p.community_ids, '{}') AS community_ids
FROM (SELECT domain FROM instances UNION SELECT domain FROM pending) d
LEFT JOIN instances i ON i.domain = d.domain
LEFT JOIN pending p ON p.domain = d.domain
ORDER BY coalesce(p.pending, 0) > 0 DESC, d.domain
LIMIT 500
"""


async def _instances(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Known instances and pending ones, each with the titles of the communities its
    pending follows ask for (what approving it would open)."""
    rows = await pool.fetch(SELECT_INSTANCES)
    async with pool.acquire() as conn:
        titles = await communities.titles(conn, sorted({i for r in rows for i in r["community_ids"]}))
    return [
        {**dict(r), "communities": sorted(titles[i] for i in r["community_ids"] if i in titles)} for r in rows
    ]


def _who(user: User) -> policy.Who:
    return policy.Who(label=user.username, user_id=user.id)


async def _page(request: Request, status_code: int = 200, **context: Any) -> Response:
    pool = pool_of(request)
    done = request.query_params.get("fait", "")
    return render(
        request,
        "admin/federation_policy.html",
        status_code=status_code,
        mode=await policy.federation_mode(pool),
        blocks=await policy.list_blocks(pool),
        allows=await policy.list_allows(pool),
        instances=await _instances(pool),
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
    return await _page(
        request,
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
