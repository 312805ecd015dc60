"""The plain-server route, proven (issue 16): two nodes, each behind Debian's nginx with
the site of ``deploy/nginx-site.conf.template`` (the one ``deploy/install.sh`` installs),
served over TLS by certificates of a local CA (``../shared/interop/make_ca.sh``), with
certificate verification on everywhere (``SSL_CERT_FILE``). A thread of node A reaches
node B, which follows A's community, and a reply written on B reaches A.

Heavy (node processes, nginx on ports 80/443 of loopback addresses): run under
``flock /tmp/vbg-heavy.lock``, as root (it edits /etc/hosts).
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from federation import remote
from tests.conftest import ROOT
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, hosts, interop_missing, make_ca, real_nodes

pytestmark = pytest.mark.federation

NODES = {"a": ("node-a.test", "127.0.0.21"), "b": ("node-b.test", "127.0.0.22")}


def site_for(domain: str, ip: str, port: int, certs: Path, upload_mb: int = 25) -> str:
    """The production site, as install.sh renders it, bound to one loopback address and
    pointed at the test CA's certificate instead of Let's Encrypt's."""
    text = (ROOT / "deploy" / "nginx-site.conf.template").read_text()
    text = (
        text.replace("@DOMAIN@", domain).replace("@PORT@", str(port)).replace("@BODY_MB@", str(upload_mb + 1))
        .replace("@APP_DIR@", str(ROOT))
        .replace(f"/etc/letsencrypt/live/{domain}/fullchain.pem", str(certs / "fullchain.crt"))
        .replace(f"/etc/letsencrypt/live/{domain}/privkey.pem", str(certs / "leaf.key"))
        .replace("upstream vbg_node", f"upstream vbg_node_{port}").replace("http://vbg_node;", f"http://vbg_node_{port};")
        .replace("server 127.0.0.1:", f"server {ip}:")
        .replace("listen 443 ssl http2;", f"listen {ip}:443 ssl http2;").replace("listen 80;", f"listen {ip}:80;")
    )  # fmt: skip
    return "\n".join(line for line in text.splitlines() if "listen [::]" not in line)


class Nginx:
    def __init__(self, rundir: Path, sites: list[str]) -> None:
        self.rundir = rundir
        rundir.mkdir(parents=True, exist_ok=True)
        (rundir / "tmp").mkdir(exist_ok=True)
        self.conf = rundir / "nginx.conf"
        self.conf.write_text(
            f"worker_processes 1; pid {rundir}/nginx.pid; error_log {rundir}/error.log;\n"
            "events { worker_connections 256; }\nhttp {\n"
            f"  access_log {rundir}/access.log;\n"
            + "".join(f"  {d}_temp_path {rundir}/tmp/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + "\n".join(sites)
            + "\n}\n"
        )  # fmt: skip

    def start(self) -> None:
        for args in (["-t"], []):
            result = subprocess.run(["nginx", *args, "-c", str(self.conf), "-p", str(self.rundir)],
                                    capture_output=True, text=True)  # fmt: skip
            assert result.returncode == 0, result.stderr

    def stop(self) -> None:
        pid = self.rundir / "nginx.pid"
        if pid.exists():
            subprocess.run(
                ["nginx", "-s", "quit", "-c", str(self.conf), "-p", str(self.rundir)], capture_output=True
            )


@pytest.fixture(scope="module")
async def tls_nodes(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, RealNode]]:
    if missing := interop_missing():
        pytest.skip(missing)
    run = tmp_path_factory.mktemp("plain-server")
    certs = make_ca(run / "ca", [domain for domain, _ in NODES.values()])
    ca = str(certs / "ca.crt")
    # The test process calls the nodes' services with their guarded fetcher (B follows, B
    # replies): it trusts the local CA too, as SSL_CERT_FILE makes the node processes do.
    # aiohttp built its default verifying context at import, before this CA existed.
    aiohttp.connector._SSL_CONTEXT_VERIFIED.load_verify_locations(ca)
    specs = [
        NodeSpec(
            name, ip, base_url=f"https://{domain}", public_communities=("general",) if name == "a" else ()
        )
        for name, (domain, ip) in NODES.items()
    ]
    with hosts({domain: ip for domain, ip in NODES.values()}):
        # Behind nginx, as in production: the node trusts X-Forwarded-For from nginx only
        env = {"SSL_CERT_FILE": ca, "VBG_TRUSTED_PROXIES": ",".join(ip for _, ip in NODES.values())}
        async with real_nodes(server_dsn, template_db, run, specs, env=env) as nodes:
            nginx = Nginx(run / "nginx", [
                site_for(domain, ip, nodes[name].live.port, certs) for name, (domain, ip) in NODES.items()
            ])  # fmt: skip
            nginx.start()
            try:
                for node in nodes.values():
                    for other in nodes.values():
                        if other is not node:
                            await node.admin("allow-domain", other.domain)
                yield nodes
            finally:
                nginx.stop()


