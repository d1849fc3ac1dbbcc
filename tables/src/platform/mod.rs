//! The platform seam. Everything OS-specific lives below here; the rest of the crate sees only
//! observations. Each backend reads raw kernel data and hands it to pure parsers in
//! [`parse`], which are tested on byte and text fixtures on any host.

#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod capture_pcap;
pub mod linux;
pub mod macos;
pub mod parse;

use std::collections::BTreeMap;

use crate::observation::ProcessObs;
pub use parse::LaunchctlJob;

/// How this platform's collectors learn a process's own job label (spec.md `label_source`).
#[cfg(target_os = "macos")]
pub const LABEL_SOURCE: &str = "launchctl";
#[cfg(not(target_os = "macos"))]
pub const LABEL_SOURCE: &str = "cgroup";

/// Which collector the socket sampler is (spec.md `source`).
#[cfg(target_os = "macos")]
pub const SOCKET_SOURCE: &str = "pcblist";
#[cfg(not(target_os = "macos"))]
pub const SOCKET_SOURCE: &str = "sock_diag";

/// Which kernel-event collector attributes connections (spec.md `source`).
#[cfg(target_os = "macos")]
pub const KERNEL_SOURCE: &str = "ntstat";
#[cfg(not(target_os = "macos"))]
pub const KERNEL_SOURCE: &str = "tracepoint";

/// Rows from each protocol's (or family's) read, merged: one failing keeps the rows the others
/// read and becomes a warning; only when every read fails is it an error. A UDP sysctl or
/// parse error must never cost the TCP rows already in hand.
pub fn keep_what_was_read<T>(
    reads: impl IntoIterator<Item = Result<Vec<T>, String>>,
) -> Result<(Vec<T>, Option<String>), String> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut read_any = false;
    for r in reads {
        match r {
            Ok(v) => {
                read_any = true;
                rows.extend(v);
            }
            Err(e) => errors.push(e),
        }
    }
    let warning = (!errors.is_empty()).then(|| errors.join("; "));
    if read_any {
        Ok((rows, warning))
    } else {
        Err(warning.unwrap_or_else(|| "nothing to read".into()))
    }
}

#[cfg(test)]
mod merge_tests {
    use super::keep_what_was_read;

    #[test]
    fn one_failing_protocol_keeps_the_others_rows() {
        let (rows, warning) = keep_what_was_read(vec![
            Ok(vec!["tcp4 a", "tcp4 b"]),
            Ok(vec!["tcp6 c"]),
            Err("net.inet.udp.pcblist_n: truncated record".to_string()),
        ])
        .unwrap();
        assert_eq!(rows, ["tcp4 a", "tcp4 b", "tcp6 c"]);
        assert_eq!(
            warning.as_deref(),
            Some("net.inet.udp.pcblist_n: truncated record")
        );
        let err = keep_what_was_read::<&str>(vec![Err("a".into()), Err("b".into())]).unwrap_err();
        assert_eq!(err, "a; b");
        assert_eq!(
            keep_what_was_read(vec![Ok(vec![1])]).unwrap(),
            (vec![1], None)
        );
    }
}

/// What launchd itself says is loaded: the system domain and each asked-for user's domain.
#[derive(Debug, Default)]
pub struct LaunchdLive {
    pub system: Option<BTreeMap<String, LaunchctlJob>>,
    pub per_uid: BTreeMap<u32, BTreeMap<String, LaunchctlJob>>,
}

/// Live launchd state on macOS (`launchctl list`, per domain); `None` where there is no launchd.
pub fn launchd_live(uids: &[u32]) -> Option<LaunchdLive> {
    #[cfg(target_os = "macos")]
    {
        Some(macos::launchd_live(uids))
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = uids;
        None
    }
}

/// One socket as a platform backend sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketSample {
    pub protocol: &'static str,
    pub local: std::net::IpAddr,
    pub local_port: u16,
    pub remote: std::net::IpAddr,
    pub remote_port: u16,
    /// TCP state in osquery's spelling; `None` for UDP.
    pub state: Option<&'static str>,
    pub listening: bool,
    pub pid: Option<i64>,
    /// macOS: the delegated ("effective") pid when a daemon works for another process
    /// (`so_e_pid`); `pid` is then the socket's last user. The sampler takes it as the owner
    /// only if that process started before the flow was first seen.
    pub delegate_pid: Option<i64>,
    /// The kernel's identity for the socket (Linux inode, macOS so_gencnt or socket hash); 0
    /// when it has none (Linux TIME_WAIT), then the 5-tuple matches it to history.
    pub socket_id: u64,
    pub bytes_sent: Option<i64>,
    pub bytes_received: Option<i64>,
}

