#!/usr/bin/env bash
# Lays out the macOS pkg's payload and scripts in DIR (root/, scripts/) from EXT; shared by
# build-pkg.sh (on a Mac) and the postinstall check that CI runs on Linux.
#   packaging/macos/stage-pkg.sh EXT DIR
set -euo pipefail
[ $# = 2 ] || { sed -n '3,3s/^# \{0,1\}//p' "$0" >&2; exit 2; }
ext=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=$dir/root share=$dir/root/usr/local/share/launchwatch
mkdir -p "$root/usr/local/osquery_extensions" "$share" "$dir/scripts"
install -m 0755 "$ext" "$root/usr/local/osquery_extensions/launchwatch.ext"
install -m 0644 "$repo/packaging/launchwatch.toml" "$share/launchwatch.toml.example"
install -m 0644 "$repo/packs/launchwatch.conf" "$share/launchwatch.conf"
install -m 0644 "$repo/packs/fleet/launchwatch.yml" "$share/launchwatch-fleet.yml"
{ printf '#!/bin/sh\n'; cat "$repo/packaging/extensions-load.sh" "$here/postinstall"; } >"$dir/scripts/postinstall"
chmod 0755 "$dir/scripts/postinstall"
