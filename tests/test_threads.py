"""Threads and replies through the services: create, reply, edit with history, delete
with tombstone, pin, lock, expert answer, and the outbox events they write."""

from __future__ import annotations

import asyncpg
import pytest

from node import threads
from node.communities import find
from node.errors import BadRequest, Forbidden, NotFound
from node.sessions import User
from tests.helpers import make_community, make_user


async def member(pool: asyncpg.Pool, username: str, role: str = "member", status: str = "approved") -> User:
    user_id = await make_user(pool, username, role=role, status=status)
    return User(user_id, username, username, role, status)


async def start(
    pool: asyncpg.Pool, community: str, author: User, title: str = "Un titre", body: str = "Corps"
) -> threads.Created:
    async with pool.acquire() as conn:
        c = await find(conn, community)
        assert c is not None
        return await threads.create_thread(conn, c, author, title, body)


async def events(pool: asyncpg.Pool) -> list[tuple[str, dict[str, int]]]:
    rows = await pool.fetch("SELECT kind, payload FROM outbox_events ORDER BY id")
    return [(r["kind"], r["payload"]) for r in rows]


async def test_creating_a_thread_stores_source_rendered_html_and_search_vector(pool: asyncpg.Pool) -> None:
    # Given a member and a members-only community
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    # When she starts a thread with Markdown and a script
    created = await start(pool, "medical", amina, "  Prise   en charge ", "**Important** <script>x</script>")
    # Then source and sanitised HTML are both stored, the title is normalised
    post = await pool.fetchrow("SELECT * FROM posts WHERE id = $1", created.post_id)
    thread = await pool.fetchrow("SELECT * FROM threads WHERE id = $1", created.thread_id)
    assert thread["title"] == "Prise en charge"
    assert post["is_opening"] and post["source"] == "**Important** <script>x</script>"
    assert post["content_html"] == "<p><strong>Important</strong> &lt;script&gt;x&lt;/script&gt;</p>"
    assert await pool.fetchval(
        "SELECT search_vector @@ websearch_to_tsquery('french', vbg_fold('prise charge')) FROM posts WHERE id = $1",
        created.post_id,
    )


