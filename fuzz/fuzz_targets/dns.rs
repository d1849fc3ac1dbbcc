#![no_main]
//! Fuzz target `dns`: the bytes go to `harness::dns` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::dns(data));