/// Whether a socket is a connection, which is what a flow is: listeners and unconnected UDP
/// sockets have no destination.
pub fn is_connection(listening: bool, remote: std::net::IpAddr, remote_port: u16) -> bool {
    !listening && remote_port != 0 && !remote.is_unspecified()
}

/// Whether the socket collector can read a few named connections (and every UDP socket)
/// instead of every socket: Linux's sock_diag answers per-tuple requests; macOS's pcblist
/// sysctl is all or nothing (ntstat already reports counters as they move there).
pub const PARTIAL_SOCKET_SAMPLES: bool = cfg!(target_os = "linux");

/// The socket collector of this platform (keeps caches between samples).
#[cfg(target_os = "linux")]
pub use linux::sock_diag::collector::Collector as SocketCollector;
#[cfg(target_os = "macos")]
pub use macos::pcblist::collector::Collector as SocketCollector;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
#[derive(Default)]
pub struct SocketCollector;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
impl SocketCollector {
    pub fn sample(&mut self) -> Result<Vec<SocketSample>, String> {
        Err(format!(
            "socket sampling is not implemented on {}",
            std::env::consts::OS
        ))
    }
    pub fn sample_connections(
        &mut self,
        _tcp: &[crate::facts::FlowTuple],
    ) -> Result<Vec<SocketSample>, String> {
        self.sample()
    }
    pub fn sample_with(
        &mut self,
        _attributed: &dyn Fn(crate::facts::FlowTuple) -> bool,
    ) -> Result<Vec<SocketSample>, String> {
        self.sample()
    }
    pub fn take_warning(&mut self) -> Option<String> {
        None
    }
    pub fn owner_fallback(&self) -> Option<String> {
        None
    }
}

/// Executable path and start time of one process, for socket owners the last process sample
/// did not include. The start time is `None` where the platform will not say (macOS, another
/// user's process, not root).
pub fn process_identity(pid: i64) -> Option<(Option<String>, Option<f64>)> {
    #[cfg(target_os = "linux")]
    {
        linux::process_identity(pid)
    }
    #[cfg(target_os = "macos")]
    {
        macos::process_identity(pid)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = pid;
        None
    }
}

/// Verified code signing facts from Security.framework (macOS only; `None` elsewhere or when
/// the framework cannot open the file, so the caller falls back to static facts).
pub fn code_signing(path: &str, notarized: bool) -> Option<crate::facts::SigningFacts> {
    #[cfg(target_os = "macos")]
    {
        macos::signing::inspect(path, notarized)
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = (path, notarized);
        None
    }
}

/// The process collector of this platform; keeps per-instance caches between samples (on
/// Linux the systemd unit, read once per (pid, start time)).
#[derive(Default)]
pub struct ProcessCollector {
    #[cfg(target_os = "linux")]
    cache: linux::procfs::WalkCache,
}

impl ProcessCollector {
    /// Whether kernel events report every exec and fork (`stale` then names the pids they
    /// saw), so an instance already described need not be described again. Off: every walk
    /// reads every process's executable, as an exec keeping the name would go unseen.
    pub fn events_followed(&mut self, followed: bool) {
        #[cfg(target_os = "linux")]
        {
            self.cache.trust_known = followed;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = followed;
    }

    /// The next walk describes `pid` afresh (the kernel events saw it exec or fork).
    pub fn stale(&mut self, pid: i64) {
        #[cfg(target_os = "linux")]
        self.cache.mark_stale(pid);
        #[cfg(not(target_os = "linux"))]
        let _ = pid;
    }

    pub fn sample(&mut self, now: f64) -> Result<Vec<ProcessObs>, String> {
        #[cfg(target_os = "linux")]
        {
            linux::procfs::processes_cached(now, &mut self.cache)
        }
        #[cfg(not(target_os = "linux"))]
        {
            processes(now)
        }
    }
}

/// Every process instance visible now with its cumulative CPU seconds. Processes that vanish
/// mid-walk or cannot be read (another user's, without privileges) are skipped, not errors.
pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    #[cfg(target_os = "linux")]
    {
        linux::processes(now)
    }
    #[cfg(target_os = "macos")]
    {
        macos::processes(now)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = now;
        Err(format!(
            "process sampling is not implemented on {}",
            std::env::consts::OS
        ))
    }
}

/// Runs a command and returns its standard output, killing it when it takes longer than
/// `timeout`. A non-zero exit is an error.
pub fn run_bounded(
    cmd: &mut std::process::Command,
    timeout: std::time::Duration,
) -> Result<String, String> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    // Read concurrently: a full pipe would otherwise block the child until the timeout.
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(format!("{cmd:?}: no answer within {timeout:?}; killed"));
            }
            Err(e) => return Err(format!("{cmd:?}: {e}")),
        }
    };
    let buf = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{cmd:?}: {status}"));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The kernel-event connection collector of this platform: Linux tracepoints, macOS
