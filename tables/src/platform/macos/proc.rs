//! macOS processes from libproc (`proc_listallpids`, `proc_pidinfo`, `proc_pidpath`).
//!
//! Only type-checked here (macos-check); what needs a Mac to prove: that `hw.tbfrequency` is
//! read as a 64-bit value on both architectures, and that CPU seconds match `ps -o time` on
//! Apple Silicon and under Rosetta.

use std::mem::{offset_of, size_of};

use super::launchctl::pid_labels;
use crate::observation::ProcessObs;
use crate::platform::parse::{mach_ticks_to_seconds, timebase_ticks_per_second};

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
/// task times stay in native 24 MHz ticks (docs/design.md, "Collectors").
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
            responsible_pid: responsible_pid(pid),
        });
    }
    Ok(out)
}

/// The process macOS holds responsible for `pid` (what TCC and Activity Monitor attribute a
/// helper to), when it is another process. `responsibility_get_pid_responsible_for_pid` is
/// private libsystem API (declared the same way by Chromium's process_info_mac), so it is
/// looked up at run time and its absence costs only this fact. Only a Mac can prove it.
fn responsible_pid(pid: libc::pid_t) -> Option<i64> {
    type Responsible = unsafe extern "C" fn(libc::pid_t) -> libc::pid_t;
    static SYMBOL: std::sync::OnceLock<Option<Responsible>> = std::sync::OnceLock::new();
    let f = (*SYMBOL.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no preconditions.
        let p = unsafe {
            libc::dlsym(
                libc::RTLD_DEFAULT,
                c"responsibility_get_pid_responsible_for_pid".as_ptr(),
            )
        };
        // SAFETY: the symbol, when present, has this C signature (pid_t -> pid_t).
        (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, Responsible>(p) })
    }))?;
    // SAFETY: takes any pid; returns -1 or a pid.
    let r = unsafe { f(pid) };
    (r > 0 && r != pid).then_some(r as i64)
}

/// `struct proc_bsdshortinfo` (xnu bsd/sys/proc_info.h, flavor `PROC_PIDT_SHORTBSDINFO` = 13):
/// thirteen 4-byte fields with a 16-byte `pbsi_comm` at 16, 64 bytes, no padding. libc does
/// not declare it. Unlike `PROC_PIDTBSDINFO` it is answered for other users' processes.
#[repr(C)]
struct ProcBsdShortInfo {
    pbsi_pid: u32,
    pbsi_ppid: u32,
    pbsi_pgid: u32,
    pbsi_status: u32,
    pbsi_comm: [u8; 16],
    pbsi_flags: u32,
    pbsi_uid: u32,
    pbsi_gid: u32,
    pbsi_ruid: u32,
    pbsi_rgid: u32,
    pbsi_svuid: u32,
    pbsi_svgid: u32,
    pbsi_rfu: u32,
}
const PROC_PIDT_SHORTBSDINFO: libc::c_int = 13;
const _: () = assert!(size_of::<ProcBsdShortInfo>() == 64);
const _: () = assert!(offset_of!(ProcBsdShortInfo, pbsi_pgid) == 8);
const _: () = assert!(offset_of!(ProcBsdShortInfo, pbsi_comm) == 16);
const _: () = assert!(offset_of!(ProcBsdShortInfo, pbsi_uid) == 36);
const _: () = assert!(offset_of!(ProcBsdShortInfo, pbsi_rfu) == 60);

fn short_info(pid: libc::c_int) -> Option<ProcBsdShortInfo> {
    // SAFETY: plain data, zeroed is valid.
    let mut info: ProcBsdShortInfo = unsafe { std::mem::zeroed() };
    let size = size_of::<ProcBsdShortInfo>() as libc::c_int;
    // SAFETY: `info` is `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            PROC_PIDT_SHORTBSDINFO,
            0,
            (&mut info as *mut ProcBsdShortInfo).cast(),
            size,
        )
    };
    (n == size).then_some(info)
}

/// Path and start time of one pid. `PROC_PIDTBSDINFO` is refused for another user's process
/// when we are not root: then the path still comes from `proc_pidpath` (and the process is
/// known to exist from `PROC_PIDT_SHORTBSDINFO`), the start time stays unknown.
pub fn process_identity(pid: i64) -> Option<(Option<String>, Option<f64>)> {
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
    if n == size {
        return Some((
            pid_path(pid),
            Some(info.pbi_start_tvsec as f64 + info.pbi_start_tvusec as f64 / 1e6),
        ));
    }
    let short = short_info(pid)?;
    let _ = (short.pbsi_pid, short.pbsi_ppid, short.pbsi_status);
    Some((pid_path(pid), None))
}
