"""Backups: ``vbg-node admin backup FILE`` and ``vbg-node admin restore FILE``.

One archive (an uncompressed tar, written and read as a stream), plus the secrets in a
file of their own::

    FILE                                  FILE.secrets  (mode 600, JSON)
    ├── vbg-backup.json      what, when,  ├── secret_key     VBG_SECRET_KEY or the
    │                        which node,  │                  data folder's secret_key
    │                        which schema └── messages_key   VBG_MESSAGES_KEY or the
    ├── database/0000 … NNNN pg_dump -Fc,                    data folder's messages_key
    │                        in pieces of CHUNK bytes
    ├── files/…              the data folder (uploads, media), without
    │                        the embedded PostgreSQL and without the secrets
    └── MANIFEST.json        size and SHA-256 of every member above

Streaming: the dump goes from pg_dump's output into the archive one piece at a time
(never more than CHUNK bytes in memory, never a second copy on disk); files are copied
block by block. Consistency: pg_dump reads the whole database in one snapshot; files
are copied after it, so a file added meanwhile is simply extra, and uploaded files are
never rewritten in place.

The archive alone cannot read members' private messages or sign as the node's actors:
the conversation keys and the actors' private keys are stored encrypted with the
secrets. Keep ``FILE.secrets`` apart from the archive (another place, another
medium): with both, anyone can read everything.

Restore first reads the whole archive and checks every checksum (nothing is changed if
one is wrong), then checks that the node is empty (no table in the database, no file in
the data folder but freshly generated secrets), then feeds the pieces to pg_restore and
writes the files and the secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from node import db
from node.errors import AppError
from node.settings import Settings

FORMAT = "vbg-node-backup"
VERSION = 1
HEADER = "vbg-backup.json"
MANIFEST = "MANIFEST.json"
DUMP_PREFIX = "database/"
FILES_PREFIX = "files/"
CHUNK = 16 * 1024 * 1024
BLOCK = 1024 * 1024
SECRET_FILES = ("secret_key", "messages_key")
# Never copied from the data folder: the embedded server (dumped instead), the secrets
# (their own file), and what the node or `check` leave behind while running.
SKIPPED_TOP = frozenset({"pgdata", *SECRET_FILES})
SKIPPED_PATTERN = re.compile(r"^(\.vbg-check-|\.vbg-restore-)")
SECRETS_WARNING = (
    "ATTENTION : ce fichier contient les secrets du nœud. Avec l'archive, il permet de lire les "
    "messages privés et de signer au nom du nœud. Gardez-le à part de l'archive (autre lieu, autre "
    "support), lisible par vous seul·e, et détruisez-le avec l'archive."
)
TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"


class BackupError(AppError):
    status = 400
    default_message = "Sauvegarde impossible."


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


# ── PostgreSQL's tools ────────────────────────────────────────────────────────


def _major_of(binary: Path) -> int | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def _candidates(tool: str) -> Iterator[Path]:
    yield from sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    try:
        import pgserver  # the embedded server's own binaries

        yield Path(pgserver.__file__).parent / "pginstall" / "bin" / tool
    except ImportError:
        pass
    on_path = shutil.which(tool)
    if on_path:
        yield Path(on_path)


def find_tool(tool: str, server_major: int) -> Path:
    """``pg_dump`` / ``pg_restore`` able to talk to a server of ``server_major``: the same
    major version if installed, else the closest newer one."""
    usable: list[tuple[int, Path]] = []
    for path in _candidates(tool):
        major = _major_of(path) if path.exists() else None
        if major is not None and major >= server_major:
            usable.append((major, path))
    if not usable:
        raise BackupError(
            f"{tool} pour PostgreSQL {server_major} introuvable : installez le paquet "
            f"postgresql-client-{server_major}."
        )
    return min(usable)[1]


def _tool_env(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password (kept out of the process list) and an environment
    carrying it as PGPASSWORD."""
    parts = urlsplit(dsn)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}@{netloc[1]}")
    return urlunsplit(parts), env


