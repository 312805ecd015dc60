#!/usr/bin/env bash
# Installs or upgrades vbg-node on Debian 12 / Ubuntu 22.04+ — exactly the steps of
# docs/installation-debian.md, in the same order, each announced as « Étape N — … ».
# Idempotent: a second run upgrades (new code and dependencies, migrations, restart) and
# keeps the settings, the secrets, the database and the data.
#
#   sudo deploy/install.sh --domain forum.example.org --email admin@example.org [--worker] [--no-firewall]
#
# Run it from the unpacked source of the version to install (it copies that folder to
# /opt/vbg-node). Test hooks (tests/test_install.py): VBG_INSTALL_ROOT prefixes every
# path; VBG_INSTALL_DRY_SYSTEM=1 prints the commands that change the system (packages,
# users, PostgreSQL, systemd, nginx, certbot, firewall, pip) instead of running them.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${VBG_INSTALL_ROOT:-}
DRY=${VBG_INSTALL_DRY_SYSTEM:-0}
DOMAIN=""
EMAIL=""
WORKER=0
FIREWALL=1
PORT=8000

usage() { echo "usage: $0 --domain NOM [--email E] [--worker] [--no-firewall]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --domain) DOMAIN=${2:-}; shift 2 ;;
    --email) EMAIL=${2:-}; shift 2 ;;
    --worker) WORKER=1; shift ;;
    --no-firewall) FIREWALL=0; shift ;;
    *) usage ;;
  esac
done
[ -n "$DOMAIN" ] || usage
case "$DOMAIN" in *[!a-z0-9.-]*|.*|*.) echo "nom de domaine invalide : $DOMAIN" >&2; exit 2 ;; esac

APP=$ROOT/opt/vbg-node
DATA=$ROOT/var/lib/vbg-node
BACKUPS=$ROOT/var/backups/vbg-node
ENV_FILE=$ROOT/etc/vbg-node.env
UNITS=$ROOT/etc/systemd/system
SITE=$ROOT/etc/nginx/sites-available/vbg-node
CERT=$ROOT/etc/letsencrypt/live/$DOMAIN/fullchain.pem

