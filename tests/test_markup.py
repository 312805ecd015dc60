"""Markdown is rendered once and sanitised with an allowlist (no script, no raw HTML, no images)."""

from __future__ import annotations

from node import markup


def test_commonmark_with_tables_and_strikethrough_is_rendered() -> None:
    # Given a body using emphasis, a list, a table and strikethrough
    source = "**gras** *italique* ~~barré~~\n\n- un\n- deux\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    # When it is rendered
    html = markup.render(source)
    # Then the allowed structure is kept
    for tag in ("<strong>gras</strong>", "<em>italique</em>", "<s>barré</s>", "<li>un</li>", "<td>1</td>"):
        assert tag in html


def test_script_and_raw_html_are_shown_as_text_never_as_markup() -> None:
    html = markup.render('<script>alert(1)</script>\n\n<img src=x onerror=alert(1)> <a href="x">raw</a>')
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;" in html


def test_javascript_and_data_links_lose_their_target() -> None:
    html = markup.render("[a](javascript:alert(1)) [b](data:text/html,hi) [c](vbscript:x) [d](JAVASCRIPT:x)")
    # The links stay as inert text: nothing clickable is produced
    assert "<a" not in html
    assert "[a](javascript:alert(1))" in html


def test_http_links_get_nofollow_noopener_noreferrer() -> None:
    html = markup.render("[site](https://example.org/page) <https://example.org/auto> [m](mailto:a@b.fr)")
    assert '<a href="https://example.org/page" rel="nofollow noopener noreferrer">site</a>' in html
    assert 'href="mailto:a@b.fr"' in html


def test_images_become_plain_links_never_img_tags() -> None:
    html = markup.render("![schéma](https://tracker.example/pixel.png) ![x](data:image/png;base64,AAAA)")
    assert "<img" not in html
    assert '<a href="https://tracker.example/pixel.png" rel="nofollow noopener noreferrer">schéma</a>' in html
    assert "data:" not in html


def test_sanitizer_drops_what_is_not_allowlisted_even_if_markdown_let_it_through() -> None:
    dirty = '<p onclick="x()" style="color:red">ok<iframe src="https://e"></iframe><a href="javascript:x">l</a></p>'
    clean = markup.sanitize(dirty)
    assert clean.startswith("<p>ok")
    assert "iframe" not in clean and "onclick" not in clean and "javascript" not in clean


def test_to_plain_gives_the_first_words() -> None:
    text = markup.to_plain("# Titre\n\n**Bonjour** " + "mot " * 100, limit=40)
    assert text.startswith("Titre Bonjour mot")
    assert text.endswith("…") and len(text) <= 42
