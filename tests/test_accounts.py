"""Registration, the waiting page, the moderators' queue, login and logout."""

from __future__ import annotations

import re
import time

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node import recovery
from tests.helpers import PASSWORD, csrf, login, make_community, make_user, new_client, post_form


def registration(**overrides: str) -> dict[str, str]:
    form = {
        "username": "fatou",
        "display_name": "Fatou Diallo",
        "email": "fatou@example.org",
        "password": "un-secret-assez-long",
        "password_confirm": "un-secret-assez-long",
        "profession": "psychosocial",
        "profession_detail": "Psychologue clinicienne",
        "organisation": "Centre Espoir",
        "country": "Sénégal",
        "motivation": "Échanger avec d'autres professionnelles sur la prise en charge.",
        "charter": "on",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


async def user_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM users")
    return count


async def test_registration_creates_a_pending_account_and_logs_the_person_in(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # When a person fills in the registration form
    response = await post_form(client, "/inscription", registration())

    # Then the account exists, pending, with every field, and the person sees the waiting page
    assert response.status_code == 303
    assert response.headers["location"] == "/en-attente"
    row = await pool.fetchrow("SELECT * FROM users WHERE username = 'fatou'")
    assert row["status"] == "pending"
    assert row["profession"] == "psychosocial"
    assert row["profession_detail"] == "Psychologue clinicienne"
    assert row["country"] == "Sénégal"
    assert row["charter_accepted_at"] is not None
    assert row["password_hash"].startswith("$argon2id$")
    waiting = await client.get("/en-attente")
    assert waiting.status_code == 200
    assert "en attente de validation" in waiting.text


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"username": ""}, "username", "Ce champ est obligatoire."),
        ({"display_name": "   "}, "display_name", "Ce champ est obligatoire."),
        ({"username": "Ab"}, "username", "3 à 30 caractères"),
        ({"username": "x" * 31}, "username", "trop long"),
        ({"motivation": "m" * 1_000_000}, "motivation", "trop long (2000 caractères au plus)"),
        ({"organisation": "Centre\x00Espoir"}, "organisation", "caractères invalides"),
        ({"email": "pas-une-adresse"}, "email", "Adresse e-mail invalide."),
        ({"password_confirm": "un-autre-secret-long"}, "password_confirm", "ne correspondent pas"),
        ({"password": "court", "password_confirm": "court"}, "password", "au moins 10 caractères"),
        ({"profession": "astronaute"}, "profession", "Choisissez une profession"),
        ({"profession": "autre", "profession_detail": ""}, "profession_detail", "Précisez votre profession"),
        ({"charter": ""}, "charter", "accepter la charte"),
    ],
)
async def test_bad_registration_input_gets_a_french_error_and_writes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, overrides: dict[str, str], field: str, message: str
) -> None:
    # Given an empty node
    before = await user_count(pool)

    # When the form is sent with one bad field
    response = await post_form(client, "/inscription", registration(**overrides))

    # Then the form comes back with the French error and the other values, and nothing is written
    assert response.status_code == 400
    assert message in response.text
    assert 'class="field invalid"' in response.text
    assert "Centre Espoir" in response.text or field == "organisation"
    assert "un-secret-assez-long" not in response.text  # never the password
    assert await user_count(pool) == before


