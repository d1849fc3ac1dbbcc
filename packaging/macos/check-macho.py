#!/usr/bin/env python3
"""Checks a universal launchwatch.ext the way macOS would look at it at load time, from the
bytes alone (no Apple tools): both slices present (arm64, x86_64), each an MH_EXECUTE PIE with
LC_MAIN for macOS at the expected minimum version, loading only the dylibs we expect, every
imported symbol bound to one of them (two-level namespace, no flat or dynamic lookup), and a
code signature whose CodeDirectory hashes match every page of the slice.

    check-macho.py FILE [--runtime]    (--runtime: the signature must carry the hardened-runtime flag)

Formats: mach-o/loader.h, mach-o/fat.h, mach-o/nlist.h (xnu EXTERNAL_HEADERS) and
osfmk/kern/cs_blobs.h for the signature blobs."""
import hashlib, struct, sys

FAT_MAGIC, MH_MAGIC_64 = 0xCAFEBABE, 0xFEEDFACF
CPU = {0x01000007: "x86_64", 0x0100000C: "arm64"}
MH_EXECUTE, MH_PIE, MH_TWOLEVEL = 2, 0x200000, 0x80
LC_SYMTAB, LC_LOAD_DYLIB, LC_MAIN = 0x2, 0xC, 0x80000028
LC_CODE_SIGNATURE, LC_VERSION_MIN_MACOSX, LC_BUILD_VERSION = 0x1D, 0x24, 0x32
PLATFORM_MACOS = 1
CSMAGIC_EMBEDDED_SIGNATURE, CSMAGIC_CODEDIRECTORY = 0xFADE0CC0, 0xFADE0C02
CS_ADHOC, CS_RUNTIME = 0x2, 0x10000
N_TYPE, N_UNDF, N_EXT = 0x0E, 0x0, 0x01
# rustc's minimum macOS for each target; the dylibs launchwatch may load.
MINOS = {"arm64": (11, 0), "x86_64": (10, 12)}
DYLIBS = {"/usr/lib/libSystem.B.dylib", "/usr/lib/libiconv.2.dylib", "/usr/lib/libpcap.A.dylib",
          "/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation",
          "/System/Library/Frameworks/Security.framework/Versions/A/Security"}


def fail(msg):
    sys.exit(f"check-macho: FAILED: {msg}")


def version(v):
    return (v >> 16, (v >> 8) & 0xFF)