# ── writing ──────────────────────────────────────────────────────────────────


class _Hashing:
    """A reader that hashes what it hands on (tarfile reads members through it)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed by close())
        self.members: list[dict[str, Any]] = []

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        self.tar.addfile(info, io.BytesIO(data))
        self.members.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    def add_file(self, name: str, path: Path) -> None:
        stat = path.stat()
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), stat.st_mode & 0o777
        with path.open("rb") as fh:
            reader = _Hashing(fh)
            self.tar.addfile(info, reader)
        self.members.append({"name": name, "size": stat.st_size, "sha256": reader.sha.hexdigest()})

    def close(self, manifest: dict[str, Any]) -> None:
        body = json.dumps({**manifest, "members": self.members}, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
        self.tar.addfile(info, io.BytesIO(body))
        self.tar.close()


def data_files(data_dir: Path, skip: set[Path]) -> Iterator[tuple[str, Path]]:
    """(archive name, path) of every regular file of the data folder worth keeping."""
    if not data_dir.is_dir():
        return
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        if here == data_dir:
            dirs[:] = [d for d in dirs if d not in SKIPPED_TOP]
        dirs.sort()
        for name in sorted(files):
            path = here / name
            rel = path.relative_to(data_dir)
            if (here == data_dir and name in SKIPPED_TOP) or SKIPPED_PATTERN.match(name):
                continue
            if path.resolve() in skip or not path.is_file() or path.is_symlink():
                continue
            yield FILES_PREFIX + rel.as_posix(), path


def _dump_pieces(dsn: str, major: int) -> Iterator[bytes]:
    """pg_dump's output (custom format) in pieces of CHUNK bytes, as it comes."""
    tool = find_tool("pg_dump", major)
    target, env = _tool_env(dsn)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [str(tool), "--format=custom", "--no-owner", "--no-privileges", f"--dbname={target}"],
            stdout=subprocess.PIPE, stderr=errors, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        piece = bytearray()
        while chunk := proc.stdout.read(BLOCK):
            piece += chunk
            if len(piece) >= CHUNK:
                yield bytes(piece[:CHUNK])
                del piece[:CHUNK]
        if piece:
            yield bytes(piece)
        if proc.wait() != 0:
            errors.seek(0)
            raise BackupError(f"pg_dump a échoué : {errors.read().decode(errors='replace').strip()[:500]}")


def secrets_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".secrets")


def _secret_values(settings: Settings) -> dict[str, str]:
    """The secrets as the node reads them: a file's exact text, else the setting's value."""
    values = {"secret_key": settings.secret_key.reveal()}
    if settings.messages_key is not None:
        values["messages_key"] = settings.messages_key.reveal()
    for name, env_name in (("secret_key", "VBG_SECRET_KEY"), ("messages_key", "VBG_MESSAGES_KEY")):
        path = settings.data_dir / name
        if not os.environ.get(env_name) and path.is_file():
            values[name] = path.read_text()
    return values


def write_secrets(path: Path, settings: Settings) -> None:
    body = {"warning": SECRETS_WARNING, "node": settings.base_url, **_secret_values(settings)}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)


async def _describe(conn: asyncpg.Connection) -> dict[str, Any]:
    versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return {
        "postgres": await conn.fetchval("SHOW server_version"),
        "postgres_major": int(await conn.fetchval("SHOW server_version_num")) // 10000,
        "migrations": [r["version"] for r in versions],
    }


async def backup(settings: Settings, dsn: str, archive: Path) -> Report:
    """Write the archive and its secrets file (see the module docstring)."""
    conn = await db.connect(dsn)
    try:
        if not await conn.fetchval(db.MIGRATIONS_TABLE_EXISTS):
            raise BackupError("La base est vide : rien à sauvegarder.")
        described = await _describe(conn)
    finally:
        await conn.close()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "node": settings.base_url,
        **described,
    }
    return await asyncio.to_thread(write_backup, settings, dsn, archive, header)