async def test_invalid_utf8_in_the_form_body_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    token = await csrf(client, "/inscription")
    form = httpx.QueryParams(registration(csrf_token=token))
    for body in (
        str(form).encode() + b"&country=S%E9n%E9gal",  # percent-encoded latin-1 bytes
        str(form).encode().replace(b"country=", b"country=\xff\xfe"),  # raw invalid bytes
    ):
        response = await client.post(
            "/inscription", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 400
        assert "invalide" in response.text
    assert await user_count(pool) == 0


async def test_a_taken_username_is_said(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given an existing member
    await make_user(pool, "fatou", email="fatou@example.org")

    # When someone registers the same name (any case): usernames are public handles
    same_name = await post_form(
        client, "/inscription", registration(username="FATOU", email="autre@example.org")
    )

    # Then they get a clear error and no account is added
    assert same_name.status_code == 409
    assert "Ce nom d&#39;utilisateur est déjà pris." in same_name.text
    assert await user_count(pool) == 1


async def _register_as_a_newcomer(app: Starlette, username: str, email: str) -> tuple[httpx.Response, str]:
    """One registration from a fresh browser: the answer and the page it leads to."""
    async with new_client(app) as browser:
        response = await post_form(browser, "/inscription", registration(username=username, email=email))
        page = await browser.get(response.headers.get("location", "/"))
    # the session's own CSRF token differs, as it does between any two sessions
    return response, re.sub(r'value="[0-9a-f]{64}"', "TOKEN", page.text.replace(username, "NOM"))


async def test_registration_does_not_say_whose_email_is_a_members(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    # Given an existing member with her address
    fatou = await make_user(pool, "fatou", email="fatou@example.org")

    # When one person registers with a new address, another with hers (any case)
    new, new_page = await _register_as_a_newcomer(app, "awa", "awa@example.org")
    taken, taken_page = await _register_as_a_newcomer(app, "intrus", "Fatou@Example.org")

    # Then both get the same answer, the same cookies and the same page
    assert (new.status_code, new.headers["location"]) == (303, "/en-attente")
    assert (taken.status_code, taken.headers["location"]) == (303, "/en-attente")
    assert sorted(new.cookies) == sorted(taken.cookies)
    assert new_page == taken_page and "en attente de validation" in new_page
    assert "adresse" not in taken_page

    # And each address gets one e-mail: only its owner learns which case it was
    mails = await pool.fetch("SELECT recipient, user_id, kind, body FROM mail_queue ORDER BY id")
    assert [(m["recipient"], m["kind"]) for m in mails] == [
        ("awa@example.org", "registration"),
        ("Fatou@Example.org", "registration"),
    ]
    assert "bien reçu votre demande" in mails[0]["body"]
    assert mails[1]["user_id"] == fatou and "déjà celle de votre compte" in mails[1]["body"]

    # And the flagged request waits for the moderators, who cannot approve it
    intrus = await pool.fetchrow("SELECT id, status, email_conflict FROM users WHERE username = 'intrus'")
    assert intrus["status"] == "pending" and intrus["email_conflict"] is True
    await make_user(pool, "moderatrice", role="moderator")
    await login(client, "moderatrice")
    queue = await client.get("/moderation")
    assert "déjà celle d'un autre compte" in queue.text
    assert f"/moderation/inscriptions/{intrus['id']}/approuver" not in queue.text
    refused = await post_form(client, f"/moderation/inscriptions/{intrus['id']}/approuver", {})
    assert refused.status_code == 409
    assert await pool.fetchval("SELECT status FROM users WHERE id = $1", intrus["id"]) == "pending"


async def test_a_member_cannot_take_the_name_of_a_community(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_community(pool, "juridique")
    response = await post_form(client, "/inscription", registration(username="juridique"))
    assert response.status_code == 409
    assert "déjà pris" in response.text
    assert await user_count(pool) == 0


async def test_registration_is_rate_limited_per_address(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    from node.web.accounts_views import REGISTER_PER_ADDRESS

    # Given an address that used all its registration attempts of the hour (with errors)
    for _ in range(REGISTER_PER_ADDRESS[0]):
        response = await post_form(client, "/inscription", registration(charter=""))
        assert response.status_code == 400

    # When it tries once more with a valid form
    response = await post_form(client, "/inscription", registration())

    # Then it gets 429 with a French message and no account is created
    assert response.status_code == 429
    assert "Trop de tentatives" in response.text
    assert await user_count(pool) == 0


async def test_pending_person_sees_only_the_waiting_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a person whose registration is pending, logged in
    await post_form(client, "/inscription", registration())
    await make_user(pool, "amina")

    # Then member pages answer like missing pages, and the waiting page is theirs
    for path in ("/compte", "/u/amina", "/u/fatou", "/moderation", "/admin", "/admin/membres"):
        response = await client.get(path)
        assert response.status_code == 404, path
    waiting = await client.get("/en-attente")
    assert "en attente de validation" in waiting.text
    assert 'href="/compte"' not in waiting.text
    assert (await client.get("/connexion")).status_code == 200


async def test_moderator_approves_and_the_member_can_use_the_site_at_once(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a pending registration, and a moderator
    await post_form(client, "/inscription", registration())
    await make_user(pool, "modo", role="moderator")
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as moderator:
        await login(moderator, "modo")
        queue = await moderator.get("/moderation")
        assert queue.status_code == 200
        for shown in (
            "Fatou Diallo",
            "fatou@example.org",
            "Psychologue clinicienne",
            "Centre Espoir",
            "Sénégal",
        ):
            assert shown in queue.text
        user_id = await pool.fetchval("SELECT id FROM users WHERE username = 'fatou'")

        # When the moderator approves it
        response = await post_form(
            moderator, f"/moderation/inscriptions/{user_id}/approuver", {}, page="/moderation"
        )
        assert response.status_code == 303

    # Then the person's existing session can use the member pages, and the decision is audited
    assert (await client.get("/compte")).status_code == 200
    assert (await client.get("/u/fatou")).status_code == 200
    assert (await client.get("/en-attente")).headers["location"] == "/"
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'registration.approve'")
    assert audit["target_id"] == str(user_id)
    assert audit["actor_label"] == "modo"


async def test_refusal_needs_a_reason_and_shows_it_to_the_person(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await post_form(client, "/inscription", registration())
    await make_user(pool, "modo", role="moderator")
    user_id = await pool.fetchval("SELECT id FROM users WHERE username = 'fatou'")
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as moderator:
        await login(moderator, "modo")
        path = f"/moderation/inscriptions/{user_id}/refuser"

        # When the moderator refuses without a reason, nothing changes
        empty = await post_form(moderator, path, {"reason": "  "}, page="/moderation")
        assert empty.status_code == 400
        assert "Ce champ est obligatoire." in empty.text
        assert await pool.fetchval("SELECT status FROM users WHERE id = $1", user_id) == "pending"

        # When they give one
        reason = "Nous n'avons pas pu vérifier votre organisation."
        refused = await post_form(moderator, path, {"reason": reason}, page="/moderation")
        assert refused.status_code == 303

    # Then the person sees the reason, and the decision is audited with it
    page = await client.get("/en-attente")
    assert "refusée" in page.text
    assert "Nous n&#39;avons pas pu vérifier votre organisation." in page.text
    assert (await client.get("/compte")).status_code == 404
    assert await pool.fetchval("SELECT reason FROM audit_log WHERE action = 'registration.refuse'") == reason


async def test_a_plain_member_cannot_decide_registrations(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    pending_id = await make_user(pool, "fatou", status="pending")
    await make_user(pool, "amina")
    await login(client, "amina")
    assert (await client.get("/moderation")).status_code == 404
    token = await csrf(client, "/compte")
    response = await client.post(
        f"/moderation/inscriptions/{pending_id}/approuver", data={"csrf_token": token}
    )
    assert response.status_code == 404
    assert await pool.fetchval("SELECT status FROM users WHERE id = $1", pending_id) == "pending"


async def test_login_and_logout(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a member
    await make_user(pool, "amina")

    # When she logs in with a local ?next=
    token = await csrf(client, "/connexion?next=/compte")
    response = await client.post(
        "/connexion", data={"username": "Amina", "password": PASSWORD, "next": "/compte", "csrf_token": token}
    )

    # Then she lands there with a session
    assert response.status_code == 303
    assert response.headers["location"] == "/compte"
    assert "HttpOnly" in response.headers["set-cookie"]
    assert "SameSite=Lax" in response.headers["set-cookie"]
    assert (await client.get("/compte")).status_code == 200

    # When she logs out, the session is gone from the table
    logout = await post_form(client, "/deconnexion", {}, page="/compte")
    assert logout.status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0
    assert (await client.get("/compte")).status_code == 404


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
async def test_login_never_redirects_off_site(
    client: httpx.AsyncClient, pool: asyncpg.Pool, target: str
) -> None:
    await make_user(pool, "amina")
    response = await post_form(
        client, "/connexion", {"username": "amina", "password": PASSWORD, "next": target}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    # When one tries a wrong password for a real member, and any password for a missing one
    wrong = await post_form(client, "/connexion", {"username": "amina", "password": "pas-le-bon-secret"})
    nobody = await post_form(client, "/connexion", {"username": "personne", "password": "pas-le-bon-secret"})

    # Then both answers are identical but for the name typed in
    assert wrong.status_code == nobody.status_code == 400
    assert "Identifiant ou mot de passe incorrect." in wrong.text
    assert nobody.text == wrong.text.replace('value="amina"', 'value="personne"')
    assert "set-cookie" not in nobody.headers or "vbg_session=" not in nobody.headers["set-cookie"]


async def test_suspended_account_cannot_log_in(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina", status="suspended")
    response = await post_form(client, "/connexion", {"username": "amina", "password": PASSWORD})
    assert response.status_code == 403
    assert "suspendu" in response.text
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0


async def test_login_is_rate_limited_per_account(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    from node.web.accounts_views import LOGIN_PER_ACCOUNT

    # Given a member whose password was guessed wrong as often as allowed
    await make_user(pool, "amina")
    for _ in range(LOGIN_PER_ACCOUNT[0]):
        response = await post_form(client, "/connexion", {"username": "amina", "password": "essai-au-hasard"})
        assert response.status_code == 400

    # When the right password comes next, even from another address
    transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        response = await post_form(other, "/connexion", {"username": "AMINA", "password": PASSWORD})

    # Then it is refused with 429 and no session is opened
    assert response.status_code == 429
    assert "Trop de tentatives" in response.text
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0


async def test_unknown_user_costs_a_password_verification_too(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member; a missing name must not answer faster than a wrong password
    # (the dummy argon2 verification costs ~50x a database miss, hence the loose bound)
    await make_user(pool, "amina")

    async def timed(username: str) -> float:
        token = await csrf(client, "/connexion")
        start = time.perf_counter()
        await client.post(
            "/connexion", data={"username": username, "password": "faux-secret", "csrf_token": token}
        )
        return time.perf_counter() - start

    wrong = min([await timed("amina") for _ in range(2)])
    unknown = min([await timed(f"personne{n}") for n in range(2)])
    assert unknown > 0.3 * wrong


@pytest.mark.parametrize("status", ["pending", "refused"])
async def test_a_person_not_yet_approved_logs_in_to_the_waiting_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool, status: str
) -> None:
    await make_user(pool, "fatou", status=status)
    token = await csrf(client, "/connexion")
    response = await client.post(
        "/connexion", data={"username": "fatou", "password": PASSWORD, "next": "/compte", "csrf_token": token}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/en-attente"
    assert (await client.get("/en-attente")).status_code == 200
    assert (await client.get("/compte")).status_code == 404


async def test_a_flagged_registration_owns_no_mailbox(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    # Given a member, and a registration that gave her address
    fatou = await make_user(pool, "fatou", email="fatou@example.org")
    await _register_as_a_newcomer(app, "intrus", "fatou@example.org")
    await pool.execute("DELETE FROM mail_queue")

    # When a reset link is asked by that address, or by the flagged account's name
    async with pool.acquire() as conn:
        await recovery.send_by_email(conn, "FATOU@example.org", base_url="http://testserver", node_name="N")
        await recovery.send_by_email(conn, "intrus", base_url="http://testserver", node_name="N")

    # Then only the owner's account gets one
    mails = await pool.fetch("SELECT user_id, body FROM mail_queue")
    assert [m["user_id"] for m in mails] == [fatou] and "« fatou »" in mails[0]["body"]
