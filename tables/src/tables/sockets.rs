//! `launchwatch_sockets`: open connections and connections closed within retention, with the
//! kernel's byte counters, rates over the last sampling interval, owner and destination scope.

use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::net::scope;

pub struct Sockets;

const COLUMNS: &[Column] = &[
    bigint("pid", "Owning process (macOS: the delegated pid when set, else the last user of the socket)").index(),
    text("path", "Owning process's executable"),
    text("launchd_label", "launchd job (macOS) or systemd unit (Linux) of the owner, inherited by the job's whole process tree"),
    text("label_source", "How the label was learned: launchctl, parent (inherited along the process tree), responsible, cgroup or replay"),
    text("protocol", "tcp or udp").index(),
    text("local_address", "Local address"),
    integer("local_port", "Local port"),
    text("remote_address", "Remote address").index(),
    integer("remote_port", "Remote port").index(),
    text("remote_name", "The flow's name: DNS-resolved first (the answer capture saw before this connection, the flow's own name, the latest DNS answer for the address), else the TLS SNI or HTTP Host it claimed"),
    text("remote_scope", "loopback, link_local, private (RFC 1918, fc00::/7, 100.64/10, networks.internal), multicast (224/4, ff00::/8), broadcast (255.255.255.255) or external; only external counts as external"),
    text("state", "TCP state as osquery spells it (ESTABLISHED, TIME_WAIT, …); CLOSED for finished flows; NULL for UDP"),
    bigint("bytes_sent", "Bytes sent as the kernel counts them: Linux TCP bytes the peer acknowledged (tcpi_bytes_acked; the connecting side's SYN adds one); macOS ≤ 14 per packet incl. headers and retransmissions, 15+ payload. NULL for Linux UDP (no counters)"),
    bigint("bytes_received", "Bytes received as the kernel counts them: Linux TCP payload (tcp_info); macOS ≤ 14 incl. headers, 15+ possibly counted twice. NULL for Linux UDP"),
    double("bytes_sent_per_s", "Send rate over the last sampling interval"),
    double("bytes_received_per_s", "Receive rate over the last sampling interval"),
    bigint("start_time", "When the flow was first seen, Unix epoch"),
    bigint("process_start_time", "Owner's start time, Unix epoch: with pid, joins launchwatch_process_cpu (and osquery's processes) without pid-reuse mistakes"),
    bigint("last_seen", "Latest counter reading, Unix epoch"),
    double("duration_seconds", "From first sight to the end (closed) or the latest reading (open)"),
    bigint("acting_pid", "macOS delegated sockets: the process that used the socket (so_last_pid, e.g. nsurlsessiond) when pid is the process it worked for (so_e_pid, taken only if that process started before the flow was first seen); NULL otherwise"),
    text("source", "Which collector saw the flow: tracepoint (Linux kernel connection events: owner from connect(2), final counters at close), sock_diag (Linux polling), ntstat or pcblist (macOS), replay (loaded from a file)"),
];

