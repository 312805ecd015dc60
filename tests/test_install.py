"""The plain-server route's install script and the container files (issue 16).

``deploy/install.sh`` runs for real in a folder laid out like a fresh server
(``VBG_INSTALL_ROOT``), with the commands that change the system printed instead of run
(``VBG_INSTALL_DRY_SYSTEM=1``: packages, users, PostgreSQL, systemd, nginx, certbot,
firewall, pip). The tests hold the script to the guide (same steps, same order), check
what it writes and that a second run upgrades without touching settings and secrets,
check the nginx site with Debian's nginx (``nginx -t``), and that the Dockerfile's install
steps are the guide's (Docker itself is not available on this machine: the image is not
built here).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from node.checks import weak_secret
from tests.conftest import ROOT
from tests.interop import INTEROP

SCRIPT = ROOT / "deploy" / "install.sh"
GUIDE = ROOT / "docs" / "installation-debian.md"
DOMAIN = "forum.example.org"


def install(root: Path, *args: str) -> str:
    env = {**os.environ, "VBG_INSTALL_ROOT": str(root), "VBG_INSTALL_DRY_SYSTEM": "1"}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--domain", DOMAIN, "--email", "tech@example.org", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def steps(text: str, pattern: str) -> list[str]:
    return re.findall(pattern, text, flags=re.MULTILINE)


def guide_steps() -> list[str]:
    return steps(GUIDE.read_text(encoding="utf-8"), r"^## (Étape \d+ — .+)$")


def test_the_script_performs_the_guides_steps_in_order(tmp_path: Path) -> None:
    out = install(tmp_path)
    assert steps(out, r"^== (Étape \d+ — .+)$") == guide_steps()
    assert len(guide_steps()) == 11


def test_a_first_run_lays_out_the_server(tmp_path: Path) -> None:
    out = install(tmp_path)
    # Settings: generated once, strong secret, database password, mode 640
    env_file = tmp_path / "etc" / "vbg-node.env"
    settings = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["VBG_BASE_URL"] == f"https://{DOMAIN}"
    assert weak_secret(settings["VBG_SECRET_KEY"]) is None
    assert re.fullmatch(r"postgresql://vbg:[0-9a-f]{48}@127\.0\.0\.1:5432/vbg", settings["DATABASE_URL"])
    assert (settings["VBG_HOST"], settings["VBG_TRUSTED_PROXIES"]) == ("127.0.0.1", "127.0.0.1")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    # The database password never appears on a command line
    password = settings["DATABASE_URL"].split(":")[2].split("@")[0]
    assert password not in out
    # Units, hardened, and the backup timer
    units = tmp_path / "etc" / "systemd" / "system"
    assert sorted(p.name for p in units.iterdir()) == [
        "vbg-node-backup.service", "vbg-node-backup.timer", "vbg-node-worker.service", "vbg-node.service",
    ]  # fmt: skip
    web = (units / "vbg-node.service").read_text()
    for line in ("User=vbg", "ProtectSystem=strict", "NoNewPrivileges=true", "CapabilityBoundingSet=",
                 "ReadWritePaths=/var/lib/vbg-node", "SystemCallFilter=@system-service"):  # fmt: skip
        assert line in web, line
    # Folders and their modes
    assert stat.S_IMODE((tmp_path / "var" / "lib" / "vbg-node").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "var" / "backups" / "vbg-node").stat().st_mode) == 0o700
    # The nginx site: the domain, the upload limit + 1 MB, proxy headers replaced, static cache, gzip
    site = (tmp_path / "etc" / "nginx" / "sites-available" / "vbg-node").read_text()
    assert f"server_name {DOMAIN};" in site and "client_max_body_size 26m;" in site
    assert (
        "proxy_set_header X-Forwarded-For $remote_addr;" in site and "$proxy_add_x_forwarded_for" not in site
    )
    assert "expires 30d;" in site and "gzip on;" in site and "server 127.0.0.1:8000;" in site
    assert (
        os.readlink(tmp_path / "etc" / "nginx" / "sites-enabled" / "vbg-node")
        == "../sites-available/vbg-node"
    )
    # System changes, in the guide's words
    for command in ("useradd --system", "createdb -O vbg vbg", "systemctl enable vbg-node.service vbg-node-backup.timer",
                    "certbot certonly --webroot", "ufw allow 'Nginx Full'".replace("'", ""), "ufw --force enable",
                    "vbg-node' migrate", "vbg-node' admin check"):  # fmt: skip
        assert command in out, command


def test_a_second_run_upgrades_and_keeps_settings_and_secrets(tmp_path: Path) -> None:
    install(tmp_path)
    env_file = tmp_path / "etc" / "vbg-node.env"
    first = env_file.read_text()
    # Given the admin raised the upload limit
    env_file.write_text(first.replace("VBG_UPLOAD_MAX_MB=25", "VBG_UPLOAD_MAX_MB=100"))
    # When the script runs again (an upgrade)
    out = install(tmp_path, "--worker")
    # Then settings and secrets are kept, the database is not created again
    assert env_file.read_text() == first.replace("VBG_UPLOAD_MAX_MB=25", "VBG_UPLOAD_MAX_MB=100")
    assert "réglages existants conservés" in out
    assert "CREATE ROLE" not in out and "createdb" not in out
    # And the code is copied again, migrations run, the services restart, the site follows the limit
    assert "rsync -a --delete" in out and "vbg-node' migrate" in out
    assert "systemctl restart vbg-node.service" in out and "systemctl restart vbg-node-worker.service" in out
    site = (tmp_path / "etc" / "nginx" / "sites-available" / "vbg-node").read_text()
    assert "client_max_body_size 101m;" in site


def test_the_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not INTEROP.is_dir():
        pytest.skip("nginx (./dev test installs nginx-light) or the interop kit is missing")
    subprocess.run(
        ["bash", str(INTEROP / "make_ca.sh"), str(tmp_path / "ca"), DOMAIN], check=True, capture_output=True
    )
    template = (ROOT / "deploy" / "nginx-site.conf.template").read_text()
    site = (
        template.replace("@DOMAIN@", DOMAIN).replace("@PORT@", "8000").replace("@BODY_MB@", "26")
        .replace("@APP_DIR@", str(ROOT))
        .replace(f"/etc/letsencrypt/live/{DOMAIN}/fullchain.pem", str(tmp_path / "ca" / "fullchain.crt"))
        .replace(f"/etc/letsencrypt/live/{DOMAIN}/privkey.pem", str(tmp_path / "ca" / "leaf.key"))
    )  # fmt: skip
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/tmp;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def fenced(text: str, heading: str) -> str:
    """The shell code of the guide's section ``heading``."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.S))


