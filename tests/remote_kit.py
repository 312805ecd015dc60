"""Remote communities in tests: a remote ``Group`` actor row and its ``communities`` row
(migration 0120), written through the real services, without any network."""

from __future__ import annotations

import asyncpg

from federation import actors, signatures
from node import communities
from node.communities import Community


async def make_remote_community(
    pool: asyncpg.Pool,
    name: str = "lecture",
    host: str = "forum.example",
    *,
    visibility: str = "public",
    title: str = "Lecture partagée",
) -> Community:
    """The Group ``https://{host}/c/{name}`` stored as a remote actor, and its community
    row ``name@host``."""
    uri = f"https://{host}/c/{name}"
    _, public_pem = signatures.generate_key_pair()
    doc = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Group",
        "preferredUsername": name,
        "name": title,
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "followers": f"{uri}/followers",
        "manuallyApprovesFollowers": visibility == "members",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": public_pem},
    }
    async with pool.acquire() as conn:
        group = await actors.store_remote(conn, doc, uri)
        return await communities.upsert_remote(
            conn,
            actor_id=group.id,
            name=f"{name}@{host.lower()}",
            title=title,
            description="Une communauté d'un autre serveur.",
            visibility=visibility,
        )
