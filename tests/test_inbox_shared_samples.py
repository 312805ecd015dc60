"""Each of the 124 real payloads of ``../shared/samples`` (14 servers), re-hosted onto a fake
instance and re-signed, is handled or refused cleanly by our inbox: an answer among
202/400/401/403, never a 500, and no handler crash in the worker.

Re-hosting: the URLs of the sample's actor host point at the fake instance (which serves
that actor and signs as it); every other host becomes our node, so a Lemmy user's
Follow of ``enterprise.lemmy.ml/c/main`` becomes a Follow of our community ``main``.
Objects (Note, Page …) are wrapped in a Create by their author, actors in an Update of
themselves; collections and other documents are posted as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from federation.handlers.base import ref, refs
from tests.conftest import SHARED_SAMPLES
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import make_community
from tests.inboxnode import InboxNode, node_fixture

KEEP_HOSTS = {"www.w3.org", "w3id.org", "purl.org", "schema.org", "ostatus.org", "joinmastodon.org",
              "joinpeertube.org", "join-lemmy.org", "litepub.social", "misskey-hub.net", "docs.joinmastodon.org"}  # fmt: skip
POST_TYPES = {"Note", "Page", "Article", "Question"}
ACTOR_TYPES = {"Person", "Group", "Service", "Application", "Organization"}
CLEAN_STATUSES = {202, 400, 401, 403}
SOFTWARE = sorted(p.name for p in SHARED_SAMPLES.iterdir() if p.is_dir()) if SHARED_SAMPLES.is_dir() else []

pytestmark = pytest.mark.skipif(
    not SHARED_SAMPLES.is_dir(), reason=f"{SHARED_SAMPLES} is absent (shared samples)"
)


def samples(software: str) -> list[Path]:
    return sorted((SHARED_SAMPLES / software).rglob("*.json"))


def test_the_124_samples_are_there() -> None:
    assert sum(len(samples(s)) for s in SOFTWARE) == 124


fixture_node = node_fixture()


class Rehoster:
    """Moves one sample's actor host onto the fake instance and the rest onto our node."""

    def __init__(self, fake: FakeInstance, node: InboxNode) -> None:
        self.fake, self.node = fake, node
        self.actors: dict[str, FakeActor] = {}

    def rewrite(self, value: Any, actor_host: str) -> Any:
        if isinstance(value, dict):
            return {k: (v if k == "@context" else self.rewrite(v, actor_host)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.rewrite(v, actor_host) for v in value]
        if isinstance(value, str) and re.match(r"^https?://", value):
            parts = urlsplit(value)
            if parts.hostname in KEEP_HOSTS or not parts.netloc:
                return value
            base = self.fake.base_url if parts.netloc == actor_host else self.node.base_url
            rest = (
                parts.path
                + (f"?{parts.query}" if parts.query else "")
                + (f"#{parts.fragment}" if parts.fragment else "")
            )
            return base + rest
        return value

    def actor(self, uri: str, kind: str) -> FakeActor:
        if uri == self.fake.instance_actor.id:  # Mastodon's instance actor is /actor, as the fake's
            return self.fake.instance_actor
        if uri not in self.actors:
            made = self.fake.add_actor(f"a{len(self.actors)}", type=kind)
            made.id = uri
            self.actors[uri] = made
        return self.actors[uri]


def author_of(doc: dict[str, Any]) -> str | None:
    """Who speaks for a sample: the activity's actor, an object's author, an actor itself."""
    if doc.get("type") in ACTOR_TYPES:
        return ref(doc)
    actor = ref(doc.get("actor"))
    if actor:
        return actor
    attributed = doc.get("attributedTo")
    named = attributed if isinstance(attributed, list) else [attributed]
    people = [a for a in named if not isinstance(a, dict) or a.get("type", "Person") == "Person"]
    found = refs(people)
    return found[0] if found else None


def envelope(doc: dict[str, Any], author: str) -> dict[str, Any]:
    """Objects travel inside a Create, actors inside an Update of themselves."""
    kind = doc.get("type")
    if kind in POST_TYPES:
        return {"id": f"{doc.get('id', author)}#create", "type": "Create", "actor": author,
                "to": doc.get("to", []), "cc": doc.get("cc", []), "object": doc}  # fmt: skip
    if kind in ACTOR_TYPES:
        return {"id": f"{author}#update", "type": "Update", "actor": author, "object": doc}
    return doc


async def ensure_communities(node: InboxNode, doc: dict[str, Any]) -> None:
    for name in set(re.findall(re.escape(node.base_url) + r"/c/([a-z0-9_]{3,30})\b", json.dumps(doc))):
        if await node.count("communities", "name = $1", name) == 0:
            await make_community(node.pool, name, visibility="public")


def speaker_kind(doc: dict[str, Any], author: str) -> str:
    if doc.get("type") in ACTOR_TYPES and ref(doc) == author:
        return str(doc["type"])
    return "Group" if doc.get("type") in {"Announce", "Accept"} or "/c/" in author else "Person"


@pytest.mark.parametrize("software", SOFTWARE)
async def test_every_sample_is_handled_or_refused_cleanly(node: InboxNode, software: str) -> None:
    problems: list[str] = []
    async with FakeInstance("127.0.0.61", software="lemmy" if software == "lemmy" else "mastodon") as fake:
        hosts = Rehoster(fake, node)
        for path in samples(software):
            original = json.loads(path.read_text(encoding="utf-8"))
            author = author_of(original)
            actor_host = urlsplit(author).netloc if author else ""
            doc = hosts.rewrite(original, actor_host)
            speaker_uri = hosts.rewrite(author, actor_host) if author else None
            await ensure_communities(node, doc)
            if speaker_uri and speaker_uri.startswith(fake.base_url):
                speaker = hosts.actor(speaker_uri, speaker_kind(doc, speaker_uri))
                body = envelope(doc, speaker_uri)
            else:
                speaker, body = fake.instance_actor, doc
            response = await fake.send(node.url("/inbox"), body, actor=speaker)
            name = path.relative_to(SHARED_SAMPLES)
            if response.status not in CLEAN_STATUSES:
                problems.append(f"{name}: HTTP {response.status} {response.text[:200]}")
            await node.process()
        for item in await node.items():
            error = item["error"]
            if error and not (error.startswith("waiting:") or error.startswith("FetchError")):
                problems.append(f"{item['activity_type']} {item['activity_id']}: {error[:300]}")
    assert problems == []
