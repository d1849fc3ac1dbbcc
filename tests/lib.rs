//! Helpers for end-to-end tests that run the real `launchwatch` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test: `$LAUNCHWATCH_BIN`, else the workspace's debug build (`tests/run`
/// builds it before running the tests).
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LAUNCHWATCH_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/launchwatch");
    assert!(
        p.exists(),
        "{} not built: run `cargo build -p launchwatch` (tests/run does) or set LAUNCHWATCH_BIN",
        p.display()
    );
    p
}

/// `launchwatch --state-dir STATE/store …` with the environment pointed at `state` too.
///
/// As root the default store is the host's own (`/var/lib/launchwatch`, `/var/db/launchwatch`),
/// which `XDG_STATE_HOME`/`HOME` do not move: only `--state-dir` keeps a test off it. Every test
/// starts the binary through here (or passes `--state-dir` itself).
pub fn command(state: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("--state-dir")
        .arg(state.join("store"))
        .env("XDG_STATE_HOME", state)
        .env("HOME", state)
        .env("TZ", "UTC");
    c
}

/// Runs `launchwatch ARGS` with a private state directory under `state` (see [`command`]),
/// unless ARGS name their own `--state-dir`.
pub fn launchwatch(args: &[&str], state: &Path) -> Output {
    let mut c = if args.contains(&"--state-dir") {
        let mut c = Command::new(bin());
        c.env("XDG_STATE_HOME", state)
            .env("HOME", state)
            .env("TZ", "UTC");
        c
    } else {
        command(state)
    };
    c.args(args).output().expect("launchwatch runs")
}

/// Runs `launchwatch ARGS` in a fresh private state directory of its own (unless ARGS name one).
pub fn run(args: &[&str]) -> Output {
    let state = tempfile::tempdir().expect("a temporary directory");
    launchwatch(args, state.path())
}

/// Whether this test runs as root. Tests that need root for part of what they prove call this;
/// without root they may prove less locally, but under CI (`CI=true`, run as root) a missing
/// privilege is a failure, never a silent skip.
pub fn root_or_fail_in_ci(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            !in_ci(),
            "CI=true but not running as root: {what} cannot be proven"
        );
        eprintln!("not root: {what} is not checked (CI runs it as root)");
    }
    root
}

/// `CI=true` (or `1`): missing privileges or kernel features fail tests instead of skipping.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses `--json` output into rows of column → string.
pub fn json_rows(o: &Output) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(o.status.success(), "launchwatch failed: {}", stderr(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|r| r.as_object().expect("objects").clone())
        .collect()
}

/// For tests that need root (to chown files to another user, or because the behaviour under
/// test only applies to root). CI runs as root, so with `CI=true` a missing root fails the test
/// instead of skipping it.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs root, and CI=true: refusing to skip"
    );
    eprintln!("skipped: needs root");
    false
}

/// A child process killed and reaped when dropped, so a failing test never leaves a CPU burner
/// or a sleeper behind (a leaked child also keeps the test's inherited descriptors open).
pub struct Reaped(pub std::process::Child);

impl Reaped {
    pub fn spawn(cmd: &mut Command) -> Reaped {
        Reaped(cmd.spawn().expect("spawn child"))
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `ready` holds for the store `db` (opened read-only, again on every try, as a
/// recorder may still be creating it), polling every 100 ms: what a test asserts is there once
/// the recorder has committed it, however long the machine takes. Panics after `timeout`,
/// naming `what`.
pub fn wait_until_stored(
    db: &Path,
    timeout: std::time::Duration,
    what: &str,
    ready: impl Fn(&rusqlite::Connection) -> rusqlite::Result<bool>,
) {
    let started = std::time::Instant::now();
    loop {
        if store_holds(db, &ready) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "the recorder did not store {what} within {timeout:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether `ready` holds for the store `db` now, opened read-only (a store not created yet,
/// or a failing query, holds nothing).
fn store_holds(db: &Path, ready: impl Fn(&rusqlite::Connection) -> rusqlite::Result<bool>) -> bool {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| ready(&c))
        .unwrap_or(false)
}

/// Waits until a recorder writing the store `db` has committed a connection its kernel events
/// saw close: a probe connection to a listener of its own, repeated each second. A fixed
/// sleep raced the recorder's start on a slower machine, leaving the test's first
/// connections to the poller alone. Panics after `timeout`.
pub fn wait_for_kernel_events(db: &Path, timeout: std::time::Duration) {
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};
    let listener = TcpListener::bind("127.0.0.1:0").expect("a probe listener");
    let port = listener.local_addr().expect("bound").port();
    let closed = |local_port: u16| {
        store_holds(db, |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM flows WHERE local_port = ?1 AND remote_port = ?2
                 AND end IS NOT NULL)",
                [local_port, port],
                |r| r.get(0),
            )
        })
    };
    let started = Instant::now();
    loop {
        let probe = TcpStream::connect(("127.0.0.1", port)).expect("probe connects");
        let local_port = probe.local_addr().expect("bound").port();
        let (accepted, _) = listener.accept().expect("probe accepted");
        drop(probe);
        drop(accepted);
        let next = Instant::now() + Duration::from_secs(1);
        while Instant::now() < next {
            if closed(local_port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            started.elapsed() < timeout,
            "the recorder did not commit a closed connection within {timeout:?}: its kernel \
             connection events are not running (see launchwatch_status.sources)"
        );
    }
}