/// NetworkStatistics. When it cannot run it says why, and the socket poller alone attributes
/// flows.
pub struct KernelSource {
    #[cfg(target_os = "linux")]
    events: Option<linux::tracepoint::KernelEvents>,
    #[cfg(target_os = "macos")]
    ntstat: Option<macos::ntstat::live::NtstatEvents>,
    why_not: Option<String>,
}

impl KernelSource {
    /// A source that is off on purpose (`query`'s short window needs no event stream).
    pub fn off(why: &str) -> KernelSource {
        KernelSource {
            #[cfg(target_os = "linux")]
            events: None,
            #[cfg(target_os = "macos")]
            ntstat: None,
            why_not: Some(why.to_string()),
        }
    }

    pub fn start() -> KernelSource {
        #[cfg(target_os = "linux")]
        {
            match linux::tracepoint::KernelEvents::start() {
                Ok(e) => KernelSource {
                    events: Some(e),
                    why_not: None,
                },
                Err(e) => {
                    // SAFETY: no preconditions.
                    let root = unsafe { libc::geteuid() } == 0;
                    KernelSource {
                        events: None,
                        why_not: Some(if root {
                            e
                        } else {
                            format!("{e} (needs root; sockets are polled instead)")
                        }),
                    }
                }
            }
        }
        #[cfg(target_os = "macos")]
        {
            match macos::ntstat::live::NtstatEvents::start() {
                Ok(e) => KernelSource {
                    ntstat: Some(e),
                    why_not: None,
                },
                Err(e) => KernelSource {
                    ntstat: None,
                    why_not: Some(format!("{e}; sockets are polled (pcblist_n)")),
                },
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            KernelSource::off("no kernel event source on this platform yet; sockets are polled")
        }
    }

    /// One poll of the socket collector, kernel-first: where the event source follows a
    /// flow (macOS ntstat) its owner, state and counters win, polled sockets fill in the rest
    /// and flows only it knows are added. Elsewhere the poll as it is.
    pub fn merge_polled(&self, polled: Vec<SocketSample>) -> Vec<SocketSample> {
        #[cfg(target_os = "macos")]
        if let Some(e) = &self.ntstat {
            return macos::ntstat::merge(polled, e.open_samples());
        }
        polled
    }

    pub fn running(&self) -> bool {
        self.why_not.is_none()
    }

    /// Connections that ended, and processes seen starting or connecting, since last call.
    pub fn drain(&self) -> (Vec<crate::facts::KernelFlow>, Vec<ProcessObs>) {
        #[cfg(target_os = "linux")]
        if let Some(e) = &self.events {
            return e.drain();
        }
        #[cfg(target_os = "macos")]
        if let Some(e) = &self.ntstat {
            return (e.drain(), Vec::new());
        }
        (Vec::new(), Vec::new())
    }

    /// The 4-tuple → owner map the events keep, for the poller and packet capture.
    pub fn table(&self) -> Option<std::sync::Arc<crate::facts::FlowTable>> {
        #[cfg(target_os = "linux")]
        if let Some(e) = &self.events {
            return Some(e.table());
        }
        #[cfg(target_os = "macos")]
        if let Some(e) = &self.ntstat {
            return Some(e.table());
        }
        None
    }

    pub fn status(&self) -> Vec<crate::facts::SourceStatus> {
        #[cfg(target_os = "linux")]
        if let Some(e) = &self.events {
            return e.status();
        }
        #[cfg(target_os = "macos")]
        if let Some(e) = &self.ntstat {
            return vec![e.status()];
        }
        let name = if cfg!(target_os = "macos") {
            "ntstat"
        } else {
            "tracepoint"
        };
        vec![crate::facts::SourceStatus {
            name: name.into(),
            running: false,
            reason: self.why_not.clone(),
            events_per_s: 0.0,
            drops: 0,
        }]
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn a_hung_command_is_killed_at_its_timeout_and_output_is_read_whole() {
        let t = Instant::now();
        let err = super::run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(300))
            .unwrap_err();
        assert!(err.contains("killed"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
        // More than a pipe's buffer, so a reader that waited for exit first would hang.
        let big = super::run_bounded(
            Command::new("sh").args(["-c", "head -c 300000 /dev/zero | tr '\\0' x"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(big.len(), 300_000);
        assert!(super::run_bounded(&mut Command::new("false"), Duration::from_secs(5)).is_err());
    }
}
