#![no_main]
//! Fuzz target `plist_job`: the bytes go to `harness::plist_job` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::plist_job(data));
