#!/usr/bin/env bash
# Daily backup of a vbg-node, keeping the KEEP newest (default 14). Run by
# vbg-node-backup.timer as the `vbg` user; see docs/exploitation.md, « Sauvegardes ».
#   BACKUP_DIR   where archives go (default /var/backups/vbg-node)
#   KEEP         how many archives to keep (default 14: two weeks of daily backups)
#   VBG_NODE     the command (default /opt/vbg-node/.venv/bin/vbg-node)
set -euo pipefail
BACKUP_DIR=${BACKUP_DIR:-/var/backups/vbg-node}
KEEP=${KEEP:-14}
VBG_NODE=${VBG_NODE:-/opt/vbg-node/.venv/bin/vbg-node}
case "$KEEP" in ''|*[!0-9]*) echo "KEEP must be a number" >&2; exit 2;; esac
[ "$KEEP" -ge 1 ] || { echo "KEEP must be at least 1" >&2; exit 2; }
umask 077
mkdir -p "$BACKUP_DIR"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
"$VBG_NODE" admin backup "$BACKUP_DIR/vbg-$stamp.tar"
# Oldest first; remove all but the KEEP newest archives and their secrets files.
mapfile -t archives < <(find "$BACKUP_DIR" -maxdepth 1 -name 'vbg-*.tar' -printf '%f\n' | sort)
excess=$(( ${#archives[@]} - KEEP ))
for (( i = 0; i < excess; i++ )); do
  rm -f -- "$BACKUP_DIR/${archives[$i]}" "$BACKUP_DIR/${archives[$i]}.secrets"
done
echo "vbg-node-backup: $BACKUP_DIR/vbg-$stamp.tar written, $(( ${#archives[@]} - (excess > 0 ? excess : 0) )) kept"
