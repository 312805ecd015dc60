"""What federation's handlers store, through node.threads' remote-post functions: the
same rules as for a local post (here: a deleted reply leaves the expert-answer mark,
which federation's own copy of the statement used to forget)."""

from __future__ import annotations

import asyncpg

from node import threads
from node.communities import find
from tests.helpers import make_community, make_member


async def test_a_remote_deletion_of_the_expert_answer_clears_the_mark(pool: asyncpg.Pool) -> None:
    # Given a thread whose reply is marked as the expert answer
    community_id = await make_community(pool, "medical")
    amina, expert = await make_member(pool, "amina"), await make_member(pool, "docteur", role="expert")
    await pool.execute("INSERT INTO community_experts VALUES ($1, $2)", community_id, expert.id)
    async with pool.acquire() as conn:
        community = await find(conn, "medical")
        assert community is not None
        created = await threads.create_thread(conn, community, amina, "Titre", "Corps")
        reply = await threads.create_reply(conn, created.thread_id, expert, "Avis")
        await threads.set_expert_answer(conn, reply, expert, True)
        # When the reply is removed as a remote author's Delete removes it
        post = await threads.post_ref(conn, reply)
        assert post is not None
        await threads.remove_remote_post(conn, post)
    # Then the tombstone stays, the count drops and the mark goes
    row = await pool.fetchrow(
        "SELECT reply_count, expert_answer_id FROM threads WHERE id = $1", created.thread_id
    )
    assert (row["reply_count"], row["expert_answer_id"]) == (0, None)
    assert await pool.fetchval("SELECT deleted_at IS NOT NULL FROM posts WHERE id = $1", reply)