@pytest.mark.parametrize(
    ("title", "body", "field"),
    [
        ("", "corps", "title"),
        ("   ", "corps", "title"),
        ("t" * 201, "corps", "title"),
        ("titre", "", "body"),
        ("titre", "x" * 50_001, "body"),
        ("titre", "x" * 1_000_000, "body"),
        ("t" * 1_000_000, "corps", "title"),
        ("titre\x00", "corps", "title"),
        ("titre", "corps \ufffd invalide", "body"),
    ],
)
async def test_bad_input_is_refused_with_a_french_error_and_nothing_is_written(
    pool: asyncpg.Pool, title: str, body: str, field: str
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    with pytest.raises(BadRequest) as error:
        await start(pool, "medical", amina, title, body)
    assert field in error.value.fields
    assert await pool.fetchval("SELECT count(*) FROM threads") == 0
    assert await pool.fetchval("SELECT count(*) FROM posts") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox_events") == 0


async def test_pending_account_cannot_write(pool: asyncpg.Pool) -> None:
    await make_community(pool, "juridique", visibility="public")
    pending = await member(pool, "attente", status="pending")
    with pytest.raises(NotFound):
        await start(pool, "juridique", pending)


async def test_reply_to_a_reply_keeps_its_parent_and_bumps_the_thread(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await start(pool, "medical", amina)
    before = await pool.fetchval("SELECT last_activity_at FROM threads WHERE id = $1", created.thread_id)
    async with pool.acquire() as conn:
        first = await threads.create_reply(conn, created.thread_id, binta, "Première réponse")
        second = await threads.create_reply(conn, created.thread_id, amina, "Je réponds à Binta", first)
    rows = {r["id"]: r for r in await pool.fetch("SELECT id, parent_id FROM posts")}
    assert rows[first]["parent_id"] == created.post_id
    assert rows[second]["parent_id"] == first
    thread = await pool.fetchrow(
        "SELECT reply_count, last_activity_at FROM threads WHERE id = $1", created.thread_id
    )
    assert thread["reply_count"] == 2 and thread["last_activity_at"] > before


async def test_reply_to_a_post_of_another_thread_is_refused(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    one, other = await start(pool, "medical", amina), await start(pool, "medical", amina)
    async with pool.acquire() as conn:
        with pytest.raises(NotFound):
            await threads.create_reply(conn, one.thread_id, amina, "réponse", other.post_id)
    assert await pool.fetchval("SELECT count(*) FROM posts") == 2


async def test_edit_keeps_the_previous_version_and_only_the_author_may_edit(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await start(pool, "medical", amina, "Ancien titre", "Ancien corps")
    async with pool.acquire() as conn:
        with pytest.raises(Forbidden):
            await threads.edit_post(conn, created.post_id, binta, "Vandalisme")
        await threads.edit_post(conn, created.post_id, amina, "Nouveau *corps*", "Nouveau titre")
    post = await pool.fetchrow(
        "SELECT source, content_html, updated_at FROM posts WHERE id = $1", created.post_id
    )
    assert post["source"] == "Nouveau *corps*" and post["content_html"] == "<p>Nouveau <em>corps</em></p>"
    assert post["updated_at"] is not None
    assert await pool.fetchval("SELECT title FROM threads") == "Nouveau titre"
    edit = await pool.fetchrow("SELECT * FROM post_edits")
    assert (edit["previous_title"], edit["previous_source"], edit["editor_id"]) == (
        "Ancien titre",
        "Ancien corps",
        amina.id,
    )
    # The search vector follows the new title (trigger of migration 0020)
    assert await pool.fetchval(
        "SELECT search_vector @@ websearch_to_tsquery('french', 'nouveau') FROM posts WHERE id = $1",
        created.post_id,
    )


async def test_a_bad_edit_changes_nothing(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    created = await start(pool, "medical", amina, "Titre", "Corps")
    async with pool.acquire() as conn:
        with pytest.raises(BadRequest):
            await threads.edit_post(conn, created.post_id, amina, "Corps valide", "t" * 500)
    assert await pool.fetchval("SELECT source FROM posts") == "Corps"
    assert await pool.fetchval("SELECT count(*) FROM post_edits") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'post.updated'") == 0


async def test_delete_leaves_a_tombstone_and_moderators_must_give_a_reason(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    modo = await member(pool, "modo", role="moderator")
    created = await start(pool, "medical", amina)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, binta, "Réponse")
        with pytest.raises(Forbidden):
            await threads.delete_post(conn, reply, amina)
        with pytest.raises(BadRequest):
            await threads.delete_post(conn, reply, modo)
        await threads.delete_post(conn, reply, modo, "Donnée identifiante")
        await threads.delete_post(conn, created.post_id, amina)
    rows = await pool.fetch("SELECT deleted_at FROM posts")
    assert all(r["deleted_at"] is not None for r in rows)
    assert await pool.fetchval("SELECT reply_count FROM threads") == 0
    assert await pool.fetchval("SELECT count(*) FROM threads") == 1
    audit = await pool.fetchrow("SELECT action, reason, actor_id FROM audit_log WHERE action = 'post.delete'")
    assert (audit["reason"], audit["actor_id"]) == ("Donnée identifiante", modo.id)
    # The author deleting their own post is not a moderation action
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'post.delete'") == 1


async def test_pin_lock_and_expert_answer_need_an_expert_of_the_community_or_a_moderator(
    pool: asyncpg.Pool,
) -> None:
    community_id = await make_community(pool, "medical")
    await make_community(pool, "juridique")
    amina = await member(pool, "amina")
    expert = await member(pool, "docteur", role="expert")
    other_expert = await member(pool, "avocate", role="expert")
    await pool.execute("INSERT INTO community_experts VALUES ($1, $2)", community_id, expert.id)
    created = await start(pool, "medical", amina)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, other_expert, "Avis")
        for outsider in (amina, other_expert):
            with pytest.raises(Forbidden):
                await threads.set_pinned(conn, created.thread_id, outsider, True)
            with pytest.raises(Forbidden):
                await threads.set_locked(conn, created.thread_id, outsider, True)
            with pytest.raises(Forbidden):
                await threads.set_expert_answer(conn, reply, outsider, True)
        await threads.set_pinned(conn, created.thread_id, expert, True)
        await threads.set_locked(conn, created.thread_id, expert, True)
        await threads.set_expert_answer(conn, reply, expert, True)
        with pytest.raises(BadRequest):
            await threads.set_expert_answer(conn, created.post_id, expert, True)
    thread = await pool.fetchrow("SELECT pinned, locked, expert_answer_id FROM threads")
    assert (thread["pinned"], thread["locked"], thread["expert_answer_id"]) == (True, True, reply)
    actions = [
        r["action"] for r in await pool.fetch("SELECT action FROM audit_log WHERE actor_id = $1", expert.id)
    ]
    assert actions == ["thread.pin", "thread.lock", "thread.expert_answer"]


async def test_locked_thread_refuses_replies_except_from_animators(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    modo = await member(pool, "modo", role="moderator")
    created = await start(pool, "medical", amina)
    async with pool.acquire() as conn:
        await threads.set_locked(conn, created.thread_id, modo, True)
        with pytest.raises(Forbidden) as error:
            await threads.create_reply(conn, created.thread_id, amina, "Encore un mot")
        assert "verrouillée" in error.value.message
        await threads.create_reply(conn, created.thread_id, modo, "Mot de la modération")
    assert await pool.fetchval("SELECT reply_count FROM threads") == 1


async def test_outbox_events_are_written_with_each_change_of_a_federated_community(
    pool: asyncpg.Pool,
) -> None:
    community_id = await make_community(pool, "juridique", visibility="public")
    amina = await member(pool, "amina")
    modo = await member(pool, "modo", role="moderator")
    created = await start(pool, "juridique", amina)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, amina, "Réponse")
        await threads.edit_post(conn, reply, amina, "Réponse corrigée")
        await threads.set_pinned(conn, created.thread_id, modo, True)
        await threads.set_pinned(conn, created.thread_id, modo, False)
        await threads.delete_post(conn, reply, amina)
    base = {"thread_id": created.thread_id, "community_id": community_id}
    assert await events(pool) == [
        ("post.created", {**base, "post_id": created.post_id, "actor_user_id": amina.id}),
        ("post.created", {**base, "post_id": reply, "actor_user_id": amina.id}),
        ("post.updated", {**base, "post_id": reply, "actor_user_id": amina.id}),
        ("thread.pinned", {**base, "post_id": created.post_id, "actor_user_id": modo.id}),
        ("thread.unpinned", {**base, "post_id": created.post_id, "actor_user_id": modo.id}),
        ("post.deleted", {**base, "post_id": reply, "actor_user_id": amina.id}),
    ]


async def test_no_outbox_event_leaves_a_local_community(pool: asyncpg.Pool) -> None:
    await make_community(pool, "coordination", visibility="local")
    amina = await member(pool, "amina")
    created = await start(pool, "coordination", amina)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, amina, "Réponse")
        await threads.edit_post(conn, reply, amina, "Réponse corrigée")
        await threads.delete_post(conn, reply, amina)
    assert await events(pool) == []


async def test_outbox_event_is_rolled_back_with_a_failed_change(pool: asyncpg.Pool) -> None:
    # Given a federated community and a thread
    await make_community(pool, "juridique", visibility="public")
    amina = await member(pool, "amina")
    created = await start(pool, "juridique", amina)
    # When a reply fails after its event was written (the transaction is aborted)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await threads.create_reply(conn, created.thread_id, amina, "Réponse")
                raise RuntimeError("boom")
    # Then neither the reply nor its event exist
    assert await pool.fetchval("SELECT count(*) FROM posts") == 1
    assert [kind for kind, _ in await events(pool)] == ["post.created"]
