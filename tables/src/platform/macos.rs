//! macOS backends: libproc for processes.
//!
//! Only type-checked here (macos-check); what needs a Mac to prove: that `hw.tbfrequency` is
//! read as a 64-bit value on both architectures, and that CPU seconds match `ps -o time` on
//! Apple Silicon and under Rosetta.

use std::mem::{offset_of, size_of};

use super::parse::{mach_ticks_to_seconds, timebase_ticks_per_second};
use crate::observation::ProcessObs;

// Layouts from xnu bsd/sys/proc_info.h (struct proc_bsdinfo, proc_taskinfo, proc_taskallinfo),
// as mirrored by the libc crate. A libc change that moved them would corrupt every sample.
const _: () = assert!(size_of::<libc::proc_bsdinfo>() == 136);
const _: () = assert!(offset_of!(libc::proc_bsdinfo, pbi_ppid) == 16);
const _: () = assert!(offset_of!(libc::proc_bsdinfo, pbi_uid) == 20);
const _: () = assert!(offset_of!(libc::proc_bsdinfo, pbi_comm) == 48);
const _: () = assert!(offset_of!(libc::proc_bsdinfo, pbi_start_tvsec) == 120);
const _: () = assert!(offset_of!(libc::proc_bsdinfo, pbi_start_tvusec) == 128);
const _: () = assert!(size_of::<libc::proc_taskinfo>() == 96);
const _: () = assert!(offset_of!(libc::proc_taskinfo, pti_total_user) == 16);
const _: () = assert!(offset_of!(libc::proc_taskinfo, pti_total_system) == 24);
const _: () = assert!(size_of::<libc::proc_taskallinfo>() == 232);

/// `struct mach_timebase_info { uint32_t numer; uint32_t denom; }` (xnu osfmk/mach/mach_time.h).
/// Declared here because libc deprecates its copy in favour of another crate.
#[repr(C)]
struct MachTimebaseInfo {
    numer: u32,
    denom: u32,
}
const _: () = assert!(size_of::<MachTimebaseInfo>() == 8);
const _: () = assert!(offset_of!(MachTimebaseInfo, denom) == 4);

extern "C" {
    fn mach_timebase_info(info: *mut MachTimebaseInfo) -> libc::c_int;
}

/// Mach ticks per second. `hw.tbfrequency` first: it is not Rosetta-normalised, while
/// `mach_timebase_info` reports 1/1 to an x86_64 binary under Rosetta although the kernel's
/// task times stay in native 24 MHz ticks (collectors.md §2).
pub fn ticks_per_second() -> u64 {
    let mut value: u64 = 0;
    let mut len = size_of::<u64>();
    // SAFETY: the name is NUL-terminated; value/len describe a valid u64 buffer.
    let rc = unsafe {
        libc::sysctlbyname(
            c"hw.tbfrequency".as_ptr(),
            (&mut value as *mut u64).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc == 0 && len == size_of::<u64>() && value > 0 {
        return value;
    }
    let mut tb = MachTimebaseInfo { numer: 0, denom: 0 };
    // SAFETY: tb is a valid out-pointer of the declared layout.
    unsafe { mach_timebase_info(&mut tb) };
    timebase_ticks_per_second(tb.numer, tb.denom)
}

fn all_pids() -> Result<Vec<libc::c_int>, String> {
    // SAFETY: a null buffer asks for the count.
    let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Err(format!(
            "proc_listallpids: {}",
            std::io::Error::last_os_error()
        ));
    }
    // Room for processes started since the count.
    let mut pids: Vec<libc::c_int> = vec![0; n as usize + 64];
    let bytes = (pids.len() * size_of::<libc::c_int>()) as libc::c_int;
    // SAFETY: the buffer holds `bytes` bytes.
    let got = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    if got <= 0 {
        return Err(format!(
            "proc_listallpids: {}",
            std::io::Error::last_os_error()
        ));
    }
    pids.truncate((got as usize).min(pids.len()));
    pids.retain(|&p| p > 0);
    Ok(pids)
}

fn pid_path(pid: libc::c_int) -> Option<String> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: the buffer is PROC_PIDPATHINFO_MAXSIZE bytes.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

fn c_name(raw: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// pid → launchd label, from `launchctl list` of the system domain and of every user domain
/// that owns a running process; refreshed at most once a minute (each refresh forks launchctl
/// once per domain).
fn pid_labels(uids: &[u32]) -> std::collections::HashMap<i64, String> {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static CACHE: Mutex<Option<(Instant, std::collections::HashMap<i64, String>)>> =
        Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, map)) = cache.as_ref() {
        if at.elapsed() < Duration::from_secs(60) {
            return map.clone();
        }
    }
    let live = launchd_live(uids);
    let mut map = std::collections::HashMap::new();
    for list in live.system.iter().chain(live.per_uid.values()) {
        for (label, job) in list {
            if let Some(pid) = job.pid {
                map.entry(pid).or_insert_with(|| label.clone());
            }
        }
    }
    *cache = Some((Instant::now(), map.clone()));
    map
}

pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    let mut out = raw_processes(now)?;
    // User domains: the uids of logged-in users (501+) that run something.
    let mut uids: Vec<u32> = out
        .iter()
        .filter_map(|p| p.uid)
        .filter(|u| *u >= 500)
        .map(|u| u as u32)
        .collect();
    uids.sort_unstable();
    uids.dedup();
    let labels = pid_labels(&uids);
    for p in &mut out {
        p.launchd_label = labels.get(&p.pid).cloned();
        p.label_source = p.launchd_label.as_ref().map(|_| "launchctl".to_string());
    }
    Ok(out)
}

fn raw_processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    let hz = ticks_per_second();
    let mut out = Vec::new();
    for pid in all_pids()? {
        // SAFETY: proc_taskallinfo is plain old data; zeroed is a valid value.
        let mut info: libc::proc_taskallinfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::proc_taskallinfo>() as libc::c_int;
        // SAFETY: `info` is `size` bytes.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTASKALLINFO,
                0,
                (&mut info as *mut libc::proc_taskallinfo).cast(),
                size,
            )
        };
        if n != size {
            // Exited, a zombie, or not ours to read without root: skip.
            continue;
        }
        let b = &info.pbsd;
        let name = if b.pbi_name[0] != 0 {
            c_name(&b.pbi_name)
        } else {
            c_name(&b.pbi_comm)
        };
        out.push(ProcessObs {
            ts: now,
            pid: pid as i64,
            start_time: b.pbi_start_tvsec as f64 + b.pbi_start_tvusec as f64 / 1e6,
            ppid: Some(b.pbi_ppid as i64),
            pgid: Some(b.pbi_pgid as i64),
            uid: Some(b.pbi_uid as i64),
            path: pid_path(pid),
            name: Some(name),
            cpu_time: mach_ticks_to_seconds(info.ptinfo.pti_total_user, hz)
                + mach_ticks_to_seconds(info.ptinfo.pti_total_system, hz),
            launchd_label: None,
            label_source: None,
        });
    }
    Ok(out)
}

/// `launchctl list` for the system domain (as root) and `launchctl asuser UID launchctl list`
/// for each user domain. launchctl is the most robust public route: `launch_msg` and
/// `SMCopyAllJobDictionaries` are deprecated and see only the caller's domain; the XPC routines
/// launchctl uses are private. Its text is not API, so the parser skips what it does not
/// recognise. Unverified here: needs a Mac (and root for other users' domains).
pub fn launchd_live(uids: &[u32]) -> super::LaunchdLive {
    use std::process::Command;
    let run = |cmd: &mut Command| -> Option<String> {
        let out = cmd.output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut live = super::LaunchdLive::default();
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        live.system = run(Command::new("/bin/launchctl").arg("list"))
            .map(|t| super::parse::parse_launchctl_list(&t));
    }
    for &uid in uids {
        let text = if root {
            run(Command::new("/bin/launchctl").args([
                "asuser",
                &uid.to_string(),
                "/bin/launchctl",
                "list",
            ]))
        } else if uid == unsafe { libc::geteuid() } {
            run(Command::new("/bin/launchctl").arg("list"))
        } else {
            None
        };
        if let Some(t) = text {
            live.per_uid
                .insert(uid, super::parse::parse_launchctl_list(&t));
        }
    }
    live
}

