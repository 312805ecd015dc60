"""Form errors a person can fix: named, linked, announced, all in one round."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import httpx

from tests.helpers import login, make_user, post_form

CSS = Path(__file__).resolve().parents[1] / "static" / "site.css"


def contrast(hex_a: str, hex_b: str) -> float:
    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(hex_a), luminance(hex_b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


async def test_every_error_names_its_field_links_to_it_and_is_announced(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a taken username
    await make_user(pool, "amina")
    # When someone sends the registration form with that name and nothing else
    response = await post_form(client, "/inscription", {"username": "amina", "email": "x"})
    page = response.text
    assert response.status_code == 400
    # Then the summary takes the focus, counts the errors and names each field with a link
    assert re.search(r'<div class="error-summary" role="alert" id="erreurs" tabindex="-1" autofocus>', page)
    for name, label in (("country", "Pays"), ("organisation", "Organisation"), ("email", "Adresse e-mail"),
                        ("charter", "Charte")):  # fmt: skip
        assert f'<a href="#f-{name}">{label}</a> :' in page
    # And the taken username is said in the same round as the other errors
    assert '<a href="#f-username">Nom d&#39;utilisateur</a> : Ce nom d&#39;utilisateur est déjà pris.' in page
    # And each field in error is marked and points at its message (and its help)
    assert re.search(r'id="f-country"[^>]*aria-invalid="true" aria-describedby="e-country"', page)
    assert re.search(
        r'id="f-username"[^>]*aria-invalid="true" aria-describedby="e-username h-username"', page
    )
    assert 'id="e-country"' in page and 'id="f-charter"' in page


async def test_pages_have_a_skip_link_and_say_where_the_member_is(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    await login(client, "amina")
    page = (await client.get("/communautes")).text
    assert '<a class="skip" href="#contenu">' in page and '<main id="contenu"' in page
    assert '<a href="/communautes" aria-current="page">' in page
    assert '<a href="/" aria-current' not in page


def test_field_borders_stand_out_and_errors_show_on_text_inputs() -> None:
    css = CSS.read_text()
    border = re.search(r"\.field input\[type=text\][^{]*\{[^}]*border:1px solid (#[0-9a-f]{6})", css)
    assert border and contrast(border.group(1), "#ffffff") >= 3.0
    # The error rule is at least as specific as the field rule, so it wins on text inputs
    assert ".field.invalid input[type=text]" in css
