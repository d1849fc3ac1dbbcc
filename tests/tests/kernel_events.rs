//! Short connections keep their program (issue 11): a child process makes 20 connections of a
//! few milliseconds each, 3 s apart, then exits, while `launchwatch record` runs. The kernel's
//! connection events must attribute (nearly) every one to that child, with its path, start
//! time and job label, and the payload bytes it wrote. Linux, as root (CI runs as root; a
//! skip there is a failure).

#![cfg(target_os = "linux")]

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use launchwatch_e2e::{bin, wait_for_kernel_events};

const CONNECTIONS: usize = 20;
const SENT: i64 = 250;
const REPLY: usize = 100;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A fresh cgroup whose name makes procfs report a systemd unit: the job label on Linux.
/// cgroup v2 (unified) when mounted, else the v1 `name=systemd` hierarchy.
fn unit_cgroup(unit: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let base = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[2] == "cgroup2")
        .or_else(|| {
            mounts
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[2] == "cgroup" && f[3].contains("name=systemd"))
        })
        .map(|f| PathBuf::from(f[1]))?;
    let dir = base.join(unit);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

fn start_time_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let ticks: f64 = rest.split_whitespace().nth(19).unwrap().parse().unwrap();
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    btime + ticks / hz
}

#[test]
fn twenty_short_connections_of_an_exited_child_keep_pid_path_start_label_and_bytes() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!in_ci(), "CI runs as root: this test must not skip there");
        eprintln!("skipped: needs root for kernel connection events");
        return;
    }
    let unit = format!("launchwatch-e2e-{}.service", std::process::id());
    let cgroup = unit_cgroup(&unit).expect("a cgroup hierarchy to give the child a unit");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = [0u8; SENT as usize];
            s.read_exact(&mut got).unwrap();
            s.write_all(&[b'y'; REPLY]).unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.jsonl");
    let state = dir.path().join("state");
    let rec = Command::new(bin())
        .args([
            "record",
            "--config",
            "/dev/null",
            "--state-dir",
            state.to_str().unwrap(),
            "--duration",
            "300",
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_kernel_events(&state.join("launchwatch.db"), Duration::from_secs(60));

    // bash's /dev/tcp: connect, write 250 bytes, read the 100-byte reply, close, in the
    // shell process itself; it waits for "go" so it can be put in the unit's cgroup first.
    let script = format!(
        "read go; for i in $(seq 1 {CONNECTIONS}); do \
           exec 3<>/dev/tcp/127.0.0.1/{port}; printf '%0{SENT}d' 0 >&3; \
           read -r -N {REPLY} reply <&3; exec 3>&- 3<&-; sleep 3; done"
    );
    let mut child = Command::new("/bin/bash")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()).unwrap();
    let start = start_time_of(pid);
    let path = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    assert!(child.wait().unwrap().success());
    server.join().unwrap();
    // The child's last connection closed at least 3 s ago (its loop sleeps after each):
    // committed by now. SIGTERM ends the recording and writes the file.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGTERM) };
    let status = rec.wait_with_output().unwrap();
    let _ = std::fs::remove_dir(&cgroup);
    assert!(
        status.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );

    let text = std::fs::File::open(&out).unwrap();
    let flows: Vec<serde_json::Value> = std::io::BufReader::new(text)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
        .filter(|v| v["kind"] == "flow" && v["remote_port"] == port)
        .collect();
    let mine: Vec<&serde_json::Value> = flows
        .iter()
        .filter(|f| f["pid"].as_i64() == Some(pid as i64))
        .collect();
    let good = mine
        .iter()
        .filter(|f| {
            f["path"].as_str() == path.to_str()
                && f["launchd_label"].as_str() == Some(unit.as_str())
                && f["label_source"].as_str() == Some("cgroup")
                && f["source"].as_str() == Some("tracepoint")
                && f["bytes_sent"].as_i64() == Some(SENT)
                && f["bytes_received"].as_i64() == Some(REPLY as i64)
                && f["process_start"]
                    .as_f64()
                    .is_some_and(|s| (s - start).abs() < 0.02)
                && f["end"].as_f64().is_some()
        })
        .count();
    assert!(
        good >= CONNECTIONS - 1,
        "{good} of {CONNECTIONS} connections fully attributed; {} flows to the port, {} with the \
         child's pid; first: {}",
        flows.len(),
        mine.len(),
        flows.first().map(|f| f.to_string()).unwrap_or_default()
    );
    // The child is recorded as a process instance with its parent and process group.
    let procs = std::fs::read_to_string(&out).unwrap();
    let me = std::process::id() as i64;
    assert!(
        procs
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|v| v["kind"] == "process"
                && v["pid"].as_i64() == Some(pid as i64)
                && v["ppid"].as_i64() == Some(me)
                && v["pgid"].as_i64().is_some()),
        "the child appears as a process observation with ppid and pgid"
    );
}

