//! The suite never touches the host's own launchwatch store. `.ci/run` fills the system store
//! (as root: /var/lib/launchwatch) before the tests and checks it is byte-identical after; this
//! test makes sure that proof actually ran under CI, and that a test's store is its own.

use launchwatch_e2e::{in_ci, json_rows, launchwatch, root_or_fail_in_ci};

const SYSTEM_STORE: &str = if cfg!(target_os = "macos") {
    "/var/db/launchwatch/launchwatch.db"
} else {
    "/var/lib/launchwatch/launchwatch.db"
};

#[test]
fn a_populated_system_store_does_not_leak_into_tests() {
    root_or_fail_in_ci("the system store beside the suite");
    let system = std::path::Path::new(SYSTEM_STORE);
    if in_ci() {
        assert!(
            system.exists(),
            "CI=true but {SYSTEM_STORE} is missing: .ci/run fills it before the tests to prove they pass beside it"
        );
    }
    let state = tempfile::tempdir().unwrap();
    let rows = json_rows(&launchwatch(
        &[
            "query",
            "--json",
            "SELECT samples, store_path FROM launchwatch_status",
        ],
        state.path(),
    ));
    // Exactly this query's two fresh samples: nothing imported from a store the host filled.
    assert_eq!(rows[0]["samples"], "2", "{rows:?}");
    let path = rows[0]["store_path"].as_str().unwrap();
    assert!(
        !path.starts_with("/var/"),
        "a test reached the system store: {path}"
    );
}
