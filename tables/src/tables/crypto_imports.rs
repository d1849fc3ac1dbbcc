//! `launchwatch_crypto_imports`: does an executable carry its own symmetric crypto? Which
//! CommonCrypto, Security, CryptoKit, OpenSSL or libsodium APIs it imports and which crypto
//! libraries it links — the "invokes symmetric crypto APIs" half of AN0402. Static, from the
//! file's bytes (thin and universal Mach-O, ELF), so it answers the same on any host.

use crate::binary::{crypto_apis, crypto_libraries};
use crate::env::TableEnv;
use crate::executables::executables;
use crate::framework::column::{bigint, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};

pub struct CryptoImports;

const COLUMNS: &[Column] = &[
    text("path", "Executable path").index(),
    text("format", "macho, elf or other"),
    text("architectures", "JSON array of architectures (arm64, arm64e, x86_64, …); several for universal files"),
    integer("symmetric_crypto", "1 when a symmetric-crypto API is imported; 0 when none is (statically linked crypto stays invisible); NULL on error"),
    text("apis", "JSON array of recognised imports as family:symbol (CommonCrypto:CCCrypt, OpenSSL:EVP_EncryptInit_ex, CryptoKit:$s9CryptoKit3AESO3GCMO, …)"),
    text("frameworks", "JSON array of crypto libraries and frameworks linked (CryptoKit, Security, CommonCrypto, OpenSSL, libsodium, …)"),
    bigint("imports", "Imported symbols counted over all slices"),
    text("error", "Why the file could not be read or parsed fully (short reason)"),
];

impl Table for CryptoImports {
    fn name(&self) -> &'static str {
        "launchwatch_crypto_imports"
    }
    fn description(&self) -> &'static str {
        "Symmetric-crypto API imports and crypto libraries linked, per executable (Mach-O thin and universal, ELF)."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for path in executables(env, ctx) {
            let facts = env.binaries.get(&env.root, &path);
            let row = match facts.as_ref() {
                Err(e) => vec![
                    Value::from(path),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::from(e.as_str()),
                ],
                Ok(b) => {
                    let apis = crypto_apis(b);
                    let arches: Vec<&str> = b.slices.iter().map(|s| s.arch.as_str()).collect();
                    let error: Vec<String> = b
                        .slices
                        .iter()
                        .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.arch)))
                        .collect();
                    vec![
                        Value::from(path),
                        Value::from(b.format.name()),
                        Value::from(serde_json::to_string(&arches).expect("strings")),
                        Value::from(!apis.is_empty()),
                        Value::from(serde_json::to_string(&apis).expect("strings")),
                        Value::from(serde_json::to_string(&crypto_libraries(b)).expect("strings")),
                        Value::from(b.slices.iter().map(|s| s.imports.len() as i64).sum::<i64>()),
                        if error.is_empty() {
                            Value::Null
                        } else {
                            Value::from(error.join("; "))
                        },
                    ]
                }
            };
            rows.push(row);
        }
        Ok(rows)
    }
}