def test_the_dockerfile_installs_as_the_guide_says() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    guide = fenced(GUIDE.read_text(encoding="utf-8"), "## Étape 4 — Code et dépendances Python")
    # The guide's install commands (virtualenv, pip, the project) are the Dockerfile's RUN commands
    wanted = [
        re.sub(r"\s+#.*", "", line).strip()
        for line in guide.splitlines()
        if line.startswith(("python3 -m venv", "/opt/vbg-node/.venv/bin/pip"))
    ]
    assert len(wanted) == 3
    runs = " ".join(re.findall(r"^RUN (.*?)(?=^\S|\Z)", dockerfile, flags=re.S | re.M)).replace("\\\n", " ")
    for command in wanted:
        assert command in re.sub(r"\s+", " ", runs), command
    # Slim, non-root, the data folder a volume, the health check on /healthz
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, flags=re.M)
    assert "\nUSER vbg\n" in dockerfile and 'VOLUME ["/var/lib/vbg-node"]' in dockerfile
    assert "/healthz" in dockerfile


def test_compose_runs_postgresql_web_worker_and_a_tls_proxy_from_one_env_file() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    for service in ("postgres:", "web:", "worker:", "caddy:"):
        assert f"\n  {service}\n" in compose, service
    assert compose.count("env_file: .env") == 2
    assert 'command: ["vbg-node", "worker"]' in compose and 'VBG_WORKERS_IN_SERVE: "0"' in compose
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile and "max_size {$VBG_BODY_MB}MB" in caddyfile
    example = (ROOT / "deploy" / "docker.env.example").read_text()
    for name in ("VBG_DOMAIN", "POSTGRES_PASSWORD", "VBG_SECRET_KEY"):
        assert f"\n{name}=" in example, name
