//! Live capture end to end (Linux, root): real clients on loopback — random bytes, a real TLS
//! ClientHello from Python's `ssl`, an HTTP request, and a name resolved through a DNS responder
//! this test runs, then connected to — each show up in `launchwatch query` with its class, its
//! process and its names. Capture needs root; CI runs as root, so there a skip is a failure.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use launchwatch_e2e::{bin, json_rows, wait_for_kernel_events, wait_until_stored};
use serde_json::{Map, Value};

fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI runs as root: live capture must be tested there, not skipped"
    );
    eprintln!("skipped: live capture needs root");
    false
}

/// Accepts one connection, reads what comes (answering `reply` after the first read), and
/// holds it until the client closes.
fn server(addr: &str, reply: Option<&'static [u8]>) -> (u16, JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut replied = false;
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if let (Some(r), false) = (reply, replied) {
                c.write_all(r).unwrap();
                replied = true;
            }
        }
        got
    });
    (port, t)
}

/// Answers A queries for `name` with `address`, NXDOMAIN otherwise, until `n` queries.
fn dns_responder(name: &'static str, address: [u8; 4]) -> (String, u16, JoinHandle<()>) {
    // Port 53 when free (the real one), else any port the config then names.
    let sock = UdpSocket::bind("127.53.0.1:53")
        .or_else(|_| UdpSocket::bind("127.53.0.1:0"))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return;
        };
        let q = &buf[..n];
        // Question: labels from offset 12, then type and class.
        let mut pos = 12;
        let mut labels = Vec::new();
        while pos < n && q[pos] != 0 {
            let len = q[pos] as usize;
            labels.push(String::from_utf8_lossy(&q[pos + 1..pos + 1 + len]).into_owned());
            pos += 1 + len;
        }
        let question_end = pos + 5;
        let asked = labels.join(".");
        let mut r = q[..2].to_vec();
        let hit = asked.eq_ignore_ascii_case(name);
        r.extend_from_slice(&[
            0x81,
            if hit { 0x80 } else { 0x83 },
            0,
            1,
            0,
            u8::from(hit),
            0,
            0,
            0,
            0,
        ]);
        r.extend_from_slice(&q[12..question_end]);
        if hit {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&address);
        }
        sock.send_to(&r, from).unwrap();
    });
    ("127.53.0.1".into(), port, t)
}

fn python(script: &str, args: &[String]) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .spawn()
        .expect("python3 runs")
}

const RANDOM_CLIENT: &str = "import os,socket,sys,time
s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))
s.sendall(os.urandom(600)); time.sleep(1.5); s.close()";

const TLS_CLIENT: &str = "import socket,ssl,sys,time
ctx=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
s=socket.create_connection(('127.0.0.1',int(sys.argv[1]))); s.settimeout(1.5)
try: ctx.wrap_socket(s, server_hostname='secure.lwtest.example')
except Exception: pass
s.close()";

const HTTP_CLIENT: &str = "import socket,sys,time
s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))
s.sendall(b'GET /status HTTP/1.1\\r\\nHost: web.lwtest.example\\r\\nUser-Agent: t\\r\\n\\r\\n')
s.recv(100); time.sleep(1.5); s.close()";

const DNS_CLIENT: &str = "import random,socket,struct,sys,time
name='beacon.lwtest.example'
q=struct.pack('>HHHHHH',random.randrange(65536),0x0100,1,0,0,0)
q+=b''.join(bytes([len(l)])+l.encode() for l in name.split('.'))+b'\\0'+struct.pack('>HH',1,1)
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.settimeout(10)
u.sendto(q,(sys.argv[1],int(sys.argv[2]))); r,_=u.recvfrom(512)
ip=socket.inet_ntoa(r[-4:])
s=socket.create_connection((ip,int(sys.argv[3])))
s.sendall(b'hello from a beacon that speaks plain words, status ok '*3); time.sleep(1.5); s.close()";

fn query(state: &Path, sql: &str) -> Vec<Map<String, Value>> {
    let out = Command::new(bin())
        .args([
            "query",
            "--json",
            "--no-sample",
            "--state-dir",
            state.to_str().unwrap(),
            sql,
        ])
        .env("LAUNCHWATCH_CONFIG", "/dev/null")
        .output()
        .unwrap();
    json_rows(&out)
}

fn s<'a>(row: &'a Map<String, Value>, col: &str) -> &'a str {
    row[col]
        .as_str()
        .unwrap_or_else(|| panic!("{col} in {row:?}"))
}

