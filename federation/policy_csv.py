"""Domain block lists in Mastodon's CSV format (docs/architecture.md §3).

    #domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
    spam.example,suspend,false,false,Spam,false

Mastodon's severities are suspend, silence and noop; our ``reject_media`` severity is
written as ``noop`` with ``#reject_media`` true, and read back the same way. A file
without the header (one domain per line, the legacy format) suspends each domain.
An import validates every line first, then applies all of them in one transaction:
one bad line and nothing changes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from federation import policy
from federation.policy import BlockRequest, InvalidDomain, Who
from node import audit
from node.db import Conn
from node.errors import BadRequest
from node.i18n import _

HEADER = ["#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment", "#obfuscate"]
MAX_LINES = 100_000
MAX_COMMENT = 1000
MAX_ERRORS_SHOWN = 20
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f", ""}
_EXPORTED_SEVERITY = {"suspend": "suspend", "silence": "silence", "reject_media": "noop", "noop": "noop"}


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


class BlocklistError(BadRequest):
    """The file has malformed lines; ``errors`` lists them (line numbers from 1)."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        shown = [_("ligne {line} : {message}").format(line=e.line, message=e.message) for e in errors]
        if len(errors) > MAX_ERRORS_SHOWN:
            shown = shown[:MAX_ERRORS_SHOWN] + [
                _("… et {n} autres erreurs").format(n=len(errors) - MAX_ERRORS_SHOWN)
            ]
        super().__init__(_("Rien n'a été importé. ") + " ; ".join(shown))


def export_csv(blocks: Iterable[Mapping[str, Any]]) -> str:
    """The blocks as a Mastodon CSV file (with its header)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for b in blocks:
        writer.writerow(
            [
                b["domain"],
                _EXPORTED_SEVERITY[b["severity"]],
                _bool_text(b["reject_media"] or b["severity"] == "reject_media"),
                _bool_text(b["reject_reports"]),
                b["public_comment"],
                _bool_text(b["obfuscate"]),
            ]
        )
    return out.getvalue()


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _parse_bool(value: str, column: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(
        _("valeur « {value} » invalide pour {column} (true ou false)").format(value=value, column=column)
    )


def _parse_severity(value: str, reject_media: bool) -> str:
    severity = value.strip().lower() or "suspend"
    if severity not in policy.STORED_SEVERITIES:
        raise ValueError(
            _("sévérité « {value} » inconnue (suspend, silence, noop ou reject_media)").format(value=value)
        )
    if severity == "noop" and reject_media:
        return "reject_media"
    return severity


def _parse_row(cells: list[str], columns: dict[str, int] | None) -> BlockRequest:
    if columns is None:  # legacy: one domain per line
        values = [c for c in cells if c.strip()]
        if len(values) != 1:
            raise ValueError(_("un seul domaine par ligne attendu (ou l'en-tête #domain,#severity,…)"))
        return BlockRequest(policy.normalise_domain(values[0]), "suspend")

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    raw_domain = cell("domain")
    try:
        domain = policy.normalise_domain(raw_domain)
    except InvalidDomain as exc:
        raise ValueError(_("domaine « {value} » invalide").format(value=raw_domain)) from exc
    reject_media = _parse_bool(cell("reject_media"), "#reject_media")
    comment = cell("public_comment").strip()
    if len(comment) > MAX_COMMENT:
        raise ValueError(_("commentaire public trop long ({n} caractères au plus)").format(n=MAX_COMMENT))
    return BlockRequest(
        domain,
        _parse_severity(cell("severity"), reject_media),
        reject_media=reject_media,
        reject_reports=_parse_bool(cell("reject_reports"), "#reject_reports"),
        public_comment=comment,
        obfuscate=_parse_bool(cell("obfuscate"), "#obfuscate"),
    )


def _header(cells: list[str]) -> dict[str, int] | None:
    names = [c.strip().lower() for c in cells]
    if not names or names[0] != "#domain":
        return None
    return {name.lstrip("#"): i for i, name in enumerate(names) if name.startswith("#")}


def parse_csv(text: str, *, own_domain: str | None = None) -> list[BlockRequest]:
    """Every block of the file, or BlocklistError naming each bad line (nothing partial)."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: dict[str, int] | None = None
    seen: dict[str, int] = {}
    requests: list[BlockRequest] = []
    errors: list[LineError] = []
    own = policy.normalise_domain(own_domain) if own_domain else None
    first = True
    try:
        for cells in reader:
            line = reader.line_num
            if line > MAX_LINES:
                errors.append(
                    LineError(line, _("fichier trop long ({n} lignes au plus)").format(n=MAX_LINES))
                )
                break
            if not any(c.strip() for c in cells):
                continue
            if first:
                first = False
                columns = _header(cells)
                if columns is not None:
                    continue
            if cells[0].lstrip().startswith("#"):
                continue  # a comment line
            try:
                request = _parse_row(cells, columns)
            except (ValueError, InvalidDomain) as exc:
                message = exc.message if isinstance(exc, InvalidDomain) else str(exc)
                errors.append(LineError(line, message))
                continue
            if request.domain == own:
                errors.append(LineError(line, _("c'est le domaine de ce nœud")))
            elif request.domain in seen:
                errors.append(
                    LineError(line, _("domaine déjà présent ligne {n}").format(n=seen[request.domain]))
                )
            else:
                seen[request.domain] = line
                requests.append(request)
    except csv.Error as exc:
        errors.append(LineError(reader.line_num, _("ligne CSV illisible ({error})").format(error=exc)))
    if errors:
        raise BlocklistError(errors)
    return requests


async def import_csv(
    conn: asyncpg.Connection, text: str, who: Who = policy.CLI, *, own_domain: str | None = None
) -> int:
    """Validate the whole file, then apply every block in one transaction; return the count."""
    requests = parse_csv(text, own_domain=own_domain)
    async with conn.transaction():
        for request in requests:
            await policy.apply_block(conn, request, who, own_domain=own_domain, via="import")
        await audit.record(
            conn,
            "federation.import_blocks",
            actor_id=who.user_id,
            actor_label=who.label,
            target_type="domain_blocks",
            details={"count": len(requests), "domains": [r.domain for r in requests][:1000]},
        )
    return len(requests)


async def export_text(conn: Conn) -> str:
    return export_csv(await policy.list_blocks(conn))
