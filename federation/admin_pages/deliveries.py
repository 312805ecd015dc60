"""Admin page ``/admin/federation/livraisons``: the delivery queue, each instance's
health and the latest failures. Admins only (others: a missing page).

No activity content is shown (it may be members-only): only types, addresses,
states, statuses and times.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from federation import delivery
from node.web.requests import pool_of, require_admin
from node.web.templating import render

PAGE = "/admin/federation/livraisons"
STATE_LABELS = {
    "pending": "En attente",
    "in_flight": "En cours d'envoi",
    "done": "Livrées",
    "failed": "Refusées (définitif)",
    "dead": "Abandonnées",
}


def duration(value: timedelta) -> str:
    """``1 min``, ``2 h``, ``1 j``: a retry delay in French short form."""
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)} j"
    return f"{minutes // 60} h"


async def show(request: Request) -> Response:
    require_admin(request)
    pool = pool_of(request)
    response = render(
        request,
        "admin/federation_deliveries.html",
        figures=await delivery.queue_figures(pool),
        labels=STATE_LABELS,
        instances=await delivery.instance_health(pool),
        failures=await delivery.recent_failures(pool),
        delays=[duration(d) for d in delivery.RETRY_DELAYS],
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


routes: list[BaseRoute] = [Route(PAGE, show, methods=["GET"], name="admin_federation_deliveries")]
