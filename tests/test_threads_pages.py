"""Thread pages over HTTP: writing through forms, reply context, edit history, tombstones,
animation, unread markers, pagination and permalinks."""

from __future__ import annotations

import re

import asyncpg
import httpx
from starlette.applications import Starlette

from node import communities, threads
from node.sessions import User
from tests.helpers import csrf, login, make_community, make_user, new_client, post_form


async def member(pool: asyncpg.Pool, username: str, role: str = "member") -> User:
    user_id = await make_user(pool, username, role=role)
    return User(user_id, username, username, role, "approved")


async def start(
    pool: asyncpg.Pool, author: User, title: str = "Un titre", community: str = "medical"
) -> threads.Created:
    async with pool.acquire() as conn:
        c = await communities.find(conn, community)
        assert c is not None
        return await threads.create_thread(conn, c, author, title, "Corps du message d'ouverture")


async def test_member_starts_a_thread_and_replies_through_the_forms(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a member of a members-only community
    await make_community(pool, "medical")
    await member(pool, "amina")
    await login(client, "amina")
    # When she starts a thread
    form = {"title": "Kit PEP en rupture", "body": "Le **kit PEP** manque à Bukavu."}
    response = await post_form(client, "/c/medical/nouveau", form)
    assert response.status_code == 303
    thread_path = response.headers["location"]
    # And replies to it
    response = await post_form(
        client, f"{thread_path}/repondre", {"body": "Réponse *rapide*"}, page=thread_path
    )
    assert response.status_code == 303 and re.search(r"/t/\d+\?page=1#p\d+$", response.headers["location"])
    # Then the thread page shows both posts, rendered
    page = await client.get(thread_path)
    assert "<strong>kit PEP</strong>" in page.text and "<em>rapide</em>" in page.text
    assert page.headers["cache-control"] == "private, no-store"


async def test_bad_thread_input_shows_the_form_again_with_a_french_error(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    await member(pool, "amina")
    await login(client, "amina")
    for form in (
        {"title": "", "body": "x"},
        {"title": "T", "body": "x" * 1_000_000},
        {"title": "t" * 300, "body": "x"},
    ):
        response = await post_form(client, "/c/medical/nouveau", form)
        assert response.status_code == 400
        assert "Le formulaire contient" in response.text
    assert await pool.fetchval("SELECT count(*) FROM threads") == 0


async def test_invalid_utf8_in_a_form_is_refused_and_nothing_is_written(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    await member(pool, "amina")
    await login(client, "amina")
    token = await csrf(client, "/c/medical/nouveau")
    body = b"csrf_token=" + token.encode() + b"&title=Titre%FF%FE&body=Corps%C3%28"
    response = await client.post(
        "/c/medical/nouveau", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert await pool.fetchval("SELECT count(*) FROM threads") == 0


async def test_markdown_attacks_are_neutralised_on_the_page(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    await member(pool, "amina")
    await login(client, "amina")
    body = '<script>alert(1)</script> [x](javascript:alert(1)) <iframe src="//e"></iframe> ![p](data:image/png;base64,AA)'
    response = await post_form(client, "/c/medical/nouveau", {"title": "<b>Titre</b>", "body": body})
    page = await client.get(response.headers["location"])
    assert "<script>" not in page.text and "<iframe" not in page.text and "<b>Titre" not in page.text
    assert 'href="javascript' not in page.text and "data:image" not in page.text.split("<main")[1]


async def test_reply_to_a_reply_shows_its_context(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    await make_community(pool, "medical")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        first = await threads.create_reply(
            conn, created.thread_id, binta, "Nous utilisons le protocole OMS de 2017."
        )
    await login(client, "amina")
    form_page = await client.get(f"/p/{first}/repondre")
    assert "protocole OMS" in form_page.text
    response = await post_form(client, f"/p/{first}/repondre", {"body": "Merci Binta"})
    assert response.status_code == 303
    page = await client.get(f"/t/{created.thread_id}")
    context = re.search(r'<p class="context">(.*?)</p>', page.text)
    assert context and f'href="/p/{first}">binta</a>' in context.group(1)
    assert "Nous utilisons le protocole OMS" in context.group(1)


async def test_edit_marks_the_post_and_history_is_for_its_author_moderators_and_experts(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    community_id = await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "modo", role="moderator")
    expert = await member(pool, "docteur", role="expert")
    await pool.execute("INSERT INTO community_experts VALUES ($1, $2)", community_id, expert.id)
    created = await start(pool, amina, "Titre initial")
    await login(client, "amina")
    response = await post_form(
        client, f"/p/{created.post_id}/modifier", {"title": "Titre revu", "body": "Corps revu"}
    )
    assert response.status_code == 303
    page = await client.get(f"/t/{created.thread_id}")
    assert "modifié" in page.text and "Titre revu" in page.text
    # The author sees the history of her own post (issue 13: open moderation)
    assert (await client.get(f"/p/{created.post_id}/historique")).status_code == 200
    for name in ("modo", "docteur"):
        async with new_client(app) as browser:
            await login(browser, name)
            history = await browser.get(f"/p/{created.post_id}/historique")
            assert history.status_code == 200
            assert "Titre initial" in history.text and "Corps du message d&#39;ouverture" in history.text


async def test_someone_else_cannot_edit_or_delete_a_post(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "binta")
    created = await start(pool, amina)
    await login(client, "binta")
    assert (await client.get(f"/p/{created.post_id}/modifier")).status_code == 404
    assert (await client.get(f"/p/{created.post_id}/supprimer")).status_code == 404
    token = await csrf(client, f"/t/{created.thread_id}")
    response = await client.post(f"/p/{created.post_id}/supprimer", data={"csrf_token": token})
    assert response.status_code == 404
    assert await pool.fetchval("SELECT deleted_at FROM posts") is None


async def test_deleting_leaves_a_tombstone_in_the_thread(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, amina, "Un détail à retirer")
    await login(client, "amina")
    confirm = await client.get(f"/p/{reply}/supprimer")
    assert "Un détail à retirer" in confirm.text
    await post_form(client, f"/p/{reply}/supprimer", {})
    await post_form(client, f"/p/{created.post_id}/supprimer", {})
    page = await client.get(f"/t/{created.thread_id}")
    assert page.status_code == 200
    assert page.text.count("Message supprimé") == 2
    assert "Un détail à retirer" not in page.text and "Corps du message" not in page.text
    assert "Un titre" in page.text


async def test_moderator_deletes_with_a_reason_from_the_confirmation_page(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "modo", role="moderator")
    created = await start(pool, amina)
    await login(client, "modo")
    response = await post_form(client, f"/p/{created.post_id}/supprimer", {"reason": ""})
    assert response.status_code == 400 and "raison" in response.text
    response = await post_form(client, f"/p/{created.post_id}/supprimer", {"reason": "Nom d'une patiente"})
    assert response.status_code == 303
    assert (
        await pool.fetchval("SELECT reason FROM audit_log WHERE action = 'post.delete'")
        == "Nom d'une patiente"
    )


async def test_expert_pins_locks_and_marks_the_expert_answer(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    community_id = await make_community(pool, "medical")
    amina = await member(pool, "amina")
    expert = await member(pool, "docteur", role="expert")
    await pool.execute("INSERT INTO community_experts VALUES ($1, $2)", community_id, expert.id)
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        answer = await threads.create_reply(conn, created.thread_id, expert, "Voici le protocole.")
    await login(client, "docteur")
    thread_path = f"/t/{created.thread_id}"
    assert (
        await post_form(client, f"{thread_path}/animer", {"action": "pin"}, page=thread_path)
    ).status_code == 303
    assert (
        await post_form(client, f"{thread_path}/animer", {"action": "lock"}, page=thread_path)
    ).status_code == 303
    assert (
        await post_form(client, f"/p/{answer}/expert", {"action": "mark"}, page=thread_path)
    ).status_code == 303
    page = await client.get(thread_path)
    assert (
        f'class="post expert" id="p{answer}"' in page.text and "Réponse de l'expert·e</strong>" in page.text
    )
    assert "verrouillé" in page.text and "épinglé" in page.text
    # A simple member can neither animate nor reply to the locked thread
    async with new_client(app) as browser:
        await login(browser, "amina")
        page = await browser.get(thread_path)
        assert "Verrouiller" not in page.text and "Publier la réponse" not in page.text
        response = await post_form(
            browser, f"{thread_path}/repondre", {"body": "Encore"}, page="/communautes"
        )
        assert response.status_code == 403 and "verrouillée" in response.text
        response = await post_form(
            browser, f"{thread_path}/animer", {"action": "unlock"}, page="/communautes"
        )
        assert response.status_code == 403
    assert await pool.fetchval("SELECT locked FROM threads")


async def test_unread_markers_follow_the_members_reading(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await start(pool, binta, "Discussion à lire")
    await login(client, "amina")
    assert "nouveau</span>" in (await client.get("/c/medical")).text
    await client.get(f"/t/{created.thread_id}")
    assert "nouveau</span>" not in (await client.get("/c/medical")).text
    async with pool.acquire() as conn:
        await threads.create_reply(conn, created.thread_id, binta, "Du nouveau")
    assert "nouveau</span>" in (await client.get("/c/medical")).text
    assert amina.id


async def test_thread_pages_hold_fifty_replies_and_permalinks_find_their_page(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a thread with 60 replies
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    created = await start(pool, amina)
    replies = []
    async with pool.acquire() as conn:
        for i in range(60):
            replies.append(await threads.create_reply(conn, created.thread_id, amina, f"Réponse numéro {i}"))
    await login(client, "amina")
    # Then page 1 holds the opening post and 50 replies, page 2 the other 10
    first = await client.get(f"/t/{created.thread_id}")
    assert first.text.count('<article class="post') == 51
    assert (
        "Page 1 / 2" in first.text
        and "Réponse numéro 49<" in first.text
        and "Réponse numéro 50<" not in first.text
    )
    second = await client.get(f"/t/{created.thread_id}?page=2")
    assert second.text.count('<article class="post') == 10
    assert "Corps du message d" not in second.text
    assert (await client.get(f"/t/{created.thread_id}?page=3")).status_code == 404
    # And permalinks redirect to the page holding the post
    for post_id, page in ((replies[49], 1), (replies[50], 2), (replies[59], 2), (created.post_id, 1)):
        response = await client.get(f"/p/{post_id}")
        assert response.status_code == 303
        assert response.headers["location"] == f"/t/{created.thread_id}?page={page}#p{post_id}"
    # And the page count (remembered per thread version) follows new replies at once
    async with pool.acquire() as conn:
        for i in range(60, 101):
            await threads.create_reply(conn, created.thread_id, amina, f"Réponse numéro {i}")
    assert "Page 1 / 3" in (await client.get(f"/t/{created.thread_id}")).text
    assert (await client.get(f"/t/{created.thread_id}?page=3")).text.count('<article class="post') == 1


async def test_community_threads_are_paginated_pinned_first_then_by_activity(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    made = [await start(pool, amina, f"Discussion {i:02d}") for i in range(32)]
    await pool.execute("UPDATE threads SET pinned = true WHERE id = $1", made[0].thread_id)
    await login(client, "amina")
    page = await client.get("/c/medical")
    titles = re.findall(r"<strong>(Discussion \d+)</strong>", page.text)
    assert len(titles) == 30
    assert titles[:3] == ["Discussion 00", "Discussion 31", "Discussion 30"]
    assert 'rel="prev"' not in page.text
    # The next page starts after the last thread shown (a keyset, not an offset)
    second = await client.get(_link(page.text, "next"))
    assert re.findall(r"<strong>(Discussion \d+)</strong>", second.text) == ["Discussion 02", "Discussion 01"]
    assert 'rel="next"' not in second.text
    # And going back gives the first page again, pinned thread first
    back = await client.get(_link(second.text, "prev"))
    assert re.findall(r"<strong>(Discussion \d+)</strong>", back.text) == titles


async def test_a_new_reply_does_not_repeat_threads_across_pages(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a member's home with two pages of threads
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    made = [await start(pool, amina, f"Discussion {i:02d}") for i in range(35)]
    async with pool.acquire() as conn:
        medical = await communities.find(conn, "medical")
        assert medical is not None
        await communities.follow(conn, amina, medical)
    await login(client, "amina")
    first = await client.get("/")
    shown = re.findall(r"<strong>(Discussion \d+)</strong>", first.text)
    assert shown[0] == "Discussion 34" and len(shown) == 30
    # When an old thread of the second page gets a reply before the member turns the page
    async with pool.acquire() as conn:
        await threads.create_reply(conn, made[1].thread_id, amina, "Une réponse qui remonte le fil")
    second = await client.get(_link(first.text, "next"))
    # Then the second page goes on after the last thread shown, with no thread twice
    rest = re.findall(r"<strong>(Discussion \d+)</strong>", second.text)
    assert rest == ["Discussion 04", "Discussion 03", "Discussion 02", "Discussion 00"]


async def _followed_ids(conn: asyncpg.Pool | asyncpg.Connection, user: User) -> list[int]:
    """The threads of the communities the member follows, as her home lists them."""
    rows = await conn.fetch(
        "SELECT t.id FROM threads t JOIN community_follows f ON f.community_id = t.community_id "
        "WHERE f.user_id = $1 AND t.deleted_at IS NULL ORDER BY t.last_activity_at DESC, t.id DESC",
        user.id,
    )
    return [row["id"] for row in rows]


async def _home_ids(conn: asyncpg.Connection, user: User) -> list[int]:
    """Every thread of the member's home, page after page ("Plus anciennes")."""
    ids: list[int] = []
    at = threads.ListPosition()
    while True:
        page = await threads.followed_threads(conn, user, at)
        ids += [row["id"] for row in page.threads]
        if page.older is None:
            return ids
        at = threads.ListPosition(threads.ListCursor.parse(page.older))


async def test_the_home_lists_the_same_threads_whichever_path_reads_them(pool: asyncpg.Pool) -> None:
    # Given a member who follows more communities than a home reads one by one, two
    # communities she does not follow, and threads in every one (one deleted)
    amina = await member(pool, "amina")
    many = threads.HOME_FEW_FOLLOWS + 2
    await pool.execute(
        "INSERT INTO communities (name, title) SELECT 'c' || i, 'C' || i FROM generate_series(1, $1) i",
        many + 2,
    )
    await pool.execute(
        "INSERT INTO community_follows (user_id, community_id) SELECT $1, id FROM communities ORDER BY id LIMIT $2",
        amina.id,
        many,
    )
    await pool.execute(
        "INSERT INTO threads (community_id, author_id, title, last_activity_at) "
        "SELECT c.id, $1, 'Fil', now() - (c.id * 7 + i * 13) * interval '1 minute' "
        "FROM communities c, generate_series(1, 3) i",
        amina.id,
    )
    await pool.execute("UPDATE threads SET deleted_at = now() WHERE id = (SELECT min(id) FROM threads)")
    expected = await _followed_ids(pool, amina)
    assert len(expected) > threads.LIST_PAGE_SIZE
    async with pool.acquire() as conn:
        # When her home is read page by page (the node's newest threads, checked against her follows)
        assert await _home_ids(conn, amina) == expected
        # And "Plus récentes" from the second page gives the first page again
        first = await threads.followed_threads(conn, amina)
        assert first.older is not None
        second = await threads.followed_threads(
            conn, amina, threads.ListPosition.from_query(first.older, None)
        )
        assert second.newer is not None
        back = await threads.followed_threads(
            conn, amina, threads.ListPosition.from_query(None, second.newer)
        )
        assert [r["id"] for r in back.threads] == [r["id"] for r in first.threads]
        # And when newer threads of a community she does not follow fill the window read
        # first, her home is the same (then read community by community)
        await conn.execute(
            "INSERT INTO threads (community_id, author_id, title) "
            "SELECT (SELECT max(id) FROM communities), $1, 'Bruit' FROM generate_series(1, $2)",
            amina.id,
            threads.HOME_WINDOW,
        )
        assert await _home_ids(conn, amina) == expected
        # And for a member who follows only a few communities
        await conn.execute(
            "DELETE FROM community_follows WHERE community_id > (SELECT min(id) + 2 FROM communities)"
        )
        few = await _followed_ids(conn, amina)
        assert few and await _home_ids(conn, amina) == few


async def test_malformed_list_cursors_are_missing_pages(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "medical", visibility="public")
    for query in (
        "avant=abc",
        "avant=1.2",
        "apres=2.1.1",
        "avant=0.99999999999999999.1",
        "avant=0.1.0",
        "avant=0.1.99999999999999999999",
    ):
        assert (await client.get(f"/c/medical?{query}")).status_code == 404, query
    # A NUL byte in any parameter is refused before the view reads it (node/web/unreadable.py)
    assert (await client.get("/c/medical?avant=0.1.1%00")).status_code == 400


def _link(html: str, rel: str) -> str:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}"', html)
    assert match, f"no {rel} link"
    return match.group(1).replace("&amp;", "&")


async def test_out_of_range_ids_are_missing_pages(client: httpx.AsyncClient) -> None:
    for path in ("/t/99999999999999999999999", "/p/0", "/t/abc", "/p/-1/historique"):
        assert (await client.get(path)).status_code == 404, path


async def test_remote_authors_are_shown_with_their_handle(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a reply stored by federation with a remote author and no local one
    await make_community(pool, "juridique", visibility="public")
    amina = await member(pool, "amina")
    created = await start(pool, amina, community="juridique")
    actor_id = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name)"
        " VALUES ('https://autre.example/u/fatou', 'Person', false, 'fatou', 'autre.example', 'Fatou D.')"
        " RETURNING id"
    )
    await pool.execute(
        "INSERT INTO posts (thread_id, remote_author_id, parent_id, source, content_html)"
        " VALUES ($1, $2, $3, 'Bonjour', '<p>Bonjour depuis ailleurs</p>')",
        created.thread_id,
        actor_id,
        created.post_id,
    )
    # When anyone reads the public thread
    page = await client.get(f"/t/{created.thread_id}")
    # Then the remote reply shows its author's name and handle
    assert "Fatou D." in page.text and "@fatou@autre.example" in page.text
    assert "Bonjour depuis ailleurs" in page.text


async def test_cached_post_fragments_never_leak_another_viewers_links(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a post read first by its author (which fills the fragment cache)
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "binta")
    created = await start(pool, amina)
    await login(client, "amina")
    own = await client.get(f"/t/{created.thread_id}")
    assert f'href="/p/{created.post_id}/modifier"' in own.text
    # When another member reads the same page
    async with new_client(app) as browser:
        await login(browser, "binta")
        other = await browser.get(f"/t/{created.thread_id}")
    # Then she gets the same post without the author's links
    assert "Corps du message d" in other.text
    assert "/modifier" not in other.text and "/supprimer" not in other.text
    assert f'href="/p/{created.post_id}/repondre"' in other.text
    # And an edit is visible at once (the cached fragment is not reused)
    await post_form(client, f"/p/{created.post_id}/modifier", {"title": "Un titre", "body": "Texte revu"})
    assert "Texte revu" in (await client.get(f"/t/{created.thread_id}")).text


async def test_an_empty_or_huge_reply_shows_the_form_again_and_writes_nothing(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await make_community(pool, "juridique", visibility="public")
    amina = await member(pool, "amina")
    created = await start(pool, amina, community="juridique")
    await login(client, "amina")
    path = f"/t/{created.thread_id}"
    for body in ("   ", "x" * 1_000_000):
        response = await post_form(client, f"{path}/repondre", {"body": body}, page=path)
        assert response.status_code == 400 and "Le message est" in response.text
    assert await pool.fetchval("SELECT count(*) FROM posts") == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox_events") == 1


async def test_cached_thread_page_shows_changes_made_by_any_writer(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a thread page already served (and cached)
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    created = await start(pool, amina)
    await login(client, "amina")
    thread_path = f"/t/{created.thread_id}"
    assert "Corps du message" in (await client.get(thread_path)).text
    # When a post is added, then edited, straight in the database (as the federation inbox does)
    post_id = await pool.fetchval(
        "INSERT INTO posts (thread_id, parent_id, source, content_html) VALUES ($1, $2, 'x', '<p>Arrivé d’ailleurs</p>') RETURNING id",
        created.thread_id,
        created.post_id,
    )
    # Then the next view shows it, and then its new text
    assert "Arrivé d’ailleurs" in (await client.get(thread_path)).text
    await pool.execute("UPDATE posts SET content_html = '<p>Corrigé</p>' WHERE id = $1", post_id)
    page = (await client.get(thread_path)).text
    assert "Corrigé" in page and "Arrivé d’ailleurs" not in page
