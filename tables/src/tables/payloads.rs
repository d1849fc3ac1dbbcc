//! `launchwatch_payloads`: each flow's first payload, classified (tls, ssh, http, quic, dns,
//! stratum, random, printable, other, undetermined) with its entropy next to what random bytes
//! of the same length would have. From replayed `payload` observations: `first_bytes` are
//! classified here; observations that carry a class keep it. Live capture (pktap on macOS) is
//! not built yet, so on a live host the table holds only what was replayed or recorded.

use base64::Engine;

use crate::analytics::payload::{classify, entropy, expected_random_entropy};
use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};

pub struct Payloads;

const COLUMNS: &[Column] = &[
    bigint("pid", "Process that sent or received it").index(),
    text("path", "Executable path").index(),
    text("protocol", "tcp or udp"),
    text("remote_address", "Remote address"),
    integer("remote_port", "Remote port"),
    text("direction", "out (client's first payload) or in"),
    text(
        "payload_class",
        "tls, ssh, http, quic, dns, stratum, random, printable, other, undetermined (< 32 bytes)",
    ),
    double(
        "entropy",
        "Shannon entropy of the bytes seen, bits per byte",
    ),
    double(
        "expected_entropy",
        "Expected entropy of random bytes of the same length (what `random` is judged against)",
    ),
    bigint(
        "bytes_seen",
        "Bytes the classification looked at (at most 256 kept)",
    ),
    bigint("ts", "When the payload was seen, Unix epoch"),
    integer(
        "allowlisted",
        "1 when the config's [allowlist] names this path or remote address",
    ),
];

impl Table for Payloads {
    fn name(&self) -> &'static str {
        "launchwatch_payloads"
    }
    fn description(&self) -> &'static str {
        "First payload per flow, classified by protocol fingerprint, plaintext rules and a length-fair randomness test."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let paths = ctx.equals("path");
        type Raw = (
            Option<i64>,
            Option<String>,
            String,
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<f64>,
            Option<i64>,
            f64,
        );
        let raw: Vec<Raw> = env.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT pid, path, protocol, remote_address, remote_port, direction, first_bytes, payload_class, entropy, bytes_seen, ts FROM payloads ORDER BY ts",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?))
            })?;
            rows.collect()
        })?;
        let mut out = Vec::new();
        for (pid, path, protocol, address, port, direction, first_bytes, class, ent, seen, ts) in
            raw
        {
            if !paths.is_empty() && !path.as_deref().is_some_and(|p| paths.contains(&p)) {
                continue;
            }
            let decoded = first_bytes
                .as_deref()
                .map(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()));
            let (class, ent, expected, seen) = match decoded {
                Some(Ok(bytes)) => {
                    let bytes = &bytes[..bytes.len().min(256)];
                    let c = classify(bytes, protocol == "udp", port.clamp(0, 65535) as u16);
                    (
                        Some(c.name().to_string()),
                        Some(entropy(bytes)),
                        Some(expected_random_entropy(bytes.len())),
                        Some(bytes.len() as i64),
                    )
                }
                // Undecodable bytes: say so rather than guess.
                Some(Err(_)) => (Some("undetermined".into()), None, None, seen),
                None => (
                    class,
                    ent,
                    seen.map(|n| expected_random_entropy(n.clamp(0, 1 << 20) as usize)),
                    seen,
                ),
            };
            let allowlisted = env.config.allowlist.matches(
                path.as_deref().unwrap_or(""),
                path.as_deref().unwrap_or(""),
                &address,
                None,
            );
            out.push(vec![
                Value::from(pid),
                Value::from(path),
                Value::from(protocol),
                Value::from(address),
                Value::from(port),
                Value::from(direction),
                Value::from(class),
                Value::from(ent),
                Value::from(expected),
                Value::from(seen),
                Value::from(ts.floor() as i64),
                Value::from(allowlisted),
            ]);
        }
        Ok(out)
    }
}