def write_backup(settings: Settings, dsn: str, archive: Path, header: dict[str, Any]) -> Report:
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            writer = _Writer(out)
            writer.add_bytes(HEADER, json.dumps(header, indent=1).encode())
            for number, piece in enumerate(_dump_pieces(dsn, header["postgres_major"])):
                writer.add_bytes(f"{DUMP_PREFIX}{number:04d}", piece)
            skip = {archive.resolve(), tmp.resolve(), secrets_path(archive).resolve()}
            files = 0
            for name, path in data_files(settings.data_dir, skip):
                writer.add_file(name, path)
                files += 1
            writer.close(header)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_secrets(secrets_path(archive), settings)
    dump_bytes = sum(m["size"] for m in writer.members if m["name"].startswith(DUMP_PREFIX))
    return Report(
        [
            f"sauvegarde écrite : {archive} ({archive.stat().st_size} octets ; base {dump_bytes} octets, "
            f"{files} fichier(s))",
            f"secrets écrits à part : {secrets_path(archive)}",
            SECRETS_WARNING,
            *(
                [
                    f"ATTENTION : les fichiers du stockage objet (compartiment {settings.s3_bucket}) ne sont pas "
                    "dans cette archive : activez le versionnage ou la réplication du compartiment."
                ]
                if settings.s3_bucket
                else []
            ),  # fmt: skip
        ]
    )


# ── reading ──────────────────────────────────────────────────────────────────


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    fh = tar.extractfile(member)
    if fh is None:
        raise BackupError(f"élément illisible dans l'archive : {member.name}")
    while block := fh.read(BLOCK):
        yield block


