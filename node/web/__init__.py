"""Web pages of the node (starlette + jinja2)."""
