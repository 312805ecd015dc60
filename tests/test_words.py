"""Words: the glossary's terms and its one inclusive-writing convention, in every template.

The text a member can read is a template's content outside ``{% … %}`` and ``{# … #}``
(jinja code and comments) once the CSRF plumbing (``csrf_token``, ``csrf()``) is removed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
GLOSSARY = ROOT / "docs" / "glossaire.md"

BANNED = ("liste blanche", "liste autorisée", "csrf", "markdown", "whitelist")
# Masculine-only plurals for people: the glossary's convention is the middle dot.
MASCULINE_ONLY = re.compile(
    r"\b(modérateurs|administrateurs|professionnels|experts|utilisateurs|animateurs|intervenants)\b", re.I
)
_CODE = re.compile(r"{%.*?%}|{#.*?#}", re.S)
_PLUMBING = re.compile(r"csrf_token|\bcsrf\(\)|f\.csrf\(\)")


def readable(path: Path) -> str:
    return _PLUMBING.sub("", _CODE.sub("", path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT / "templates")))
def test_no_template_shows_a_word_the_glossary_set_aside(path: Path) -> None:
    text = readable(path).lower()
    for word in BANNED:
        assert word not in text, f"{path.name} shows « {word} » (see docs/glossaire.md)"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT / "templates")))
def test_people_are_written_with_the_middle_dot(path: Path) -> None:
    # Only inside translated strings: CSS classes and variables (``expert``) are code.
    strings = " ".join(m.group(2) for m in re.finditer(r'_\((["\'])(.*?)(?<!\\)\1', path.read_text()))
    found = MASCULINE_ONLY.findall(strings)
    assert not found, f"{path.name}: {found} (écrire « modérateur·rice·s », « expert·e·s »…)"


def test_the_glossary_defines_the_words_the_interface_uses() -> None:
    text = GLOSSARY.read_text(encoding="utf-8")
    for term in ("nœud", "instance partenaire", "liste d'autorisation", "mise en forme", "point médian",
                 "modérateur·rice", "membre supprimé"):  # fmt: skip
        assert term in text


def test_the_check_sees_a_banned_word_in_visible_text_only(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '{# CSRF: see forms #}<input name="csrf_token">{{ csrf() }}<p>{{ _("Mode liste blanche") }}</p>'
    )
    text = readable(page).lower()
    assert "csrf" not in text and "liste blanche" in text
