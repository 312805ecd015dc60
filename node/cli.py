"""The ``vbg-node`` command (docs/architecture.md §6): serve, worker, migrate, admin …"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from federation import actors as federation_actors  # noqa: F401  (registers the first-start rows)
from federation import checks as federation_checks  # noqa: F401  (registers the network checks)
from federation import cli as federation_cli  # noqa: F401  (registers the instance policy commands)
from node import (
    accounts,
    admin_ops,  # noqa: F401  (registers check, backup, restore)
    communities,
    db,
    demo,  # noqa: F401  (registers seed-demo)
    logs,
    metrics,
    recovery,
)
from node import settings as settings_module
from node.admin_commands import ADMIN_COMMANDS, RAW_ADMIN_COMMANDS, AdminCommand, admin_command
from node.errors import AppError
from node.settings import Settings

log = logging.getLogger("vbg-node")


def _node_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def describe_database(settings: Settings) -> str:
    """Which database a command uses, without any password."""
    if settings.database_url:
        parts = urlsplit(settings.database_url)
        return f"PostgreSQL {parts.hostname or 'local'}:{parts.port or 5432}{parts.path} (DATABASE_URL)"
    return f"PostgreSQL embarqué sous {settings.data_dir / 'pgdata'}"


@contextlib.contextmanager
def command_database(settings: Settings) -> Iterator[str]:
    """:func:`database` for ``migrate`` and ``admin`` commands: says which database it
    used, and never creates a second embedded one beside a running node (a command run
    from another folder would otherwise say « compte créé » in a database nobody reads)."""
    fresh = not settings.database_url and not (settings.data_dir / "pgdata").exists()
    if fresh and _node_listening(settings.host, settings.port):
        raise AppError(
            f"aucune base de données sous {settings.data_dir}, alors qu'un nœud tourne sur "
            f"{settings.host}:{settings.port}. Lancez la commande depuis le dossier du nœud, ou "
            "indiquez VBG_DATA_DIR ou DATABASE_URL. Rien n'a été créé."
        )
    print(
        f"vbg-node : base de données : {describe_database(settings)}{' (nouvelle)' if fresh else ''}",
        file=sys.stderr,
    )
    with database(settings) as dsn:
        yield dsn


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The DSN to use: ``DATABASE_URL``, or an embedded server started for the duration."""
    if settings.database_url:
        yield settings.database_url
        return
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    embedded = db.EmbeddedPostgres(settings.data_dir)
    dsn = embedded.start()
    try:
        yield dsn
    finally:
        embedded.stop()


async def _with_connection(settings: Settings, dsn: str, fn: AdminCommand, args: argparse.Namespace) -> None:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn, settings)
        args.settings = settings
        await fn(conn, args)
    finally:
        await conn.close()


def _create_user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    p.add_argument("--password", help="sans mot de passe, un lien à usage unique est affiché pour le choisir")
    p.add_argument("--role", choices=accounts.ROLES, default="member")
    p.add_argument("--email")
    p.add_argument("--display-name")


@admin_command("create-user", "créer un compte (approuvé)", _create_user_args)
async def _create_user(conn: Any, args: argparse.Namespace) -> None:
    # Without --password (kept out of the shell history), the account gets an unusable
    # random password and the person chooses hers through a one-time link.
    password = args.password or secrets.token_urlsafe(32)
    user_id = await accounts.create_user(
        conn,
        args.name,
        password,
        email=args.email,
        display_name=args.display_name,
        role=args.role,
        audit_label="cli",
    )
    print(f"compte créé : {args.name} (id {user_id}, rôle {args.role})")
    if not args.password:
        await _print_reset_link(conn, args.settings, user_id)


async def _print_reset_link(conn: Any, settings: Settings, user_id: int) -> None:
    link = await recovery.issue(conn, user_id, via="cli", actor_label="cli")
    print(
        f"lien pour choisir le mot de passe (usage unique, valable jusqu'au {link.expires_at:%Y-%m-%d %H:%M} UTC) :"
    )
    print(settings.url(link.path()))


def _reset_password_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")


@admin_command(
    "reset-password",
    "créer un lien à usage unique pour choisir un nouveau mot de passe",
    _reset_password_args,
)
async def _reset_password(conn: Any, args: argparse.Namespace) -> None:
    user_id = await accounts.user_id_by_name(conn, args.name)
    if user_id is None:
        raise AppError(f"aucun compte nommé {args.name!r}")
    await _print_reset_link(conn, args.settings, user_id)


def _create_community_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    p.add_argument("--title", required=True)
    p.add_argument("--visibility", choices=communities.VISIBILITIES, default="members")
    p.add_argument("--description", default="")
    p.add_argument("--rules", default="")


@admin_command("create-community", "créer une communauté", _create_community_args)
async def _create_community(conn: Any, args: argparse.Namespace) -> None:
    community_id = await communities.create_community(
        conn,
        args.name,
        args.title,
        description=args.description,
        rules=args.rules,
        visibility=args.visibility,
        audit_label="cli",
    )
    print(f"communauté créée : {args.name} (id {community_id}, visibilité {args.visibility})")


def _rotate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--forget-retired",
        action="store_true",
        help="après redémarrage de tous les processus : retirer les anciennes clés du fichier",
    )


