"""``vbg-node admin`` commands of the instance policy (docs/architecture.md §6).

The command names and options are a public interface (scripts call them):
block-domain, unblock-domain, list-blocks, export-blocks, import-blocks,
federation-mode, allow-domain, disallow-domain, list-allows, approve-instance,
unapprove-instance, and for remote communities follow-remote, unfollow-remote,
list-remote. Every change is audited with the label ``cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from federation import actors, policy, policy_csv, remote
from federation.handlers import follow  # approving an instance answers its pending follows
from node import audit, communities
from node import settings as settings_module
from node.admin_commands import admin_command
from node.errors import BadRequest


def _own_domain() -> str | None:
    """Our domain, so that nobody blocks or imports a block of their own node by mistake."""
    try:
        return settings_module.load().domain
    except settings_module.SettingsError:
        return None


def _block_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain")
    p.add_argument("--severity", choices=policy.SEVERITIES, default="suspend")
    p.add_argument("--reason", help="commentaire public (motif)")
    p.add_argument("--private-comment", help="commentaire réservé aux administrateur·rice·s")
    p.add_argument("--reject-media", action="store_true", help="ne jamais récupérer ses médias")
    p.add_argument("--reject-reports", action="store_true", help="ignorer ses signalements")
    p.add_argument("--obfuscate", action="store_true", help="masquer le domaine dans les listes publiques")


@admin_command("block-domain", "bloquer un domaine (et ses sous-domaines)", _block_args)
async def block_domain(conn: Any, args: argparse.Namespace) -> None:
    request = policy.BlockRequest(
        args.domain,
        args.severity,
        reject_media=args.reject_media,
        reject_reports=args.reject_reports,
        public_comment=args.reason,
        private_comment=args.private_comment,
        obfuscate=args.obfuscate,
    )
    done = await policy.block_domain(conn, request, policy.CLI, own_domain=_own_domain())
    verb = "bloqué" if done["created"] else "blocage mis à jour"
    print(f"{done['domain']} : {verb} ({done['severity']})")
    if done["follows_dropped"]:
        print(f"abonnements supprimés : {done['follows_dropped']}")


def _domain_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain")
    p.add_argument("--reason", default="", help="motif (journal d'audit)")


@admin_command("unblock-domain", "lever le blocage d'un domaine", _domain_arg)
async def unblock_domain(conn: Any, args: argparse.Namespace) -> None:
    await policy.unblock_domain(conn, args.domain, policy.CLI, reason=args.reason)
    print(f"{policy.normalise_domain(args.domain)} : blocage levé")


def _no_args(p: argparse.ArgumentParser) -> None:
    del p


def _flags(row: Any) -> str:
    names = ("reject_media", "reject_reports", "obfuscate")
    return ",".join(n for n in names if row[n]) or "-"


@admin_command("list-blocks", "lister les domaines bloqués", _no_args)
async def list_blocks(conn: Any, args: argparse.Namespace) -> None:
    rows = await policy.list_blocks(conn)
    if not rows:
        print("aucun domaine bloqué")
    for row in rows:
        comment = f"\t{row['public_comment']}" if row["public_comment"] else ""
        print(f"{row['domain']}\t{row['severity']}\t{_flags(row)}{comment}")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="fichier CSV (par défaut : sortie standard)")


@admin_command("export-blocks", "exporter les blocages (CSV Mastodon)", _export_args)
async def export_blocks(conn: Any, args: argparse.Namespace) -> None:
    text = await policy_csv.export_text(conn)
    if args.file and args.file != "-":
        await asyncio.to_thread(Path(args.file).write_text, text, encoding="utf-8")
        print(f"blocages exportés dans {args.file}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="fichier CSV au format Mastodon (#domain,#severity,…)")


@admin_command("import-blocks", "importer des blocages (CSV Mastodon)", _import_args)
async def import_blocks(conn: Any, args: argparse.Namespace) -> None:
    try:
        text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Fichier illisible : {args.file} ({exc.__class__.__name__})") from exc
    count = await policy_csv.import_csv(conn, text, policy.CLI, own_domain=_own_domain())
    print(f"blocages importés : {count}")


def _mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mode", nargs="?", choices=policy.MODES, help="sans argument : afficher le mode actuel")
    p.add_argument("--reason", default="", help="motif (journal d'audit)")


@admin_command("federation-mode", "afficher ou changer le mode de fédération", _mode_args)
async def federation_mode(conn: Any, args: argparse.Namespace) -> None:
    if args.mode is None:
        print(await policy.federation_mode(conn))
        return
    await policy.set_federation_mode(conn, args.mode, policy.CLI, reason=args.reason)
    print(f"mode de fédération : {args.mode}")


def _allow_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain")
    p.add_argument("--note", default="", help="note (organisation partenaire …)")


@admin_command("allow-domain", "autoriser un domaine (mode allowlist)", _allow_args)
async def allow_domain(conn: Any, args: argparse.Namespace) -> None:
    domain = await policy.allow_domain(conn, args.domain, policy.CLI, note=args.note)
    print(f"{domain} : autorisé (communautés publiques)")
    print(
        "Les communautés réservées aux membres demandent en plus une approbation de l'instance : "
        f"vbg-node admin approve-instance {domain}"
    )


def _instance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain")


@admin_command(
    "approve-instance",
    "approuver une instance partenaire (lecture et abonnement aux communautés réservées aux membres)",
    _instance_args,
)
async def approve_instance(conn: Any, args: argparse.Namespace) -> None:
    domain = policy.normalise_domain(args.domain)
    accepted = await follow.approve_instance(conn, domain, None, label=policy.CLI.label)
    print(f"{domain} : instance approuvée — elle peut lire et suivre les communautés réservées aux membres")
    print(f"demandes d'abonnement acceptées : {accepted}")
    if not await policy.inbound_allowed(conn, domain, own_domain=_own_domain()):
        print(
            f"attention : {domain} n'est pas autorisé par la politique (vbg-node admin allow-domain {domain})"
        )


@admin_command(
    "unapprove-instance",
    "retirer l'approbation d'une instance (plus rien des communautés réservées aux membres)",
    _instance_args,
)
async def unapprove_instance(conn: Any, args: argparse.Namespace) -> None:
    domain = policy.normalise_domain(args.domain)
    refused = await follow.refuse_instance(conn, domain, None, label=policy.CLI.label)
    print(
        f"{domain} : approbation retirée — plus aucun contenu réservé aux membres ne lui est servi ni envoyé"
    )
    print(f"demandes d'abonnement refusées : {refused}")


@admin_command("disallow-domain", "retirer un domaine de la liste d'autorisation", _domain_arg)
async def disallow_domain(conn: Any, args: argparse.Namespace) -> None:
    domain = await policy.disallow_domain(conn, args.domain, policy.CLI, reason=args.reason)
    print(f"{domain} : retiré de la liste d'autorisation")


@admin_command("list-allows", "lister les domaines autorisés", _no_args)
async def list_allows(conn: Any, args: argparse.Namespace) -> None:
    print(f"mode de fédération : {await policy.federation_mode(conn)}")
    rows = await policy.list_allows(conn)
    if not rows:
        print("aucun domaine autorisé")
    for row in rows:
        note = f"\t{row['note']}" if row["note"] else ""
        print(f"{row['domain']}{note}")


# --- remote communities (issue 11): the node's shared follows ---------------------------


def _cli_fetcher(conn: Any, settings: settings_module.Settings) -> Any:
    """The guarded fetcher for one command: signs as the instance actor, honours the
    instance policy, on the command's connection."""
    from federation.fetcher import Fetcher

    async def signer() -> tuple[str, Any]:
        actor = await actors.instance_actor(conn, settings)
        assert actor.public_key_id is not None
        return actor.public_key_id, actors.private_key(settings, actor)

    async def domain_allowed(host: str) -> bool:
        return await policy.outbound_allowed(conn, host, own_domain=settings.domain)

    return Fetcher(settings, signer=signer, domain_allowed=domain_allowed)


