#!/bin/sh
# Fleet script (Controls > Scripts; runs as root on macOS and Linux): writes
# /etc/launchwatch.toml and restarts the extension so it reads it. Edit the TOML below (every
# key: the README's Configuration section), then let a policy run it on hosts whose file differs
# (see the README's Fleet section). launchwatch reads its config only at start; osqueryd (or
# fleetd's osqueryd) starts the extension again within seconds after it exits.
set -eu
umask 022
tmp=/etc/launchwatch.toml.fleet-new
cat >"$tmp" <<'TOML'
[networks]
internal = []            # your own address ranges, e.g. ["198.51.100.0/24"]

[allowlist]              # tune detections here, never in the pack's SQL
paths = []               # e.g. ["/Applications/Backup.app/Contents/MacOS/backupd"]
identities = []          # e.g. ["ABCDE12345:com.example.agent"]
remotes = []             # e.g. ["updates.example.com"]
launchd_labels = []      # e.g. ["com.example.sync"]
TOML
mv -f "$tmp" /etc/launchwatch.toml
# Exact process name: the extension runs as launchwatch.ext (its file name).
pkill -x launchwatch.ext || true
echo "launchwatch: /etc/launchwatch.toml written ($(wc -c </etc/launchwatch.toml) bytes); the extension restarts"
