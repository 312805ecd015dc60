"""Logging set-up: plain text lines, or one JSON object a line (``VBG_LOG_FORMAT=json``).

The node never logs message content (docs/architecture.md §5): log calls carry ids, statuses and
reasons. The JSON lines carry exactly what the text lines do — time, level, logger,
the event's text, the process id, and the traceback of an exception — so switching
format reveals nothing more.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line (for journald, Loki, Elasticsearch…)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Configure the root logger of this process (and of the processes it forks)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def granian_config(fmt: str) -> dict[str, Any] | None:
    """Granian's own log formatters, in JSON too when the node logs JSON."""
    if fmt != "json":
        return None
    return {
        "formatters": {
            "generic": {"()": "node.logs.JsonFormatter"},
            "access": {"()": "node.logs.JsonFormatter"},
        }
    }
