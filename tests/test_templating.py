"""Template rendering: compile-time translation of literal messages (node/web/templating.py)."""

from __future__ import annotations

from node.web.templating import templates


def test_literal_messages_are_translated_when_compiled_as_the_i18n_extension_would() -> None:
    source = (
        "{{ _(\"L'équipe <b>\") }}|{{ _('a %% b') }}|{{ _('oui') if flag else _('non') }}"
        "|{{ _('%(n)s pages', n=3) }}|{{ _('%(who)s', who=name) }}"
    )
    compiled = templates.compile(source, raw=True)
    # the literals are constants of the compiled template, not calls made at every render:
    # printed on their own, part of its text (nothing escaped again at render); in an
    # expression, trusted markup
    assert 'yield "L\'équipe <b>|a % b|"' in compiled
    assert "Markup('oui')" in compiled and "Markup('non')" in compiled
    # the same output as jinja2's newstyle gettext: the message trusted as markup, %% → %,
    # calls with arguments still formatted at render, their values escaped
    rendered = templates.from_string(source).render(flag=False, name="<i>x</i>")
    assert rendered == "L'équipe <b>|a % b|non|3 pages|&lt;i&gt;x&lt;/i&gt;"
