"""``vbg-node admin`` instance policy commands, end to end on the test database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from node import cli
from tests.conftest import TEST_SECRET
from tests.helpers import make_community

MASTODON_EXPORT = """\
#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
spam.example,suspend,false,false,Spam massif,false
loud.example,silence,false,true,"Harcèlement, signalé deux fois",true
pics.example,noop,true,false,,false
"""


@pytest.fixture
def node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VBG_BASE_URL", "https://node.example")
    monkeypatch.setenv("VBG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VBG_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("VBG_LOG_LEVEL", "WARNING")


async def vbg(*argv: str) -> int:
    """Run ``vbg-node admin …`` as the command line does (its own event loop, in a thread)."""
    return await asyncio.to_thread(cli.main, ["admin", *argv])


async def _blocks(pool: asyncpg.Pool) -> list[tuple[str, str, bool, bool, str, bool]]:
    rows = await pool.fetch(
        "SELECT domain, severity, reject_media, reject_reports, public_comment, obfuscate"
        " FROM domain_blocks ORDER BY domain"
    )
    return [tuple(r) for r in rows]


@pytest.mark.usefixtures("node_env")
async def test_block_list_and_unblock_a_domain(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    # When an admin blocks a domain from the command line
    rc = await vbg("block-domain", "Spam.Example.", "--severity", "silence", "--reason", "spam",
                   "--private-comment", "vu le 3 mars", "--reject-reports")  # fmt: skip
    # Then it is stored normalised, listed, and audited as the CLI
    assert rc == 0
    assert "spam.example : bloqué (silence)" in capsys.readouterr().out
    row = await pool.fetchrow("SELECT * FROM domain_blocks")
    assert (row["domain"], row["severity"], row["reject_reports"], row["private_comment"]) == (
        "spam.example", "silence", True, "vu le 3 mars")  # fmt: skip
    assert await vbg("list-blocks") == 0
    assert "spam.example\tsilence\treject_reports\tspam" in capsys.readouterr().out

    # When it is unblocked
    assert await vbg("unblock-domain", "spam.example", "--reason", "erreur") == 0
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0
    audit = await pool.fetch(
        "SELECT action, actor_label, reason FROM audit_log WHERE target_id = 'spam.example'"
    )
    assert [tuple(r) for r in audit] == [
        ("federation.block_domain", "cli", "spam"),
        ("federation.unblock_domain", "cli", "erreur"),
    ]


@pytest.mark.usefixtures("node_env")
async def test_errors_are_french_and_change_nothing(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await vbg("block-domain", "pas un domaine") == 1
    assert "Nom de domaine invalide" in capsys.readouterr().err
    assert await vbg("block-domain", "NODE.example") == 1  # our own domain
    assert "ce nœud" in capsys.readouterr().err
    assert await vbg("unblock-domain", "never.example") == 1
    assert "n'est pas bloqué" in capsys.readouterr().err
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


@pytest.mark.usefixtures("node_env")
async def test_federation_mode_and_allowlist(pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a new node: it is in allowlist mode
    assert await vbg("federation-mode") == 0
    assert capsys.readouterr().out.strip() == "allowlist"
    # When the admin allows a partner and opens the node
    assert await vbg("allow-domain", "CHU-partenaire.example", "--note", "CHU de Lyon") == 0
    assert await vbg("federation-mode", "open", "--reason", "réseau élargi") == 0
    assert await vbg("federation-mode") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "open"
    assert (
        await pool.fetchval("SELECT note FROM domain_allows WHERE domain = 'chu-partenaire.example'")
        == "CHU de Lyon"
    )
    # When the partner is removed
    assert await vbg("disallow-domain", "chu-partenaire.example") == 0
    assert await pool.fetchval("SELECT count(*) FROM domain_allows") == 0
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["federation.allow_domain", "federation.mode", "federation.disallow_domain"]


@pytest.mark.usefixtures("node_env")
async def test_export_then_import_round_trips(
    pool: asyncpg.Pool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given blocks of every severity and flag
    assert await vbg("block-domain", "spam.example", "--reason", "Spam, encore") == 0
    assert (
        await vbg("block-domain", "loud.example", "--severity", "silence", "--reject-reports", "--obfuscate")
        == 0
    )
    assert await vbg("block-domain", "pics.example", "--severity", "reject_media") == 0
    before = await _blocks(pool)
    # When they are exported to a file (and to stdout), all removed, then imported again
    exported = tmp_path / "blocks.csv"
    assert await vbg("export-blocks", str(exported)) == 0
    capsys.readouterr()
    assert await vbg("export-blocks") == 0
    assert capsys.readouterr().out == exported.read_text(encoding="utf-8")
    assert exported.read_text(encoding="utf-8").splitlines()[0] == (
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"
    )
    for domain in ("spam.example", "loud.example", "pics.example"):
        assert await vbg("unblock-domain", domain) == 0
    assert await vbg("import-blocks", str(exported)) == 0
    # Then the same blocks are back
    assert "blocages importés : 3" in capsys.readouterr().out
    assert await _blocks(pool) == before


@pytest.mark.usefixtures("node_env")
async def test_import_reads_a_mastodon_export(pool: asyncpg.Pool, tmp_path: Path) -> None:
    path = tmp_path / "mastodon.csv"
    path.write_text(MASTODON_EXPORT, encoding="utf-8")
    assert await vbg("import-blocks", str(path)) == 0
    assert await _blocks(pool) == [
        ("loud.example", "silence", False, True, "Harcèlement, signalé deux fois", True),
        ("pics.example", "reject_media", True, False, "", False),
        ("spam.example", "suspend", False, False, "Spam massif", False),
    ]


@pytest.mark.usefixtures("node_env")
async def test_import_reads_the_legacy_one_domain_per_line_format(pool: asyncpg.Pool, tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_text("spam.example\n\nother.example.\n", encoding="utf-8")
    assert await vbg("import-blocks", str(path)) == 0
    assert [(d, s) for d, s, *_ in await _blocks(pool)] == [
        ("other.example", "suspend"),
        ("spam.example", "suspend"),
    ]


@pytest.mark.usefixtures("node_env")
async def test_a_malformed_csv_names_its_lines_and_applies_nothing(
    pool: asyncpg.Pool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file whose lines 3, 4 and 6 are wrong (line 2 is fine)
    path = tmp_path / "bad.csv"
    path.write_text(
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "good.example,suspend,false,false,,false\n"
        "worse.example,banish,false,false,,false\n"
        "not a domain,silence,false,false,,false\n"
        "fine.example,silence,peut-être,false,,false\n"
        "good.example,silence,false,false,,false\n",
        encoding="utf-8",
    )
    # When it is imported
    rc = await vbg("import-blocks", str(path))
    # Then every bad line is named and nothing is applied, not even the good line
    err = capsys.readouterr().err
    assert rc == 1
    assert "Rien n'a été importé" in err
    assert "ligne 3 : sévérité « banish » inconnue" in err
    assert "ligne 4 : domaine « not a domain » invalide" in err
    assert "ligne 5 : valeur « peut-être » invalide pour #reject_media" in err
    assert "ligne 6 : domaine déjà présent ligne 2" in err
    assert "ligne 2 :" not in err
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


@pytest.mark.usefixtures("node_env")
async def test_import_of_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await vbg("import-blocks", str(tmp_path / "absent.csv")) == 1
    assert "Fichier illisible" in capsys.readouterr().err


@pytest.mark.usefixtures("node_env")
async def test_allow_domain_says_members_only_communities_also_need_approval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await vbg("allow-domain", "chu-partenaire.example") == 0
    out = capsys.readouterr().out
    assert "chu-partenaire.example : autorisé" in out
    assert "réservées aux membres demandent en plus une approbation" in out
    assert "vbg-node admin approve-instance chu-partenaire.example" in out


@pytest.mark.usefixtures("node_env")
async def test_approve_and_unapprove_an_instance_from_the_command_line(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a members-only community and a pending follow from an allowed partner
    community = await make_community(pool, "medical", visibility="members")
    actor = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox)"
        " VALUES ('https://chu.example/u/bob', 'Person', false, 'bob', 'chu.example', 'https://chu.example/inbox')"
        " RETURNING id"
    )
    await pool.execute(
        "INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state)"
        " VALUES ($1, $2, 'https://chu.example/follows/1', 'pending')",
        community,
        actor,
    )
    assert await vbg("allow-domain", "chu.example") == 0
    capsys.readouterr()
    # When the admin approves the instance
    assert await vbg("approve-instance", "CHU.example") == 0
    # Then it says what that opens, the follow is accepted and an Accept is queued, audited as the CLI
    out = capsys.readouterr().out
    assert "chu.example : instance approuvée" in out and "demandes d'abonnement acceptées : 1" in out
    assert await pool.fetchval("SELECT approved FROM instances WHERE domain = 'chu.example'") is True
    assert (
        await pool.fetchval("SELECT state FROM community_followers WHERE actor_id = $1", actor) == "accepted"
    )
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'follow.accept'") == 1
    # When it takes the approval back
    assert await vbg("unapprove-instance", "chu.example") == 0
    assert "chu.example : approbation retirée" in capsys.readouterr().out
    assert await pool.fetchval("SELECT approved FROM instances WHERE domain = 'chu.example'") is False
    audit = await pool.fetch(
        "SELECT action, actor_label FROM audit_log WHERE target_id = 'chu.example' ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [
        ("federation.allow_domain", "cli"),
        ("instance.approve", "cli"),
        ("instance.refuse", "cli"),
    ]


@pytest.mark.usefixtures("node_env")
async def test_approving_an_instance_the_policy_refuses_warns(capsys: pytest.CaptureFixture[str]) -> None:
    assert await vbg("approve-instance", "inconnu.example") == 0
    assert "n'est pas autorisé par la politique" in capsys.readouterr().out
