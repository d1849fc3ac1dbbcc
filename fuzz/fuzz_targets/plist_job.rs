#![no_main]
//! launchd plists (XML, binary): parse, interpret, and compute the schedule.
use libfuzzer_sys::fuzz_target;
use launchwatch_tables::launchd::{calendar::Utc, job, parse_plist};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse_plist(data) {
        if let Ok(j) = job::interpret(&v) {
            let _ = job::schedule_kind(&j);
            let _ = job::timer(&j, 1_700_000_000, &Utc);
            let _ = job::resolve_program(&j, "/Library/LaunchDaemons/x.plist", &|_| false);
        }
    }
    let _ = launchwatch_tables::launchd::parse_overrides(data);
});