async def test_a_thread_federates_between_two_nodes_behind_nginx_over_tls(
    tls_nodes: dict[str, RealNode],
) -> None:
    a, b = tls_nodes["a"], tls_nodes["b"]
    ca = a.live.env["SSL_CERT_FILE"]
    tls = ssl.create_default_context(cafile=ca)
    # Given each node answers over https through its nginx site (certificate verified)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
        for node in (a, b):
            async with http.get(node.url("/readyz")) as r:
                assert (r.status, await r.text()) == (200, "prêt")
            async with http.get(node.url("/c/nope"), allow_redirects=False) as r:
                assert r.headers.get("Strict-Transport-Security") == "max-age=63072000"
        # and plain http is redirected to https
        async with (
            aiohttp.ClientSession() as plain,
            plain.get(f"http://{a.domain}/c/general", allow_redirects=False) as r,
        ):
            assert (r.status, r.headers["Location"]) == (301, f"https://{a.domain}/c/general")

    # When B's instance follows A's public community
    async with b.pool.acquire() as conn:
        follow_id = await remote.follow_remote_group(conn, b.settings, b.fetcher, a.group("general"))
    accepted = await eventually(
        lambda: b.pool.fetchval("SELECT answer FROM follow_answers WHERE follow_id = $1", follow_id),
        "B receives A's Accept over TLS",
    )
    assert accepted == "accept"

    # And a member of A opens a thread
    amina = await a.member("amina")
    created = await a.new_thread("general", amina, "Accueil d'urgence", "Qui connaît un lieu sûr à Lyon ?")
    page_id = a.url(f"/t/{created.thread_id}")
    # Then B receives the group's relay of it, verified
    relayed = await b.processed_item(
        "document->>'type' = 'Announce' AND document->'object'->'object'->>'id' = $1", page_id
    )
    assert relayed["actor_uri"] == a.group("general") and relayed["status"] != "failed", dict(relayed)

    # When a member of B replies
    bruno = await b.member("bruno")
    async with b.pool.acquire() as conn:
        note_id = await remote.reply_to_remote_post(
            conn, b.settings, b.fetcher, user_id=bruno.id, group_uri=a.group("general"),
            in_reply_to=page_id, body="Le CHU a une permanence la nuit.",
        )  # fmt: skip
    # Then A stores it in the thread, by B's member, after fetching B's keys over TLS
    stored = await eventually(
        lambda: a.pool.fetchrow(
            """SELECT p.thread_id, a.uri AS author FROM posts p
               JOIN actors a ON a.id = p.remote_author_id WHERE p.ap_id = $1""",
            note_id,
        ),
        "A stores B's reply",
    )
    assert (stored["thread_id"], stored["author"]) == (created.thread_id, b.url("/u/bruno"))
    # And the thread page, through nginx, shows it
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http,
        http.get(page_id, headers={"Accept": "text/html"}) as r,
    ):
        assert r.status == 200 and "permanence la nuit" in await r.text()
