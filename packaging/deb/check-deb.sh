#!/usr/bin/env bash
# Proves the .deb on this machine: builds it from BINARY (a Linux launchwatch for this host),
# installs it with `dpkg --root` into scratch roots so its maintainer scripts really run (dpkg
# chroots into the root for them), checks files, owners, modes, the conffile and the
# extensions.load line, upgrades it in place, then removes and purges it and checks that
# nothing of it is left. Needs root (chroot).
#   packaging/deb/check-deb.sh BINARY
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 BINARY" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
binary=$(readlink -f "$1")
ext=/usr/local/osquery_extensions/launchwatch.ext
if [ "$(id -u)" != 0 ]; then
  echo "check-deb: needs root (dpkg --root chroots for maintainer scripts)" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }

# A debug build carries ~100 MB of debug info; the package's layout is the same without it.
objcopy --strip-debug "$binary" "$work/launchwatch"
deb=$(DEB_COMPRESS=-Zgzip "$here/build-deb.sh" "$work/launchwatch" "$(dpkg --print-architecture)" "$work/out")
echo "check-deb: built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

# Every entry root:root; modes as the layout says.
dpkg-deb -c "$deb" >"$work/contents"
awk '$2 != "root/root" { print; bad = 1 } END { exit bad }' "$work/contents" || fail "entries not owned by root/root"
mode_of() { awk -v p="./$1" '$6 == p { print $1 }' "$work/contents"; }
[ "$(mode_of usr/local/osquery_extensions/launchwatch.ext)" = -rwxr-xr-x ] || fail "launchwatch.ext is not 0755"
[ "$(mode_of etc/launchwatch.toml)" = -rw-r--r-- ] || fail "launchwatch.toml is not 0644"
dpkg-deb -f "$deb" Package Version Architecture Depends

# A root just big enough for dpkg and the maintainer scripts: sh, grep, mv, rm and their libraries.
new_root() {
  local r=$1 tool lib
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers" "$r/tmp"
  : >"$r/var/lib/dpkg/status"
  : >"$r/var/lib/dpkg/available"
  for tool in sh grep mv rm; do
    tool=$(command -v "$tool")
    mkdir -p "$r$(dirname "$tool")"
    cp -L "$tool" "$r$tool"
    for lib in $(ldd "$tool" | grep -o '/[^ ]*'); do
      mkdir -p "$r$(dirname "$lib")"
      cp -L "$lib" "$r$lib"
    done
  done
  # usrmerge hosts: /bin/sh must exist where the maintainer scripts' #! says.
  [ -e "$r/bin/sh" ] || { mkdir -p "$r/bin"; ln -s "$(command -v sh)" "$r/bin/sh"; }
  find "$r" -mindepth 1 | sort >"$r.before"
}
# libc6 is the host's, not in the scratch dpkg database: hence --force-depends.
dpkg_in() { local r=$1; shift; dpkg --root="$r" --force-depends --force-not-root "$@" >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg $*"; }; }
lines_of() { grep -cxF "$ext" "$1/etc/osquery/extensions.load" 2>/dev/null || true; }

# 1. A host where osquery already lists another extension (its last line lacks a newline).
r=$work/root1
new_root "$r"
mkdir -p "$r/etc/osquery"
printf '/opt/other/other.ext' >"$r/etc/osquery/extensions.load"
dpkg_in "$r" -i "$deb"
[ "$(stat -c '%U:%G %a' "$r$ext")" = "root:root 755" ] || fail "$ext: $(stat -c '%U:%G %a' "$r$ext")"
[ "$(stat -c '%a' "$r/etc/launchwatch.toml")" = 644 ] || fail "/etc/launchwatch.toml mode"
[ "$(cat "$r/etc/osquery/extensions.load")" = "$(printf '/opt/other/other.ext\n%s' "$ext")" ] ||
  fail "extensions.load after install: $(cat "$r/etc/osquery/extensions.load")"
[ -f "$r/usr/share/launchwatch/launchwatch.conf" ] || fail "pack missing"
# The installed binary runs and accepts the shipped example config.
"$r$ext" --version
"$r$ext" --config "$r/etc/launchwatch.toml" --state-dir "$work/state" query --no-sample \
  "SELECT version FROM launchwatch_status" >/dev/null || fail "the shipped /etc/launchwatch.toml is rejected"
# 2. Reinstalling (an upgrade: old postrm upgrade, new postinst configure) keeps one line and
#    the operator's edit of the conffile.
echo '[sampler]' >>"$r/etc/launchwatch.toml"
dpkg_in "$r" -i "$deb"
[ "$(lines_of "$r")" = 1 ] || fail "extensions.load lists launchwatch $(lines_of "$r") times after an upgrade"
tail -1 "$r/etc/launchwatch.toml" | grep -qx '\[sampler\]' || fail "upgrade overwrote the edited conffile"
# 3. Remove: the line goes, the other extension stays, the conffile stays; purge takes it.
dpkg_in "$r" -r launchwatch
[ "$(cat "$r/etc/osquery/extensions.load")" = /opt/other/other.ext ] || fail "extensions.load after remove: $(cat "$r/etc/osquery/extensions.load")"
[ ! -e "$r$ext" ] || fail "$ext left after remove"
[ -f "$r/etc/launchwatch.toml" ] || fail "remove must keep the conffile"
dpkg_in "$r" -P launchwatch
[ ! -e "$r/etc/launchwatch.toml" ] || fail "purge left /etc/launchwatch.toml"

# 4. A host without osquery: install creates extensions.load; purge leaves the root as it was.
r=$work/root2
new_root "$r"
dpkg_in "$r" -i "$deb"
[ "$(cat "$r/etc/osquery/extensions.load")" = "$ext" ] || fail "fresh extensions.load: $(cat "$r/etc/osquery/extensions.load")"
mkdir -p "$r/var/lib/launchwatch" && : >"$r/var/lib/launchwatch/history.db"
dpkg_in "$r" -P launchwatch
# dpkg's own bookkeeping aside, the root is back to what new_root made.
find "$r" -mindepth 1 | sort | grep -v "^$r/var/lib/dpkg/" | diff -u <(grep -v "^$r/var/lib/dpkg/" "$r.before") - ||
  fail "purge left files behind (diff above)"
echo "check-deb: install, upgrade, remove and purge OK in scratch roots"
