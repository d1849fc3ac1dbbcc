//! `launchwatch_signing`: who signed an executable. On macOS from Security.framework (status,
//! signer class by designated requirements, authority chain, notarization on request); on any
//! host, static facts from the Mach-O's embedded signature (identifier, team id, flags,
//! cdhash, ad-hoc or unsigned). Replayed `signing` observations win for their paths. The
//! "not Apple-signed" half of AN0082.

use crate::binary::{Binary, Format, CS_LINKER_SIGNED, CS_RUNTIME};
use crate::env::TableEnv;
use crate::executables::executables;
use crate::framework::column::{integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};

pub struct Signing;

const COLUMNS: &[Column] = &[
    text("path", "Executable path").index(),
    text("status", "valid, invalid, unsigned, adhoc, unsupported (cannot be verified on this host or format) or error. valid: see validation for what was checked"),
    text("signer_class", "apple, app_store (Mac App Store, or iOS App Store apps on Apple silicon), developer_id (Developer ID OIDs required), adhoc, unsigned, invalid, other, or unknown (not determinable here)"),
    text("identifier", "Code signing identifier"),
    text("team_id", "Team identifier"),
    text("authority", "JSON array of certificate common names, leaf first (macOS)"),
    text("cdhash", "Code directory hash (hex, 20 bytes) of the strongest code directory"),
    integer("notarized", "1 when a notarization ticket is found locally (stapled or cached by the system) or the code is Apple's; NULL when none is found (a notarized bare command-line tool carries no stapled ticket, so absence proves nothing), when not asked for, or off macOS. Asked for by selecting this column or [signing] notarization = true; offline"),
    integer("hardened_runtime", "Hardened runtime flag (CS_RUNTIME)"),
    integer("platform_binary", "1 for Apple platform binaries"),
    integer("linker_signed", "Ad-hoc signature made by the linker (CS_LINKER_SIGNED, arm64 default for unsigned builds)"),
    text("format", "macho, elf or other"),
    text("source", "security_framework, static (from the file's bytes) or observation (replayed)"),
    text("error", "Why the file could not be read or verified (short reason)"),
    text("validation", "What a Security.framework status checked (macOS): basic = code directory, CMS signature and certificate chain of the native slice, pages and other architectures not hashed; full = every architecture, page and nested code. NULL for static or replayed facts"),
];

// Requirement texts and class rules are facts both this table and the macOS backend use.
pub use crate::facts::{notarized_from, signer_class_from, SigningFacts, APP_STORE, DEVELOPER_ID};

/// From the bytes alone: unsigned, ad-hoc, or "signed with a certificate we cannot check here".
pub fn static_facts(b: &Binary) -> SigningFacts {
    let mut f = SigningFacts {
        source: "static",
        ..SigningFacts::default()
    };
    if b.format != Format::MachO {
        f.status = "unsupported".into();
        f.signer_class = "unknown".into();
        return f;
    }
    // The first slice speaks for the file; a universal file whose slices disagree says so.
    let Some(first) = b.slices.first() else {
        f.status = "error".into();
        f.signer_class = "unknown".into();
        f.error = Some("universal file without slices".into());
        return f;
    };
    if b.slices
        .iter()
        .any(|s| (s.signature.is_some()) != first.signature.is_some())
    {
        f.error = Some("slices differ: some are signed, some not".into());
    }
    if let Some(e) = &first.error {
        f.error = Some(e.clone());
    }
    match &first.signature {
        None => {
            f.status = "unsigned".into();
            f.signer_class = "unsigned".into();
        }
        Some(sig) => {
            f.identifier = sig.identifier.clone();
            f.team_id = sig.team_id.clone();
            f.cdhash = sig.cdhash.clone();
            f.hardened_runtime = Some(sig.flags & CS_RUNTIME != 0);
            f.platform_binary = Some(sig.platform != 0);
            f.linker_signed = Some(sig.flags & CS_LINKER_SIGNED != 0);
            if sig.adhoc() {
                f.status = "adhoc".into();
                f.signer_class = "adhoc".into();
            } else if sig.has_cms {
                // A certificate signature: only Security.framework can say whose and if valid.
                f.status = "unsupported".into();
                f.signer_class = "unknown".into();
            } else {
                f.status = "invalid".into();
                f.signer_class = "invalid".into();
                f.error
                    .get_or_insert_with(|| "neither ad-hoc nor signed with a certificate".into());
            }
        }
    }
    f
}

fn row(path: String, format: Option<&str>, f: SigningFacts) -> Row {
    vec![
        Value::from(path),
        Value::from(f.status),
        Value::from(f.signer_class),
        Value::from(f.identifier),
        Value::from(f.team_id),
        Value::from(
            f.authority
                .map(|a| serde_json::to_string(&a).expect("strings")),
        ),
        Value::from(f.cdhash),
        Value::from(f.notarized),
        Value::from(f.hardened_runtime),
        Value::from(f.platform_binary),
        Value::from(f.linker_signed),
        Value::from(format),
        Value::from(f.source),
        Value::from(f.error),
        Value::from(f.validation),
    ]
}

