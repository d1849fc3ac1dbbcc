//! docs/pack-eval.md is what the pack, run through `launchwatch hunt`, makes of the labelled
//! scenarios today: regenerated here in full and compared, so a change to the pack SQL, an
//! analytic or a scenario cannot leave the committed figures behind. With
//! `LAUNCHWATCH_UPDATE_DOCS=1` the file is rewritten instead (then review the diff); with
//! `LAUNCHWATCH_PACK_EVAL_KEEP=1` the seeds' Macs stay on disk (path printed) for a closer look.

use launchwatch_tables::analytics::pack_eval::{evaluate, report, SEEDS};

#[test]
fn pack_eval_report_matches_docs() {
    let mut work = tempfile::tempdir().unwrap();
    if std::env::var_os("LAUNCHWATCH_PACK_EVAL_KEEP").is_some() {
        work.disable_cleanup(true);
        eprintln!(
            "pack_eval: the seeds' Macs are in {}",
            work.path().display()
        );
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_launchwatch"));
    let e = evaluate(bin, work.path(), SEEDS).expect("every seed's Mac replays");
    let text = report(&e);
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/pack-eval.md");
    if std::env::var_os("LAUNCHWATCH_UPDATE_DOCS").is_some() {
        std::fs::write(&doc, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&doc).unwrap_or_default();
    assert!(
        committed == text,
        "docs/pack-eval.md drifted from the pack and its scenarios; regenerate with \
         `cargo bench -p launchwatch --bench pack_eval > docs/pack-eval.md` (or \
         LAUNCHWATCH_UPDATE_DOCS=1 cargo test -p launchwatch --test pack_eval) and review the diff.\n\
         Regenerated:\n{text}"
    );
    // The report's own verdict: positives found, lookalikes quiet.
    let failures = e.failures();
    assert!(failures.is_empty(), "{failures:#?}");
}