def verify(archive: Path) -> dict[str, Any]:
    """Read the whole archive once; its manifest if every member matches it, else
    BackupError."""
    seen: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(archive, mode="r|") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    manifest = json.loads(b"".join(_read_member(tar, member)))
                    continue
                sha = hashlib.sha256()
                size = 0
                for block in _read_member(tar, member):
                    sha.update(block)
                    size += len(block)
                seen.append({"name": member.name, "size": size, "sha256": sha.hexdigest()})
    except (OSError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise BackupError(f"archive illisible : {exc}") from exc
    if manifest is None or manifest.get("format") != FORMAT:
        raise BackupError("ce fichier n'est pas une sauvegarde vbg-node complète (manifeste absent).")
    if manifest.get("members") != seen:
        raise BackupError("l'archive est abîmée : une somme de contrôle ne correspond pas au manifeste.")
    return manifest


def read_secrets(path: Path) -> dict[str, str]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BackupError(f"fichier des secrets illisible ({path}) : {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("secret_key"), str):
        raise BackupError(f"fichier des secrets invalide : {path}")
    return {k: body[k] for k in SECRET_FILES if isinstance(body.get(k), str)}


def _check_secrets(settings: Settings, secrets: dict[str, str]) -> None:
    """A secret set in the environment must be the one of the backup (the restored
    data is encrypted with it)."""
    env = os.environ
    if env.get("VBG_SECRET_KEY") and env["VBG_SECRET_KEY"] != secrets["secret_key"]:
        raise BackupError(
            "VBG_SECRET_KEY diffère du secret de la sauvegarde : mettez dans VBG_SECRET_KEY la valeur "
            "« secret_key » du fichier des secrets, puis relancez."
        )
    if env.get("VBG_MESSAGES_KEY") and secrets.get("messages_key") not in (None, env["VBG_MESSAGES_KEY"]):
        raise BackupError(
            "VBG_MESSAGES_KEY diffère de la clé de la sauvegarde : mettez dans VBG_MESSAGES_KEY la valeur "
            "« messages_key » du fichier des secrets, puis relancez."
        )


def _unexpected_files(data_dir: Path) -> list[str]:
    return [name for name, _ in data_files(data_dir, set())]


def _safe_target(data_dir: Path, name: str) -> Path:
    rel = PurePosixPath(name[len(FILES_PREFIX) :])
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise BackupError(f"chemin refusé dans l'archive : {name}")
    return data_dir.joinpath(*rel.parts)


def restore_stream(settings: Settings, dsn: str, archive: Path, major: int) -> tuple[int, int]:
    """Feed the dump pieces to pg_restore and write the files; (pieces, files)."""
    tool = find_tool("pg_restore", major)
    target, env = _tool_env(dsn)
    pieces = files = 0
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [str(tool), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
             f"--dbname={target}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env,
        )  # fmt: skip
        assert proc.stdin is not None
        try:
            with tarfile.open(archive, mode="r|") as tar:
                for member in tar:
                    if member.name.startswith(DUMP_PREFIX):
                        for block in _read_member(tar, member):
                            proc.stdin.write(block)
                        pieces += 1
                    elif member.name.startswith(FILES_PREFIX):
                        if not proc.stdin.closed:
                            proc.stdin.close()  # the dump is whole: pg_restore works meanwhile
                        _extract(settings.data_dir, tar, member)
                        files += 1
        except BrokenPipeError:
            pass  # pg_restore stopped: its status and message say why
        finally:
            if not proc.stdin.closed:
                proc.stdin.close()
        if proc.wait() != 0:
            errors.seek(0)
            raise BackupError(f"pg_restore a échoué : {errors.read().decode(errors='replace').strip()[:800]}")
    return pieces, files


def _extract(data_dir: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    path = _safe_target(data_dir, member.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for block in _read_member(tar, member):
            out.write(block)
    os.chmod(path, member.mode & 0o777 or 0o600)
    os.utime(path, (member.mtime, member.mtime))


def _write_secret_files(settings: Settings, secrets: dict[str, str]) -> list[str]:
    written = []
    for name in SECRET_FILES:
        env_name = "VBG_SECRET_KEY" if name == "secret_key" else "VBG_MESSAGES_KEY"
        if name not in secrets or os.environ.get(env_name):
            continue
        path = settings.data_dir / name
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets[name])
        written.append(str(path))
    return written


async def restore(settings: Settings, dsn: str, archive: Path, secrets_file: Path | None) -> Report:
    """Restore ``archive`` onto this empty node (see the module docstring)."""
    secrets = await asyncio.to_thread(read_secrets, secrets_file or secrets_path(archive))
    _check_secrets(settings, secrets)
    manifest = await asyncio.to_thread(verify, archive)
    conn = await db.connect(dsn)
    try:
        if await conn.fetchval(TABLES):
            raise BackupError(
                "la base n'est pas vide : la restauration se fait sur un nœud neuf (base vide)."
            )
        server_major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    if unexpected := await asyncio.to_thread(_unexpected_files, settings.data_dir):
        raise BackupError(
            f"le dossier de données {settings.data_dir} n'est pas vide ({unexpected[0]}…) : "
            "restaurez dans un dossier neuf."
        )
    major = max(server_major, int(manifest.get("postgres_major", server_major)))
    pieces, files = await asyncio.to_thread(restore_stream, settings, dsn, archive, major)
    written = await asyncio.to_thread(_write_secret_files, settings, secrets)
    lines = [
        f"sauvegarde du {manifest['created_at']} ({manifest['node']}) restaurée : base ({pieces} morceau(x)), "
        f"{files} fichier(s).",
    ]
    lines += [f"secret écrit : {path}" for path in written]
    if manifest["node"] != settings.base_url:
        lines.append(
            f"ATTENTION : la sauvegarde vient de {manifest['node']} et ce nœud est réglé sur "
            f"{settings.base_url}. Les identifiants ActivityPub ne changent pas : gardez la même VBG_BASE_URL."
        )
    return Report(lines)
