"""Keyset pages over a member's lists whose cursor is an item's id (a notification, a
bookmarked post, a member of the directory): the page after or before the item named in
the URL, never OFFSET, so a page deep in a list costs what the first one does.

Each list's statement comes in three forms (:func:`forms`): the first page, the page
onwards from a cursor, the page backwards from it (read in the other order, then
reversed). A statement looks its cursor's sort key up itself (a sub-select run once, an
InitPlan: still an index condition), so a cursor is a plain id, and one that names
nothing the reader may list (someone else's bookmark, a member not in the directory)
gives an empty page, answered as a missing page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from node.db import MAX_BIGINT
from node.errors import NotFound

T = TypeVar("T")


@dataclass(frozen=True)
class At:
    """Where a page starts: at the top (``cursor`` None), or after / before an item."""

    cursor: int | None = None
    backwards: bool = False

    @classmethod
    def parse(cls, onwards: str | None, backwards: str | None) -> At:
        """The position the two query parameters name; a malformed id is a missing page."""
        raw, back = (backwards, True) if backwards else (onwards, False)
        if not raw:
            return cls()
        if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_BIGINT:
            raise NotFound()
        return cls(int(raw), back)

    @property
    def form(self) -> str:
        """Which form of the list's statement reads this page."""
        if self.cursor is None:
            return "first"
        return "backwards" if self.backwards else "onwards"


@dataclass
class Page:
    """One page of a list, with the cursors of the pages around it (None: no such page)."""

    items: list[asyncpg.Record]
    previous: int | None
    next: int | None


def forms(template: str, onwards: str, backwards: str, order: str) -> dict[str, str]:
    """The three forms of a list statement: ``template`` holds ``{cursor}`` (the
    condition ``onwards`` or ``backwards`` on the cursor, or nothing) and ``{order}`` (the
    list's ``order``, reversed for the backwards form: ``ASC`` or ``DESC``)."""
    reverse = "ASC" if order == "DESC" else "DESC"
    return {
        "first": template.format(cursor="", order=order),
        "onwards": template.format(cursor=f"AND {onwards}", order=order),
        "backwards": template.format(cursor=f"AND {backwards}", order=reverse),
    }


def window(rows: list[T], size: int, *, backwards: bool, at_top: bool) -> tuple[list[T], bool, bool]:
    """A keyset page's rows in display order (asked with ``size + 1`` rows, to tell
    whether more follow; a backwards page is read in the other order), and whether a
    page comes before it and after it. An empty page away from the top is a missing page.
    Shared by every keyset list, whatever its cursor is made of."""
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    if not rows and not at_top:
        raise NotFound()
    has_previous = bool(rows) and (more if backwards else not at_top)
    has_next = bool(rows) and (backwards or more)
    return rows, has_previous, has_next


def page(rows: list[asyncpg.Record], at: At, size: int, key: str = "id") -> Page:
    """The page ``rows`` make (see :func:`window`), its cursors the ``key`` of its
    first and last rows."""
    rows, has_previous, has_next = window(rows, size, backwards=at.backwards, at_top=at.cursor is None)
    return Page(rows, rows[0][key] if has_previous else None, rows[-1][key] if has_next else None)


def cursor_args(at: At) -> tuple[int, ...]:
    """The cursor's statement argument (none for the first page)."""
    return () if at.cursor is None else (at.cursor,)
