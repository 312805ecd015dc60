"""A PostgreSQL server of the test's own (Debian's binaries, ``/usr/lib/postgresql/N/bin``)
that the test may stop, restart or replicate: for ``/readyz`` with the database down
and for a real streaming replica.

As root (tests and CI run as root) the server runs as the ``postgres`` system user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def bin_dir() -> Path | None:
    """Debian's newest PostgreSQL binaries, or None when none is installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def missing() -> str | None:
    """Why a private cluster cannot run here, or None."""
    if bin_dir() is None:
        return "Debian's PostgreSQL binaries are not installed (/usr/lib/postgresql/N/bin)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user"
    return None


class Cluster:
    """``initdb`` + ``pg_ctl`` on a loopback port, in a folder of its own (removed by
    :meth:`destroy`). ``as_replica_of`` builds it with ``pg_basebackup -R`` instead."""

    def __init__(self, port: int, *, root: Path | None = None) -> None:
        self.port = port
        self.root = root or Path(tempfile.mkdtemp(prefix="vbg-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        bins = bin_dir()
        assert bins is not None
        self.bins = bins
        self._user = "postgres" if os.geteuid() == 0 else None
        os.chmod(self.root, 0o755)
        if self._user:
            shutil.chown(self.root, self._user)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bins / args[0]), *args[1:]]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd=self.root)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nfsync = off\n"
                "listen_addresses = '127.0.0.1'\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        return self

    def init_replica_of(self, primary: Cluster) -> Cluster:
        """A streaming replica of ``primary`` (pg_basebackup -R writes standby.signal;
        --checkpoint=fast: the default spread checkpoint made the test wait ~30 s)."""
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        return self

    def start(self) -> Cluster:
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.root}", "start", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{self.server_log()}")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
