//! `launchwatch_payloads`: one row per flow with a first payload seen: the client's first
//! payload and the server's, each classified (tls, ssh, http, quic, dns, stratum, random,
//! printable, other, undetermined) with its entropy next to what random bytes of the same
//! length would have, and the names the flow claims, kept apart because they can disagree
//! (domain fronting): the DNS answer for its address, the TLS SNI (with ECH flagged), the HTTP
//! Host. From live capture (`[capture] enabled`, root) or replayed `payload` observations:
//! `first_bytes` / `server_first_bytes` are classified here; observations that carry a class
//! keep it.

use base64::Engine;

use crate::analytics::payload::{classify, entropy, expected_random_entropy};
use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};

pub struct Payloads;

const COLUMNS: &[Column] = &[
    bigint("pid", "Process at this host's end of the flow (client when this host connected)").index(),
    text("path", "Executable path").index(),
    text("launchd_label", "launchd job (or systemd unit) of the process, inherited by the job's whole process tree (from the flow, else the process)"),
    text("label_source", "How the label was learned: launchctl, parent, responsible, cgroup or replay"),
    text("parent_path", "Executable of the process that started this process (else the program's latest process seen on a connection) (triage context; a path, never a pid, so it holds across samples)"),
    text("parent_name", "That parent's process name"),
    text("protocol", "tcp or udp"),
    text("local_address", "This host's address"),
    integer("local_port", "This host's port"),
    text("remote_address", "Remote address"),
    integer("remote_port", "Remote port"),
    text("direction", "out (this host connected), in (the remote did), NULL when no local owner was found"),
    text(
        "payload_class",
        "Client's first payload: tls, ssh, http, quic, dns, stratum, random, printable, other, undetermined (< 32 bytes)",
    ),
    double("entropy", "Shannon entropy of the client bytes seen, bits per byte"),
    double(
        "expected_entropy",
        "Expected entropy of random bytes of the same length (what `random` is judged against)",
    ),
    bigint("bytes_seen", "Client bytes the classification looked at (at most 256)"),
    text("server_payload_class", "Server's first payload, same classes"),
    double("server_entropy", "Shannon entropy of the server bytes seen"),
    double("server_expected_entropy", "Expected entropy of random bytes as long as the server bytes seen"),
    bigint("server_bytes_seen", "Server bytes the classification looked at (at most 256)"),
    text("sni", "Server name the TLS or QUIC ClientHello asked for (with ECH: the public outer name)"),
    integer("ech", "1 when the ClientHello carried encrypted_client_hello (real or GREASE: the true name is hidden), 0 when it did not, NULL for no ClientHello"),
    text("http_host", "Host header of the first HTTP request"),
    text("resolved_name", "Name a DNS answer gave the remote address: captured before the flow, else the latest in launchwatch_dns"),
    text("remote_name", "The flow's name, the DNS-resolved one first, else SNI, else HTTP Host"),
    bigint("ts", "When the first payload was seen, Unix epoch"),
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
        let raw: Vec<RawPayload> = env.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT p.pid, p.path, p.protocol, p.local_address, p.local_port, p.remote_address, p.remote_port,
                        p.direction, p.first_bytes, p.payload_class, p.entropy, p.bytes_seen, p.server_first_bytes,
                        p.server_payload_class, p.server_entropy, p.server_bytes_seen, p.sni, p.ech, p.http_host,
                        coalesce(p.resolved_name,
                          (SELECT d.name FROM dns d WHERE d.address = p.remote_address ORDER BY d.last_seen DESC LIMIT 1)),
                        p.ts,
                        (SELECT f.launchd_label || char(31) || ifnull(f.label_source, '') FROM flows f
                          WHERE f.pid = p.pid AND f.remote_address = p.remote_address AND f.remote_port = p.remote_port
                            AND f.launchd_label IS NOT NULL AND f.start <= p.ts + 1 ORDER BY f.start DESC LIMIT 1),
                        (SELECT s.launchd_label || char(31) || ifnull(s.label_source, '') FROM process_instances s
                          WHERE s.pid = p.pid AND s.launchd_label IS NOT NULL AND s.start_time <= p.ts ORDER BY s.start_time DESC, s.id DESC LIMIT 1)
                 FROM payloads p ORDER BY p.ts",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RawPayload {
                    pid: r.get(0)?,
                    path: r.get(1)?,
                    protocol: r.get(2)?,
                    local_address: r.get(3)?,
                    local_port: r.get(4)?,
                    address: r.get(5)?,
                    port: r.get(6)?,
                    direction: r.get(7)?,
                    client: Side { bytes: r.get(8)?, class: r.get(9)?, entropy: r.get(10)?, seen: r.get(11)? },
                    server: Side { bytes: r.get(12)?, class: r.get(13)?, entropy: r.get(14)?, seen: r.get(15)? },
                    sni: r.get(16)?,
                    ech: r.get(17)?,
                    http_host: r.get(18)?,
                    resolved_name: r.get(19)?,
                    ts: r.get(20)?,
                    job: r.get::<_, Option<String>>(21)?.or(r.get(22)?),
                })
            })?;
            rows.collect()
        })?;
        let mut out = Vec::new();
        let mut parents = crate::analytics::parents::ByProgram::default();
        for p in raw {
            if !paths.is_empty() && !p.path.as_deref().is_some_and(|x| paths.contains(&x)) {
                continue;
            }
            let (label, label_source) = match p.job.as_deref().and_then(|j| j.split_once('\u{1f}'))
            {
                Some((l, s)) => (
                    Some(l.to_string()),
                    Some(s.to_string()).filter(|s| !s.is_empty()),
                ),
                None => (None, None),
            };
            let udp = p.protocol == "udp";
            let port = p.port.clamp(0, 65535) as u16;
            let (class, ent, expected, seen) = p.client.facts(udp, port);
            let (s_class, s_ent, s_expected, s_seen) = p.server.facts(udp, port);
            let allowlisted = env.config.allowlist.matches(
                p.path.as_deref().unwrap_or(""),
                p.path.as_deref().unwrap_or(""),
                &p.address,
                None,
            );
            let parent = match p.pid {
                Some(pid) => env
                    .store
                    .read(|c| crate::analytics::parents::of_instance(c, pid, None, p.ts))?,
                None => crate::analytics::parents::Parent::default(),
            };
            let parent = match (&parent.path, &parent.name, p.path.as_deref()) {
                (None, None, Some(path)) => parents.get(env, path)?,
                _ => parent,
            };
            let [parent_path, parent_name] = parent.values();
            let remote_name = p
                .resolved_name
                .clone()
                .or(p.sni.clone())
                .or(p.http_host.clone());
            out.push(vec![
                Value::from(p.pid),
                Value::from(p.path),
                Value::from(label),
                Value::from(label_source),
                parent_path,
                parent_name,
                Value::from(p.protocol),
                Value::from(p.local_address),
                Value::from(p.local_port),
                Value::from(p.address),
                Value::from(p.port),
                Value::from(p.direction),
                Value::from(class),
                Value::from(ent),
                Value::from(expected),
                Value::from(seen),
                Value::from(s_class),
                Value::from(s_ent),
                Value::from(s_expected),
                Value::from(s_seen),
                Value::from(p.sni),
                Value::from(p.ech),
                Value::from(p.http_host),
                Value::from(p.resolved_name),
                Value::from(remote_name),
                Value::from(p.ts.floor() as i64),
                Value::from(allowlisted),
            ]);
        }
        Ok(out)
    }
}

