#![no_main]
//! osqueryd's constraint context JSON.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ctx) = launchwatch_tables::framework::QueryContext::parse_json(text) {
            let _ = ctx.equals("path");
            let _ = ctx.to_json(&["path", "label"]);
        }
    }
});
