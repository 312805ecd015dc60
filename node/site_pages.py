"""Pages of the node the admins edit in the browser: the legal and privacy page.

Table ``site_pages`` (owned here): the admin's source text and its sanitised HTML,
rendered with the forum's formatting (``node.markup``). Until an admin writes it, the
page shows a default text saying what the node stores. Every edit is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from node import audit, markup
from node.db import Conn
from node.errors import BadRequest
from node.sessions import User

LEGAL = "legal"
MAX_SOURCE = 50_000

SELECT_PAGE = "SELECT source, html, updated_at FROM site_pages WHERE slug = $1"
UPSERT_PAGE = """
INSERT INTO site_pages (slug, source, html, updated_by) VALUES ($1, $2, $3, $4)
ON CONFLICT (slug) DO UPDATE SET source = $2, html = $3, updated_by = $4, updated_at = now()
"""

DEFAULT_LEGAL = """\
## Qui héberge ce nœud

Ce nœud du Réseau VBG est hébergé par l'organisation qui l'administre. Ses
administrateur·rice·s n'ont pas encore complété cette page : demandez-leur qui est
responsable du traitement des données et où le serveur est hébergé.

## Ce que le nœud enregistre

- votre compte : nom d'utilisateur, nom affiché, adresse e-mail, profession,
  organisation, pays, la motivation donnée lors de la demande de compte ;
- vos messages, réponses et documents, et les communautés que vous suivez ;
- vos sessions ouvertes (navigateur, adresse IP, dernière activité), effacées
  dès qu'elles expirent (30 jours sans visite) ;
- le journal des actions de modération et d'administration.

Les messages privés sont chiffrés sur le serveur. Les communautés réservées aux
membres ne sont lues que par les membres du nœud et des nœuds partenaires approuvés.

## Vos droits

Depuis la page « Mon compte », vous pouvez corriger votre profil, télécharger
vos données et supprimer votre compte.
"""


@dataclass(frozen=True)
class Page:
    source: str
    html: str
    updated_at: datetime | None


async def page(conn: Conn, slug: str) -> Page:
    """The page as the admins wrote it, or its default text."""
    row = await conn.fetchrow(SELECT_PAGE, slug)
    if row is None:
        return Page(DEFAULT_LEGAL, markup.render(DEFAULT_LEGAL), None)
    return Page(row["source"], row["html"], row["updated_at"])


async def save(conn: asyncpg.Connection, slug: str, source: str, admin: User) -> None:
    source = source.strip()
    if not source:
        raise BadRequest(fields={"source": "Le texte de la page est vide."})
    if len(source) > MAX_SOURCE:
        raise BadRequest(fields={"source": f"Le texte est trop long ({MAX_SOURCE} caractères au plus)."})
    async with conn.transaction():
        await conn.execute(UPSERT_PAGE, slug, source, markup.render(source), admin.id)
        await audit.record(
            conn,
            "site_page.edit",
            actor_id=admin.id,
            actor_label=admin.username,
            target_type="site_page",
            target_id=slug,
        )
