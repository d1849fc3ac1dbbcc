//! The sampler's live state for open connections, kept compact: on a host with tens of
//! thousands of sockets this table is most of the extension's memory, and every socket tick
//! touches every entry. A flow holds its counters, state and a shared reference to its
//! owner's facts (one per process instance, not one copy of path and label per socket); the
//! observation written to the store is built from it only when a write is due.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::facts::FlowTuple;
use crate::observation::FlowObs;

/// (IP protocol number, local address, local port, remote address, remote port).
pub(super) type FlowKey = FlowTuple;

/// A fast hash for tables keyed by 5-tuples and pids, looked up once per socket per tick;
/// seeded per process, so a peer choosing ports cannot aim for collisions.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Who a pid is: path, start time and launchd label (or systemd unit), shared by every flow of
/// that process instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Owner {
    pub path: Option<String>,
    pub start: Option<f64>,
    pub label: Option<String>,
    pub label_source: Option<String>,
}

/// A counter reading: (time, bytes sent, bytes received).
pub(super) type Reading = (f64, Option<i64>, Option<i64>);

/// What the store last got for a flow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    pub at: f64,
    pub sent: Option<i64>,
    pub received: Option<i64>,
    pub state: StateCode,
    /// A flow's pid is only ever learned (never changed): whether the write had it.
    pub had_pid: bool,
}

/// Which collector first saw a live flow (spec.md `source`); unknown for one resumed from the
/// store, which keeps what the store has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Unknown,
    Socket,
    Kernel,
}

impl Source {
    fn name(self) -> Option<&'static str> {
        match self {
            Source::Unknown => None,
            Source::Socket => Some(crate::platform::SOCKET_SOURCE),
            Source::Kernel => Some(crate::platform::KERNEL_SOURCE),
        }
    }
}

/// A TCP state as one byte: an index into `STATE_NAMES`, 0 for none (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct StateCode(u8);

impl StateCode {
    /// An unknown name (not written by this version) becomes none; the next socket tick sets
    /// the state afresh.
    pub fn of(name: Option<&str>) -> StateCode {
        name.and_then(|n| STATE_NAMES.iter().position(|s| *s == n))
            .map_or(StateCode(0), |i| StateCode(i as u8 + 1))
    }

    pub fn name(self) -> Option<&'static str> {
        usize::from(self.0)
            .checked_sub(1)
            .and_then(|i| STATE_NAMES.get(i))
            .copied()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub socket_id: u64,
    /// The sample that last saw it: one not seen by the latest sample has closed.
    pub generation: u32,
    pub start: f64,
    pub pid: Option<i64>,
    /// macOS delegated sockets: the daemon that used the socket for `pid`.
    pub acting_pid: Option<i64>,
    pub owner: Arc<Owner>,
    pub source: Source,
    pub state: StateCode,
    pub bytes_sent: Option<i64>,
    pub bytes_received: Option<i64>,
    pub last_seen: Option<f64>,
    /// When its counters last moved (or it opened, if the kernel events saw that); minus
    /// infinity for a connection that has not been seen moving: it is busy until
    /// `busy_window` after this.
    pub moved_at: f64,
    /// `None` until the first write.
    pub written: Option<Written>,
    /// The reading before this one, when it was not written: the rate's true start.
    pub unwritten: Option<Reading>,
}

/// One flow to write this tick: an open one is built from the live table when written (so a
/// first write of tens of thousands of flows never holds them all as observations at once);
/// a closed one has already left the table.
#[derive(Debug)]
pub(super) enum FlowWrite {
    Open {
        key: FlowKey,
        /// The held-back reading that starts this write's rate.
        prev: Option<Reading>,
    },
    Closed(Box<FlowObs>),
}

/// When live state is written to the store (store by change).
#[derive(Debug, Clone, Copy)]
pub struct WritePolicy {
    pub flow_age: f64,
    pub flow_step: i64,
    pub idle_refresh: f64,
    /// A process whose CPU moved is written at most this often.
    pub process_age: f64,
}

impl WritePolicy {
    pub const EVERY_SAMPLE: WritePolicy = WritePolicy {
        flow_age: 0.0,
        flow_step: 0,
        idle_refresh: 0.0,
        process_age: 0.0,
    };
}

impl Default for WritePolicy {
    fn default() -> WritePolicy {
        WritePolicy::from(&crate::config::SamplerConfig::default())
    }
}

impl From<&crate::config::SamplerConfig> for WritePolicy {
    fn from(c: &crate::config::SamplerConfig) -> WritePolicy {
        WritePolicy {
            flow_age: c.flow_write_age,
            flow_step: c.flow_write_step as i64,
            idle_refresh: c.idle_refresh,
            // A little under the interval, so tick jitter never skips a reading.
            process_age: c.process_interval * 0.9,
        }
    }
}

