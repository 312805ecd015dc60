"""Words: the glossary's terms and its one inclusive-writing convention, in every template.

The text a member can read is a template's content outside ``{% … %}`` and ``{# … #}``
(jinja code and comments) once the CSRF plumbing (``csrf_token``, ``csrf()``) is removed.
"""

from __future__ import annotations

import ast
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


def french_messages() -> list[tuple[str, int, str]]:
    """French text literals of node/ and federation/ (docstrings excluded): what the node
    shows or sends. The demo's sample posts are content, not messages."""
    found = []
    for base in ("node", "federation"):
        for path in sorted((ROOT / base).rglob("*.py")):
            if path.name == "demo.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and re.search(r"[éèàçêù]|\b(le|la|les|des|une|du)\b", node.value)
                ):
                    found.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return found


def test_the_nodes_messages_follow_the_glossary_too() -> None:
    wrong = [
        (path, line, text[:80])
        for path, line, text in french_messages()
        if any(word in text.lower() for word in BANNED) or MASCULINE_ONLY.search(text)
    ]
    assert wrong == []
