//! A kill -9 of the live sampler (issue 11, store by change): reopening the store afterwards
//! finds every connection that closed before the kill, with its bytes, and each open
//! connection's counters as of the last write interval (default 5 s); only the changes of
//! that last interval may be lost. Real process, real loopback connections, a real store in a
//! temporary `--state-dir`. Linux as root (the kernel connection events commit closed
//! connections within a second); CI runs as root, and a skip there is a failure.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use launchwatch_e2e::{bin, root_or_fail_in_ci, wait_for_kernel_events};

/// Payload of the i-th short connection: each is told apart by its size too.
fn short_payload(i: usize) -> usize {
    300 + 17 * i
}

struct Flow {
    end: Option<f64>,
    bytes_sent: Option<i64>,
}

/// Every stored flow to or from the server's port, for failure messages.
fn dump(db: &std::path::Path, port: u16) -> String {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT local_port, remote_port, start, end, last_seen, bytes_sent, state, source, pid
             FROM flows WHERE local_port = ?1 OR remote_port = ?1 ORDER BY start",
        )
        .unwrap();
    let rows = stmt
        .query_map([port], |r| {
            Ok((0..9)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join(" "))
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
}

fn flows_from(db: &std::path::Path, local_port: u16, remote_port: u16) -> Vec<Flow> {
    // Opening it read-write replays the WAL the killed writer left, as the next run would.
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT end, bytes_sent FROM flows
             WHERE local_address = '127.0.0.1' AND local_port = ?1 AND remote_port = ?2",
        )
        .unwrap();
    let rows = stmt
        .query_map([local_port, remote_port], |r| {
            Ok(Flow {
                end: r.get(0)?,
                bytes_sent: r.get(1)?,
            })
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

#[test]
fn kill_9_loses_at_most_the_last_interval_and_never_a_closed_connection() {
    if !root_or_fail_in_ci("kill -9 loss bound with the kernel connection events") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The server reads everything each connection sends until it closes.
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut rec = Command::new(bin())
        .args([
            "record",
            "--config",
            "/dev/null",
            "--state-dir",
            state.to_str().unwrap(),
            "--duration",
            "300",
            "--out",
            dir.path().join("rec.jsonl").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = state.join("launchwatch.db");
    wait_for_kernel_events(&db, Duration::from_secs(60));

    let short = |i: usize| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&vec![b'x'; short_payload(i)]).unwrap();
        // Closed only once the server has every byte: the kernel then has them acked.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = c.read(&mut [0u8; 1]);
        c.local_addr().unwrap().port()
    };
    // One long connection; its first bytes are written well before the kill.
    let mut long = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let long_port = long.local_addr().unwrap().port();
    long.write_all(&[b'a'; 1000]).unwrap();
    let mut closed: Vec<(u16, usize)> = (0..5).map(|i| (short(i), short_payload(i))).collect();
    std::thread::sleep(Duration::from_secs(3));
    // Moved: 5,000 more bytes, then more than one write interval (5 s, plus a tick) passes.
    long.write_all(&[b'b'; 5000]).unwrap();
    std::thread::sleep(Duration::from_millis(6500));
    // Closed two seconds before the kill: must be in the store too.
    closed.extend((5..10).map(|i| (short(i), short_payload(i))));
    std::thread::sleep(Duration::from_secs(2));
    // The last interval's change, which the kill may lose.
    long.write_all(&[b'c'; 700]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    rec.kill().unwrap(); // SIGKILL
    rec.wait().unwrap();

    for (local_port, payload) in &closed {
        let f = flows_from(&db, *local_port, port);
        assert_eq!(
            f.len(),
            1,
            "the closed connection from port {local_port} is stored once"
        );
        assert!(f[0].end.is_some(), "stored as closed: port {local_port}");
        // The kernel's acked bytes; the connecting side's SYN may count as one.
        let sent = f[0].bytes_sent.unwrap_or(-1);
        assert!(
            sent == *payload as i64 || sent == *payload as i64 + 1,
            "port {local_port}: {sent} bytes stored, {payload} sent; stored:\n{}",
            dump(&db, port)
        );
    }
    let f = flows_from(&db, long_port, port);
    assert_eq!(f.len(), 1, "the open connection is stored");
    assert!(f[0].end.is_none());
    let sent = f[0].bytes_sent.unwrap_or(0);
    assert!(
        (6000..=6701).contains(&sent),
        "the open connection's counters as of the last write interval: {sent} bytes stored, \
         6,000 sent more than 8 s before the kill and 700 just before it"
    );
    drop(long);
}
