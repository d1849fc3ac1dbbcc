#!/usr/bin/env bash
# Links launchwatch for both Apple targets on Linux, joins them into one universal
# launchwatch.ext, ad-hoc signs it, and checks what a Mac would check at load time: the
# architectures, the load commands (platform, minimum macOS, the dylibs it needs), every
# imported symbol against the SDK's exports, and the code signature of each slice.
#
#   packaging/macos/link-check.sh [LINUX_BINARY]
# With LINUX_BINARY (launchwatch built for this host) launchwatch's own signing table reads each
# slice too, and must report the same cdhash as the independent check. Output: target/link-check/.
#
# How: Debian's rustc with the standard library built from source (-Zbuild-std; rustup has no
# Apple std here), `zig cc` (PyPI ziglang) as linker and as C compiler for the bundled SQLite,
# zig's own libSystem.tbd, and text stubs (.tbd) for Security, CoreFoundation, libiconv and libpcap under
# packaging/macos/sdk-stubs/ listing the symbols launchwatch imports (a new import fails the link
# with the symbol's name: add it there). llvm-lipo and llvm-otool from Debian's llvm-14.
# Nothing here needs Apple's SDK or a Mac; what it cannot prove (that macOS accepts and runs
# the binary) is listed in the README.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/link-check
mkdir -p "$out"
host_binary=${1:+$(readlink -f "$1")}
ziglang=ziglang==0.17.1
targets=(aarch64-apple-darwin x86_64-apple-darwin)
note() { echo "link-check: $*"; }
fail() { echo "link-check: FAILED: $*" >&2; exit 1; }

# --- tools ---
need=()
for p in rustc-web cargo-web rust-web-src llvm-14; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  note "installing ${need[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
venv=$repo/target/ci-venv
if ! "$venv/bin/python" -c 'import ziglang' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$ziglang"
fi
# rcodesign for ad-hoc signing (zig's linker signs arm64 only). Without its notarize feature
# (the AWS SDK) it builds in a few minutes; CI's clone starts without it.
rcodesign_version=0.29.0
if ! rcodesign --version 2>/dev/null | grep -qF "$rcodesign_version"; then
  note "installing rcodesign $rcodesign_version (cargo install apple-codesign)"
  t0=$SECONDS
  cargo install --locked --quiet --no-default-features apple-codesign --version "$rcodesign_version"
  note "rcodesign installed in $((SECONDS - t0))s"
fi
rcodesign=$(command -v rcodesign)
zig=$("$venv/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
llvm=/usr/lib/llvm-14/bin

# --- an SDK made of stubs: zig brings libSystem; lib*.tbd are dylibs, the rest frameworks ---
sdk=$out/sdk
rm -rf "$sdk"
mkdir -p "$sdk/usr/lib" "$sdk/System/Library/Frameworks"
for tbd in "$here"/sdk-stubs/*.tbd; do
  name=$(basename "$tbd" .tbd)
  case $name in
    lib*) cp "$tbd" "$sdk/usr/lib/" ;;
    *) mkdir -p "$sdk/System/Library/Frameworks/$name.framework"
       cp "$tbd" "$sdk/System/Library/Frameworks/$name.framework/$name.tbd" ;;
  esac
done

# --- zig as C compiler, archiver and linker for each Apple target ---
bin=$out/bin
mkdir -p "$bin"
printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$zig" >"$bin/ar"
for t in "${targets[@]}"; do
  arch=${t%%-*}
  minos=11.0; [ "$arch" = x86_64 ] && minos=10.12   # rustc's own defaults for these targets
  # cc-rs and rustc pass clang's Apple flags (-arch X, --target=…, -mmacosx-version-min);
  # zig takes its target from -target alone.
  for tool in cc ld; do
    cat >"$bin/$tool-$t" <<WRAP
#!/bin/sh
skip=
for a; do shift
  if [ -n "\$skip" ]; then skip=; continue; fi
  case \$a in -arch) skip=1; continue ;; --target=*|-target|-mmacosx-version-min=*|-m*os-version-min=*) continue ;; esac
  set -- "\$@" "\$a"
done
exec "$zig" cc -target $arch-macos.$minos -F"$sdk/System/Library/Frameworks" -L"$sdk/usr/lib" "\$@"
WRAP
  done
done
chmod +x "$bin"/*

# --- build ---
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO=/usr/bin/cargo
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$out/cargo SDKROOT=$sdk
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET
# Debug info is of no use to a link check and doubles the link time.
export CARGO_PROFILE_DEV_DEBUG=0
# No stripping: rustc would need rust-objcopy, which Debian's toolchain lacks (and strip nothing).
export CARGO_PROFILE_DEV_STRIP=false
for t in "${targets[@]}"; do
  u=$(tr 'a-z-' 'A-Z_' <<<"$t")
  export "CARGO_TARGET_${u}_LINKER=$bin/ld-$t" "CC_${t//-/_}=$bin/cc-$t" "AR_${t//-/_}=$bin/ar"
  note "building $t"
  if ! (cd "$repo" && cargo build --locked -p launchwatch --target "$t" -Zbuild-std=std,panic_abort) \
      >"$out/build-$t.log" 2>&1; then
    grep -E 'undefined symbol|error' "$out/build-$t.log" | sort -u | head -40 >&2
    fail "building $t (log: $out/build-$t.log); an undefined symbol from a framework belongs in packaging/macos/sdk-stubs/"
  fi
done

# --- one universal file, signed ad-hoc with the hardened runtime as the release signs it ---
ext=$out/launchwatch.ext
"$llvm/llvm-lipo" -create -output "$ext" \
  "$out/cargo/aarch64-apple-darwin/debug/launchwatch" "$out/cargo/x86_64-apple-darwin/debug/launchwatch"
note "universal: $("$llvm/llvm-lipo" -archs "$ext")"
"$rcodesign" sign --code-signature-flags runtime --binary-identifier launchwatch "$ext" >"$out/rcodesign.log" 2>&1 ||
  { cat "$out/rcodesign.log" >&2; fail "rcodesign sign"; }
# (rcodesign verify says itself that it is unreliable, and fails on any ad-hoc signature for want
# of a CMS blob: check-macho.py below verifies every page hash instead.)

# --- what a Mac checks at load time, read from the bytes ---
python3 "$here/check-macho.py" "$ext" --runtime 2>"$out/cdhashes"
if [ -n "$host_binary" ]; then
  for arch in arm64 x86_64; do
    "$llvm/llvm-lipo" "$ext" -thin "$arch" -output "$out/slice-$arch"
    row=$("$host_binary" --config /dev/null --state-dir "$out/state" query --no-sample --json \
      "SELECT status, identifier, cdhash, hardened_runtime FROM launchwatch_signing WHERE path = '$out/slice-$arch'")
    want=$(sed -n "s/^$arch cdhash=//p" "$out/cdhashes")
    if ! grep -q "\"cdhash\":\"$want\"" <<<"$row" || ! grep -q '"status":"adhoc"' <<<"$row" ||
      ! grep -q '"hardened_runtime":"1"' <<<"$row"; then
      fail "$arch: launchwatch_signing says $row; expected adhoc, runtime, cdhash $want"
    fi
  done
  note "launchwatch_signing agrees on both slices (adhoc, hardened runtime, same cdhash)"
fi
note "OK: $ext"
