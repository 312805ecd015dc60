"""Translation layer. Message ids are the French texts (French first); other
languages come from compiled catalogs under ``node/locale/<lang>/LC_MESSAGES``.

Code calls ``_("…")``; templates use ``{{ _("…") }}`` / ``{% trans %}`` through
jinja2's i18n extension, installed with the same translations.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = "fr"


@lru_cache(maxsize=8)
def translations(locale: str = DEFAULT_LOCALE) -> gettext.NullTranslations:
    if locale == DEFAULT_LOCALE:
        return gettext.NullTranslations()  # the message ids are the French texts
    from babel.support import Translations  # only a node in another language needs Babel

    return Translations.load(str(LOCALE_DIR), [locale], domain="messages")


def _(message: str) -> str:
    """Translate ``message`` into the node's language (French by default)."""
    return translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations().ngettext(singular, plural, n)
