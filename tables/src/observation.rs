//! Observations: what collectors see and what `record` / `--replay` exchange as JSON Lines
//! (docs/observations.md). Live collectors and replay produce the same values, so every table
//! downstream is exercised the same way by both.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A longer line than this is refused rather than buffered: a replay file is data, not a way
/// to make the extension allocate without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Observation {
    Process(ProcessObs),
    Flow(FlowObs),
    Payload(PayloadObs),
    Dns(DnsObs),
    Signing(SigningObs),
}

/// A process instance's cumulative CPU at `ts`. (pid, start_time) identifies the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessObs {
    pub ts: f64,
    pub pid: i64,
    pub start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cumulative user+system CPU seconds at `ts`.
    pub cpu_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launchd_label: Option<String>,
    /// Process group: survives re-parenting to launchd, so a job's grandchildren stay its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i64>,
    /// How `launchd_label` was learned (spec.md value list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_source: Option<String>,
    /// macOS: the process the system holds responsible (an app for its helpers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_pid: Option<i64>,
}

/// One connection; byte counters are its cumulative totals at `end` (or at the sample).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowObs {
    pub start: f64,
    #[serde(default)]
    pub end: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<f64>,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launchd_label: Option<String>,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    pub remote_address: String,
    pub remote_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How `launchd_label` was learned (spec.md value list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_source: Option<String>,
    /// Which collector saw the flow (spec.md value list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// macOS delegated sockets: the process that used the socket (so_last_pid, e.g.
    /// nsurlsessiond) when `pid` is the process it worked for (so_e_pid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_pid: Option<i64>,
    /// Optional in the format: when the counters were last read (defaults to `end`,
    /// else `start`), and the reading before it, so rates survive a record/replay round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_seen: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_bytes_sent: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_bytes_received: Option<i64>,
    /// Counter readings of a long-lived connection, ascending by `ts`: the store keeps those
    /// where the counters moved (and the quiet reading before), so check-ins inside one
    /// connection can be timed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Vec<FlowSnapshot>>,
}

/// A long-lived connection's cumulative counters at `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSnapshot {
    pub ts: f64,
    pub bytes_sent: i64,
    pub bytes_received: i64,
}

impl FlowObs {
    /// When the counters were last read (a snapshot after `last_seen` is a later reading).
    pub fn seen(&self) -> f64 {
        let last_snapshot = self
            .snapshots
            .as_deref()
            .and_then(|s| s.last())
            .map_or(f64::NEG_INFINITY, |s| s.ts);
        self.last_seen
            .or(self.end)
            .unwrap_or(self.start)
            .max(self.start)
            .max(last_snapshot)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PayloadObs {
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub protocol: String,
    pub remote_address: String,
    pub remote_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Base64 of at most 256 bytes; when present the classifier runs on replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_seen: Option<i64>,
    // Extensions from live capture: the flow's local end and owner, the server's first
    // payload, and the names the flow claims (kept apart: they can disagree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Base64 of at most 256 bytes of the server's first payload (debug switch or replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_first_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_payload_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_entropy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_bytes_seen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// 1 when the ClientHello carried an encrypted_client_hello extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ech: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_host: Option<String>,
    /// The name a DNS answer seen before the flow gave its remote address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsObs {
    pub ts: f64,
    pub name: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningObs {
    pub path: String,
    pub signer_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notarized: Option<i64>,
}

impl Observation {
    /// The time an observation speaks for; `None` for timeless facts (signing).
    pub fn time(&self) -> Option<f64> {
        match self {
            Observation::Process(p) => Some(p.ts),
            Observation::Flow(f) => Some(f.seen()),
            Observation::Payload(p) => Some(p.ts),
            Observation::Dns(d) => Some(d.ts),
            Observation::Signing(_) => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Observation::Process(_) => "process",
            Observation::Flow(_) => "flow",
            Observation::Payload(_) => "payload",
            Observation::Dns(_) => "dns",
            Observation::Signing(_) => "signing",
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("observations always serialise")
    }
}

/// What one line turned out to be.
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived, one per line read
pub enum Parsed {
    Observation(Observation),
    /// A kind this build does not know: skipped with one warning per kind.
    UnknownKind(String),
    Blank,
}

/// Parses one JSON Lines record. The error is a short reason without the line's content.
pub fn parse_line(line: &str) -> Result<Parsed, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Parsed::Blank);
    }
    let json: Json = serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
    let Json::Object(mut obj) = json else {
        return Err("not a JSON object".into());
    };
    let kind = match obj.get("kind") {
        Some(Json::String(k)) => k.clone(),
        Some(_) => return Err("\"kind\" is not a string".into()),
        None => return Err("missing field `kind`".into()),
    };
    integral_floats(&kind, &mut obj);
    if kind == "flow" {
        // Each snapshot's counters too: converters write them the way they write the flow's.
        if let Some(Json::Array(snaps)) = obj.get_mut("snapshots") {
            for s in snaps.iter_mut() {
                if let Json::Object(o) = s {
                    integral_floats("snapshot", o);
                }
            }
        }
    }
    let json = Json::Object(obj);
    fn typed<T: serde::de::DeserializeOwned>(kind: &str, json: Json) -> Result<T, String> {
        serde_path_to_error::deserialize(json).map_err(|e| {
            let reason = plain_types(&e.inner().to_string());
            match e.path().to_string().as_str() {
                "." => format!("{kind}: {reason}"),
                path => format!("{kind}: field `{path}`: {reason}"),
            }
        })
    }
    let obs = match kind.as_str() {
        "process" => Observation::Process(typed(&kind, json)?),
        "flow" => Observation::Flow(typed(&kind, json)?),
        "payload" => Observation::Payload(typed(&kind, json)?),
        "dns" => Observation::Dns(typed(&kind, json)?),
        "signing" => Observation::Signing(typed(&kind, json)?),
        _ => return Ok(Parsed::UnknownKind(kind)),
    };
    validate(&obs)?;
    Ok(Parsed::Observation(obs))
}

/// Integer fields of each kind. Sensors such as Zeek write integers as floats (`57.0`).
fn integer_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "process" => &["pid", "ppid", "uid", "pgid", "responsible_pid"],
        "flow" => &[
            "pid",
            "acting_pid",
            "local_port",
            "remote_port",
            "bytes_sent",
            "bytes_received",
            "prev_bytes_sent",
            "prev_bytes_received",
        ],
        "payload" => &["pid", "remote_port", "bytes_seen"],
        "dns" => &["ttl"],
        "signing" => &["notarized"],
        "snapshot" => &["bytes_sent", "bytes_received"],
        _ => &[],
    }
}

