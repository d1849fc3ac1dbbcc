#![no_main]
//! Mach-O (thin, universal), ELF and code-signature parsing: never panic, whatever the bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = launchwatch_tables::binary::inspect(data) {
        let _ = launchwatch_tables::binary::crypto_apis(&b);
        let _ = launchwatch_tables::binary::crypto_libraries(&b);
        let _ = launchwatch_tables::tables::signing::static_facts(&b);
    }
});
