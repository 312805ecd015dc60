"""Activities we understand and deliberately drop (no behaviour on this node yet).

Block/Add/Remove/Lock from remote group moderators act on remote communities
(not built yet: docs/architecture.md §3); a Block by a remote user concerns that user's server only; Move,
EmojiReact and Dislike have no counterpart in the forum.
"""

from __future__ import annotations

from federation.handlers.base import Context, Outcome, ignored


async def handle(ctx: Context) -> Outcome:
    return ignored(f"{ctx.activity.get('type')}: nothing to do on this node")