/// One direction's first payload as stored: the bytes (replay, debug) or the classification.
struct Side {
    bytes: Option<String>,
    class: Option<String>,
    entropy: Option<f64>,
    seen: Option<i64>,
}

impl Side {
    /// Class, entropy, expected entropy for that length, bytes seen.
    fn facts(
        &self,
        udp: bool,
        port: u16,
    ) -> (Option<String>, Option<f64>, Option<f64>, Option<i64>) {
        let decoded = self
            .bytes
            .as_deref()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()));
        match decoded {
            Some(Ok(bytes)) => {
                let bytes = &bytes[..bytes.len().min(256)];
                (
                    Some(classify(bytes, udp, port).name().to_string()),
                    Some(entropy(bytes)),
                    Some(expected_random_entropy(bytes.len())),
                    Some(bytes.len() as i64),
                )
            }
            // Undecodable bytes: say so rather than guess.
            Some(Err(_)) => (Some("undetermined".into()), None, None, self.seen),
            None => (
                self.class.clone(),
                self.entropy,
                self.seen
                    .map(|n| expected_random_entropy(n.clamp(0, 1 << 20) as usize)),
                self.seen,
            ),
        }
    }
}

struct RawPayload {
    pid: Option<i64>,
    path: Option<String>,
    protocol: String,
    local_address: Option<String>,
    local_port: Option<i64>,
    address: String,
    port: i64,
    direction: Option<String>,
    client: Side,
    server: Side,
    sni: Option<String>,
    ech: Option<i64>,
    http_host: Option<String>,
    resolved_name: Option<String>,
    ts: f64,
    /// "label\u{1f}source" of the flow (else the process) this payload belongs to.
    job: Option<String>,
}
