#![no_main]
//! Fuzz target `kernel_buffers`: the bytes go to `harness::kernel_buffers` (fuzz/harness.rs), which the normal test
//! suite also runs on every corpus input.
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::kernel_buffers(data));
