"""Discovery: WebFinger, NodeInfo 2.0 and 2.1, and host-meta (docs/architecture.md §3).

Members and communities share one namespace, so ``acct:name@domain`` names at most
one of them. Only approved members and federated communities (public or
members-only) can be found; anything else answers 404 like an unknown name. Who may
find which is ``node.access.may_discover`` (decided by the caller, ``federation.web``):
public actors — public communities, members who posted in one — and the instance
actor by anyone not blocked; members-only ones only by approved partners.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from federation import urls
from federation.policy import host_of
from node import accounts, communities, threads
from node import usage as node_usage
from node.settings import Settings

JRD = "application/jrd+json"
AP_JSON = "application/activity+json"
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/{}"
# Both served: 2.0 is what Takahē and older crawlers read, 2.1 adds software.homepage.
NODEINFO_VERSIONS = ("2.0", "2.1")
PROFILE_PAGE = "http://webfinger.net/rel/profile-page"
AS_TYPE = "https://www.w3.org/ns/activitystreams#type"
SOFTWARE = "vbg-node"

_ACTOR_PATH = re.compile(r"^/(u|c)/([A-Za-z0-9_]+)$")


@dataclass(frozen=True)
class Found:
    """A discoverable actor: its handle and id."""

    name: str
    uri: str
    kind: str
    visibility: str = "public"  # node.access: who may discover it (the instance actor: anyone)


def _parse_resource(resource: str, settings: Settings) -> tuple[str, str | None] | None:
    """``(name, kind hint)`` for a resource on our domain, else None.

    Accepts ``acct:name@domain`` (also without ``acct:`` or with a leading ``@``) and
    our actor URLs (``/u/name``, ``/c/name``, ``/actor``)."""
    resource = unquote(resource.strip())
    if resource.startswith(("https://", "http://")):
        if host_of(resource) != host_of(settings.base_url):
            return None
        path = urlsplit(resource).path.rstrip("/")
        if path == "/actor":
            return settings.domain, "Application"
        match = _ACTOR_PATH.match(path)
        if not match:
            return None
        return match.group(2), "Person" if match.group(1) == "u" else "Group"
    if resource.lower().startswith("acct:"):
        resource = resource[5:]
    name, sep, domain = resource.lstrip("@!").rpartition("@")
    if not sep or not name or domain.lower() != settings.domain.lower():
        return None
    return name, None


async def find(conn: asyncpg.Connection, settings: Settings, resource: str) -> Found | None:
    """The member, community or instance actor a WebFinger resource names, if discoverable."""
    parsed = _parse_resource(resource, settings)
    if parsed is None:
        return None
    name, kind = parsed
    if kind in (None, "Person"):
        member = await accounts.approved_member(conn, name)
        if member:
            username = member["username"]
            visibility = await threads.member_visibility(conn, member["id"])
            return Found(username, urls.person(settings, username), "Person", visibility)
    if kind in (None, "Group"):
        community = await communities.find_federated(conn, name)
        if community:
            uri = urls.group(settings, community["name"])
            return Found(community["name"], uri, "Group", community["visibility"])
    if kind in (None, "Application") and name.lower() == settings.domain.lower():
        return Found(settings.domain, urls.instance_actor(settings), "Application")
    return None


def webfinger_to_jrd(settings: Settings, found: Found) -> dict[str, Any]:
    profile = settings.url("/a-propos") if found.kind == "Application" else found.uri
    return {
        "subject": f"acct:{found.name}@{settings.domain}",
        "aliases": [found.uri],
        "links": [
            {"rel": "self", "type": AP_JSON, "href": found.uri, "properties": {AS_TYPE: found.kind}},
            {"rel": PROFILE_PAGE, "type": "text/html", "href": profile},
        ],
    }


def nodeinfo_content_type(version: str) -> str:
    return f'application/json; profile="{NODEINFO_SCHEMA.format(version)}#"'


def nodeinfo_links(settings: Settings) -> dict[str, Any]:
    return {
        "links": [
            {"rel": NODEINFO_SCHEMA.format(version), "href": settings.url(f"/nodeinfo/{version}")}
            for version in NODEINFO_VERSIONS
        ]
    }


def software_version() -> str:
    try:
        return importlib.metadata.version(SOFTWARE)
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


async def nodeinfo(conn: asyncpg.Connection, settings: Settings, version: str = "2.1") -> dict[str, Any]:
    """NodeInfo ``version`` (2.0 or 2.1) with honest counts: approved members, members
    active in the last month / half-year (a session or a post), local threads and
    replies still online. 2.0's schema allows only ``name`` and ``version`` in ``software``."""
    if version not in NODEINFO_VERSIONS:
        raise ValueError(f"NodeInfo {version!r} is not served")
    usage = await node_usage.counts(conn)
    software = {"name": SOFTWARE, "version": software_version()}
    if version == "2.1":
        software["homepage"] = settings.url("/a-propos")
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": False,
        "usage": {
            "users": {
                "total": usage["total"],
                "activeMonth": usage["active_month"],
                "activeHalfyear": usage["active_halfyear"],
            },
            "localPosts": usage["local_posts"],
            "localComments": usage["local_comments"],
        },
        "metadata": {"nodeName": settings.node_name},
    }


def host_meta(settings: Settings) -> str:
    template = settings.url("/.well-known/webfinger?resource={uri}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="{JRD}" template="{template}"/>\n'
        "</XRD>\n"
    )
