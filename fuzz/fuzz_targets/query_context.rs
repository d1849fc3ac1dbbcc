#![no_main]
//! Fuzz target `query_context`: the bytes go to `harness::query_context` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::query_context(data));
