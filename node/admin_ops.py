"""``vbg-node admin check``, ``backup`` and ``restore``: the node's upkeep commands.

They run on the database as it is (no migration first): ``check`` reports pending
migrations instead of applying them, ``backup`` copies what is there, ``restore``
needs an empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import asyncpg

from node import backups, checks, db
from node.admin_commands import raw_admin_command
from node.errors import AppError
from node.settings import Settings

CONNECT_TIMEOUT = 5.0


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        help="instance dont comparer l'horloge (domaine ; plusieurs --peer possibles)",
    )


@raw_admin_command("check", "vérifier la configuration et l'environnement du nœud", _check_args)
async def check(settings: Settings, dsn: str, args: argparse.Namespace) -> None:
    conn: asyncpg.Connection | None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            conn = await db.connect(dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        conn = None
    try:
        findings = await checks.run(checks.Context(settings, conn, dict(os.environ), peers=args.peer))
    finally:
        if conn is not None:
            await conn.close()
    for finding in findings:
        print(finding.line())
    errors = sum(f.level == checks.ERROR for f in findings)
    warnings = sum(f.level == checks.WARNING for f in findings)
    print(f"\n{errors} erreur(s), {warnings} point(s) d'attention.")
    if errors:
        raise AppError(f"{errors} erreur(s) à corriger avant la mise en production.")


def _backup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="archive à écrire (.tar) ; les secrets vont dans FICHIER.secrets")


@raw_admin_command("backup", "sauvegarder la base, les fichiers et (à part) les secrets", _backup_args)
async def backup(settings: Settings, dsn: str, args: argparse.Namespace) -> None:
    report = await backups.backup(settings, dsn, args.file)
    print(report.text())


def _restore_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="archive écrite par vbg-node admin backup")
    p.add_argument("--secrets", type=Path, help="fichier des secrets (défaut : FICHIER.secrets)")


@raw_admin_command("restore", "restaurer une sauvegarde sur un nœud vide", _restore_args)
async def restore(settings: Settings, dsn: str, args: argparse.Namespace) -> None:
    report = await backups.restore(settings, dsn, args.file, args.secrets)
    print(report.text())
