"""Incoming activity handlers: one module per verb (style rule 3).

The wire shape each verb accepts is in ``schemas/``; what it does is here.
:func:`dispatch` picks the handler by type; types without one are ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from federation.handlers import accept, announce, create, delete, flag, follow, ignore, like, undo, update
from federation.handlers.base import Context, Outcome, ignored

Handler = Callable[[Context], Awaitable[Outcome]]

HANDLERS: dict[str, Handler] = {
    "Follow": follow.handle,
    "Undo": undo.handle,
    "Create": create.handle,
    "Update": update.handle,
    "Delete": delete.handle,
    "Like": like.handle,
    "Dislike": like.handle_dislike,
    "Flag": flag.handle,
    "Accept": accept.handle_accept,
    "Reject": accept.handle_reject,
    "Announce": announce.handle,
    "Block": ignore.handle,
    "Add": ignore.handle,
    "Remove": ignore.handle,
    "Lock": ignore.handle,
    "Move": ignore.handle,
    "EmojiReact": ignore.handle,
}


async def dispatch(ctx: Context) -> Outcome:
    handler = HANDLERS.get(str(ctx.activity.get("type")))
    if handler is None:
        return ignored(f"no handler for {ctx.activity.get('type')}")
    return await handler(ctx)