impl Table for Sockets {
    fn name(&self) -> &'static str {
        "launchwatch_sockets"
    }
    fn description(&self) -> &'static str {
        "Network flows per process with kernel byte counters and rates: open connections and ones closed within retention."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    /// Raw flows and samples only.
    fn reads_summaries(&self) -> bool {
        false
    }

    /// Only the rates come from two readings; counters, owners and states need one.
    fn needs_two_readings(&self, cols_used: u64) -> bool {
        ["bytes_sent_per_s", "bytes_received_per_s"]
            .iter()
            .any(|c| crate::framework::column_read(COLUMNS, cols_used, c))
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let internal = env.config.internal_networks();
        // Equality pushdown becomes SQL parameters (never text in the statement).
        let mut filters = Vec::new();
        let mut params: Vec<rusqlite::types::Value> = Vec::new();
        for (col, numeric) in [
            ("pid", true),
            ("protocol", false),
            ("remote_address", false),
            ("remote_port", true),
        ] {
            let values: Vec<rusqlite::types::Value> = if numeric {
                // "443.0" (remote_port = 443.0, or a join against a DOUBLE) is port 443.
                match ctx.equals_integer(col) {
                    None => continue,
                    Some(v) => v.into_iter().map(rusqlite::types::Value::Integer).collect(),
                }
            } else {
                let v = ctx.equals(col);
                if v.is_empty() {
                    continue;
                }
                v.into_iter()
                    .map(|t| rusqlite::types::Value::Text(t.to_string()))
                    .collect()
            };
            let mut marks = Vec::new();
            for v in values {
                params.push(v);
                marks.push(format!("?{}", params.len()));
            }
            filters.push(if marks.is_empty() {
                // Constrained, but no integer can equal any value given.
                "0".to_string()
            } else {
                format!("f.{col} IN ({})", marks.join(","))
            });
        }
        let filters = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let rows = env.store.read(|c| {
            // The name lookups are three correlated subqueries per row; with no payloads and no
            // DNS answers stored (capture off, the default) they can only yield f.remote_name,
            // so they are left out. Checked under the same store lock as the query, so no write
            // falls in between.
            let names_from_capture: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM payloads) OR EXISTS(SELECT 1 FROM dns)",
                [],
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT f.pid, f.path, f.launchd_label, f.protocol, f.local_address, f.local_port, f.remote_address,
                        f.remote_port, {},
                        f.state, f.bytes_sent, f.bytes_received, f.prev_seen, f.prev_bytes_sent, f.prev_bytes_received,
                        f.start, f.last_seen, f.end, f.process_start, f.label_source, ifnull(f.source, 'replay'), f.acting_pid,
                        f.id
                 FROM flows f {filters}",
                if names_from_capture { crate::analytics::FLOW_NAME_SQL } else { "f.remote_name" },
            );
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            // Ordered by (start, id) here rather than by SQLite: with tens of thousands of
            // flows its sorter spills the rows to a temporary file and reads them back.
            let mut out: Vec<(f64, i64, Row)> = Vec::new();
            while let Some(r) = rows.next()? {
                let remote: String = r.get(6)?;
                let (sent, received): (Option<i64>, Option<i64>) = (r.get(10)?, r.get(11)?);
                let (prev_seen, prev_sent, prev_received): (Option<f64>, Option<i64>, Option<i64>) =
                    (r.get(12)?, r.get(13)?, r.get(14)?);
                let (start, last_seen, end): (f64, f64, Option<f64>) =
                    (r.get(15)?, r.get(16)?, r.get(17)?);
                let rate = |now: Option<i64>, before: Option<i64>| -> Value {
                    match (now, before, prev_seen) {
                        (Some(n), Some(b), Some(p)) if last_seen > p => {
                            Value::Double((n - b).max(0) as f64 / (last_seen - p))
                        }
                        _ => Value::Null,
                    }
                };
                let scope = scope(&remote, &internal);
                let row = vec![
                    Value::from(r.get::<_, Option<i64>>(0)?),
                    Value::from(r.get::<_, Option<String>>(1)?),
                    Value::from(r.get::<_, Option<String>>(2)?),
                    Value::from(r.get::<_, Option<String>>(19)?),
                    Value::from(r.get::<_, String>(3)?),
                    Value::from(r.get::<_, Option<String>>(4)?),
                    Value::from(r.get::<_, Option<i64>>(5)?),
                    Value::Text(remote),
                    Value::from(r.get::<_, i64>(7)?),
                    Value::from(r.get::<_, Option<String>>(8)?),
                    Value::from(scope),
                    Value::from(r.get::<_, Option<String>>(9)?),
                    Value::from(sent),
                    Value::from(received),
                    rate(sent, prev_sent),
                    rate(received, prev_received),
                    Value::from(start.floor() as i64),
                    Value::from(r.get::<_, Option<f64>>(18)?.map(|p| p.floor() as i64)),
                    Value::from(last_seen.floor() as i64),
                    Value::Double(end.unwrap_or(last_seen) - start),
                    Value::from(r.get::<_, Option<i64>>(21)?),
                    Value::from(r.get::<_, String>(20)?),
                ];
                out.push((start, r.get(22)?, row));
            }
            out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            Ok(out.into_iter().map(|(_, _, row)| row).collect())
        })?;
        Ok(rows)
    }
}
