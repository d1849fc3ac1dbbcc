#![no_main]
//! Fuzz target `binary`: the bytes go to `harness::binary` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::binary(data));