/// Turns an integral float in an integer field into the integer (`57.0` → 57). A float with a
/// fraction is left alone, so the typed read names the field and says an integer was expected.
fn integral_floats(kind: &str, obj: &mut serde_json::Map<String, Json>) {
    for field in integer_fields(kind) {
        let Some(Json::Number(n)) = obj.get(*field) else {
            continue;
        };
        if n.is_f64() {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                obj.insert(field.to_string(), Json::from(f as i64));
            }
        }
    }
}

/// A deserializer's reason with Rust's type names in words: "expected i64" means nothing to
/// someone writing JSON or TOML.
pub fn plain_types(reason: &str) -> String {
    let mut out = reason.to_string();
    for (rust, words) in [
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u8", "expected an integer from 0 to 255"),
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected i32", "expected an integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
    ] {
        out = out.replace(rust, words);
    }
    out
}

fn validate(obs: &Observation) -> Result<(), String> {
    let times: Vec<(&str, f64)> = match obs {
        Observation::Process(p) => vec![
            ("ts", p.ts),
            ("start_time", p.start_time),
            ("cpu_time", p.cpu_time),
        ],
        Observation::Flow(f) => {
            let mut t = vec![("start", f.start)];
            t.extend(f.end.map(|e| ("end", e)));
            t.extend(f.last_seen.map(|e| ("last_seen", e)));
            t.extend(f.prev_seen.map(|e| ("prev_seen", e)));
            let mut last = f.start;
            for (i, s) in f.snapshots.iter().flatten().enumerate() {
                if !s.ts.is_finite() || s.ts < last {
                    return Err(format!(
                        "flow: field `snapshots[{i}].ts`: must be a number no earlier than `start` and the snapshot before it"
                    ));
                }
                if s.bytes_sent < 0 || s.bytes_received < 0 {
                    return Err(format!(
                        "flow: field `snapshots[{i}]`: counters must be non-negative"
                    ));
                }
                last = s.ts;
            }
            t
        }
        Observation::Payload(p) => vec![("ts", p.ts)],
        Observation::Dns(d) => vec![("ts", d.ts)],
        Observation::Signing(_) => vec![],
    };
    for (name, v) in times {
        if !v.is_finite() || v < 0.0 {
            return Err(format!(
                "{}: `{name}` must be a non-negative number",
                obs.kind()
            ));
        }
    }
    Ok(())
}

/// Everything read from one or more replay files.
#[derive(Debug, Default)]
pub struct Loaded {
    pub observations: Vec<Observation>,
    pub warnings: Vec<String>,
}

