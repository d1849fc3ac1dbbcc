#![no_main]
//! DNS responses: compression pointers (loops, forward jumps), CNAME chains, truncation.
use libfuzzer_sys::fuzz_target;
use launchwatch_tables::capture::dns::{parse, resolutions};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = parse(data) {
        for r in resolutions(&msg) {
            assert!(r.name.len() <= 4 * 255, "escaped names stay bounded");
        }
    }
});
