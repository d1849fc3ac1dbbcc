//! Fact types shared by the platform collectors and everything above them (tables, the
//! sampler, packet capture). They sit below both `platform` and `tables`, so neither has to
//! import the other's types.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

/// Who owned a connection, as the kernel's own events said while the process lived.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowOwner {
    pub pid: i64,
    pub process_start: Option<f64>,
    pub path: Option<String>,
    pub launchd_label: Option<String>,
    pub label_source: Option<String>,
    /// When the connection began (epoch seconds) and ended (`None` while open).
    pub start: f64,
    pub end: Option<f64>,
}

/// (protocol number, local address, local port, remote address, remote port).
pub type FlowTuple = (u8, IpAddr, u16, IpAddr, u16);

/// Connections the kernel-event collectors attributed, by 4-tuple, kept for a while after they
/// close (a packet can be captured after the socket is gone). Shared between the collector
/// thread that fills it, the sampler, and packet capture, which asks "whose packet is this?".
#[derive(Debug, Default)]
pub struct FlowTable {
    inner: RwLock<HashMap<FlowTuple, Vec<FlowOwner>>>,
}

impl FlowTable {
    /// Records (or updates) the owner of a connection; one entry per start time.
    pub fn insert(&self, tuple: FlowTuple, owner: FlowOwner) {
        let tuple = canonical(tuple);
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let owners = map.entry(tuple).or_default();
        match owners.iter_mut().find(|o| o.start == owner.start) {
            Some(o) => *o = owner,
            None => owners.push(owner),
        }
    }

    /// Marks the connection that started at `start` as ended.
    pub fn close(&self, tuple: FlowTuple, start: f64, end: f64) {
        let tuple = canonical(tuple);
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = map
            .get_mut(&tuple)
            .and_then(|v| v.iter_mut().find(|o| o.start == start))
        {
            o.end = Some(end);
        }
    }

    /// The owner of the connection with this tuple at time `at`, in either direction (a
    /// captured packet's source may be the remote end). `None` when nothing the kernel
    /// reported covers that moment.
    pub fn lookup(&self, tuple: FlowTuple, at: f64) -> Option<FlowOwner> {
        let (p, la, lp, ra, rp) = tuple;
        self.find(&[tuple, (p, ra, rp, la, lp)], at)
    }

    /// Like [`FlowTable::lookup`] but only with `local` as the connection's own end: the
    /// accepting side of a loopback connection is another socket, maybe another process.
    pub fn lookup_directed(&self, tuple: FlowTuple, at: f64) -> Option<FlowOwner> {
        self.find(&[tuple], at)
    }

    fn find(&self, tuples: &[FlowTuple], at: f64) -> Option<FlowOwner> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        // A little slack: packet and event clocks are read at different moments.
        const SLACK: f64 = 1.0;
        tuples.iter().map(|t| canonical(*t)).find_map(|t| {
            map.get(&t)?
                .iter()
                .filter(|o| o.start - SLACK <= at && o.end.is_none_or(|e| at <= e + SLACK))
                .max_by(|a, b| a.start.total_cmp(&b.start))
                .cloned()
        })
    }

    /// Connections still open that began after `after`: the ones a socket tick between full
    /// scans must read, since no earlier sample saw them.
    pub fn opened_since(&self, after: f64) -> Vec<FlowTuple> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, owners)| owners.iter().any(|o| o.end.is_none() && o.start > after))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Forgets connections that ended before `before`.
    pub fn prune(&self, before: f64) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| {
            v.retain(|o| o.end.is_none_or(|e| e >= before));
            !v.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so a dual-stack socket matches its IPv4 packets.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn canonical((p, la, lp, ra, rp): FlowTuple) -> FlowTuple {
    (p, canonical_ip(la), lp, canonical_ip(ra), rp)
}

/// A connection this host opened, as kernel events described it, with its final counters.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelFlow {
    /// The process as the platform showed it at connect time.
    pub owner: Option<crate::observation::ProcessObs>,
    /// spec.md spelling (`tcp`, `udp`) and the collector that saw it (`tracepoint`, `ntstat`).
    pub protocol: &'static str,
    pub source: &'static str,
    pub pid: i64,
    /// The socket's own user when `pid` is the process it acted for (a delegated socket).
    pub acting_pid: Option<i64>,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// Epoch seconds of `connect(2)` and of the move to CLOSE.
    pub start: f64,
    pub end: Option<f64>,
    pub state: i32,
    /// Final counters from the destroy notification: payload bytes the peer acknowledged
    /// (the SYN's sequence number excluded) and payload bytes received.
    pub bytes_sent: Option<i64>,
    pub bytes_received: Option<i64>,
    /// The peer's FIN arrived (it takes one sequence number, which the kernel's received-bytes
    /// counter includes).
    pub peer_fin: bool,
}

