"""Flag: a report from another server, kept for our moderators (``reports``).

The targets are kept as given (actor and object ids); those that are our posts are
resolved so the moderators' list can link them. A repeated Flag is one report. An
instance blocked with ``reject_reports`` (Mastodon's flag) files none.
"""

from __future__ import annotations

from federation import policy
from federation.handlers.base import Context, Outcome, done, find_post, ignored, refs
from node import reports

CONTENT_MAX = 5_000
TARGETS_MAX = 50


async def handle(ctx: Context) -> Outcome:
    decision = await policy.decision(ctx.conn, ctx.sender.domain, own_domain=ctx.settings.domain)
    if decision.reject_reports:
        return ignored("reports from this instance are rejected by the instance policy")
    targets = refs(ctx.activity.get("object"))[:TARGETS_MAX]
    if not targets:
        return ignored("report without a target")
    post_ids: list[int] = []
    community_id = None
    for target in targets:
        post = await find_post(ctx, target)
        if post is not None:
            post_ids.append(post.id)
            community_id = community_id or post.community_id
    text = ctx.activity.get("content") or ctx.activity.get("summary") or ""
    report_id = await reports.file_remote_report(
        ctx.conn,
        ctx.sender.id,
        ctx.activity.get("id"),
        targets,
        post_ids,
        community_id,
        str(text)[:CONTENT_MAX],
    )
    if report_id is None:
        return ignored("report already received")
    return done(f"report {report_id}")