step() { printf '\n== Étape %s — %s\n' "$1" "$2"; }
# A command that changes the system: run it, or print it in a dry run.
sys() { if [ "$DRY" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi; }
# A question to the system; in a dry run the answer is "no".
has() { if [ "$DRY" = 1 ]; then return 1; else "$@" >/dev/null 2>&1; fi; }
# SQL on stdin, never in the process list (it carries the database password).
as_postgres() {
  if [ "$DRY" = 1 ]; then printf '+ runuser -u postgres -- psql (%s)\n' "${1%% PASSWORD*}"
  else printf '%s\n' "$1" | runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt; fi
}
# vbg-node as the vbg user with the node's settings (read from the file, not the command line).
as_vbg() { sys runuser -u vbg -- sh -c "set -a; . '$ENV_FILE'; exec '$APP/.venv/bin/vbg-node' $*"; }

if [ "$DRY" != 1 ] && [ "$(id -u)" != 0 ]; then echo "à lancer en root (sudo)" >&2; exit 1; fi

step 1 "Paquets Debian"
sys apt-get update -q
sys env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv postgresql nginx \
  certbot rsync ufw

step 2 "Compte système vbg"
if ! has id -u vbg; then
  sys useradd --system --home-dir /var/lib/vbg-node --no-create-home --shell /usr/sbin/nologin vbg
fi

step 3 "Dossiers"
mkdir -p "$APP" "$DATA" "$BACKUPS" "$UNITS" "$ROOT/etc/nginx/sites-available" "$ROOT/etc/nginx/sites-enabled"
chmod 750 "$DATA"; chmod 700 "$BACKUPS"
sys chown vbg:vbg "$DATA" "$BACKUPS"

step 4 "Code et dépendances Python"
# The new version replaces the old one; the virtualenv is kept and updated.
sys rsync -a --delete --exclude .venv --exclude .git --exclude data --exclude '__pycache__' "$SRC/" "$APP/"
if [ "$DRY" = 1 ]; then  # rsync is only printed: copy what the later steps read
  cp -r "$SRC/deploy" "$SRC/pyproject.toml" "$APP/"
fi
[ -x "$APP/.venv/bin/python" ] || sys python3 -m venv "$APP/.venv"
sys "$APP/.venv/bin/pip" install -q --upgrade pip
sys "$APP/.venv/bin/pip" install -q "$APP"

step 5 "Base PostgreSQL"
DB_PASSWORD=""
if [ ! -f "$ENV_FILE" ]; then
  DB_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
  if ! has runuser -u postgres -- psql -qAt -c "SELECT 1 FROM pg_roles WHERE rolname = 'vbg'" ; then
    as_postgres "CREATE ROLE vbg LOGIN PASSWORD '$DB_PASSWORD'"
  else
    as_postgres "ALTER ROLE vbg PASSWORD '$DB_PASSWORD'"
  fi
  has runuser -u postgres -- psql -qAt -d vbg -c "SELECT 1" || sys runuser -u postgres -- createdb -O vbg vbg
fi

step 6 "Réglages /etc/vbg-node.env"
if [ ! -f "$ENV_FILE" ]; then
  SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
  umask 027
  cat > "$ENV_FILE" <<ENV
# /etc/vbg-node.env — settings of this node (README, « Configuration »). Written by
# deploy/install.sh on the first run; later runs keep it. Back it up apart: it holds secrets.
VBG_BASE_URL=https://$DOMAIN
DATABASE_URL=postgresql://vbg:$DB_PASSWORD@127.0.0.1:5432/vbg
VBG_DATA_DIR=/var/lib/vbg-node
VBG_SECRET_KEY=$SECRET
VBG_HOST=127.0.0.1
VBG_PORT=$PORT
# nginx on this machine is the only proxy whose X-Forwarded-For is believed
VBG_TRUSTED_PROXIES=127.0.0.1
# Prometheus metrics, on loopback only (docs/exploitation.md)
VBG_METRICS_ADDRESS=127.0.0.1:9400
VBG_UPLOAD_MAX_MB=25
ENV
  umask 022
  sys chown root:vbg "$ENV_FILE"
  chmod 640 "$ENV_FILE"
else
  echo "réglages existants conservés : $ENV_FILE"
fi
setting() { sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1; }
PORT=$(setting VBG_PORT); PORT=${PORT:-8000}
UPLOAD_MB=$(setting VBG_UPLOAD_MAX_MB); UPLOAD_MB=${UPLOAD_MB:-25}

step 7 "Migrations"
as_vbg migrate

step 8 "Services systemd"
for unit in vbg-node.service vbg-node-worker.service vbg-node-backup.service vbg-node-backup.timer; do
  install -m 644 "$APP/deploy/$unit" "$UNITS/$unit"
done
sys systemctl daemon-reload
sys systemctl enable vbg-node.service vbg-node-backup.timer
sys systemctl restart vbg-node.service
sys systemctl start vbg-node-backup.timer
if [ "$WORKER" = 1 ]; then
  sys systemctl enable vbg-node-worker.service
  sys systemctl restart vbg-node-worker.service
fi

step 9 "nginx et certificat TLS"
render_site() {
  sed -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@PORT@|$PORT|g" -e "s|@BODY_MB@|$((UPLOAD_MB + 1))|g" \
      -e "s|@APP_DIR@|/opt/vbg-node|g" "$APP/deploy/nginx-site.conf.template"
}
if [ ! -f "$CERT" ]; then
  # First run: port 80 only, for certbot's challenge; the full site once the certificate exists.
  cat > "$SITE" <<SITE
# vbg-node, before its certificate: certbot's challenge only (install.sh rewrites this file)
server {
    listen 80;
    listen [::]:80;
    server_name $DOMAIN;
    location /.well-known/acme-challenge/ { root /var/www/html; }
    location / { return 503; }
}
SITE
  ln -sf ../sites-available/vbg-node "$ROOT/etc/nginx/sites-enabled/vbg-node"
  rm -f "$ROOT/etc/nginx/sites-enabled/default"
  sys nginx -t
  sys systemctl reload nginx
  if [ -n "$EMAIL" ]; then
    sys certbot certonly --webroot -w /var/www/html -d "$DOMAIN" --email "$EMAIL" --agree-tos --non-interactive
  else
    echo "pas d'adresse (--email) : certificat à demander ensuite (voir le guide, étape 9)"
  fi
fi
if [ -f "$CERT" ] || [ "$DRY" = 1 ]; then
  render_site > "$SITE"
  ln -sf ../sites-available/vbg-node "$ROOT/etc/nginx/sites-enabled/vbg-node"
  sys nginx -t
  sys systemctl reload nginx
fi

step 10 "Pare-feu"
if [ "$FIREWALL" = 1 ]; then
  sys ufw allow OpenSSH
  sys ufw allow 'Nginx Full'
  sys ufw --force enable
else
  echo "pare-feu laissé tel quel (--no-firewall)"
fi

step 11 "Vérification"
as_vbg admin check || true
echo
echo "vbg-node est installé : https://$DOMAIN"
echo "Premier compte : sudo -u vbg sh -c 'set -a; . /etc/vbg-node.env; /opt/vbg-node/.venv/bin/vbg-node admin create-user NOM --role admin'"