/// Reads JSON Lines. Any bad line fails the whole read with `FILE:LINE: reason`, so a caller
/// loads all of a file or none of it.
pub fn read_jsonl(path: &Path, into: &mut Loaded) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read_jsonl_from(path, file, into)
}

pub fn read_jsonl_from(path: &Path, reader: impl Read, into: &mut Loaded) -> Result<(), String> {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let mut new = Vec::new();
    let mut unknown = std::collections::BTreeSet::new();
    loop {
        buf.clear();
        line_no += 1;
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("{}:{line_no}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(format!(
                "{}:{line_no}: line longer than {MAX_LINE_BYTES} bytes",
                path.display()
            ));
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|_| format!("{}:{line_no}: not UTF-8", path.display()))?;
        match parse_line(text).map_err(|e| format!("{}:{line_no}: {e}", path.display()))? {
            Parsed::Observation(o) => new.push(o),
            Parsed::UnknownKind(k) => {
                if unknown.insert(k.clone()) {
                    into.warnings.push(format!(
                        "{}:{line_no}: unknown kind \"{}\" skipped (and any later lines of that kind)",
                        path.display(),
                        k.escape_default()
                    ));
                }
            }
            Parsed::Blank => {}
        }
    }
    into.observations.extend(new);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Loaded, String> {
        let mut l = Loaded::default();
        read_jsonl_from(Path::new("obs.jsonl"), text.as_bytes(), &mut l).map(|_| l)
    }

    #[test]
    fn spec_examples_parse() {
        let text = r#"{"kind":"process","ts":100,"pid":501,"start_time":90,"ppid":1,"uid":501,"path":"/a/agent","name":"agent","cpu_time":12.5,"launchd_label":"com.example.agent"}
{"kind":"flow","start":101,"end":102.5,"pid":501,"process_start":90,"path":"/a/agent","protocol":"tcp","local_address":"192.0.2.10","local_port":50123,"remote_address":"203.0.113.9","remote_port":443,"remote_name":"api.example.com","bytes_sent":512,"bytes_received":2048,"state":"CLOSED"}
{"kind":"payload","ts":101,"pid":501,"path":"/a/agent","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443,"direction":"out","first_bytes":"AAEC","payload_class":"random","entropy":7.1,"bytes_seen":256}

{"kind":"dns","ts":100,"name":"pool.example.com","address":"203.0.113.9","ttl":60}
{"kind":"signing","path":"/a/agent","signer_class":"developer_id","status":"valid","team_id":"ABCDE12345","identifier":"com.example.agent","notarized":1,"future_field":[1,2]}
"#;
        let l = read(text).unwrap();
        let kinds: Vec<_> = l.observations.iter().map(Observation::kind).collect();
        assert_eq!(kinds, ["process", "flow", "payload", "dns", "signing"]);
        assert!(l.warnings.is_empty());
        let Observation::Flow(f) = &l.observations[1] else {
            panic!()
        };
        assert_eq!(
            (f.bytes_sent, f.end, f.remote_port),
            (Some(512), Some(102.5), 443)
        );
    }

    #[test]
    fn record_format_round_trips() {
        let text = r#"{"kind":"flow","start":1.5,"end":null,"path":"/x","protocol":"udp","remote_address":"::1","remote_port":53}"#;
        let l = read(text).unwrap();
        let again = read(&l.observations[0].to_json_line()).unwrap();
        assert_eq!(l.observations, again.observations);
    }

    #[test]
    fn unknown_kind_warns_once_and_is_skipped() {
        let l = read("{\"kind\":\"telemetry\",\"x\":1}\n{\"kind\":\"telemetry\"}\n{\"kind\":\"dns\",\"ts\":1,\"name\":\"a\",\"address\":\"b\"}\n").unwrap();
        assert_eq!(l.observations.len(), 1);
        assert_eq!(l.warnings.len(), 1);
        assert!(
            l.warnings[0].starts_with("obs.jsonl:1:"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn bad_lines_name_the_line_and_load_nothing() {
        let good = r#"{"kind":"dns","ts":1,"name":"a","address":"b"}"#;
        for (bad, needle) in [
            ("[1]", "not a JSON object"),
            ("{\"kind\":", "not valid JSON"),
            ("{\"ts\":1}", "missing field `kind`"),
            ("{\"kind\":7}", "not a string"),
            (
                r#"{"kind":"process","ts":1,"start_time":0,"cpu_time":1}"#,
                "missing field `pid`",
            ),
            (
                r#"{"kind":"flow","start":1,"path":"/x","protocol":"tcp","remote_address":"a","remote_port":70000}"#,
                "field `remote_port`",
            ),
            (
                r#"{"kind":"dns","ts":-5,"name":"a","address":"b"}"#,
                "non-negative",
            ),
            (
                r#"{"kind":"dns","ts":"soon","name":"a","address":"b"}"#,
                "dns:",
            ),
        ] {
            let mut l = Loaded::default();
            let text = format!("{good}\n{bad}\n{good}\n");
            let err = read_jsonl_from(Path::new("f.jsonl"), text.as_bytes(), &mut l).unwrap_err();
            assert!(err.starts_with("f.jsonl:2: "), "{bad} -> {err}");
            assert!(err.contains(needle), "{bad} -> {err}");
            assert!(l.observations.is_empty(), "nothing is loaded half-way");
        }
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_named_errors() {
        let l = read(concat!(
            r#"{"kind":"dns","ts":1.5,"name":"a.example","address":"203.0.113.9","ttl":57.0}"#,
            "\n",
            r#"{"kind":"flow","start":1,"path":"/x","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443.0,"bytes_sent":512.0,"pid":77.0}"#,
        ))
        .unwrap();
        match (&l.observations[0], &l.observations[1]) {
            (Observation::Dns(d), Observation::Flow(f)) => {
                assert_eq!(d.ttl, Some(57));
                assert_eq!(
                    (f.remote_port, f.bytes_sent, f.pid),
                    (443, Some(512), Some(77))
                );
            }
            other => panic!("{other:?}"),
        }
        let err = read(r#"{"kind":"dns","ts":1,"name":"a","address":"b","ttl":57.5}"#).unwrap_err();
        assert!(err.starts_with("obs.jsonl:1: dns: field `ttl`"), "{err}");
        assert!(err.contains("expected an integer"), "{err}");
        let err = read(r#"{"kind":"flow","start":1,"path":"/x","protocol":"tcp","remote_address":"a","remote_port":70000.0}"#).unwrap_err();
        assert!(err.contains("field `remote_port`"), "{err}");
    }

    #[test]
    fn flow_snapshots_parse_with_integral_floats_and_bad_entries_are_named() {
        let flow = |snaps: &str| {
            format!(
                r#"{{"kind":"flow","start":10,"path":"/x","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443,"snapshots":{snaps}}}"#
            )
        };
        let l = read(&flow(
            r#"[{"ts":10,"bytes_sent":0,"bytes_received":0},{"ts":70.5,"bytes_sent":300.0,"bytes_received":90}]"#,
        ))
        .unwrap();
        let Observation::Flow(f) = &l.observations[0] else {
            panic!()
        };
        assert_eq!(
            f.snapshots.as_deref().unwrap()[1],
            FlowSnapshot {
                ts: 70.5,
                bytes_sent: 300,
                bytes_received: 90
            }
        );
        // The last reading is when the flow was last seen.
        assert_eq!(f.seen(), 70.5);
        let again = read(&l.observations[0].to_json_line()).unwrap();
        assert_eq!(l.observations, again.observations);
        for (snaps, needle) in [
            (
                r#"[{"ts":10,"bytes_sent":0,"bytes_received":0},{"ts":20,"bytes_sent":1.5,"bytes_received":0}]"#,
                "flow: field `snapshots[1].bytes_sent`: invalid type: floating point `1.5`, expected an integer",
            ),
            (
                r#"[{"ts":10,"bytes_sent":0}]"#,
                "flow: field `snapshots[0]`: missing field `bytes_received`",
            ),
            (
                r#"[{"ts":30,"bytes_sent":0,"bytes_received":0},{"ts":20,"bytes_sent":0,"bytes_received":0}]"#,
                "flow: field `snapshots[1].ts`",
            ),
            (
                r#"[{"ts":5,"bytes_sent":0,"bytes_received":0}]"#,
                "flow: field `snapshots[0].ts`",
            ),
            (
                r#"[{"ts":15,"bytes_sent":-1,"bytes_received":0}]"#,
                "non-negative",
            ),
            (r#"{"ts":15}"#, "flow: field `snapshots`"),
        ] {
            let err = read(&flow(snaps)).unwrap_err();
            assert!(err.starts_with("obs.jsonl:1: "), "{err}");
            assert!(err.contains(needle), "{snaps} -> {err}");
        }
    }

    #[test]
    fn hostile_input_is_refused_not_buffered() {
        let long = format!(
            "{{\"kind\":\"dns\",\"name\":\"{}\"}}",
            "a".repeat(MAX_LINE_BYTES)
        );
        assert!(read(&long).unwrap_err().contains("longer than"));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(read(&deep).unwrap_err().contains("not valid JSON"));
        let mut l = Loaded::default();
        let err =
            read_jsonl_from(Path::new("b"), &b"{\"kind\":\"dns\xff\"}"[..], &mut l).unwrap_err();
        assert_eq!(err, "b:1: not UTF-8");
    }
}
