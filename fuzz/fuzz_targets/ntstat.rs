#![no_main]
//! Fuzz target `ntstat`: the bytes go to `harness::ntstat` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::ntstat(data));
