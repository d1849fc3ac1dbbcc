//! Linux backends: procfs for processes.

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::parse::{parse_boot_time, parse_proc_stat, systemd_unit_from_cgroup};
use crate::observation::ProcessObs;

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    let boot =
        parse_boot_time(&fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?)
            .map_err(|e| format!("/proc/stat: {e}"))?;
    let hz = clock_ticks_per_second() as f64;
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let dir = entry.path();
        // The process may exit between readdir and here: skip it.
        let Ok(stat_text) = fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let Ok(stat) = parse_proc_stat(&stat_text) else {
            continue;
        };
        let uid = fs::metadata(&dir).ok().map(|m| m.uid() as i64);
        let path = fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let unit = fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|t| systemd_unit_from_cgroup(&t));
        out.push(ProcessObs {
            ts: now,
            pid,
            // Rounded to 10 ms: the tick resolution, so two samples agree on the instance key.
            start_time: ((boot as f64 + stat.start_ticks as f64 / hz) * 100.0).round() / 100.0,
            ppid: Some(stat.ppid),
            uid,
            path,
            name: Some(stat.comm),
            cpu_time: stat.cpu_ticks as f64 / hz,
            launchd_label: unit,
            pgid: Some(stat.pgrp),
            label_source: None,
            responsible_pid: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_with_real_cpu_time() {
        // Burn a little CPU so cpu_time is measurably positive.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let me = std::process::id() as i64;
        let procs = processes(crate::env::wall_clock()).unwrap();
        let mine = procs
            .iter()
            .find(|p| p.pid == me)
            .expect("own process listed");
        assert!(mine.cpu_time >= 0.1, "cpu_time {}", mine.cpu_time);
        assert_eq!(
            mine.path.as_deref(),
            std::env::current_exe()
                .ok()
                .and_then(|p| p.to_str().map(String::from))
                .as_deref()
        );
        let age = crate::env::wall_clock() - mine.start_time;
        assert!((0.0..600.0).contains(&age), "started {age} s ago");
    }
}

/// Sockets from `NETLINK_SOCK_DIAG` (TCP with `tcp_info` byte counters, UDP without), owners
/// from `/proc/<pid>/fd`.
pub mod sockets {
    use std::collections::HashMap;

    use crate::platform::sockdiag::{dump_request, parse_dump, tcp_state_name};
    use crate::platform::SocketSample;

    struct Netlink(libc::c_int);

    impl Drop for Netlink {
        fn drop(&mut self) {
            // SAFETY: we own the descriptor.
            unsafe { libc::close(self.0) };
        }
    }

    fn dump(
        family: u8,
        protocol: u8,
        seq: u32,
    ) -> Result<Vec<crate::platform::sockdiag::DiagSocket>, String> {
        // SAFETY: plain socket(2); the fd is closed by Netlink's Drop.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(format!(
                "netlink socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        let sock = Netlink(fd);
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: valid fd and option buffer.
        unsafe {
            libc::setsockopt(
                sock.0,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let req = dump_request(family, protocol, seq);
        // SAFETY: sockaddr_nl is plain data; zeroed then family set addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buffers and lengths are valid.
        let sent = unsafe {
            libc::sendto(
                sock.0,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(format!(
                "sock_diag request: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded: a dump that never ends is an error, not a hang.
        for _ in 0..100_000 {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(format!(
                    "sock_diag receive: {}",
                    std::io::Error::last_os_error()
                ));
            }
            if n == 0 {
                break;
            }
            let part = parse_dump(&buf[..n as usize])?;
            out.extend(part.sockets);
            if part.done {
                return Ok(out);
            }
        }
        Err("sock_diag dump did not end".into())
    }

    /// inode → pid, from every `/proc/<pid>/fd/*` that reads `socket:[inode]`.
    pub fn socket_owners() -> HashMap<u32, i64> {
        let mut owners = HashMap::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return owners;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let t = target.to_string_lossy();
                if let Some(inode) = t
                    .strip_prefix("socket:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|i| i.parse().ok())
                {
                    owners.entry(inode).or_insert(pid);
                }
            }
        }
        owners
    }

    /// Keeps the inode → pid map between samples; rescans only when an unknown inode appears.
    #[derive(Default)]
    pub struct Collector {
        owners: HashMap<u32, i64>,
        seq: u32,
    }

    impl Collector {
        pub fn sample(&mut self) -> Result<Vec<SocketSample>, String> {
            let mut raw = Vec::new();
            for (family, protocol) in [
                (libc::AF_INET, libc::IPPROTO_TCP),
                (libc::AF_INET6, libc::IPPROTO_TCP),
                (libc::AF_INET, libc::IPPROTO_UDP),
                (libc::AF_INET6, libc::IPPROTO_UDP),
            ] {
                self.seq = self.seq.wrapping_add(1);
                let tcp = protocol == libc::IPPROTO_TCP;
                raw.extend(
                    dump(family as u8, protocol as u8, self.seq)?
                        .into_iter()
                        .map(|s| (tcp, s)),
                );
            }
            if raw
                .iter()
                .any(|(_, s)| s.inode != 0 && !self.owners.contains_key(&s.inode))
            {
                self.owners = socket_owners();
            }
            Ok(raw
                .into_iter()
                .map(|(tcp, s)| SocketSample {
                    protocol: if tcp { "tcp" } else { "udp" },
                    local: s.local,
                    local_port: s.local_port,
                    remote: s.remote,
                    remote_port: s.remote_port,
                    // UDP "state" 7 (CLOSE) means unconnected, not closed: no TCP state for UDP.
                    state: if tcp {
                        tcp_state_name(s.state).map(str::to_string)
                    } else {
                        None
                    },
                    listening: tcp && s.state == 10,
                    pid: (s.inode != 0)
                        .then(|| self.owners.get(&s.inode).copied())
                        .flatten(),
                    socket_id: s.inode as u64,
                    // tcpi_bytes_acked: the connecting side's SYN counts as one byte (the
                    // accepting side's SYN-ACK does not), so it can exceed the payload by one.
                    bytes_sent: s.bytes_acked.map(|b| b as i64),
                    bytes_received: s.bytes_received.map(|b| b as i64),
                })
                .collect())
        }
    }
}

/// The executable and start time of one process (for socket owners not in the last process
/// sample).
pub fn process_identity(pid: i64) -> Option<(Option<String>, f64)> {
    let stat = parse_proc_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).ok()?;
    let boot = parse_boot_time(&fs::read_to_string("/proc/stat").ok()?).ok()?;
    let hz = clock_ticks_per_second() as f64;
    let path = fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    Some((
        path,
        ((boot as f64 + stat.start_ticks as f64 / hz) * 100.0).round() / 100.0,
    ))
}
