"""The one sanitiser of HTML that comes from other servers (post bodies, actor bios):
Mastodon's set of tags, links limited to http(s) and given ``rel="nofollow noopener
noreferrer"``, ``class`` kept only for the microformats peers use for mentions and
hashtags, scripts and styles dropped with their content. Our own HTML is made by
``node.markup`` (Markdown, at write time) and is filtered again to Mastodon's set when
it goes out (``federation.objects.clean_html``)."""

from __future__ import annotations

import html
import re

import nh3

BODY_MAX = 100_000
ALLOWED_TAGS = {
    "p", "br", "span", "a", "abbr", "del", "s", "pre", "blockquote", "code", "b", "strong",
    "u", "i", "em", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "sup", "sub",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "translate"},
    "span": {"translate"},
    "abbr": {"title"},
    "ol": {"start", "reversed"},
    "li": {"value"},
}
# nh3 keeps a ``class`` attribute reduced to these values (``class`` itself must not be listed above).
ALLOWED_CLASSES = {
    "a": {"mention", "hashtag", "u-url", "status-link", "unhandled-link"},
    "span": {"h-card", "mention", "hashtag", "invisible", "ellipsis", "u-url"},
}
_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    allowed_classes=ALLOWED_CLASSES,
    link_rel="nofollow noopener noreferrer",
    url_schemes={"http", "https"},
    url_relative="deny",
)
_text_cleaner = nh3.Cleaner(tags=set(), clean_content_tags={"script", "style"}, attributes={})
_BLOCK_END = re.compile(r"(?i)</(p|h[1-6]|li|blockquote|pre)>|<br\s*/?>")


def sanitize(content: str) -> str:
    return _cleaner.clean(content[:BODY_MAX]).strip()


def to_text(content: str) -> str:
    """Plain text of an HTML fragment, one line per block."""
    marked = _BLOCK_END.sub(lambda m: m.group(0) + "\n", content[:BODY_MAX])
    return html.unescape(_text_cleaner.clean(marked)).strip()
