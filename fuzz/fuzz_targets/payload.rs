#![no_main]
//! First-payload classification of arbitrary bytes.
use libfuzzer_sys::fuzz_target;
use launchwatch_tables::analytics::payload::{classify, entropy, expected_random_entropy};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data, data.first().is_some_and(|b| b & 1 == 1), 443);
    let e = entropy(data);
    assert!(e.is_finite() && (0.0..=8.0).contains(&e));
    let x = expected_random_entropy(data.len().min(4096));
    assert!(x.is_finite());
});
