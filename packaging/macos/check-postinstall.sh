#!/usr/bin/env bash
# Runs the macOS pkg's postinstall on Linux against a scratch "volume" (the installer passes the
# target volume as $3), as a Mac's installer would after laying down the payload: checks the
# extension's owner and mode, the extensions.load line next to an operator's own, the example
# config, that a second run (an upgrade) changes nothing, and that an existing config survives.
#   packaging/macos/check-postinstall.sh EXT
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 EXT" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "check-postinstall: FAILED: $*" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  echo "check-postinstall: needs root (chown)" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/stage-pkg.sh" "$1" "$work/stage"
ext=/usr/local/osquery_extensions/launchwatch.ext
vol=$work/volume
install_pkg() { # what the installer does: payload first, then postinstall PKG DEST VOLUME
  cp -R "$work/stage/root/." "$vol/"
  chmod 0777 "$vol$ext" # the payload's mode is the script's job to fix
  sh "$work/stage/scripts/postinstall" "$work/launchwatch.pkg" / "$vol" || fail "postinstall exited $?"
}
mkdir -p "$vol/var/osquery" "$vol/etc"
printf '/usr/local/osquery_extensions/other.ext' >"$vol/var/osquery/extensions.load"
install_pkg
[ "$(stat -c '%u:%g %a' "$vol$ext")" = "0:0 755" ] || fail "$ext is $(stat -c '%u:%g %a' "$vol$ext")"
[ "$(cat "$vol/var/osquery/extensions.load")" = "$(printf '/usr/local/osquery_extensions/other.ext\n%s' "$ext")" ] ||
  fail "extensions.load: $(cat "$vol/var/osquery/extensions.load")"
cmp -s "$vol/etc/launchwatch.toml" "$here/../launchwatch.toml" || fail "no example /etc/launchwatch.toml"
[ "$(stat -c '%a' "$vol/etc/launchwatch.toml")" = 644 ] || fail "launchwatch.toml mode"
echo '[sampler]' >"$vol/etc/launchwatch.toml"
install_pkg
[ "$(grep -cxF "$ext" "$vol/var/osquery/extensions.load")" = 1 ] || fail "a second install listed the extension twice"
[ "$(cat "$vol/etc/launchwatch.toml")" = '[sampler]' ] || fail "a second install replaced the operator's config"
# A Mac without osquery yet: /var/osquery is created.
rm -rf "$vol/var/osquery"
install_pkg
[ "$(cat "$vol/var/osquery/extensions.load")" = "$ext" ] || fail "fresh extensions.load: $(cat "$vol/var/osquery/extensions.load")"
echo "check-postinstall: macOS pkg postinstall OK (fresh, upgrade, existing config, no osquery yet)"