def _handle_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("handle", help="!nom@serveur, nom@serveur ou l'adresse web de la communauté")


async def _remote_community(conn: Any, handle: str) -> Any:

    name = handle.strip().lstrip("!@").lower()
    community = await communities.find(conn, name)
    if community is None or not community.remote:
        raise BadRequest(f"aucune communauté distante « {name} » (vbg-node admin list-remote)")
    return community


@admin_command(
    "follow-remote",
    "suivre une communauté d'un autre serveur pour tout le nœud (!nom@serveur ou son adresse web)",
    _handle_arg,
)
async def follow_remote(conn: Any, args: argparse.Namespace) -> None:

    settings = settings_module.load()
    async with _cli_fetcher(conn, settings) as fetcher:
        community = await remote.resolve(conn, settings, fetcher, args.handle)
        state = await remote.ensure_follow(
            conn, settings, fetcher, community, requested_by=None, node_wide=True
        )
    await audit.record(
        conn,
        "remote_community.follow",
        actor_label=policy.CLI.label,
        target_type="community",
        target_id=community.id,
        details={"name": community.name, "state": state},
    )
    labels = {"pending": "en attente d'acceptation", "accepted": "acceptée", "rejected": "refusée"}
    print(f"{community.name} : suivie pour tout le nœud — {labels.get(state, state)}")
    print(f"page : /c/{community.name}")


@admin_command(
    "unfollow-remote",
    "ne plus suivre une communauté d'un autre serveur (Undo envoyé, même si des membres la suivent)",
    _handle_arg,
)
async def unfollow_remote(conn: Any, args: argparse.Namespace) -> None:

    community = await _remote_community(conn, args.handle)
    undone = await remote.drop(conn, settings_module.load(), community)
    await audit.record(
        conn,
        "remote_community.drop",
        actor_label=policy.CLI.label,
        target_type="community",
        target_id=community.id,
        details={"name": community.name, "undone": undone},
    )
    print(f"{community.name} : " + ("abonnement retiré (Undo envoyé)" if undone else "n'était pas suivie"))


@admin_command(
    "list-remote", "lister les communautés d'autres serveurs et l'état de leur abonnement", _no_args
)
async def list_remote(conn: Any, args: argparse.Namespace) -> None:

    rows = await communities.list_remote(conn)
    if not rows:
        print("aucune communauté distante")
    for row in rows:
        by = f"\tpar {row['follower_name']}" if row["follower_kind"] == "Person" else ""
        wide = "\ttout le nœud" if row["node_wide"] else ""
        print(f"{row['name']}\t{row['state'] or 'jamais suivie'}\t{row['followers']} membre(s){wide}{by}")
