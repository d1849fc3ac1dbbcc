#![no_main]
//! Kernel buffers: macOS pcblist_n (both record shapes, both counter layouts) and Linux
//! sock_diag dumps, plus /proc text.
use libfuzzer_sys::fuzz_target;
use launchwatch_tables::platform::linux::sock_diag as sockdiag;
use launchwatch_tables::platform::macos::pcblist;
use launchwatch_tables::platform::parse;

fuzz_target!(|data: &[u8]| {
    let _ = pcblist::parse(data, true, 23);
    let _ = pcblist::parse(data, false, 24);
    let _ = sockdiag::parse_dump(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse::parse_proc_stat(text);
        let _ = parse::parse_launchctl_list(text);
        let _ = parse::systemd_unit_from_cgroup(text);
    }
});