@admin_command("rotate-messages-key", "changer la clé de chiffrement des messages privés", _rotate_args)
async def _rotate_messages_key(conn: Any, args: argparse.Namespace) -> None:
    from node import messages

    settings = settings_module.load()
    done = await messages.rotate_node_key(conn, settings, forget_retired=args.forget_retired)
    print(f"clé courante : {done.current_id} ; conversations rechiffrées : {done.rewrapped}")
    if done.forgotten:
        print(f"anciennes clés retirées : {', '.join(done.forgotten)}")
    elif done.retired:
        print(
            f"anciennes clés conservées : {', '.join(done.retired)} — redémarrez tous les processus, "
            "puis relancez avec --forget-retired (ou retirez-les de VBG_MESSAGES_KEY)"
        )


def _messages_remote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("value", nargs="?", choices=("partners", "fediverse", "none"))


@admin_command(
    "messages-remote", "qui, hors du nœud, peut écrire en privé aux membres", _messages_remote_args
)
async def _messages_remote(conn: Any, args: argparse.Namespace) -> None:
    from node import messages

    if args.value is not None:
        await messages.set_remote_policy(conn, args.value, actor_label="cli")
    print(f"messages privés venant d'autres serveurs : {await messages.remote_policy(conn)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vbg-node", description="Nœud du Réseau VBG")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="lancer le serveur web (et les workers)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--metrics-address", help="hôte:port des métriques Prometheus (VBG_METRICS_ADDRESS)")
    worker = sub.add_parser("worker", help="lancer les workers de fédération seuls")
    worker.add_argument("--metrics-address", help="hôte:port des métriques Prometheus (VBG_METRICS_ADDRESS)")
    sub.add_parser("migrate", help="appliquer les migrations de la base")
    admin = sub.add_parser("admin", help="administration")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    commands = {**ADMIN_COMMANDS, **RAW_ADMIN_COMMANDS}
    for name, (_handler, configure, help_text) in sorted(commands.items()):
        configure(admin_sub.add_parser(name, help=help_text))
    return parser


def serve(settings: Settings, args: argparse.Namespace) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    host = args.host or settings.host
    port = args.port or settings.port
    # Before anything imports prometheus-client: the web processes forked by granian
    # write their counters there, and the exporter below adds them up.
    metrics_dir = Path(tempfile.gettempdir()) / f"vbg-node-metrics-{os.getpid()}"
    metrics.prepare_multiprocess(metrics_dir)
    try:
        with database(settings) as dsn:
            asyncio.run(_migrate(dsn, settings))
            os.environ["DATABASE_URL"] = dsn
            exporter = _start_exporter(
                args.metrics_address or settings.metrics_address, dsn, settings.replica_database_url
            )
            print(f"vbg-node : nœud prêt sur {settings.base_url} (écoute {host}:{port})", flush=True)
            Granian(
                target="node.web.app:app_from_env",
                factory=True,
                address=host,
                port=port,
                interface=Interfaces.ASGI,
                workers=settings.web_workers,
                log_access=False,
                log_dictconfig=logs.granian_config(settings.log_format),
            ).serve()
            if exporter is not None:
                exporter.shutdown()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _start_exporter(address: str | None, dsn: str, replica_dsn: str | None = None) -> Any:
    """The Prometheus exporter on ``address`` (None when no address is set)."""
    if not address:
        return None
    try:
        return metrics.serve_exporter(address, dsn, replica_dsn)
    except (OSError, ValueError) as exc:
        raise AppError(f"métriques : impossible d'écouter sur {address} ({exc})") from exc


async def _migrate(dsn: str, settings: Settings) -> list[int]:
    conn = await db.connect(dsn)
    try:
        return await db.migrate(conn, settings)
    finally:
        await conn.close()


def run_worker(settings: Settings, args: argparse.Namespace | None = None) -> None:
    # Imported here, not at the top: the workers bring aiohttp (~10 MB), which the
    # other commands (and serve's supervisor process) do without.
    from federation import worker

    # What the modules loaded so far allocated stays out of the garbage collector's
    # way, and young collections run ten times less often: a worker allocates many
    # short-lived objects per delivery (measured ~4 % of its CPU, bench/delivery.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)
    # uvloop, as granian gives ``serve``: less CPU per delivery POST than asyncio's
    # own loop (bench/delivery.py).
    address = getattr(args, "metrics_address", None) or settings.metrics_address
    with database(settings) as dsn, asyncio.Runner(loop_factory=_loop_factory()) as runner:
        exporter = _start_exporter(address, dsn)
        try:
            runner.run(worker.run_forever(settings, dsn))
        finally:
            if exporter is not None:
                exporter.shutdown()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not installed on Windows
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_module.load()
    except settings_module.SettingsError as exc:
        print(f"vbg-node : {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "serve":
            serve(settings, args)
        elif args.command == "worker":
            run_worker(settings, args)
        elif args.command == "migrate":
            with command_database(settings) as dsn:
                applied = asyncio.run(_migrate(dsn, settings))
            print(f"migrations appliquées : {applied or 'aucune (à jour)'}")
        elif args.admin_command in RAW_ADMIN_COMMANDS:
            raw = RAW_ADMIN_COMMANDS[args.admin_command][0]
            with command_database(settings) as dsn:
                asyncio.run(raw(settings, dsn, args))
        else:
            handler = ADMIN_COMMANDS[args.admin_command][0]
            with command_database(settings) as dsn:
                asyncio.run(_with_connection(settings, dsn, handler, args))
    except AppError as exc:
        details = "; ".join(f"{k} : {v}" for k, v in exc.fields.items())
        print(f"vbg-node : {exc.message}{' — ' + details if details else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