/// Tick timing jitter tolerated when a flow's write age is compared to `flow_write_age`:
/// ticks `socket_interval` apart must not miss a write by microseconds.
const WRITE_AGE_SLACK: f64 = 0.25;

/// The spec.md protocol name of an IP protocol number.
pub(super) fn protocol_name(proto: u8) -> &'static str {
    if proto == 17 {
        "udp"
    } else {
        "tcp"
    }
}

/// IP protocol number of a spec.md protocol name (the flow table's key).
pub(super) fn ip_proto(protocol: &str) -> u8 {
    if protocol == "udp" {
        17
    } else {
        6
    }
}

/// Every state name a platform reports (Linux, macOS) and the sampler's own `CLOSED`, the
/// commonest first: each socket's state is looked up here on every tick.
const STATE_NAMES: &[&str] = &[
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "SYN_RECEIVED",
    "FIN_WAIT1",
    "FIN_WAIT_1",
    "FIN_WAIT2",
    "FIN_WAIT_2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSED",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

impl Tracked {
    /// A flow first seen now, not yet written.
    pub fn new(socket_id: u64, start: f64, pid: Option<i64>, owner: Arc<Owner>) -> Tracked {
        Tracked {
            socket_id,
            generation: 0,
            start,
            pid,
            acting_pid: None,
            owner,
            source: Source::Unknown,
            state: StateCode::default(),
            bytes_sent: None,
            bytes_received: None,
            last_seen: None,
            moved_at: f64::NEG_INFINITY,
            written: None,
            unwritten: None,
        }
    }

    /// A flow the store has open (a restarted extension): what the store holds counts as
    /// written.
    pub fn resumed(f: &FlowObs) -> Tracked {
        let owner = Owner {
            path: Some(f.path.clone()).filter(|p| !p.is_empty()),
            start: f.process_start,
            label: f.launchd_label.clone(),
            label_source: f.label_source.clone(),
        };
        let state = StateCode::of(f.state.as_deref());
        Tracked {
            socket_id: 0,
            generation: 0,
            start: f.start,
            pid: f.pid,
            acting_pid: f.acting_pid,
            owner: Arc::new(owner),
            source: Source::Unknown,
            state,
            bytes_sent: f.bytes_sent,
            bytes_received: f.bytes_received,
            last_seen: f.last_seen,
            moved_at: f64::NEG_INFINITY,
            written: Some(Written {
                at: f.seen(),
                sent: f.bytes_sent,
                received: f.bytes_received,
                state,
                had_pid: f.pid.is_some(),
            }),
            unwritten: None,
        }
    }

    /// The observation of this flow as it stands.
    pub fn observation(&self, key: &FlowKey) -> FlowObs {
        let (proto, local, local_port, remote, remote_port) = *key;
        FlowObs {
            start: self.start,
            pid: self.pid,
            process_start: self.owner.start,
            path: self.owner.path.clone().unwrap_or_default(),
            launchd_label: self.owner.label.clone(),
            label_source: self.owner.label_source.clone(),
            source: self.source.name().map(str::to_string),
            acting_pid: self.acting_pid,
            protocol: protocol_name(proto).to_string(),
            local_address: Some(address(local)),
            local_port: Some(local_port),
            remote_address: address(remote),
            remote_port,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            state: self.state.name().map(str::to_string),
            last_seen: self.last_seen,
            ..FlowObs::default()
        }
    }

    /// The observation written for a flow that is gone: it ended when it was last seen.
    pub fn closed(&self, key: &FlowKey) -> FlowObs {
        let mut f = self.observation(key);
        f.end = Some(f.seen());
        f.state = Some("CLOSED".into());
        f
    }

    /// Whether a socket tick between full scans should read it.
    pub fn busy(&self, now: f64, window: f64) -> bool {
        now - self.moved_at < window
    }

    /// Takes this sample's reading and says whether the store should get the flow now (store
    /// by change): `Some(prev)` with the held-back reading that starts the write's rate, or
    /// `None` when the store already has what matters (unchanged, or changed less than the
    /// step and written recently).
    pub fn refresh(
        &mut self,
        policy: &WritePolicy,
        reading: SocketReading,
        now: f64,
        generation: u32,
    ) -> Option<Option<Reading>> {
        self.generation = generation;
        if self.socket_id == 0 {
            self.socket_id = reading.socket_id;
        }
        // Counters only grow; a socket that no longer reports them keeps its last values.
        let before = (self.bytes_sent, self.bytes_received);
        self.bytes_sent = max_opt(self.bytes_sent, reading.bytes_sent);
        self.bytes_received = max_opt(self.bytes_received, reading.bytes_received);
        // A first reading is no movement: a connection found by a scan is busy only once its
        // counters are seen to change.
        if before != (self.bytes_sent, self.bytes_received) && self.last_seen.is_some() {
            self.moved_at = now;
        }
        self.state = StateCode::of(reading.state);
        self.last_seen = Some(now);
        self.write_due(policy, now)
    }

    fn write_due(&mut self, p: &WritePolicy, now: f64) -> Option<Option<Reading>> {
        let due = match &self.written {
            None => true,
            Some(w) => {
                let moved = self.bytes_sent != w.sent || self.bytes_received != w.received;
                let grew = |now: Option<i64>, then: Option<i64>| {
                    now.unwrap_or(0) - then.unwrap_or(0) >= p.flow_step
                };
                let jump = grew(self.bytes_sent, w.sent) || grew(self.bytes_received, w.received);
                let age = now - w.at;
                self.state != w.state
                    || self.pid.is_some() != w.had_pid
                    || (moved && (jump || age >= p.flow_age - WRITE_AGE_SLACK))
                    || age >= p.idle_refresh
            }
        };
        if !due {
            self.unwritten = Some((now, self.bytes_sent, self.bytes_received));
            return None;
        }
        // The reading before this one was held back: it, not the last write, starts the rate.
        let prev = self.unwritten.take().filter(|(at, _, _)| *at < now);
        self.written = Some(Written {
            at: now,
            sent: self.bytes_sent,
            received: self.bytes_received,
            state: self.state,
            had_pid: self.pid.is_some(),
        });
        Some(prev)
    }
}

/// What a socket sample says about a tracked flow.
#[derive(Debug, Clone, Copy)]
pub(super) struct SocketReading {
    pub socket_id: u64,
    pub state: Option<&'static str>,
    pub bytes_sent: Option<i64>,
    pub bytes_received: Option<i64>,
}

/// An address as the store spells it.
fn address(a: IpAddr) -> String {
    a.to_string()
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The observation a write stands for, with its rate's start.
pub(super) fn with_prev(mut f: FlowObs, prev: Option<Reading>) -> FlowObs {
    if let Some((at, sent, received)) = prev {
        (f.prev_seen, f.prev_bytes_sent, f.prev_bytes_received) = (Some(at), sent, received);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_entry_stays_small() {
        // The table holds one entry per open socket; tens of thousands on a busy server.
        let entry = std::mem::size_of::<(FlowKey, Tracked)>();
        assert!(entry <= 256, "{entry} bytes an entry");
    }

    #[test]
    fn every_state_a_platform_reports_reads_back_as_itself() {
        let round = |s: &str| StateCode::of(Some(s)).name();
        for s in (0..=12u8).filter_map(crate::platform::linux::sock_diag::tcp_state_name) {
            assert_eq!(round(s), Some(s));
        }
        for s in (0..=11).filter_map(crate::platform::macos::pcblist::tcp_state_name) {
            assert_eq!(round(s), Some(s));
        }
        assert_eq!(round("CLOSED"), Some("CLOSED"));
        assert_eq!(round("WEIRD"), None);
        assert_eq!(StateCode::of(None).name(), None);
    }

    #[test]
    fn observation_round_trips_through_resume() {
        let key: FlowKey = (
            6,
            "::1".parse().unwrap(),
            5000,
            "2001:db8::1".parse().unwrap(),
            443,
        );
        let mut t = Tracked::new(
            9,
            100.0,
            Some(42),
            Arc::new(Owner {
                path: Some("/usr/bin/curl".into()),
                start: Some(90.0),
                label: Some("com.example.job".into()),
                label_source: Some("launchctl".into()),
            }),
        );
        t.acting_pid = Some(7);
        t.source = Source::Kernel;
        t.refresh(
            &WritePolicy::EVERY_SAMPLE,
            SocketReading {
                socket_id: 9,
                state: Some("ESTABLISHED"),
                bytes_sent: Some(10),
                bytes_received: Some(20),
            },
            105.0,
            1,
        );
        let f = t.observation(&key);
        assert_eq!(
            (
                f.protocol.as_str(),
                f.local_address.as_deref(),
                f.remote_address.as_str()
            ),
            ("tcp", Some("::1"), "2001:db8::1")
        );
        // Everything but the collector comes back (the store keeps the source it has).
        let back = Tracked::resumed(&f);
        assert_eq!(
            back.observation(&key),
            FlowObs {
                source: None,
                ..f.clone()
            }
        );
        assert_eq!(f.source.as_deref(), Some(crate::platform::KERNEL_SOURCE));
        let closed = t.closed(&key);
        assert_eq!(
            (closed.end, closed.state.as_deref()),
            (Some(105.0), Some("CLOSED"))
        );
    }
}
