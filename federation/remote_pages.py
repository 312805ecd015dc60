"""What the forum's pages ask of federation about remote communities, request by request
(``node.web.app`` hands these to ``app.state``: node makes no network call itself).

    find_card       « !nom@serveur » typed in a search box ──> the community's card
    subscribe       a member's « Suivre » on a remote community
    unsubscribe     « Ne plus suivre » (the last one out: Undo{Follow})
    admin_follow    an administrator follows for the whole node (audited)
    admin_drop      an administrator drops it (Undo{Follow}; audited)
"""

from __future__ import annotations

from starlette.requests import Request

from federation import access, remote
from node import audit
from node.communities import Community, RemoteCard
from node.sessions import User
from node.web.requests import pool_of, settings_of


async def find_card(request: Request, address: str) -> RemoteCard:
    async with pool_of(request).acquire() as conn:
        return await remote.find_card(conn, settings_of(request), access.fetcher_of(request), address)


async def subscribe(request: Request, community: Community, user: User) -> str:
    async with pool_of(request).acquire() as conn:
        return await remote.subscribe(conn, settings_of(request), access.fetcher_of(request), community, user)


async def unsubscribe(request: Request, community: Community, user: User) -> None:
    async with pool_of(request).acquire() as conn:
        await remote.unsubscribe(conn, settings_of(request), community, user, access.fetcher_of(request))


async def admin_follow(request: Request, address: str, user: User) -> Community:
    settings, fetcher = settings_of(request), access.fetcher_of(request)
    async with pool_of(request).acquire() as conn:
        community = await remote.resolve(conn, settings, fetcher, address)
        state = await remote.ensure_follow(
            conn, settings, fetcher, community, requested_by=user, node_wide=True
        )
        await audit.record(
            conn,
            "remote_community.follow",
            actor_id=user.id,
            actor_label=user.username,
            target_type="community",
            target_id=community.id,
            details={"name": community.name, "state": state},
        )
    return community


async def admin_drop(request: Request, community: Community, user: User) -> bool:
    async with pool_of(request).acquire() as conn:
        undone = await remote.drop(conn, settings_of(request), community)
        await audit.record(
            conn,
            "remote_community.drop",
            actor_id=user.id,
            actor_label=user.username,
            target_type="community",
            target_id=community.id,
            details={"name": community.name, "undone": undone},
        )
    return undone
