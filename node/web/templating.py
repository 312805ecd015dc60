"""Page rendering: the jinja2 environment (French dates, ``_()`` translated when a
template is compiled) and ``render``, which hands every template the member, the
settings and the form's CSRF token."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from node import i18n, timezones
from node.web.csrf import csrf_for
from node.web.forms import FIELD_LABELS
from node.web.requests import current_user, settings_of

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

_MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]  # fmt: skip


# The zone dates are shown in for this request: the member's, else the node's. Set by
# SessionMiddleware (use_zone) once it knows who is asking.
_zone: ContextVar[str] = ContextVar("vbg_zone", default="UTC")


def use_zone(name: str) -> None:
    _zone.set(name)


def current_zone() -> str:
    return _zone.get()


def format_datetime(value: datetime | None) -> str:
    """French date and time in the reader's zone, labelled: « 3 mars 2026 à 14:05 (UTC+1) »."""
    if value is None:
        return ""
    value = value.astimezone(timezones.zone(_zone.get()))
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year} à {value:%H:%M} ({timezones.label(value)})"


class _CompileTimeGettext(CodeGenerator):
    """Translates ``_("literal")`` once, when a template is compiled, instead of at
    every render: the node speaks one language (``i18n.translations()``), so the
    call's answer never changes. The result is what jinja2's newstyle gettext gives
    (the translated text trusted as markup, ``%%`` → ``%``); printed on its own
    (``{{ _("literal") }}``) it becomes part of the template's text, with nothing left
    to do at render time. Calls with arguments (``_("… %(n)s", n=…)``) and
    ``{% trans %}`` blocks are left to the i18n extension."""

    def _translated(self, node: nodes.Node, frame: Frame) -> str | None:
        """The translation of ``node`` if it is ``_("literal")``, else None."""
        if not isinstance(node, nodes.Call):
            return None
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
            return text % {} if "%" in text else text
        return None

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        # Trusted markup printed as it is: the same as escaping Markup(text) at render time.
        translated = [self._translated(child, frame) for child in node.nodes]
        node.nodes = [
            child if text is None else nodes.TemplateData(text, lineno=child.lineno)
            for child, text in zip(node.nodes, translated, strict=True)
        ]
        super().visit_Output(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        text = self._translated(node, frame)
        if text is not None:
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
    env.globals["login_href"] = login_href
    env.globals["field_labels"] = FIELD_LABELS
    env.globals["nav_current"] = nav_current
    return env


# Pages after which coming back makes no sense: login goes to the home page instead.
_NO_RETURN = ("/connexion", "/inscription", "/deconnexion", "/reinitialiser/", "/mot-de-passe-oublie")


def nav_current(request: Request, href: str) -> Markup:
    """`` aria-current="page"`` on the navigation link of the area being shown."""
    path = request.scope["path"]  # not request.url, which builds and parses a whole URL
    here = path == href if href == "/" else path == href or path.startswith(href + "/")
    return Markup(' aria-current="page"') if here else Markup("")


def login_href(request: Request) -> str:
    """The login page, coming back to this page afterwards (``?next=``)."""
    path = request.url.path
    if request.method != "GET" or path.startswith(_NO_RETURN):
        return "/connexion"
    here = path + (f"?{request.url.query}" if request.url.query else "")
    return "/connexion?" + urlencode({"next": here})


templates = _env()


def _html(request: Request, template: str, context: dict[str, Any]) -> str:
    return templates.get_template(template).render(
        request=request,
        user=current_user(request),
        settings=settings_of(request),
        csrf_token=csrf_for(request),
        **context,
    )


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_html(request, template, context), status_code=status_code)


# Where a spliced part goes: the template prints it as {{ <name> }}. Nothing a user
# writes can look like it in the page around it (autoescaped: no "<").
SLOT = "<!--vbg-slot-->"


def render_spliced(
    request: Request, template: str, name: str, part: bytes, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """:func:`render`, with ``part`` — HTML already encoded, the page's bulk (a thread
    page's posts, assembled from cached fragments) — put where the template prints
    ``name``, as bytes: never escaped, copied into the rendered text or encoded again."""
    html = _html(request, template, {**context, name: Markup(SLOT)})
    head, slot, tail = html.partition(SLOT)
    if not slot:
        raise ValueError(f"{template} does not print {name}")
    return HTMLResponse(b"".join((head.encode(), part, tail.encode())), status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