def check_slice(arch, b, runtime):
    magic, cputype, _, filetype, ncmds, _, flags, _ = struct.unpack_from("<8I", b, 0)
    if magic != MH_MAGIC_64 or CPU.get(cputype) != arch:
        fail(f"{arch}: not a 64-bit Mach-O of that CPU")
    if filetype != MH_EXECUTE or not flags & MH_PIE or not flags & MH_TWOLEVEL:
        fail(f"{arch}: filetype {filetype} flags {flags:#x}: not a two-level-namespace PIE executable")
    off, dylibs, has_main, minos, symtab, sig = 32, [], False, None, None, None
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", b, off)
        if cmd == LC_LOAD_DYLIB:
            name_off = struct.unpack_from("<I", b, off + 8)[0]
            dylibs.append(b[off + name_off:off + size].split(b"\0")[0].decode())
        elif cmd == LC_MAIN:
            has_main = True
        elif cmd == LC_BUILD_VERSION:
            platform, mos = struct.unpack_from("<II", b, off + 8)
            if platform != PLATFORM_MACOS:
                fail(f"{arch}: LC_BUILD_VERSION platform {platform}, not macOS")
            minos = version(mos)
        elif cmd == LC_VERSION_MIN_MACOSX:
            minos = version(struct.unpack_from("<I", b, off + 8)[0])
        elif cmd == LC_SYMTAB:
            symtab = struct.unpack_from("<4I", b, off + 8)
        elif cmd == LC_CODE_SIGNATURE:
            sig = struct.unpack_from("<II", b, off + 8)
        off += size
    if not has_main:
        fail(f"{arch}: no LC_MAIN")
    if minos != MINOS[arch]:
        fail(f"{arch}: minimum macOS {minos}, expected {MINOS[arch]}")
    if "/usr/lib/libSystem.B.dylib" not in dylibs or not set(dylibs) <= DYLIBS:
        fail(f"{arch}: loads {dylibs}; expected libSystem and only {sorted(DYLIBS)}")
    # Imports: every undefined external symbol names its dylib by ordinal (n_desc high byte).
    symoff, nsyms, stroff, _ = symtab
    imports = {}
    for i in range(nsyms):
        strx, ntype, _, desc, _ = struct.unpack_from("<IBBHQ", b, symoff + 16 * i)
        if ntype & N_TYPE == N_UNDF and ntype & N_EXT:
            ordinal = desc >> 8
            name = b[stroff + strx:].split(b"\0")[0].decode()
            if not 1 <= ordinal <= len(dylibs):
                fail(f"{arch}: import {name} has library ordinal {ordinal} (flat or dynamic lookup)")
            imports.setdefault(dylibs[ordinal - 1].rsplit("/", 1)[-1], []).append(name)
    # The signature: a SuperBlob whose CodeDirectory hashes every page up to codeLimit.
    if sig is None:
        fail(f"{arch}: no LC_CODE_SIGNATURE")
    dataoff, datasize = sig
    magic, _, count = struct.unpack_from(">III", b, dataoff)
    if magic != CSMAGIC_EMBEDDED_SIGNATURE:
        fail(f"{arch}: signature magic {magic:#x}")
    # Old deployment targets get a SHA-1 CodeDirectory (slot 0) plus a SHA-256 alternate (slot
    # 0x1000); every one present must match, and one must be SHA-256.
    cds = []
    for i in range(count):
        _, blob_off = struct.unpack_from(">II", b, dataoff + 12 + 8 * i)
        if struct.unpack_from(">I", b, dataoff + blob_off)[0] == CSMAGIC_CODEDIRECTORY:
            cds.append(dataoff + blob_off)
    if not cds:
        fail(f"{arch}: no CodeDirectory")
    sha256_cd = None
    for cd in cds:
        (_, length, _, cs_flags, hash_off, ident_off, _, n_code, code_limit, hash_size, hash_type,
         _, page_shift) = struct.unpack_from(">9I4B", b, cd)
        algo = {(1, 20): hashlib.sha1, (2, 32): hashlib.sha256}.get((hash_type, hash_size))
        if algo is None:
            fail(f"{arch}: CodeDirectory hash type {hash_type} size {hash_size}")
        if code_limit != dataoff:
            fail(f"{arch}: codeLimit {code_limit} does not end where the signature starts ({dataoff})")
        page = 1 << page_shift
        if n_code != (code_limit + page - 1) // page:
            fail(f"{arch}: {n_code} code slots for {code_limit} bytes in {page}-byte pages")
        for i in range(n_code):
            want = b[cd + hash_off + hash_size * i:cd + hash_off + hash_size * (i + 1)]
            if algo(b[i * page:min((i + 1) * page, code_limit)]).digest() != want:
                fail(f"{arch}: page {i} does not match its {algo.__name__[8:]} CodeDirectory hash")
        if hash_type == 2:
            sha256_cd = (cd, length, cs_flags, ident_off, n_code, page)
    if sha256_cd is None:
        fail(f"{arch}: no SHA-256 CodeDirectory")
    cd, length, cs_flags, ident_off, n_code, page = sha256_cd
    if not cs_flags & CS_ADHOC:
        fail(f"{arch}: signature flags {cs_flags:#x}: not ad-hoc")
    if runtime and not cs_flags & CS_RUNTIME:
        fail(f"{arch}: signature flags {cs_flags:#x}: no hardened runtime")
    ident = b[cd + ident_off:].split(b"\0")[0].decode()
    cdhash = hashlib.sha256(b[cd:cd + length]).hexdigest()[:40]
    counts = ", ".join(f"{len(v)} from {k}" for k, v in sorted(imports.items()))
    print(f"check-macho: {arch}: macOS {minos[0]}.{minos[1]}+, {len(dylibs)} dylibs, imports {counts}; "
          f"signed ad-hoc as {ident!r} (flags {cs_flags:#x}, {len(cds)} CodeDirectories, {n_code} pages of {page} bytes verified, cdhash {cdhash})")
    return cdhash


def main():
    path, runtime = sys.argv[1], "--runtime" in sys.argv[2:]
    data = open(path, "rb").read()
    magic, nfat = struct.unpack_from(">II", data, 0)
    if magic != FAT_MAGIC:
        fail(f"{path} is not a universal (fat) Mach-O")
    slices = {}
    for i in range(nfat):
        cputype, _, offset, size, _ = struct.unpack_from(">5I", data, 8 + 20 * i)
        slices[CPU.get(cputype, hex(cputype))] = data[offset:offset + size]
    if sorted(slices) != ["arm64", "x86_64"]:
        fail(f"slices {sorted(slices)}, expected arm64 and x86_64")
    for arch in ("arm64", "x86_64"):
        print(f"{arch} cdhash={check_slice(arch, slices[arch], runtime)}", file=sys.stderr)


main()
