"""Template rendering, form parsing with CSRF, and request helpers shared by views."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from node import i18n
from node.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from node.security import csrf_token, csrf_valid
from node.sessions import User
from node.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
MAX_FORM_BYTES = 2 * 1024 * 1024

_MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]  # fmt: skip


def format_datetime(value: datetime | None) -> str:
    """French date and time, e.g. « 3 mars 2026 à 14:05 » (UTC)."""
    if value is None:
        return ""
    value = value.astimezone(UTC)
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year} à {value:%H:%M}"


class _CompileTimeGettext(CodeGenerator):
    """Translates ``_("literal")`` once, when a template is compiled, instead of at
    every render: the node speaks one language (``i18n.translations()``), so the
    call's answer never changes. The result is what jinja2's newstyle gettext gives
    (the translated text trusted as markup, ``%%`` → ``%``). Calls with arguments
    (``_("… %(n)s", n=…)``) and ``{% trans %}`` blocks are left to the i18n extension."""

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        literal = node.args[0] if len(node.args) == 1 else None
        if (
            isinstance(node.node, nodes.Name)
            and node.node.name == "_"
            and isinstance(literal, nodes.Const)
            and isinstance(literal.value, str)
            and not node.kwargs
            and node.dyn_args is None
            and node.dyn_kwargs is None
            and not frame.eval_ctx.volatile
        ):
            text = i18n.translations().gettext(literal.value)
            text = text % {} if "%" in text else text
            self.write(f"Markup({text!r})" if frame.eval_ctx.autoescape else repr(text))
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=400,
    )
    env.install_gettext_translations(i18n.translations(), newstyle=True)  # type: ignore[attr-defined]
    env.code_generator_class = _CompileTimeGettext
    env.filters["datetime"] = format_datetime
    env.filters["isodate"] = lambda v: v.astimezone(UTC).isoformat() if v else ""
    return env


templates = _env()


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def current_user(request: Request) -> User | None:
    user: User | None = getattr(request.state, "user", None)
    return user


def require_member(request: Request) -> User:
    """The approved member making the request; anyone else sees a missing page."""
    user = current_user(request)
    if user is None or not user.is_approved:
        raise NotFound()
    return user


def require_moderator(request: Request) -> User:
    user = require_member(request)
    if not user.is_moderator:
        raise NotFound()
    return user


def require_admin(request: Request) -> User:
    user = require_member(request)
    if not user.is_admin:
        raise NotFound()
    return user


def csrf_binding(request: Request) -> str:
    return getattr(request.state, "csrf_binding", "")


def csrf_for(request: Request) -> str:
    return csrf_token(settings_of(request).secret_key.reveal(), csrf_binding(request))


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def form(request: Request) -> FormData:
    """The submitted form, after checking its size, its encoding and its CSRF token.

    Every view handling a POSTed form calls this (``tests/test_csrf.py`` walks
    every POST route of the app and checks each refuses a form without token).
    The only exemption is an endpoint that receives signed ActivityPub requests
    (an inbox): mark its endpoint function with ``endpoint.csrf_exempt = True``
    so the test skips it; such an endpoint must never read a browser form.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise PayloadTooLarge("Le formulaire envoyé est trop volumineux.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge("Le formulaire envoyé est trop volumineux.")
    if "urlencoded" in request.headers.get("content-type", "") and not _is_utf8(body):
        # starlette would decode raw bytes as latin-1 and hand over mojibake.
        raise BadRequest("Le formulaire envoyé est illisible (encodage invalide).")
    try:
        data = await request.form()
    except (UnicodeDecodeError, ValueError, AssertionError) as exc:
        raise BadRequest("Le formulaire envoyé est illisible.") from exc
    token = data.get("csrf_token")
    if not isinstance(token, str) or not csrf_valid(
        settings_of(request).secret_key.reveal(), csrf_binding(request), token
    ):
        raise Forbidden("Jeton de sécurité (CSRF) manquant ou invalide. Rechargez la page et réessayez.")
    return data


def field(data: FormData, name: str, *, max_length: int, required: bool = True, strip: bool = True) -> str:
    """A text field of ``data``; raises a French field error when invalid."""
    value = data.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(fields={name: "Valeur invalide."})
    if "\x00" in value or "\ufffd" in value:
        raise BadRequest(fields={name: "Ce champ contient des caractères invalides."})
    if strip:
        value = value.strip()
    if required and not value:
        raise BadRequest(fields={name: "Ce champ est obligatoire."})
    if len(value) > max_length:
        raise BadRequest(fields={name: f"Ce champ est trop long ({max_length} caractères au plus)."})
    return value


def int_param(value: str | None, default: int = 1, *, minimum: int = 1, maximum: int = 10_000) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return max(minimum, min(maximum, number))


MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints


def path_id(request: Request, name: str = "id") -> int:
    """A positive integer id from the path; anything else, or out of a bigint's range,
    is a missing page."""
    value = request.path_params.get(name)
    try:
        number = value if isinstance(value, int) else int(str(value))
    except ValueError as exc:
        raise NotFound() from exc
    if not 0 < number <= MAX_ID:
        raise NotFound()
    return number


def client_ip(request: Request) -> str:
    """The client's address; X-Forwarded-For is believed only from a trusted proxy."""
    peer = request.client.host if request.client else ""
    trusted = settings_of(request).trusted_proxies
    if peer not in trusted:
        return peer
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",") if p.strip()]
    for candidate in reversed(forwarded):
        if candidate not in trusted:
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                return peer
    return peer


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = current_user(request)
    html = templates.get_template(template).render(
        request=request,
        user=user,
        settings=settings_of(request),
        csrf_token=csrf_for(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