#[test]
fn live_loopback_flows_have_class_owner_and_names() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (dns_ip, dns_port, dns_thread) = dns_responder("beacon.lwtest.example", [127, 0, 0, 77]);
    let config = dir.path().join("launchwatch.toml");
    std::fs::write(
        &config,
        format!("[sampler]\nsocket_interval = 0.5\n[capture]\nenabled = true\ndns_ports = [53, 5353, {dns_port}]\n"),
    )
    .unwrap();
    let mut record = Command::new(bin())
        .args(["record", "--verbose", "--duration", "120", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .arg("--out")
        .arg(dir.path().join("out.jsonl"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the capture to run before any client starts.
    let mut stderr = BufReader::new(record.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !line.contains("capture: running") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0 && Instant::now() < deadline,
            "capture did not start"
        );
    }
    let log = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    // Capture asks the kernel events for each flow's process: they must be running too.
    wait_for_kernel_events(&state.join("launchwatch.db"), Duration::from_secs(60));

    let (random_port, random_srv) = server("127.0.0.1:0", None);
    let (tls_port, tls_srv) = server("127.0.0.1:0", None);
    let (http_port, http_srv) = server(
        "127.0.0.1:0",
        Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    );
    let (named_port, named_srv) = server("127.0.0.77:0", None);
    let mut clients = [
        python(RANDOM_CLIENT, &[random_port.to_string()]),
        python(TLS_CLIENT, &[tls_port.to_string()]),
        python(HTTP_CLIENT, &[http_port.to_string()]),
        python(
            DNS_CLIENT,
            &[dns_ip.clone(), dns_port.to_string(), named_port.to_string()],
        ),
    ];
    let pids: Vec<String> = clients.iter().map(|c| c.id().to_string()).collect();
    for c in &mut clients {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(random_srv.join().unwrap().len(), 600);
    assert!(
        tls_srv.join().unwrap().starts_with(&[0x16, 0x03]),
        "a real ClientHello was sent"
    );
    http_srv.join().unwrap();
    named_srv.join().unwrap();
    dns_thread.join().unwrap();
    // Stop the recorder once it has stored what is asserted below: each payload row (the
    // HTTP one with the server's reply), the DNS answer, and the named client's socket.
    let client_pid: i64 = pids[3].parse().unwrap();
    wait_until_stored(
        &state.join("launchwatch.db"),
        Duration::from_secs(60),
        "the payload rows, the DNS answer and the named client's socket",
        |c| {
            let exists = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
                c.query_row(&format!("SELECT EXISTS ({sql})"), params, |r| {
                    r.get::<_, bool>(0)
                })
            };
            let payload = "SELECT 1 FROM payloads WHERE protocol = ?1 AND remote_port = ?2";
            let replied = format!("{payload} AND server_payload_class IS NOT NULL");
            Ok(exists(payload, &[&"tcp", &random_port])?
                && exists(payload, &[&"tcp", &tls_port])?
                && exists(&replied, &[&"tcp", &http_port])?
                && exists(payload, &[&"udp", &dns_port])?
                && exists(payload, &[&"tcp", &named_port])?
                && exists(
                    "SELECT 1 FROM dns WHERE name = 'beacon.lwtest.example'",
                    &[],
                )?
                && exists(
                    "SELECT 1 FROM flows WHERE remote_port = ?1 AND pid = ?2",
                    &[&named_port, &client_pid],
                )?)
        },
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(record.id() as i32, libc::SIGTERM) };
    assert!(record.wait().unwrap().success());
    let log = log.join().unwrap();

    let rows = query(&state, "SELECT * FROM launchwatch_payloads");
    let by_port = |port: u16, proto: &str| {
        rows.iter()
            .find(|r| s(r, "remote_port") == port.to_string() && s(r, "protocol") == proto)
            .unwrap_or_else(|| panic!("no {proto} row for port {port} in {rows:#?}\n{log}"))
    };
    let random = by_port(random_port, "tcp");
    assert_eq!(
        (s(random, "payload_class"), s(random, "pid")),
        ("random", pids[0].as_str()),
        "{random:?}"
    );
    assert_eq!(
        (
            s(random, "direction"),
            s(random, "bytes_seen"),
            s(random, "sni")
        ),
        ("out", "256", "")
    );
    assert!(s(random, "path").contains("python"), "{random:?}");
    let tls = by_port(tls_port, "tcp");
    assert_eq!(
        (
            s(tls, "payload_class"),
            s(tls, "pid"),
            s(tls, "sni"),
            s(tls, "ech")
        ),
        ("tls", pids[1].as_str(), "secure.lwtest.example", "0"),
        "{tls:?}"
    );
    let http = by_port(http_port, "tcp");
    assert_eq!(
        (
            s(http, "payload_class"),
            s(http, "server_payload_class"),
            s(http, "pid"),
            s(http, "http_host")
        ),
        ("http", "http", pids[2].as_str(), "web.lwtest.example"),
        "{http:?}"
    );
    let dns = by_port(dns_port, "udp");
    assert_eq!(s(dns, "pid"), pids[3], "{dns:?}");
    if dns_port == 53 {
        assert_eq!(
            (s(dns, "payload_class"), s(dns, "server_payload_class")),
            ("dns", "dns")
        );
    }
    let named = by_port(named_port, "tcp");
    assert_eq!(
        (
            s(named, "remote_address"),
            s(named, "pid"),
            s(named, "payload_class")
        ),
        ("127.0.0.77", pids[3].as_str(), "printable"),
        "{named:?}"
    );
    assert_eq!(
        (s(named, "resolved_name"), s(named, "remote_name")),
        ("beacon.lwtest.example", "beacon.lwtest.example")
    );

    let answers = query(
        &state,
        "SELECT * FROM launchwatch_dns WHERE name = 'beacon.lwtest.example'",
    );
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(s(&answers[0], "address"), "127.0.0.77");
    // The socket sampler saw the connection too: its remote_name is the DNS-resolved name.
    let sockets = query(
        &state,
        &format!("SELECT * FROM launchwatch_sockets WHERE remote_port = {named_port}"),
    );
    let client_socket = sockets
        .iter()
        .find(|r| s(r, "pid") == pids[3])
        .unwrap_or_else(|| panic!("the client's socket was sampled: {sockets:#?}"));
    assert_eq!(s(client_socket, "remote_name"), "beacon.lwtest.example");
}
