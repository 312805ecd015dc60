"""Federation's HTML admin pages (delivery queue, instance policy), served by the
forum's web app. Unlike the rest of ``federation``, these modules render templates
and read browser forms, through the forum's page helpers (``node.web.templating``,
``node.web.forms``, ``node.web.requests``) and nothing else of ``node.web``
(the import-linter contracts in ``pyproject.toml`` check it)."""