impl Table for Signing {
    fn name(&self) -> &'static str {
        "launchwatch_signing"
    }
    fn description(&self) -> &'static str {
        "Code signing per executable: status, signer class (apple, app_store, developer_id, adhoc, unsigned, …), identifier, team, cdhash, hardened runtime."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let observed: std::collections::HashMap<String, SigningFacts> = env.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT path, signer_class, status, team_id, identifier, notarized FROM signing",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    SigningFacts {
                        signer_class: r.get(1)?,
                        // Without a recorded status, the class says it.
                        status: match r.get::<_, Option<String>>(2)? {
                            Some(s) => s,
                            None => match r.get::<_, String>(1)?.as_str() {
                                c @ ("unsigned" | "adhoc" | "invalid") => c.to_string(),
                                "unknown" => "unsupported".into(),
                                _ => "valid".into(),
                            },
                        },
                        team_id: r.get(3)?,
                        identifier: r.get(4)?,
                        notarized: r.get::<_, Option<i64>>(5)?.map(|n| n != 0),
                        source: "observation",
                        ..SigningFacts::default()
                    },
                ))
            })?;
            rows.collect()
        })?;
        let live_host = env.root == std::path::Path::new("/");
        let want_notarized = env.config.signing.notarization
            || ctx.cols_used().is_some_and(|c| c.contains("notarized"));
        let mut rows = Vec::new();
        for path in executables(env, ctx) {
            if let Some(f) = observed.get(&path) {
                rows.push(row(path, None, f.clone()));
                continue;
            }
            let facts = env.binaries.get(&env.root, &path);
            let (format, mut f) = match facts.as_ref() {
                Err(e) => (
                    None,
                    SigningFacts {
                        status: "error".into(),
                        signer_class: "unknown".into(),
                        source: "static",
                        error: Some(e.clone()),
                        ..Default::default()
                    },
                ),
                Ok(b) => (Some(b.format.name()), static_facts(b)),
            };
            if live_host && format == Some("macho") {
                if let Some(verified) = crate::platform::code_signing(&path, want_notarized) {
                    f = verified;
                }
            }
            rows.push(row(path, format, f));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::{Signature, Slice};

    fn macho(sig: Option<Signature>) -> Binary {
        Binary {
            format: Format::MachO,
            slices: vec![Slice {
                arch: "arm64".into(),
                signature: sig,
                ..Slice::default()
            }],
        }
    }

    /// A stand-in for Security.framework: code whose leaf certificate carries `leaf_oid` under an
    /// Apple anchor satisfies a requirement when one of its leaf clauses names that OID.
    fn requirements_for(leaf_oid: &'static str) -> impl Fn(&str) -> bool {
        move |req: &str| {
            req != "anchor apple" && req.contains(&format!("leaf[field.{leaf_oid}] exists"))
        }
    }

    #[test]
    fn ios_app_store_apps_on_apple_silicon_are_app_store() {
        assert_eq!(
            signer_class_from(&requirements_for("1.2.840.113635.100.6.1.3")),
            "app_store"
        );
        assert_eq!(
            signer_class_from(&requirements_for("1.2.840.113635.100.6.1.9")),
            "app_store"
        );
        assert_eq!(
            signer_class_from(&requirements_for("1.2.840.113635.100.6.1.9.1")),
            "app_store"
        );
        assert_eq!(
            signer_class_from(&requirements_for("1.2.840.113635.100.6.1.13")),
            "developer_id"
        );
        assert_eq!(signer_class_from(&requirements_for("1.2.3.4")), "other");
        assert_eq!(signer_class_from(&|r: &str| r == "anchor apple"), "apple");
    }

    #[test]
    fn no_local_ticket_is_unknown_not_false() {
        assert_eq!(
            notarized_from(false, false),
            None,
            "a bare notarized CLI tool has no stapled ticket"
        );
        assert_eq!(notarized_from(false, true), Some(true));
        assert_eq!(notarized_from(true, false), Some(true));
    }

    #[test]
    fn static_classes() {
        assert_eq!(static_facts(&macho(None)).signer_class, "unsigned");
        let adhoc = static_facts(&macho(Some(Signature {
            flags: 0x20002,
            identifier: Some("x".into()),
            ..Signature::default()
        })));
        assert_eq!(
            (
                adhoc.status.as_str(),
                adhoc.signer_class.as_str(),
                adhoc.linker_signed
            ),
            ("adhoc", "adhoc", Some(true))
        );
        let cms = static_facts(&macho(Some(Signature {
            flags: 0x10000,
            has_cms: true,
            team_id: Some("T".into()),
            ..Signature::default()
        })));
        assert_eq!(
            (
                cms.status.as_str(),
                cms.signer_class.as_str(),
                cms.hardened_runtime
            ),
            ("unsupported", "unknown", Some(true))
        );
        let elf = static_facts(&Binary {
            format: Format::Elf,
            slices: vec![],
        });
        assert_eq!(
            (elf.status.as_str(), elf.signer_class.as_str()),
            ("unsupported", "unknown")
        );
    }
}
