"""Account pages: registration, waiting page, login and logout, own account, profiles.

Routes::

    GET/POST /inscription                  register (the account is pending)
    GET      /en-attente                   waiting page (or refusal reason) of a pending person
    GET/POST /connexion                    log in (rotates the session), ``?next=`` local paths only
    POST     /deconnexion                  log out
    GET      /compte                       own profile, password, sessions
    POST     /compte/profil                edit own profile
    POST     /compte/mot-de-passe          change password (ends every other session)
    POST     /compte/fuseau-horaire        choose the time zone dates are shown in
    POST     /compte/sessions/{id}/fin     end one of one's sessions
    GET      /u/{username}                 profile page (approved members only)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import accounts, ratelimit, sessions, timezones, two_factor
from node.errors import AppError, BadRequest, NotFound, TooManyRequests
from node.i18n import _
from node.web import forms
from node.web.headers import session_cookie
from node.web.requests import client_ip, current_user, path_id, pool_of, require_member, settings_of
from node.web.templating import redirect, render

# Rate limits: (attempts, window in seconds). Login attempts are counted before the
# password is checked, so that parallel guesses cannot slip through, and a successful
# one is taken back: only failures count (a training room behind one address logs in).
LOGIN_PER_ACCOUNT = (10, 15 * 60)
LOGIN_PER_ADDRESS = (30, 15 * 60)
REGISTER_PER_ADDRESS = (10, 60 * 60)
MAX_LOGIN_FIELD = 1024
SECRET_FIELDS = {
    "password",
    "password_confirm",
    "current_password",
    "new_password",
    "new_password_confirm",
    "email_password",
}
DONE_MESSAGES = {
    "profil": "Votre profil a été enregistré.",
    "mot-de-passe": "Votre mot de passe a été changé ; vos autres sessions ont été fermées.",
    "session": "La session a été fermée.",
    "fuseau": "Votre fuseau horaire a été enregistré.",
    "adresse": "Votre adresse e-mail a été changée.",
    "adresse-envoyee": "Un lien de confirmation vient de partir vers la nouvelle adresse : ouvrez-le dans les 48 heures. "
    "Votre adresse actuelle reste valable d'ici là.",
}


class FormReader:
    """Reads text fields of a form, collecting every field error instead of
    stopping at the first one, and keeps the values to show the form again
    (never a password, never more than the field's maximum length)."""

    def __init__(self, data: FormData) -> None:
        self.data = data
        self.errors: dict[str, str] = {}
        self.values: dict[str, str] = {}

    def text(self, name: str, *, required: bool = True) -> str:
        max_length = accounts.MAX_LENGTHS[name]
        raw = self.data.get(name)
        if isinstance(raw, str) and name not in SECRET_FIELDS:
            self.values[name] = raw[:max_length]
        try:
            return forms.field(
                self.data, name, max_length=max_length, required=required, strip=name not in SECRET_FIELDS
            )
        except BadRequest as exc:
            self.errors.update(exc.fields)
            return ""

    def checked(self, name: str) -> bool:
        value = self.data.get(name)
        self.values[name] = "on" if value else ""
        return bool(value)

    def merge(self, errors: dict[str, str]) -> dict[str, str]:
        """``errors`` found later, under the ones found while reading."""
        return {**errors, **self.errors}


def loose(data: FormData, name: str, max_length: int = MAX_LOGIN_FIELD) -> str:
    value = data.get(name)
    return value[:max_length] if isinstance(value, str) else ""


def safe_next(value: object) -> str:
    """A local path to go to after login; anything else (another site, ``//host``,
    ``/\\host``, a scheme) becomes the home page."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 1000:
        return "/"
    if value.startswith(("//", "/\\")) or any(c in value for c in "\\\r\n\t\x00"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def set_cookie(request: Request, name: str, value: str, max_age: int) -> None:
    """Set ``name``, replacing any cookie of that name the middleware queued."""
    secure = settings_of(request).secure_cookies
    queued = [c for c in request.state.set_cookies if not c.startswith(name + "=")]
    queued.append(session_cookie(name, value, secure=secure, max_age=max_age))
    request.state.set_cookies = queued


async def open_session(request: Request, user_id: int) -> None:
    """Log ``user_id`` in on this browser: the previous session (if any) ends first."""
    pool = pool_of(request)
    previous: sessions.Session | None = request.state.session
    if previous is not None:
        await sessions.end(pool, previous.token)
    token = await sessions.create(pool, user_id, request.headers.get("user-agent", ""), client_ip(request))
    set_cookie(request, sessions.COOKIE, token, int(sessions.LIFETIME.total_seconds()))


async def check_limit(request: Request, key: str, limit: tuple[int, int]) -> None:
    if not await ratelimit.hit(pool_of(request), key, *limit):
        raise TooManyRequests(_("Trop de tentatives. Réessayez dans quelques minutes."))


def login_keys(username: str, ip: str) -> tuple[str, str]:
    """Rate-limit keys of a login attempt: per account, per client address."""
    return f"login:account:{username.strip().lower()[:64]}", f"login:ip:{ip}"


# ---------------------------------------------------------------- registration


def render_register(
    request: Request,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "accounts/register.html",
        status_code=status,
        values=values or {},
        errors=errors or {},
        professions=accounts.PROFESSIONS,
        limits=accounts.MAX_LENGTHS,
    )


async def register_page(request: Request) -> Response:
    if current_user(request) is not None:
        return redirect("/")
    return render_register(request)


def read_registration(reader: FormReader) -> accounts.Registration:
    return accounts.Registration(
        username=reader.text("username"),
        display_name=reader.text("display_name"),
        email=reader.text("email"),
        password=reader.text("password"),
        password_confirm=reader.text("password_confirm"),
        profession=reader.text("profession"),
        profession_detail=reader.text("profession_detail", required=False),
        organisation=reader.text("organisation"),
        country=reader.text("country"),
        motivation=reader.text("motivation"),
        charter_accepted=reader.checked("charter"),
    )


async def register(request: Request) -> Response:
    data = await forms.form(request)
    if current_user(request) is not None:
        return redirect("/")
    await check_limit(request, f"register:ip:{client_ip(request)}", REGISTER_PER_ADDRESS)
    reader = FormReader(data)
    registration = read_registration(reader)
    if reader.errors:
        errors = reader.merge(accounts.registration_errors(registration))
        errors = {**await accounts.username_errors(pool_of(request), registration.username), **errors}
        return render_register(request, reader.values, errors, status=400)
    try:
        async with pool_of(request).acquire() as conn:
            user_id = await accounts.register(conn, registration, settings_of(request))
    except AppError as exc:
        return render_register(request, reader.values, exc.fields or {"form": exc.message}, exc.status)
    await open_session(request, user_id)
    return redirect("/en-attente")


async def waiting(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return redirect("/connexion")
    if user.is_approved:
        return redirect("/")
    state = await accounts.review_state(pool_of(request), user.id)
    if state is None:
        raise NotFound()
    return render(request, "accounts/waiting.html", status=state["status"], reason=state["refusal_reason"])


# ---------------------------------------------------------------- login and logout


LOGIN_NOTICES = {
    "reinitialise": "Votre mot de passe a été changé. Connectez-vous avec le nouveau.",
    "adresse": "Votre nouvelle adresse e-mail est confirmée.",
    "code-expire": "La connexion a pris trop de temps : saisissez de nouveau votre mot de passe.",
}


def render_login(request: Request, status: int = 200, **context: Any) -> Response:
    context.setdefault("next", safe_next(request.query_params.get("next")))
    context.setdefault("notice", LOGIN_NOTICES.get(request.query_params.get("fait", ""), ""))
    context.setdefault("username", "")
    return render(request, "accounts/login.html", status_code=status, **context)


async def login_page(request: Request) -> Response:
    return render_login(request)


async def login(request: Request) -> Response:
    data = await forms.form(request)
    username, password = loose(data, "username"), loose(data, "password")
    next_url = safe_next(data.get("next"))
    # One budget per account, whether it is named by its username or its e-mail address.
    account = await accounts.login_name(pool_of(request), username)
    account_key, address_key = login_keys(account or username, client_ip(request))
    await check_limit(request, address_key, LOGIN_PER_ADDRESS)
    await check_limit(request, account_key, LOGIN_PER_ACCOUNT)
    credentials = await accounts.authenticate(pool_of(request), username, password)
    if credentials is not None:
        await ratelimit.refund(pool_of(request), address_key, LOGIN_PER_ADDRESS[1])
        await ratelimit.refund(pool_of(request), account_key, LOGIN_PER_ACCOUNT[1])
    if credentials is None:
        error = _("Identifiant ou mot de passe incorrect.")
        return render_login(request, 400, error=error, username=username[:64], next=next_url)
    if credentials.status == "suspended":
        error = _("Ce compte est suspendu. Contactez les administrateur·rice·s du nœud.")
        # The right password was given: the member may read why (never someone else).
        reason = await accounts.suspension_reason(pool_of(request), credentials.user_id)
        if reason:
            error += " " + _("Raison donnée : %(reason)s") % {"reason": reason}
        contact = settings_of(request).contact_email
        if contact:
            error += " " + _("Adresse : %(contact)s") % {"contact": contact}
        return render_login(request, 403, error=error, username=username[:64], next=next_url)
    if credentials.status == "approved" and await two_factor.enabled(pool_of(request), credentials.user_id):
        # The password was right; the session opens only with the code (two_factor_views).
        from node.web.two_factor_views import render_code, ticket_for

        return render_code(request, ticket_for(request, credentials.user_id), next_url)
    await open_session(request, credentials.user_id)
    return redirect(next_url if credentials.status == "approved" else "/en-attente")


async def logout(request: Request) -> Response:
    await forms.form(request)
    session: sessions.Session | None = request.state.session
    if session is not None:
        await sessions.end(pool_of(request), session.token)
    set_cookie(request, sessions.COOKIE, "", 0)
    return redirect("/")


# ---------------------------------------------------------------- own account


async def render_account(
    request: Request, status: int = 200, errors: dict[str, str] | None = None, **context: Any
) -> Response:
    user = require_member(request)
    pool = pool_of(request)
    own = dict(await accounts.own_profile(pool, user.id))
    context.setdefault("values", own)
    context.setdefault("email_value", "")
    return render(
        request,
        "accounts/account.html",
        status_code=status,
        errors=errors or {},
        sessions=await sessions.list_for(pool, user.id),
        current_session_id=request.state.session.id,
        professions=accounts.PROFESSIONS,
        limits=accounts.MAX_LENGTHS,
        role_label=accounts.ROLE_LABELS[user.role],
        zones=timezones.COMMON,
        account_email=own["email"],
        done=DONE_MESSAGES.get(request.query_params.get("fait", "")),
        **context,
    )


async def account(request: Request) -> Response:
    return await render_account(request)


async def update_profile(request: Request) -> Response:
    user = require_member(request)
    reader = FormReader(await forms.form(request))
    update = accounts.ProfileUpdate(
        display_name=reader.text("display_name"),
        profession=reader.text("profession"),
        profession_detail=reader.text("profession_detail", required=False),
        organisation=reader.text("organisation", required=False),
        country=reader.text("country", required=False),
        bio=reader.text("bio", required=False),
    )
    errors = reader.merge(accounts.profile_errors(update))
    if errors:
        return await render_account(request, 400, errors, values=reader.values)
    await accounts.update_profile(pool_of(request), user.id, update)
    return redirect("/compte?fait=profil")


async def change_password(request: Request) -> Response:
    require_member(request)
    reader = FormReader(await forms.form(request))
    current = reader.text("current_password")
    new = reader.text("new_password")
    confirm = reader.text("new_password_confirm", required=False)
    if reader.errors:
        return await render_account(request, 400, reader.errors)
    try:
        async with pool_of(request).acquire() as conn:
            token = await accounts.change_password(
                conn,
                request.state.session,
                current,
                new,
                confirm,
                user_agent=request.headers.get("user-agent", ""),
                ip=client_ip(request),
            )
    except BadRequest as exc:
        return await render_account(request, 400, exc.fields)
    set_cookie(request, sessions.COOKIE, token, int(sessions.LIFETIME.total_seconds()))
    return redirect("/compte?fait=mot-de-passe")


async def set_timezone(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    name = forms.field(data, "timezone", max_length=64, required=False)
    if name and not timezones.valid(name):
        return await render_account(request, 400, {"timezone": "Choisissez un fuseau horaire dans la liste."})
    await accounts.set_timezone(pool_of(request), user.id, name)
    return redirect("/compte?fait=fuseau")


async def end_session(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    session_id = path_id(request)
    await sessions.end_one(pool_of(request), user.id, session_id)
    if session_id == request.state.session.id:
        set_cookie(request, sessions.COOKIE, "", 0)
        return redirect("/")
    return redirect("/compte?fait=session")


# ---------------------------------------------------------------- profile page


async def profile(request: Request) -> Response:
    require_member(request)
    pool = pool_of(request)
    row = await accounts.profile(pool, str(request.path_params["username"]))
    if row is None:
        raise NotFound()
    return render(
        request,
        "accounts/profile.html",
        member=row,
        profession=accounts.PROFESSIONS[row["profession"]],
        role_label=accounts.ROLE_LABELS[row["role"]],
        expert_of=await accounts.expert_of(pool, row["id"]),
    )


routes: list[BaseRoute] = [
    Route("/inscription", register_page, methods=["GET"], name="register_page"),
    Route("/inscription", register, methods=["POST"], name="register"),
    Route("/en-attente", waiting, methods=["GET"], name="waiting"),
    Route("/connexion", login_page, methods=["GET"], name="login_page"),
    Route("/connexion", login, methods=["POST"], name="login"),
    Route("/deconnexion", logout, methods=["POST"], name="logout"),
    Route("/compte", account, methods=["GET"], name="account"),
    Route("/compte/profil", update_profile, methods=["POST"], name="account_profile"),
    Route("/compte/mot-de-passe", change_password, methods=["POST"], name="account_password"),
    Route("/compte/fuseau-horaire", set_timezone, methods=["POST"], name="account_timezone"),
    Route("/compte/sessions/{id:id}/fin", end_session, methods=["POST"], name="account_end_session"),
    Route("/u/{username}", profile, methods=["GET"], name="profile"),
]