/// Path and start time of one pid.
pub fn process_identity(pid: i64) -> Option<(Option<String>, f64)> {
    let pid = libc::c_int::try_from(pid).ok()?;
    // SAFETY: plain data, zeroed is valid.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    if n != size {
        return None;
    }
    Some((
        pid_path(pid),
        info.pbi_start_tvsec as f64 + info.pbi_start_tvusec as f64 / 1e6,
    ))
}

/// Sockets from `net.inet.{tcp,udp}.pcblist_n`: no privilege needed, every user's sockets,
/// byte counters included. The owner is the delegated pid when set, else the last pid that
/// used the socket. Only type-checked here: proving the counters needs a Mac.
pub mod sockets {
    use super::super::pcblist;
    use super::super::SocketSample;

    fn sysctl_bytes(name: &std::ffi::CStr) -> Result<Vec<u8>, String> {
        for _ in 0..5 {
            let mut len: libc::size_t = 0;
            // SAFETY: a null buffer asks for the size.
            if unsafe {
                libc::sysctlbyname(
                    name.as_ptr(),
                    std::ptr::null_mut(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            } != 0
            {
                return Err(format!(
                    "{}: {}",
                    name.to_string_lossy(),
                    std::io::Error::last_os_error()
                ));
            }
            // Room for sockets created between the two calls.
            let mut buf = vec![0u8; len + len / 8 + 4096];
            let mut got = buf.len();
            // SAFETY: buf holds `got` bytes.
            let rc = unsafe {
                libc::sysctlbyname(
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    &mut got,
                    std::ptr::null_mut(),
                    0,
                )
            };
            if rc == 0 {
                buf.truncate(got);
                return Ok(buf);
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOMEM) {
                return Err(format!(
                    "{}: {}",
                    name.to_string_lossy(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Err(format!("{}: the list kept growing", name.to_string_lossy()))
    }

    /// Darwin major version from `kern.osrelease` ("24.1.0" → 24).
    fn darwin_major() -> u32 {
        let mut buf = [0u8; 64];
        let mut len = buf.len();
        // SAFETY: buf holds len bytes.
        let rc = unsafe {
            libc::sysctlbyname(
                c"kern.osrelease".as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return 0;
        }
        String::from_utf8_lossy(&buf[..len.min(buf.len())])
            .trim_end_matches('\0')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    #[derive(Default)]
    pub struct Collector {
        darwin: Option<u32>,
    }

    impl Collector {
        pub fn sample(&mut self) -> Result<Vec<SocketSample>, String> {
            let darwin = *self.darwin.get_or_insert_with(darwin_major);
            let mut out = Vec::new();
            for (tcp, name) in [
                (true, c"net.inet.tcp.pcblist_n"),
                (false, c"net.inet.udp.pcblist_n"),
            ] {
                let buf = sysctl_bytes(name)?;
                for s in pcblist::parse(&buf, tcp, darwin)? {
                    let pid = if s.e_pid > 0 { s.e_pid } else { s.last_pid };
                    out.push(SocketSample {
                        protocol: if tcp { "tcp" } else { "udp" },
                        local: s.local,
                        local_port: s.local_port,
                        remote: s.remote,
                        remote_port: s.remote_port,
                        state: s
                            .tcp_state
                            .and_then(pcblist::tcp_state_name)
                            .map(str::to_string),
                        listening: s.tcp_state == Some(1),
                        pid: (pid > 0).then_some(pid as i64),
                        socket_id: s.so_gencnt.unwrap_or(s.so_handle),
                        bytes_sent: i64::try_from(s.tx_bytes).ok(),
                        bytes_received: i64::try_from(s.rx_bytes).ok(),
                    });
                }
            }
            Ok(out)
        }
    }
}
