"""Markdown to safe HTML, done once at write time (posts.content_html).

Two layers, because one bug in either must not open a hole:
markdown-it-py renders CommonMark (+ tables, strikethrough) with raw HTML
disabled and its own link validation; nh3 then keeps only an allowlist close to
Mastodon's sanitiser (docs/architecture.md §3), http/https/mailto links with
``rel="nofollow noopener noreferrer"``, and no images at all (an image would
make every reader's browser call a third-party server).
"""

from __future__ import annotations

from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import escape

ALLOWED_TAGS = {
    "p", "br", "hr", "a", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "nofollow noopener noreferrer"


def _image_as_link(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """``![alt](url)`` becomes a plain link to the image, never an ``<img>``."""
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or str(token.attrGet("src"))
    return f'<a href="{escape(str(token.attrGet("src") or ""))}">{escape(alt)}</a>'


def _build_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


_markdown = _build_markdown()
_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    link_rel=LINK_REL,
    url_schemes=URL_SCHEMES,
    url_relative="pass_through",
)


def sanitize(html: str) -> str:
    """Keep only the allowlisted tags, attributes and URL schemes."""
    return _cleaner.clean(html)


def render(source: str) -> str:
    """Markdown source to the HTML stored with the post (safe to output as is)."""
    return sanitize(_markdown.render(source)).strip()


def to_plain(source: str, limit: int = 160) -> str:
    """The first words of a Markdown source, as plain text (for contexts and lists)."""
    text = " ".join(source.split())
    for mark in ("**", "__", "~~", "`", "# ", "> "):
        text = text.replace(mark, "")
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut + " …"
