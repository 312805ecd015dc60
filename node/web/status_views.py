"""Admin page ``/admin/etat``: the figures the Prometheus exporter gives, in French
(``node.metrics``). Admins only (others: a missing page).

Counters are those of the web processes of this ``serve`` (summed over them), since it
started; queues and instances are read from the database, so they are the whole
node's. No content, no member, no URL appears: route templates, reasons, domains.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import metrics
from node.web.requests import pool_of, require_admin
from node.web.templating import render

PAGE = "/admin/etat"
QUEUE_LABELS = {
    "delivery": "Envois vers les autres serveurs",
    "inbox": "Activités reçues à traiter",
    "media": "Images distantes à récupérer",
}
STATE_LABELS = {
    "pending": "en attente",
    "in_flight": "en cours d'envoi",
    "processing": "en traitement",
    "failed": "en échec",
    "dead": "abandonnées",
}
HEALTH_LABELS = {"ok": "en bonne santé", "failing": "en échec", "unreachable": "injoignables"}
DELIVERY_LABELS = {
    "success": "livrées",
    "retry": "à réessayer",
    "final": "refusées (définitif)",
    "refused": "bloquées par la politique",
}


def requests_by_route(found: dict[str, list[tuple[dict[str, str], float]]]) -> list[dict[str, object]]:
    """Per route template: requests, errors (5xx) and mean latency in milliseconds."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for labels, value in found.get("vbg_http_requests_total", []):
        row = rows.setdefault((labels["route"], labels["method"]), {"count": 0, "errors": 0, "sum": 0})
        row["count"] += value
        if labels["status"].startswith("5"):
            row["errors"] += value
    for labels, value in found.get("vbg_http_request_duration_seconds_sum", []):
        key = (labels["route"], labels["method"])
        if key in rows:
            rows[key]["sum"] += value
    listed = [
        {
            "route": route,
            "method": method,
            "count": int(r["count"]),
            "errors": int(r["errors"]),
            "mean_ms": round(1000 * r["sum"] / r["count"], 1) if r["count"] else 0.0,
        }
        for (route, method), r in rows.items()
    ]
    return sorted(listed, key=lambda r: -int(str(r["count"])))


def totals(found: dict[str, list[tuple[dict[str, str], float]]], name: str, *keys: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for labels, value in found.get(name, []):
        key = " ".join(labels[k] for k in keys if labels.get(k)) or "—"
        out[key] = out.get(key, 0) + int(value)
    return dict(sorted(out.items()))


async def show(request: Request) -> Response:
    require_admin(request)
    async with pool_of(request).acquire() as conn:
        figures = await metrics.database_figures(conn)
    found = metrics.samples()
    return render(
        request,
        "admin/status.html",
        figures=figures,
        routes=requests_by_route(found),
        inbox=totals(found, "vbg_inbox_activities_total", "result", "reason"),
        deliveries=totals(found, "vbg_deliveries_total", "outcome"),
        queue_labels=QUEUE_LABELS,
        state_labels=STATE_LABELS,
        health_labels=HEALTH_LABELS,
        delivery_labels=DELIVERY_LABELS,
    )


routes: list[BaseRoute] = [Route(PAGE, show, methods=["GET"], name="admin_status")]
