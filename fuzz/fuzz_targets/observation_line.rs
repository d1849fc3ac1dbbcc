#![no_main]
//! Fuzz target `observation_line`: the bytes go to `harness::observation_line` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::observation_line(data));
