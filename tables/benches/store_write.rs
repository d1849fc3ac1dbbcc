//! What the store costs on a loaded host's first ticks: a fresh file store (as the extension
//! opens it, summaries on) takes 20,000 new loopback flows (20 programs, client/server pairs on
//! 127.0.0.1, 1,000 flows each) in transactions of 1,000 observations, then a pass where 10 %
//! of them moved their counters, then 2,000 closes, then `export` of it all (what `record`
//! does last). Figures are this thread's CPU time (the machine may be shared) and wall time,
//! the median of a few rounds, each on a fresh store.
//! Run: `cargo bench -p launchwatch-tables --bench store_write` (prints figures; asserts
//! nothing). `STORE_WRITE_CHUNK=5000` writes bigger transactions.

use std::time::{Duration, Instant};

use launchwatch_tables::config::StoreConfig;
use launchwatch_tables::observation::{FlowObs, Observation};
use launchwatch_tables::store::Store;

const PAIRS: usize = 10;
const CONNECTIONS_PER_PAIR: usize = 1_000;
/// Observations per transaction, as the sampler splits a big tick (`STORE_WRITE_CHUNK`
/// overrides it to compare).
fn chunk_size() -> usize {
    std::env::var("STORE_WRITE_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1_000)
}
const ROUNDS: usize = 3;
const NOW: f64 = 1_780_000_000.0;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Both ends of every connection: the client program's flow and the server program's.
fn loaded_host_flows() -> Vec<FlowObs> {
    let mut flows = Vec::with_capacity(PAIRS * CONNECTIONS_PER_PAIR * 2);
    for pair in 0..PAIRS {
        let server_port = 9000 + pair as u16;
        let (client_pid, server_pid) = (10_000 + 2 * pair as i64, 10_001 + 2 * pair as i64);
        for c in 0..CONNECTIONS_PER_PAIR {
            let client_port = 20_000 + (pair * CONNECTIONS_PER_PAIR + c) as u16;
            let start = NOW - 3600.0 + (c % 600) as f64;
            let end = |pid: i64, path: String, local: u16, remote: u16| FlowObs {
                start,
                pid: Some(pid),
                process_start: Some(NOW - 7200.0),
                path,
                protocol: "tcp".into(),
                local_address: Some("127.0.0.1".into()),
                local_port: Some(local),
                remote_address: "127.0.0.1".into(),
                remote_port: remote,
                bytes_sent: Some(120),
                bytes_received: Some(80),
                state: Some("ESTABLISHED".into()),
                source: Some("poll".into()),
                last_seen: Some(NOW),
                ..FlowObs::default()
            };
            flows.push(end(
                client_pid,
                format!("/opt/load/client-{pair}"),
                client_port,
                server_port,
            ));
            flows.push(end(
                server_pid,
                format!("/opt/load/server-{pair}"),
                server_port,
                client_port,
            ));
        }
    }
    flows
}

/// The sampler's batches (built outside the timed part).
fn chunks(flows: &[FlowObs]) -> Vec<Vec<Observation>> {
    flows
        .chunks(chunk_size())
        .map(|c| c.iter().cloned().map(Observation::Flow).collect())
        .collect()
}

fn write_all(store: &Store, batches: &[Vec<Observation>]) {
    for batch in batches {
        store.write_batch(batch, 1).unwrap();
    }
}

struct Timed {
    cpu: Duration,
    wall: Duration,
    n: usize,
}

fn timed(n: usize, f: impl FnOnce()) -> Timed {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    f();
    Timed {
        cpu: thread_cpu() - cpu,
        wall: wall.elapsed(),
        n,
    }
}

fn main() {
    let flows = loaded_host_flows();
    // Every tenth flow's counters moved, ten seconds later.
    let moved: Vec<FlowObs> = flows
        .iter()
        .step_by(10)
        .map(|f| FlowObs {
            bytes_sent: Some(f.bytes_sent.unwrap() + 1_000),
            bytes_received: Some(f.bytes_received.unwrap() + 500),
            last_seen: Some(NOW + 10.0),
            ..f.clone()
        })
        .collect();
    // 2,000 connections close with their final counters (both ends of 1,000 connections).
    let closed: Vec<FlowObs> = flows
        .iter()
        .skip(1)
        .step_by(10)
        .map(|f| FlowObs {
            end: Some(NOW + 20.0),
            bytes_sent: Some(f.bytes_sent.unwrap() + 10),
            state: Some("CLOSED".into()),
            last_seen: Some(NOW + 20.0),
            ..f.clone()
        })
        .collect();
    let mut passes: Vec<(&str, Vec<Timed>)> = ["new", "10% moved", "closes", "export"]
        .iter()
        .map(|name| (*name, Vec::new()))
        .collect();
    let mut lines = 0;
    let mut counted = 0;
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (new, moves, closes) = (chunks(&flows), chunks(&moved), chunks(&closed));
        passes[0]
            .1
            .push(timed(flows.len(), || write_all(&store, &new)));
        passes[1]
            .1
            .push(timed(moved.len(), || write_all(&store, &moves)));
        passes[2]
            .1
            .push(timed(closed.len(), || write_all(&store, &closes)));
        let mut out = Vec::with_capacity(16 << 20);
        passes[3].1.push(timed(flows.len(), || {
            lines = store.export(&mut out).unwrap();
        }));
        // The store turns SQLite's memory statistics (and their global mutex) off before its
        // first connection; with them on this is the bytes SQLite holds for the open store.
        // SAFETY: no arguments, no preconditions.
        counted = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    }
    println!(
        "store_write: {} flows ({} programs), transactions of {}; median of {ROUNDS} fresh stores",
        flows.len(),
        PAIRS * 2,
        chunk_size()
    );
    println!(
        "{:<12} {:>8} {:>10} {:>10} {:>12}",
        "pass", "flows", "cpu ms", "wall ms", "cpu µs/flow"
    );
    for (name, mut runs) in passes {
        runs.sort_by_key(|t| t.cpu);
        let t = &runs[runs.len() / 2];
        println!(
            "{name:<12} {:>8} {:>10.1} {:>10.1} {:>12.2}",
            t.n,
            t.cpu.as_secs_f64() * 1e3,
            t.wall.as_secs_f64() * 1e3,
            t.cpu.as_secs_f64() * 1e6 / t.n as f64
        );
    }
    println!("export wrote {lines} lines");
    println!(
        "sqlite memory statistics: {}",
        if counted == 0 { "off" } else { "on" }
    );
}