/// Code signing facts for one executable path: what Security.framework (macOS) or the bytes
/// alone say. The platform produces them; the signing table and analytics read them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SigningFacts {
    pub status: String,
    pub signer_class: String,
    pub identifier: Option<String>,
    pub team_id: Option<String>,
    pub authority: Option<Vec<String>>,
    pub cdhash: Option<String>,
    pub notarized: Option<bool>,
    pub hardened_runtime: Option<bool>,
    pub platform_binary: Option<bool>,
    pub linker_signed: Option<bool>,
    pub source: &'static str,
    pub error: Option<String>,
    /// `basic` or `full` when Security.framework validated; see the `validation` column.
    pub validation: Option<&'static str>,
}

/// How one collector is doing, for `launchwatch_status.sources`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceStatus {
    /// spec.md `source` value (or `procfs`/`libproc` for processes).
    pub name: String,
    pub running: bool,
    /// Why it is not running (or what it fell back to); `None` when running normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub events_per_s: f64,
    pub drops: u64,
}

/// Designated-requirement texts for the signer classes (collectors.md §4; OIDs from Apple's
/// certificate policies): Developer ID CA (…6.2.6) with a Developer ID Application leaf
/// (…6.1.13).
pub const DEVELOPER_ID: &str =
    "anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] exists \
     and certificate leaf[field.1.2.840.113635.100.6.1.13] exists";
/// Mac App Store (…6.1.9, …6.1.9.1) and iOS App Store apps run on Apple silicon (…6.1.3,
/// Security `LWCRHelper.mm`), which would otherwise land in `other`.
pub const APP_STORE: &str =
    "anchor apple generic and (certificate leaf[field.1.2.840.113635.100.6.1.9] exists \
     or certificate leaf[field.1.2.840.113635.100.6.1.9.1] exists \
     or certificate leaf[field.1.2.840.113635.100.6.1.3] exists)";

/// The signer class of validly signed code, first match wins; `satisfies` checks a
/// requirement text against the code (Security.framework on macOS).
pub fn signer_class_from(satisfies: &dyn Fn(&str) -> bool) -> &'static str {
    if satisfies("anchor apple") {
        "apple"
    } else if satisfies(APP_STORE) {
        "app_store"
    } else if satisfies(DEVELOPER_ID) {
        "developer_id"
    } else {
        "other"
    }
}

/// `notarized`: the requirement only finds a ticket stapled to the code or cached locally, and a
/// notarized bare command-line tool has none, so not finding one is unknown (NULL), never 0.
pub fn notarized_from(apple: bool, local_ticket: bool) -> Option<bool> {
    (apple || local_ticket).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(pid: i64, start: f64, end: Option<f64>) -> FlowOwner {
        FlowOwner {
            pid,
            process_start: Some(1.0),
            path: Some("/bin/x".into()),
            launchd_label: None,
            label_source: None,
            start,
            end,
        }
    }

    #[test]
    fn lookup_by_tuple_either_direction_and_time() {
        let t = FlowTable::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        t.insert((6, a, 5000, b, 80), owner(1, 100.0, Some(110.0)));
        // The tuple reused later by another process.
        t.insert((6, a, 5000, b, 80), owner(2, 200.0, None));
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(t.lookup((6, a, 5000, v4, 80), 105.0).unwrap().pid, 1);
        assert_eq!(t.lookup((6, v4, 80, a, 5000), 105.0).unwrap().pid, 1);
        assert!(t.lookup_directed((6, v4, 80, a, 5000), 105.0).is_none());
        assert_eq!(
            t.lookup_directed((6, a, 5000, v4, 80), 105.0).unwrap().pid,
            1
        );
        assert_eq!(t.lookup((6, a, 5000, v4, 80), 300.0).unwrap().pid, 2);
        assert!(t.lookup((6, a, 5000, v4, 80), 150.0).is_none());
        assert!(t.lookup((17, a, 5000, v4, 80), 105.0).is_none());
        t.close((6, a, 5000, v4, 80), 200.0, 250.0);
        assert!(t.lookup((6, a, 5000, v4, 80), 300.0).is_none());
        t.prune(120.0);
        assert_eq!(t.len(), 1);
    }
}