#[test]
fn status_names_each_collector_and_replayed_rows_say_where_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let q = |args: &[&str]| {
        let o = Command::new(bin())
            .args(args)
            .env("LAUNCHWATCH_CONFIG", "/dev/null")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v
    };
    // A live query polls; it says the event collector is off and why.
    let live = q(&[
        "query",
        "--json",
        "--state-dir",
        state.to_str().unwrap(),
        "SELECT sources FROM launchwatch_status",
    ]);
    let sources: serde_json::Value =
        serde_json::from_str(live[0]["sources"].as_str().unwrap()).unwrap();
    let by_name = |n: &str| {
        sources
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n} in {sources}"))
    };
    assert_eq!(by_name("sock_diag")["running"], true);
    let tp = by_name("tracepoint");
    assert_eq!(tp["running"], false);
    assert!(tp["reason"].as_str().is_some_and(|r| !r.is_empty()), "{tp}");

    // Replayed rows keep a recorded collector, else say replay.
    let file = dir.path().join("r.jsonl");
    std::fs::write(
        &file,
        "{\"kind\":\"flow\",\"start\":1,\"end\":2,\"path\":\"/a\",\"protocol\":\"tcp\",\"remote_address\":\"192.0.2.1\",\"remote_port\":443,\"source\":\"tracepoint\"}\n\
         {\"kind\":\"flow\",\"start\":1,\"end\":2,\"path\":\"/b\",\"protocol\":\"tcp\",\"remote_address\":\"192.0.2.1\",\"remote_port\":443}\n",
    )
    .unwrap();
    let rows = q(&[
        "query",
        "--json",
        "--replay",
        file.to_str().unwrap(),
        "SELECT path, source FROM launchwatch_sockets ORDER BY path",
    ]);
    assert_eq!(rows[0]["source"], "tracepoint");
    assert_eq!(rows[1]["source"], "replay");
    let status = q(&[
        "query",
        "--json",
        "--replay",
        file.to_str().unwrap(),
        "SELECT sources FROM launchwatch_status",
    ]);
    assert!(status[0]["sources"]
        .as_str()
        .unwrap()
        .contains("\"replay\""));
}

/// Where socket owners come from, in `launchwatch_status.sources`: as root the kernel's
/// descriptor iterator (the `sock_diag` entry has no reason to give); as an unprivileged user
/// (nobody here) the program cannot be loaded, and in a pid namespace of its own the program's
/// pids would not be this `/proc`'s: owners come from `/proc/<pid>/fd` and the entry says so
/// and why.
#[test]
fn status_says_where_socket_owners_come_from() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!in_ci(), "CI runs as root: both sides must be tested");
        return;
    }
    // A connection each live query must find the owner of.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The binary where nobody can run it, whatever the checkout's permissions.
    let binary = dir.path().join("launchwatch");
    std::fs::copy(bin(), &binary).unwrap();
    // As root, as nobody, or as root in a pid namespace of its own (`unshare`, util-linux).
    let sock_diag_entry = |uid: Option<u32>, own_pid_namespace: bool| -> serde_json::Value {
        let state = dir
            .path()
            .join(format!("state-{}-{own_pid_namespace}", uid.unwrap_or(0)));
        std::fs::create_dir(&state).unwrap();
        let mut cmd = if own_pid_namespace {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        cmd.args(["query", "--json", "--state-dir"])
            .arg(&state)
            .arg("SELECT sources FROM launchwatch_status")
            .env("LAUNCHWATCH_CONFIG", "/dev/null");
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&state, Some(uid), Some(uid)).unwrap();
            cmd.uid(uid).gid(uid).env("HOME", &state);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let sources: serde_json::Value =
            serde_json::from_str(rows[0]["sources"].as_str().unwrap()).unwrap();
        sources
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "sock_diag")
            .cloned()
            .unwrap_or_else(|| panic!("no sock_diag in {sources}"))
    };
    let root = sock_diag_entry(None, false);
    assert_eq!(root["running"], true);
    assert!(root.get("reason").is_none(), "as root: {root}");
    let nested = sock_diag_entry(None, true);
    assert!(
        nested["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not in the initial pid namespace")),
        "in a pid namespace of its own: {nested}"
    );
    let nobody = sock_diag_entry(Some(65534), false);
    assert_eq!(nobody["running"], true);
    let reason = nobody["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("socket owners from /proc/<pid>/fd: ") && reason.len() > 36,
        "as nobody: {nobody}"
    );
}
