"""A member's own account: e-mail address, her data, leaving.

Routes::

    POST     /compte/adresse                      change the e-mail address (confirmed by a link
                                                  sent to the new one when the node sends e-mail)
    GET/POST /compte/adresse/confirmer/{token}    confirm the new address (a button: GET changes nothing)
    GET      /compte/export                       download my data (ZIP: JSON and HTML)
    GET/POST /compte/supprimer                    delete my account (password; posts kept or removed)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import account_deletion, data_export, email_changes, encryption, mail, sessions
from node.errors import AppError, BadRequest
from node.web import forms
from node.web.accounts_views import FormReader, render_account, set_cookie
from node.web.requests import pool_of, require_member, settings_of
from node.web.templating import redirect, render

EMAIL_DONE = {"sent": "adresse-envoyee", "changed": "adresse"}


async def change_email(request: Request) -> Response:
    user = require_member(request)
    reader = FormReader(await forms.form(request))
    email = reader.text("email")
    password = reader.text("email_password")
    if reader.errors:
        return await render_account(request, 400, reader.errors, email_value=email)
    settings = settings_of(request)
    try:
        async with pool_of(request).acquire() as conn:
            outcome = await email_changes.request_change(
                conn,
                user.id,
                password,
                email,
                base_url=settings.base_url,
                node_name=settings.node_name,
                by_mail=mail.enabled(settings),
            )
    except AppError as exc:
        errors = {("email_password" if k == "current_password" else k): v for k, v in exc.fields.items()}
        return await render_account(request, exc.status, errors or {"email": exc.message}, email_value=email)
    return redirect(f"/compte?fait={EMAIL_DONE[outcome]}#adresse")


def _token(request: Request) -> str:
    return str(request.path_params["token"])


async def confirm_email_page(request: Request) -> Response:
    return render(request, "accounts/email_confirm.html", token=_token(request), failed=False)


async def confirm_email(request: Request) -> Response:
    await forms.form(request)
    async with pool_of(request).acquire() as conn:
        applied = await email_changes.confirm(conn, _token(request))
    if not applied:
        return render(request, "accounts/email_confirm.html", status_code=404, token="", failed=True)
    return redirect("/compte?fait=adresse" if request.state.user is not None else "/connexion?fait=adresse")


async def export(request: Request) -> Response:
    user = require_member(request)
    settings = settings_of(request)
    collected = await data_export.collect(
        pool_of(request), encryption.keyring_of(settings), user, settings.base_url
    )
    body = data_export.to_zip(collected, settings.node_name)
    return Response(
        body,
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="mes-donnees-{user.username}.zip"'},
    )


async def delete_page(request: Request) -> Response:
    require_member(request)
    return render(request, "accounts/delete.html", errors={}, posts="keep")


async def delete(request: Request) -> Response:
    user = require_member(request)
    reader = FormReader(await forms.form(request))
    password = reader.text("current_password")
    raw = reader.data.get("posts")
    posts = raw if isinstance(raw, str) else ""
    if not reader.checked("confirm"):
        reader.errors["confirm"] = "Cochez la case pour confirmer que vous voulez supprimer votre compte."
    try:
        if reader.errors:
            raise BadRequest(fields=reader.errors)
        async with pool_of(request).acquire() as conn:
            await account_deletion.delete_account(conn, user, password, posts)
    except BadRequest as exc:
        return render(request, "accounts/delete.html", 400, errors=exc.fields, posts=posts or "keep")
    set_cookie(request, sessions.COOKIE, "", 0)
    return render(request, "accounts/deleted.html")


routes: list[BaseRoute] = [
    Route("/compte/adresse", change_email, methods=["POST"], name="account_email"),
    Route(
        "/compte/adresse/confirmer/{token}",
        confirm_email_page,
        methods=["GET"],
        name="account_email_confirm_page",
    ),
    Route("/compte/adresse/confirmer/{token}", confirm_email, methods=["POST"], name="account_email_confirm"),
    Route("/compte/export", export, methods=["GET"], name="account_export"),
    Route("/compte/supprimer", delete_page, methods=["GET"], name="account_delete_page"),
    Route("/compte/supprimer", delete, methods=["POST"], name="account_delete"),
]
