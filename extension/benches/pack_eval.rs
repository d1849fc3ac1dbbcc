//! The pack, measured: every labelled scenario of `launchwatch_tables::analytics::pack_eval`
//! replayed through `launchwatch hunt` (the shipped pack SQL), recall and false alerts per
//! analytic printed as Markdown. Asserts nothing; the test `pack_eval_report_matches_docs`
//! fails when docs/pack-eval.md drifts from what this prints.
//!
//! Run: `cargo bench -p launchwatch --bench pack_eval > docs/pack-eval.md`.

use launchwatch_tables::analytics::pack_eval::{evaluate, report, SEEDS};

fn main() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_launchwatch"));
    match evaluate(bin, work.path(), SEEDS) {
        Ok(e) => print!("{}", report(&e)),
        Err(e) => {
            eprintln!("pack_eval: {e}");
            std::process::exit(1);
        }
    }
}
