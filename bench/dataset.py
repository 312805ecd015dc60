"""The benchmark data set: a busy partner node after a few years, at scale k.

At 1× (issue 17): 200 members, 30 communities (a fifth public, the rest members-only),
20,000 threads, 100,000 replies, 1,000 follower instances; 10× multiplies every count.
Communities and the one member the benchmarks log in as go through the node's own
services (keys, actors, audit); the bulk rows are written with set-based SQL, since a
million service calls would take hours and measure nothing the benchmarks look at.
Reply counts, last activity and search vectors end up exactly as the services would
leave them (the search trigger stays on; the version bump trigger is paused during the
load, then every thread gets a fresh version).

    .venv/bin/python bench/dataset.py --dsn postgresql://… [--scale 1]   # fills an empty, migrated database
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from node import db  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.communities import create_community  # noqa: E402

BENCH_MEMBER = "membre_bench"
BENCH_PASSWORD = "mot-de-passe-bench"


@dataclass(frozen=True)
class Sizes:
    members: int
    communities: int
    threads: int
    replies: int
    instances: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def n(one: int, least: int) -> int:
            return max(least, round(one * scale))

        return cls(n(200, 2), n(30, 2), n(20_000, 10), n(100_000, 10), n(1_000, 1))


# Vocabulary of the network: some words in most posts (« survivante », « prise en
# charge »), some in a few percent, a few rare ones — search is measured on each kind.
SENTENCES = [
    "La survivante a été reçue dans les 48 heures et un kit PEP a été proposé.",
    "Il faut documenter les lésions avec précision pour le certificat médical.",
    "Le consentement éclairé doit être recueilli à chaque étape de l'examen.",
    "Nous orientons systématiquement vers l'accompagnement psychosocial de la survivante.",
    "Le suivi sérologique est prévu à six semaines, trois mois et six mois.",
    "L'accès à la contraception d'urgence reste difficile en zone rurale.",
    "La juriste du centre peut accompagner la plainte si la personne le souhaite.",
    "Attention à ne jamais noter le nom de la personne dans les échanges ici.",
    "La prise en charge médicale commence par l'écoute et la mise en sécurité.",
    "Le comité de pilotage a validé le protocole de référencement vers la maison d'écoute.",
    "Les frais de transport des survivantes sont couverts par le projet jusqu'en juin.",
    "Une formation sur le traumatisme vicariant est prévue pour les équipes de Bukavu.",
    "Le certificat médico-légal doit être remis en main propre, jamais par un tiers.",
    "La prophylaxie post-exposition reste efficace si elle commence avant 72 heures.",
    "Nous manquons de tests de grossesse dans les centres de santé périphériques.",
    "La médiation familiale est déconseillée lorsque l'agresseur vit sous le même toit.",
]
RARE_WORDS = ["fistule", "kinésithérapie", "hébergement", "interprète", "tribunal", "dépistage"]
TITLES = [
    "Question sur le suivi",
    "Cas difficile",
    "Protocole de prise en charge",
    "Orientation juridique",
    "Retour d'expérience",
    "Besoin d'un avis",
    "Partage d'outil",
    "Formation",
]

BODY_SQL = """
(SELECT string_agg(s[1 + floor(random() * array_length(s, 1))::int + 0 * g + 0 * {row}], ' ')
 FROM generate_series(1, 2 + floor(random() * 4)::int) g) ||
CASE WHEN random() < 0.03 THEN ' ' || r[1 + floor(random() * array_length(r, 1))::int] ELSE '' END
"""

INSERT_MEMBERS = """
INSERT INTO users (username, display_name, email, password_hash, role, status, profession, charter_accepted_at,
                   created_at)
SELECT 'membre' || i, 'Dr Membre ' || i, 'membre' || i || '@exemple.org', $2,
       CASE WHEN i % 50 = 0 THEN 'moderator' WHEN i % 10 = 0 THEN 'expert' ELSE 'member' END,
       'approved', (ARRAY['medical','paramedical','psychosocial','juridique','projet','autre'])[1 + i % 6],
       now(), now() - interval '3 years'
FROM generate_series(1, $1) i
"""
# Threads spread over three years; the opening post is written with the thread.
INSERT_THREADS = """
INSERT INTO threads (community_id, author_id, title, created_at, last_activity_at)
SELECT c.ids[1 + floor(random() * array_length(c.ids, 1))::int],
       m.ids[1 + floor(random() * array_length(m.ids, 1))::int],
       ($2::text[])[1 + floor(random() * array_length($2::text[], 1))::int] || ' n° ' || i,
       ts, ts
FROM generate_series(1, $1) i,
     LATERAL (SELECT now() - interval '3 years' + (i::float / $1) * interval '3 years' AS ts) t,
     (SELECT array_agg(id) AS ids FROM communities) c,
     (SELECT array_agg(id) AS ids FROM users WHERE status = 'approved') m
"""
INSERT_OPENINGS = f"""
INSERT INTO posts (thread_id, author_id, is_opening, source, content_html, created_at)
SELECT x.id, x.author_id, true, x.body, '<p>' || x.body || '</p>', x.created_at
FROM (SELECT t.id, t.author_id, t.created_at, {BODY_SQL.format(row="t.id")} AS body
      FROM threads t, (SELECT $1::text[] AS s, $2::text[] AS r) v) x
