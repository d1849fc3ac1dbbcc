//! `launchwatch_signing` and `launchwatch_crypto_imports` on real binaries: ELF executables
//! compiled here with and without OpenSSL imports, and committed Mach-O fixtures (zig and
//! ld64.lld output, see tests/fixtures/macho/make_fixtures.py) whose load commands and
//! signatures an independent parser recorded in expected.json.

use std::path::{Path, PathBuf};
use std::process::Command;

use launchwatch_e2e::{bin, json_rows, stderr};
use serde_json::{Map, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/macho")
}

fn query(root: &Path, sql: &str) -> Vec<Map<String, Value>> {
    let out = Command::new(bin())
        .args(["query", "--json", "--root"])
        .arg(root)
        .args(["--state-dir"])
        .arg(root.join(".no-state"))
        .arg(sql)
        .output()
        .unwrap();
    json_rows(&out)
}

fn one(root: &Path, table: &str, path: &str) -> Map<String, Value> {
    let rows = query(
        root,
        &format!("SELECT * FROM {table} WHERE path = '{path}'"),
    );
    assert_eq!(rows.len(), 1, "{table} {path}: {rows:?}");
    rows.into_iter().next().unwrap()
}

/// Builds an ELF with `cc`; `crypto` makes it import EVP_EncryptInit_ex from libcrypto.so.3.
fn build_elf(dir: &Path, name: &str, crypto: bool) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let code = if crypto {
        // Declared here so the test needs libcrypto.so.3 only, not its headers.
        "typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX; typedef struct evp_cipher_st EVP_CIPHER;\n\
         int EVP_EncryptInit_ex(EVP_CIPHER_CTX *, const EVP_CIPHER *, void *, const unsigned char *, const unsigned char *);\n\
         int main(int argc, char **argv) { (void)argv; if (argc > 5) return EVP_EncryptInit_ex(0, 0, 0, 0, 0); return 0; }\n"
    } else {
        "#include <stdio.h>\nint main(void) { puts(\"plain\"); return 0; }\n"
    };
    std::fs::write(&src, code).unwrap();
    let out = dir.join(name);
    let mut cc = Command::new("cc");
    cc.arg("-o").arg(&out).arg(&src);
    if crypto {
        cc.arg("-l:libcrypto.so.3");
    }
    let status = cc.output().unwrap();
    assert!(
        status.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

#[test]
fn elf_executables_with_and_without_openssl_imports() {
    let dir = tempfile::tempdir().unwrap();
    let with = build_elf(dir.path(), "with_crypto", true);
    let without = build_elf(dir.path(), "without_crypto", false);
    let root = Path::new("/");
    let r = one(root, "launchwatch_crypto_imports", with.to_str().unwrap());
    assert_eq!(
        (
            r["format"].as_str().unwrap(),
            r["symmetric_crypto"].as_str().unwrap()
        ),
        ("elf", "1")
    );
    let apis: Vec<String> = serde_json::from_str(r["apis"].as_str().unwrap()).unwrap();
    assert_eq!(apis, ["OpenSSL:EVP_EncryptInit_ex"]);
    assert_eq!(r["frameworks"], "[\"OpenSSL\"]");
    let r = one(
        root,
        "launchwatch_crypto_imports",
        without.to_str().unwrap(),
    );
    assert_eq!(
        (
            r["symmetric_crypto"].as_str().unwrap(),
            r["apis"].as_str().unwrap()
        ),
        ("0", "[]")
    );
    assert_eq!(r["error"], "");
    let s = one(root, "launchwatch_signing", with.to_str().unwrap());
    assert_eq!(
        (
            s["status"].as_str().unwrap(),
            s["signer_class"].as_str().unwrap(),
            s["format"].as_str().unwrap()
        ),
        ("unsupported", "unknown", "elf")
    );
}

/// Load command ids read with a dozen lines of our own, independent of the code under test.
fn load_commands(bytes: &[u8]) -> Vec<String> {
    let u32le = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    assert_eq!(u32le(0), 0xfeed_facf, "thin 64-bit Mach-O");
    let mut off = 32;
    (0..u32le(16))
        .map(|_| {
            let (cmd, size) = (u32le(off), u32le(off + 4) as usize);
            off += size;
            format!("{cmd:#x}")
        })
        .collect()
}

fn slices(bytes: &[u8]) -> Vec<&[u8]> {
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    if be(0) != 0xcafe_babe {
        return vec![bytes];
    }
    (0..be(4))
        .map(|i| &bytes[be(8 + 20 * i + 8)..be(8 + 20 * i + 8) + be(8 + 20 * i + 12)])
        .collect()
}

#[test]
fn macho_fixtures_are_what_they_claim() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    for (name, want) in expected.as_object().unwrap() {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let got = slices(&bytes);
        let want_slices = want["slices"].as_array().unwrap();
        assert_eq!(got.len(), want_slices.len(), "{name}");
        for (slice, w) in got.iter().zip(want_slices) {
            let cmds: Vec<String> = w["load_commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            assert_eq!(load_commands(slice), cmds, "{name}: load commands changed");
        }
    }
    // The properties the tests below rely on.
    let cmds = |n: &str| expected[n]["slices"][0]["load_commands"].to_string();
    assert!(
        cmds("crypto_chained").contains("0x80000034"),
        "LC_DYLD_CHAINED_FIXUPS"
    );
    assert!(
        cmds("crypto_arm64").contains("0x80000022"),
        "LC_DYLD_INFO_ONLY (bind opcodes)"
    );
    assert!(
        cmds("crypto_arm64").contains("0x1d") && !cmds("crypto_x86_64").contains("0x1d"),
        "arm64 signed, x86_64 not"
    );
    assert_eq!(
        expected["crypto_universal"]["slices"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn macho_imports_and_signatures_match_the_independent_reading() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let root = fixtures();
    for (name, want) in expected.as_object().unwrap() {
        let path = format!("/{name}");
        let c = one(&root, "launchwatch_crypto_imports", &path);
        let arches: Vec<String> = want["slices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["arch"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            c["architectures"].as_str().unwrap(),
            serde_json::to_string(&arches).unwrap(),
            "{name}"
        );
        assert_eq!(c["format"], "macho");
        let crypto = if name.starts_with("crypto") { "1" } else { "0" };
        assert_eq!(c["symmetric_crypto"], crypto, "{name}: {c:?}");
        if crypto == "1" {
            assert_eq!(c["apis"], "[\"CommonCrypto:CCCrypt\"]", "{name}");
        }
        assert_eq!(c["error"], "", "{name}");
        let s = one(&root, "launchwatch_signing", &path);
        match want["slices"][0]["signature"].as_object() {
            None => assert_eq!(
                (
                    s["status"].as_str().unwrap(),
                    s["signer_class"].as_str().unwrap()
                ),
                ("unsigned", "unsigned"),
                "{name}"
            ),
            Some(sig) => {
                assert_eq!(
                    (
                        s["status"].as_str().unwrap(),
                        s["signer_class"].as_str().unwrap()
                    ),
                    ("adhoc", "adhoc"),
                    "{name}"
                );
                assert_eq!(s["identifier"], sig["identifier"], "{name}");
                assert_eq!(s["cdhash"], sig["cdhash"], "{name}: cdhash");
                let flags = sig["flags"].as_u64().unwrap();
                assert_eq!(
                    s["linker_signed"],
                    if flags & 0x20000 != 0 { "1" } else { "0" },
                    "{name}"
                );
                assert_eq!(
                    s["hardened_runtime"],
                    if flags & 0x10000 != 0 { "1" } else { "0" },
                    "{name}"
                );
            }
        }
        assert_eq!(s["source"], "static");
    }
}

#[test]
fn lying_and_truncated_binaries_are_an_error_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixtures().join("crypto_arm64")).unwrap();
    std::fs::write(dir.path().join("half"), &good[..good.len() / 2]).unwrap();
    // Point LC_CODE_SIGNATURE (the last command) far past the end of the file.
    let mut lying = good.clone();
    let ncmds = u32::from_le_bytes(lying[16..20].try_into().unwrap());
    let mut off = 32;
    for _ in 0..ncmds {
        let cmd = u32::from_le_bytes(lying[off..off + 4].try_into().unwrap());
        if cmd == 0x1d {
            lying[off + 8..off + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        }
        off += u32::from_le_bytes(lying[off + 4..off + 8].try_into().unwrap()) as usize;
    }
    std::fs::write(dir.path().join("lying"), &lying).unwrap();
    std::fs::write(dir.path().join("header_only"), &good[..40]).unwrap();
    let s = one(dir.path(), "launchwatch_signing", "/lying");
    assert!(
        s["error"].as_str().unwrap().contains("outside the file"),
        "{s:?}"
    );
    let c = one(dir.path(), "launchwatch_crypto_imports", "/lying");
    assert_eq!(c["symmetric_crypto"], "1", "imports still read: {c:?}");
    for name in ["/half", "/header_only"] {
        let c = one(dir.path(), "launchwatch_crypto_imports", name);
        let s = one(dir.path(), "launchwatch_signing", name);
        assert!(
            !c["error"].as_str().unwrap().is_empty() || !s["error"].as_str().unwrap().is_empty(),
            "{name}: {c:?} {s:?}"
        );
    }
    let missing = one(dir.path(), "launchwatch_signing", "/nope");
    assert_eq!(
        (
            missing["status"].as_str().unwrap(),
            missing["error"].as_str().unwrap()
        ),
        ("error", "not found")
    );
}

#[test]
fn replayed_signing_observations_win_for_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obs.jsonl");
    std::fs::write(
        &file,
        "{\"kind\":\"signing\",\"path\":\"/crypto_x86_64\",\"signer_class\":\"developer_id\",\"status\":\"valid\",\"team_id\":\"ABCDE12345\",\"identifier\":\"com.example.agent\",\"notarized\":1}\n",
    )
    .unwrap();
    let out = launchwatch_e2e::command(dir.path())
        .args(["query", "--json", "--root"])
        .arg(fixtures())
        .arg("--replay")
        .arg(&file)
        .arg("SELECT * FROM launchwatch_signing WHERE path IN ('/crypto_x86_64', '/crypto_arm64')")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_rows(&out);
    let x = rows.iter().find(|r| r["path"] == "/crypto_x86_64").unwrap();
    assert_eq!(
        (
            x["signer_class"].as_str().unwrap(),
            x["source"].as_str().unwrap(),
            x["notarized"].as_str().unwrap()
        ),
        ("developer_id", "observation", "1")
    );
    let a = rows.iter().find(|r| r["path"] == "/crypto_arm64").unwrap();
    assert_eq!(
        (
            a["signer_class"].as_str().unwrap(),
            a["source"].as_str().unwrap()
        ),
        ("adhoc", "static")
    );
}
