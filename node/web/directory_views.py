"""The member directory: approved members who chose to appear (``node.accounts.directory``).

Routes (approved members only; anyone else gets a missing page)::

    GET  /membres?q=…&apres=ID   name, profession, organisation, country, communities (keyset
                                 pages by name: ``apres`` the members after ID, ``avant`` before)
    POST /compte/annuaire        appear or not (``shown=1``), from the account page
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from node import accounts
from node.web import forms
from node.web.requests import keyset_position, numbered_page, pool_of, require_member
from node.web.templating import redirect, render


async def directory_page(request: Request) -> Response:
    require_member(request)
    query = request.query_params.get("q", "")[:100]
    if numbered_page(request):
        return RedirectResponse(f"/membres?q={quote(query)}" if query else "/membres", status_code=302)
    listing = await accounts.directory(pool_of(request), query, keyset_position(request, "apres", "avant"))
    return render(
        request,
        "accounts/directory.html",
        listing=listing,
        query=query,
        professions=accounts.PROFESSIONS,
    )


async def set_shown(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    await accounts.set_in_directory(pool_of(request), user.id, data.get("shown") == "1")
    return redirect("/compte#annuaire")


routes: list[BaseRoute] = [
    Route("/membres", directory_page, methods=["GET"], name="directory"),
    Route("/compte/annuaire", set_shown, methods=["POST"], name="account_directory"),
]