"""
# Replies lean to recent threads and to a few busy ones (a square of a uniform draw).
INSERT_REPLIES = f"""
INSERT INTO posts (thread_id, author_id, source, content_html, created_at)
SELECT x.thread_id, x.author_id, x.body, '<p>' || x.body || '</p>', x.created_at
FROM (
  SELECT t.id AS thread_id, m.ids[1 + floor(random() * array_length(m.ids, 1))::int] AS author_id,
         least(now(), t.created_at + random() * interval '30 days') AS created_at,
         {BODY_SQL.format(row="i")} AS body
  FROM generate_series(1, $1) i,
       LATERAL (SELECT $3::bigint - floor(power(random(), 2) * $3::bigint)::bigint + $4::bigint - 1 + i * 0
                AS pick) k
  JOIN threads t ON t.id = k.pick,
       (SELECT array_agg(id) AS ids FROM users WHERE status = 'approved') m,
       (SELECT $5::text[] AS s, $2::text[] AS r) v
) x
"""
RECOUNT_THREADS = """
UPDATE threads t SET reply_count = s.replies, last_activity_at = greatest(t.created_at, s.last_at),
       version = t.version + 1
FROM (SELECT thread_id, count(*) FILTER (WHERE NOT is_opening) AS replies, max(created_at) AS last_at
      FROM posts GROUP BY thread_id) s
WHERE s.thread_id = t.id
"""
INSERT_INSTANCES = """
INSERT INTO actors (uri, kind, local, username, domain, inbox, shared_inbox, public_key_id, public_key_pem)
SELECT 'https://noeud' || i || '.exemple/actor', 'Application', false, 'noeud' || i, 'noeud' || i || '.exemple',
       'https://noeud' || i || '.exemple/inbox', 'https://noeud' || i || '.exemple/inbox',
       'https://noeud' || i || '.exemple/actor#main-key', $2
FROM generate_series(1, $1) i
"""
INSERT_FOLLOWERS = """
INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state, decided_at)
SELECT c.id, a.id, a.uri || '#follows/' || c.id, 'accepted', now()
FROM communities c JOIN actors a ON NOT a.local AND a.kind = 'Application'
WHERE (a.id + c.id) % 3 = 0 OR c.visibility = 'public'
"""
INSERT_FOLLOWS = """
INSERT INTO community_follows (user_id, community_id)
SELECT u.id, c.id FROM users u, communities c
WHERE u.status = 'approved' AND (u.id + c.id) % 3 = 0
ON CONFLICT DO NOTHING
"""
INSERT_READS = """
INSERT INTO thread_reads (user_id, thread_id, read_at)
SELECT u.id, t.id, t.last_activity_at FROM users u
JOIN threads t ON t.id % 7 = u.id % 7 AND t.created_at > now() - interval '6 months'
WHERE u.username = $1 OR u.id % 10 = 0
ON CONFLICT DO NOTHING
"""


async def _members(conn: asyncpg.Connection, count: int) -> None:
    await create_user(conn, BENCH_MEMBER, BENCH_PASSWORD, display_name="Dr Bench", profession="medical")
    password_hash = await conn.fetchval("SELECT password_hash FROM users WHERE username = $1", BENCH_MEMBER)
    await conn.execute(INSERT_MEMBERS, count - 1, password_hash)


async def _communities(conn: asyncpg.Connection, count: int) -> None:
    for i in range(count):
        visibility = "public" if i % 5 == 0 else "members"
        await create_community(conn, f"communaute{i}", f"Communauté {i}", visibility=visibility)


async def _posts(conn: asyncpg.Connection, sizes: Sizes) -> None:
    await conn.execute(INSERT_THREADS, sizes.threads, TITLES)
    await conn.execute(INSERT_OPENINGS, SENTENCES, RARE_WORDS)
    first = await conn.fetchval("SELECT min(id) FROM threads")
    batch = 100_000
    for done in range(0, sizes.replies, batch):
        await conn.execute(
            INSERT_REPLIES, min(batch, sizes.replies - done), RARE_WORDS, sizes.threads, first, SENTENCES
        )
    await conn.execute(RECOUNT_THREADS)


async def _federation(conn: asyncpg.Connection, sizes: Sizes) -> None:
    pem = await conn.fetchval("SELECT public_key_pem FROM actors WHERE local LIMIT 1")
    await conn.execute(INSERT_INSTANCES, sizes.instances, pem)
    await conn.execute(INSERT_FOLLOWERS)


async def generate(conn: asyncpg.Connection, scale: float = 1) -> Sizes:
    """Fill an empty, migrated database with the data set at ``scale``; returns its sizes."""
    sizes = Sizes.at(scale)
    await _members(conn, sizes.members)
    await _communities(conn, sizes.communities)
    await conn.execute("ALTER TABLE posts DISABLE TRIGGER posts_bump_thread_version")
    try:
        await _posts(conn, sizes)
    finally:
        await conn.execute("ALTER TABLE posts ENABLE TRIGGER posts_bump_thread_version")
    await _federation(conn, sizes)
    await conn.execute(INSERT_FOLLOWS)
    await conn.execute(INSERT_READS, BENCH_MEMBER)
    await conn.execute("VACUUM ANALYZE")
    return sizes


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--scale", type=float, default=1)
    args = parser.parse_args()
    conn = await db.connect(args.dsn)
    try:
        await db.migrate(conn)
        started = time.perf_counter()
        sizes = await generate(conn, args.scale)
        print(f"{sizes} in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
