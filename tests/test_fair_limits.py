"""Limits that hit the right people: failed logins only, and floods of posts."""

from __future__ import annotations

import html

import asyncpg
import httpx

from node.web.accounts_views import LOGIN_PER_ADDRESS
from node.web.forum_views import POSTS_PER_MINUTE
from tests.helpers import PASSWORD, add_thread, login, make_community, make_user, post_form


async def test_a_training_room_behind_one_address_logs_in_past_the_address_limit(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given one member, logging in successfully more often than the address limit
    await make_user(pool, "amina")
    for _ in range(LOGIN_PER_ADDRESS[0] + 2):
        response = await post_form(client, "/connexion", {"username": "amina", "password": PASSWORD})
        # Then every login succeeds: successes are not counted
        assert response.status_code == 303
    # And no attempt stays counted
    hits = await pool.fetchval("SELECT coalesce(sum(hits), 0) FROM rate_limits WHERE key LIKE 'login:%'")
    assert hits == 0


async def test_a_member_logs_in_with_her_email_address(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina", email="Amina.K@example.org")
    wrong = await post_form(
        client, "/connexion", {"username": "amina.k@example.org", "password": "pas-le-bon-mdp"}
    )
    assert wrong.status_code == 400 and "Identifiant ou mot de passe incorrect" in wrong.text
    right = await post_form(client, "/connexion", {"username": "amina.k@example.org", "password": PASSWORD})
    assert right.status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 1


async def test_a_flood_of_replies_is_stopped_and_the_refused_text_kept(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member who replied as often as a minute allows
    await make_user(pool, "amina")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    await login(client, "amina")
    for n in range(POSTS_PER_MINUTE[0]):
        assert (
            await post_form(client, "/t/1/repondre", {"body": f"Réponse {n}"}, page="/t/1")
        ).status_code == 303
    # When she sends one more at once
    text = "Une réponse de trop <mais> précieuse"
    response = await post_form(client, "/t/1/repondre", {"body": text}, page="/t/1")
    # Then it is refused with a plain sentence, not stored, and her text is in the form
    assert response.status_code == 429
    assert "Vous publiez très vite" in response.text
    assert html.escape(text, quote=False) in response.text
    assert await pool.fetchval("SELECT count(*) FROM posts") == 1 + POSTS_PER_MINUTE[0]
    # And a new thread is refused the same way, keeping title and text
    refused = await post_form(client, "/c/medical/nouveau", {"title": "Un titre gardé", "body": text})
    assert refused.status_code == 429
    assert "Un titre gardé" in refused.text and html.escape(text, quote=False) in refused.text


async def test_the_username_and_the_email_share_one_budget_of_attempts(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    from node.web.accounts_views import LOGIN_PER_ACCOUNT

    await make_user(pool, "amina", email="amina@example.org")
    for n in range(LOGIN_PER_ACCOUNT[0]):
        name = "amina" if n % 2 else "AMINA@example.org"
        assert (
            await post_form(client, "/connexion", {"username": name, "password": "essai-au-hasard"})
        ).status_code == 400
    blocked = await post_form(client, "/connexion", {"username": "amina@example.org", "password": PASSWORD})
    assert blocked.status_code == 429
