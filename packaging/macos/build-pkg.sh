#!/usr/bin/env bash
# Builds the macOS installer package for plain osquery (on a Mac: pkgbuild, productbuild):
#   packaging/macos/build-pkg.sh EXT OUTDIR [INSTALLER_IDENTITY]
# EXT is the (signed) universal launchwatch.ext. With INSTALLER_IDENTITY (a "Developer ID
# Installer: …" certificate in the keychain) the product archive is signed.
# Installs /usr/local/osquery_extensions/launchwatch.ext (root:wheel 0755), the pack and an
# example config under /usr/local/share/launchwatch/; its postinstall lists the extension in
# /var/osquery/extensions.load and copies the example to /etc/launchwatch.toml if absent.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,3s/^# \{0,1\}//p' "$0" >&2; exit 2; }
ext=$1 out=$2 identity=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
"$here/stage-pkg.sh" "$ext" "$stage"
mkdir -p "$out"
pkgbuild --root "$stage/root" --scripts "$stage/scripts" --identifier launchwatch.extension \
  --version "$version" --install-location / --ownership recommended "$stage/launchwatch-component.pkg"
sign=()
[ -n "$identity" ] && sign=(--sign "$identity" --timestamp)
productbuild --package "$stage/launchwatch-component.pkg" --identifier launchwatch \
  --version "$version" "${sign[@]}" "$out/launchwatch-$version.pkg"
echo "$out/launchwatch-$version.pkg"
