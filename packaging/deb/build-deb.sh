#!/usr/bin/env bash
# Builds launchwatch_<version>_<arch>.deb from a built binary, with dpkg-deb alone (no debhelper):
#   packaging/deb/build-deb.sh BINARY DEB_ARCH OUTDIR
# DEB_ARCH is Debian's name (amd64, arm64). The version is the workspace's Cargo version.
# Layout (the same as the macOS pkg): /usr/local/osquery_extensions/launchwatch.ext (root 0755),
# /etc/launchwatch.toml (a conffile, every key commented out), the pack under
# /usr/share/launchwatch/; postinst lists the extension in /etc/osquery/extensions.load.
# DEB_COMPRESS overrides the compression (default -Zxz; CI checks use a faster one).
set -euo pipefail
[ $# = 3 ] || { sed -n '2,3s/^# \{0,1\}//p' "$0" >&2; exit 2; }
binary=$1 arch=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml")
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/local/osquery_extensions" "$root/etc/osquery" \
  "$root/usr/share/launchwatch" "$root/usr/share/doc/launchwatch"
install -m 0755 "$binary" "$root/usr/local/osquery_extensions/launchwatch.ext"
install -m 0644 "$here/../launchwatch.toml" "$root/etc/launchwatch.toml"
install -m 0644 "$repo/packs/launchwatch.conf" "$root/usr/share/launchwatch/launchwatch.conf"
install -m 0644 "$repo/packs/fleet/launchwatch.yml" "$root/usr/share/launchwatch/launchwatch-fleet.yml"
install -m 0644 "$repo/CHANGELOG.md" "$root/usr/share/doc/launchwatch/CHANGELOG.md"
printf 'launchwatch is licensed under the Apache License 2.0 (/usr/share/common-licenses/Apache-2.0).\n' \
  >"$root/usr/share/doc/launchwatch/copyright"
chmod 0644 "$root/usr/share/doc/launchwatch/copyright"
for script in postinst postrm; do
  { printf '#!/bin/sh\n'; cat "$here/../extensions-load.sh" "$here/$script"; } >"$root/DEBIAN/$script"
  chmod 0755 "$root/DEBIAN/$script"
done
echo /etc/launchwatch.toml >"$root/DEBIAN/conffiles"

# The newest glibc symbol version the binary needs is the libc6 it depends on.
glibc=$(readelf --dyn-syms -W "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 || true)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: launchwatch
Version: $version
Architecture: $arch
Maintainer: launchwatch maintainers <maintainers@launchwatch.invalid>
Section: admin
Priority: optional
Installed-Size: $size
Depends: libc6${glibc:+ (>= $glibc)}
Suggests: osquery
Description: osquery extension for beaconing, fallback, mining, crypto and egress analytics
 launchwatch samples processes and sockets, keeps a bounded history and exposes
 launchwatch_* tables to osqueryd (via /etc/osquery/extensions.load) or to
 "launchwatch.ext query" directly, plus a query pack for five MITRE ATT&CK analytics.
CONTROL
mkdir -p "$out"
deb=$out/launchwatch_${version}_${arch}.deb
# --root-owner-group: files belong to root:root whoever builds the package.
dpkg-deb --root-owner-group "${DEB_COMPRESS:--Zxz}" --build "$root" "$deb" >/dev/null
echo "$deb"
