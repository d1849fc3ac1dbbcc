#![no_main]
//! Hostile JSON Lines for --replay.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut loaded = launchwatch_tables::observation::Loaded::default();
    let _ = launchwatch_tables::observation::read_jsonl_from(std::path::Path::new("f"), data, &mut loaded);
});
