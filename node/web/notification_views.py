"""Notifications, followed threads and bookmarks: the member's pages (``node.notifications``).

Routes (approved members; anyone else gets a missing page)::

    GET  /notifications?avant=ID|apres=ID   the list, newest first (keyset pages)
    POST /notifications/{id}                open one: mark it read, go to what it is about
    POST /notifications/tout-lu             mark all read
    GET  /notifications/reglages            kinds on/off, e-mail frequency
    POST /notifications/reglages
    POST /t/{id}/suivre                     « Suivre ce fil » / « Ne plus suivre » (action=follow|unfollow)
    POST /p/{id}/enregistrer                bookmark / unbookmark a post (action=save|unsave)
    GET  /enregistres?avant=ID|apres=ID     the member's bookmarks (keyset pages)
    GET  /desabonnement?u=ID&t=TOKEN        e-mail unsubscribe (no login: a signed token)
    POST /desabonnement                     (also RFC 8058 one-click, from the mail client)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from node import notification_mail, notifications, threads
from node.errors import BadRequest, NotFound
from node.i18n import _
from node.web import forms
from node.web.requests import keyset_position, numbered_page, path_id, pool_of, require_member, settings_of
from node.web.templating import redirect, render

KIND_LABELS = {
    "reply_followed": "Réponses dans les fils que je suis",
    "reply_to_me": "Réponses à mes messages",
    "mention": "Mentions « @nom »",
    "expert_answer": "Réponse de l'expert·e dans mes fils",
    "moderation": "Décisions de modération sur mes messages",
    "report_handled": "Suites données à mes signalements",
    "new_report": "Nouveaux signalements (modération)",
    "new_application": "Nouvelles demandes d'inscription (modération)",
    "new_message": "Nouveaux messages privés",
}
EMAIL_LABELS = {
    "immediate": "À chaque notification",
    "daily": "Un résumé par jour",
    "weekly": "Un résumé par semaine",
    "off": "Jamais",
}


def forget_count(request: Request, user_id: int) -> None:
    """This process's cached session of the member shows her count anew at once (the
    trigger's NOTIFY evicts it too, but may arrive after the redirect's next page)."""
    cache = getattr(request.app.state, "session_cache", None)
    if cache is not None:
        cache.evict_user(user_id)


async def notifications_page(request: Request) -> Response:
    user = require_member(request)
    if numbered_page(request):
        return RedirectResponse("/notifications", status_code=302)
    page = await notifications.page_for(pool_of(request), user, keyset_position(request))
    return render(request, "notifications/list.html", listing=page)


async def open_one(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    target = await notifications.open_notification(pool_of(request), user, path_id(request))
    forget_count(request, user.id)
    return redirect(target)


async def mark_all_read(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    await notifications.mark_all_read(pool_of(request), user.id)
    forget_count(request, user.id)
    return redirect("/notifications")


def _offered(is_moderator: bool) -> list[tuple[str, str]]:
    kinds = notifications.MEMBER_KINDS + (notifications.MODERATOR_KINDS if is_moderator else ())
    return [(k, _(KIND_LABELS[k])) for k in kinds]


async def settings_page(request: Request) -> Response:
    user = require_member(request)
    prefs = await notifications.preferences(pool_of(request), user.id)
    return _render_settings(request, prefs, saved=request.query_params.get("fait") == "1")


def _render_settings(
    request: Request, prefs: notifications.Preferences, *, saved: bool = False, status: int = 200
) -> Response:
    user = require_member(request)
    return render(
        request,
        "notifications/settings.html",
        status,
        prefs=prefs,
        kinds=_offered(user.is_moderator),
        modes=[(m, _(EMAIL_LABELS[m])) for m in ("immediate", "daily", "weekly", "off")],
        saved=saved,
        email_enabled=settings_of(request).smtp is not None,
    )


async def save_settings(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    mode = str(data.get("email_mode", ""))
    enabled = {str(v) for v in data.getlist("kind")}
    try:
        await notifications.save_preferences(pool_of(request), user, mode, enabled)
    except BadRequest:
        prefs = notifications.Preferences(mode if mode in notifications.EMAIL_MODES else "daily")
        return _render_settings(request, prefs, status=400)
    return redirect("/notifications/reglages?fait=1")


async def follow_thread(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    pool = pool_of(request)
    ref = await threads.load_thread(pool, path_id(request), user)
    await notifications.set_following(pool, user.id, ref["thread_id"], data.get("action") != "unfollow")
    return redirect(f"/t/{ref['thread_id']}")


async def bookmark(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    pool = pool_of(request)
    post = await threads.load_post(pool, path_id(request), user)
    if post["deleted_at"] is not None:
        raise NotFound()
    await notifications.set_bookmark(pool, user.id, post["id"], data.get("action") != "unsave")
    return redirect(f"/p/{post['id']}")


async def bookmarks_page(request: Request) -> Response:
    user = require_member(request)
    if numbered_page(request):
        return RedirectResponse("/enregistres", status_code=302)
    listing = await notifications.bookmarks(pool_of(request), user, keyset_position(request))
    return render(request, "notifications/bookmarks.html", listing=listing)


def _unsubscribe_target(request: Request, user_param: str, token: str) -> int:
    try:
        user_id = int(user_param)
    except ValueError:
        raise NotFound() from None
    if not notification_mail.unsubscribe_valid(settings_of(request), user_id, token):
        raise NotFound()
    return user_id


async def unsubscribe_page(request: Request) -> Response:
    params = request.query_params
    _unsubscribe_target(request, params.get("u", ""), params.get("t", ""))
    return render(request, "notifications/unsubscribe.html", u=params.get("u"), t=params.get("t"), done=False)


async def unsubscribe(request: Request) -> Response:
    """Unsubscribe from every notification e-mail. The token is the proof (signed with the
    node's secret, for this member only): no login and no CSRF token, so that a mail
    client's one-click POST (RFC 8058, ``List-Unsubscribe-Post``) works too."""
    params = request.query_params
    form = await request.form()
    user_param = str(form.get("u") or params.get("u", ""))
    token = str(form.get("t") or params.get("t", ""))
    user_id = _unsubscribe_target(request, user_param, token)
    await notifications.set_email_mode(pool_of(request), user_id, "off")
    return render(request, "notifications/unsubscribe.html", done=True)


unsubscribe.csrf_exempt = True  # type: ignore[attr-defined]  # the signed token is the proof


routes: list[BaseRoute] = [
    Route("/notifications", notifications_page, methods=["GET"], name="notifications"),
    Route("/notifications/tout-lu", mark_all_read, methods=["POST"], name="notifications_all_read"),
    Route("/notifications/reglages", settings_page, methods=["GET"], name="notification_settings"),
    Route("/notifications/reglages", save_settings, methods=["POST"], name="notification_settings_save"),
    Route("/notifications/{id:id}", open_one, methods=["POST"], name="notification_open"),
    Route("/t/{id:id}/suivre", follow_thread, methods=["POST"], name="thread_follow"),
    Route("/p/{id:id}/enregistrer", bookmark, methods=["POST"], name="post_bookmark"),
    Route("/enregistres", bookmarks_page, methods=["GET"], name="bookmarks"),
    Route("/desabonnement", unsubscribe_page, methods=["GET"], name="unsubscribe_page"),
    Route("/desabonnement", unsubscribe, methods=["POST"], name="unsubscribe"),
]
