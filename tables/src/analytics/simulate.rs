//! A seeded generator of labelled host-days: C2 beacons (Cobalt-Strike one-sided jitter,
//! Empire ±J, Sliver +U[0, j)) with real-world artefacts, and the benign traffic that looks
//! periodic or bursty. It emits the same flow observations the collectors produce, so the
//! evaluation benchmark and `--replay` see the same thing. Deterministic per seed (splitmix64),
//! no external RNG.

use crate::observation::{FlowObs, FlowSnapshot, Observation, SigningObs};

use super::beacon::Conn;

/// splitmix64: small, fast, good enough for simulation, identical on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_1a0c_0ffe_e000)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f()
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next_u64() % xs.len() as u64) as usize]
    }
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f()).ln()
    }
    pub fn normal(&mut self) -> f64 {
        (-2.0 * (1.0 - self.f()).ln()).sqrt() * (2.0 * std::f64::consts::PI * self.f()).cos()
    }
}

/// What a generated key is.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Class name for per-class reporting, e.g. `cs_j30`, `poisson_api`.
    pub class: String,
    pub malicious: bool,
    pub path: String,
    pub signer_class: &'static str,
    pub remote_name: String,
    pub port: u16,
    /// A launchd timer that explains the key's period (benign scheduled jobs).
    pub launchd_period: Option<f64>,
    pub conns: Vec<Conn>,
    /// Connection durations, parallel to `conns`.
    pub durations: Vec<f64>,
    /// IPs used (rotation under one domain).
    pub addresses: Vec<String>,
    /// How long ago this program first contacted this destination: implants are new (0–7
    /// days); benign programs mostly long established (30–365 days), one in ten freshly
    /// installed (0–7 days).
    pub first_seen_days: f64,
    /// The job behind the key (spec.md `job_class`), `none` for programs no job runs.
    pub job_class: &'static str,
    /// The program is an interpreter or downloader (curl, python3, osascript, sh, …).
    pub interpreter: bool,
    /// The launchd label that runs it, when a job does.
    pub launchd_label: Option<String>,
    /// Counter readings of each connection (parallel to `conns`) as the store keeps them for
    /// long-lived flows; empty for keys of short connections.
    pub snapshots: Vec<Vec<FlowSnapshot>>,
}

/// The host's sleep schedule: awake intervals within the day.
fn awake(rng: &mut Rng, day: f64) -> Vec<(f64, f64)> {
    // Asleep 23:00–07:00 on most laptops, plus a random 20–90 min lid close.
    if rng.f() < 0.3 {
        return vec![(day, day + 86400.0)]; // a desktop that never sleeps
    }
    let lid = day + rng.range(9.0, 20.0) * 3600.0;
    let lid_len = rng.range(20.0, 90.0) * 60.0;
    vec![
        (day + 7.0 * 3600.0, lid),
        (lid + lid_len, day + 23.0 * 3600.0),
    ]
}

fn is_awake(t: f64, windows: &[(f64, f64)]) -> bool {
    windows.iter().any(|(a, b)| t >= *a && t < *b)
}

/// Beacon shapes.
#[derive(Debug, Clone, Copy)]
pub enum Jitter {
    /// Cobalt Strike: sleep in [S·(1−J), S].
    OneSided(f64),
    /// Empire/PoshC2: [S·(1−J), S·(1+J)].
    Symmetric(f64),
    /// Sliver: S + U[0, j) seconds.
    Additive(f64),
}

fn beacon(
    rng: &mut Rng,
    class: &str,
    period: f64,
    jitter: Jitter,
    day: f64,
    windows: &[(f64, f64)],
) -> Key {
    let mut conns = Vec::new();
    let mut durations = Vec::new();
    let mut t = day + rng.range(0.0, period);
    let addresses: Vec<String> = (0..rng.range(1.0, 4.0) as usize)
        .map(|i| format!("198.51.100.{}", 10 + i))
        .collect();
    let base_out = rng.range(200.0, 900.0);
    while t < day + 86400.0 {
        let sleep = match jitter {
            Jitter::OneSided(j) => period * (1.0 - j * rng.f()),
            Jitter::Symmetric(j) => period * (1.0 + j * (2.0 * rng.f() - 1.0)),
            Jitter::Additive(j) => period + j * rng.f(),
        };
        if is_awake(t, windows) && rng.f() >= 0.07 {
            // 7 % missed beats; tasking bursts now and then; 2–3 parallel connections; retries.
            let tasking = rng.f() < 0.05;
            let parallel = if rng.f() < 0.2 {
                rng.range(2.0, 4.0) as usize
            } else {
                1
            };
            for _ in 0..parallel {
                conns.push(Conn {
                    start: t + rng.range(0.0, 1.5),
                    bytes_out: base_out
                        * rng.range(0.95, 1.05)
                        * if tasking { rng.range(5.0, 40.0) } else { 1.0 },
                    bytes_in: rng.range(300.0, 600.0) * if tasking { 20.0 } else { 1.0 },
                });
                durations.push(rng.range(0.2, 2.0));
            }
            if rng.f() < 0.05 {
                conns.push(Conn {
                    start: t + rng.range(1.0, 20.0),
                    bytes_out: base_out,
                    bytes_in: 0.0,
                });
                durations.push(0.1);
            }
        }
        t += sleep.max(1.0);
    }
    let signer_class: &'static str = if rng.f() < 2.0 / 3.0 {
        "adhoc"
    } else {
        "unsigned"
    };
    Key {
        class: class.into(),
        malicious: true,
        path: format!("/Users/Shared/.{}/agent", class),
        signer_class,
        remote_name: format!("c2-{}.example.net", rng.next_u64() % 1000),
        port: *rng.pick(&[443, 443, 8443, 80]),
        launchd_period: None,
        conns,
        durations,
        addresses,
        first_seen_days: rng.range(0.0, 7.0),
        job_class: "none",
        interpreter: false,
        launchd_label: None,
        snapshots: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn benign(
    rng: &mut Rng,
    class: &str,
    signer: &'static str,
    name: &str,
    day: f64,
    windows: &[(f64, f64)],
    next: &mut dyn FnMut(&mut Rng, f64) -> Option<f64>,
    launchd_period: Option<f64>,
    bytes: (f64, f64),
    duration: (f64, f64),
) -> Key {
    let mut conns = Vec::new();
    let mut durations = Vec::new();
    let mut t = day + rng.range(0.0, 600.0);
    while t < day + 86400.0 {
        if is_awake(t, windows) {
            conns.push(Conn {
                start: t,
                bytes_out: rng.range(bytes.0, bytes.1),
                bytes_in: rng.range(bytes.0, bytes.1) * 3.0,
            });
            durations.push(rng.range(duration.0, duration.1));
        }
        match next(rng, t) {
            Some(dt) => t += dt.max(0.5),
            None => break,
        }
    }
    let n_ips = if class == "cdn_churn" { 12 } else { 2 };
    Key {
        class: class.into(),
        malicious: false,
        path: format!("/Applications/{class}.app/Contents/MacOS/{class}"),
        signer_class: signer,
        remote_name: name.into(),
        port: 443,
        launchd_period,
        conns,
        durations,
        addresses: (0..n_ips)
            .map(|i| format!("203.0.113.{}", 20 + i))
            .collect(),
        first_seen_days: if rng.f() < 0.1 {
            rng.range(0.0, 7.0)
        } else {
            rng.range(30.0, 365.0)
        },
        job_class: "none",
        interpreter: false,
        launchd_label: None,
        snapshots: Vec::new(),
    }
}

/// launchd jobs judged by the job (issue 9's classes), drawn from their own stream so the
/// keys above stay identical for every seed. One malicious job a day — curl, python3 or
/// osascript in a user's LaunchAgent, a `sh -c curl` daemon in /Library, an ad-hoc
/// SMAppService helper — beside Apple's own timer, a Developer ID updater job and a user's
/// interactive curl.
fn job_keys(seed: u64, day_index: u64, day: f64, w: &[(f64, f64)]) -> Vec<Key> {
    let mut rng = Rng::new(seed.wrapping_mul(7_919).wrapping_add(day_index) ^ 0x10b5);
    let mut keys = Vec::new();
    let (class, path, signer, job_class, interpreter): (
        &str,
        &str,
        &'static str,
        &'static str,
        bool,
    ) = match rng.next_u64() % 5 {
        0 => ("agent_curl", "/usr/bin/curl", "apple", "user", true),
        1 => ("agent_python3", "/usr/bin/python3", "apple", "user", true),
        2 => (
            "agent_osascript",
            "/usr/bin/osascript",
            "apple",
            "user",
            true,
        ),
        3 => (
            "daemon_sh_curl",
            "/usr/bin/curl",
            "apple",
            "third_party",
            true,
        ),
        _ => (
            "smappservice_adhoc",
            "/Applications/Helper.app/Contents/MacOS/helperd",
            "adhoc",
            "app_bundle",
            false,
        ),
    };
    let period = *rng.pick(&[60.0, 120.0, 300.0, 600.0, 900.0]);
    let jitter = *rng.pick(&[0.0, 0.05, 0.2]);
    let mut k = beacon(&mut rng, class, period, Jitter::Symmetric(jitter), day, w);
    k.path = path.to_string();
    k.signer_class = signer;
    k.job_class = job_class;
    k.interpreter = interpreter;
    k.launchd_label = Some(format!("com.{class}.job"));
    keys.push(k);
    // Apple's own timer: a job in /System running Apple's program, period explained.
    let apple_period = *rng.pick(&[900.0, 1800.0, 3600.0]);
    let mut k = benign(
        &mut rng,
        "job_apple_timer",
        "apple",
        "sync.apple.example",
        day,
        w,
        &mut |_, _| Some(apple_period),
        Some(apple_period),
        (300.0, 320.0),
        (0.3, 1.0),
    );
    k.path = "/usr/libexec/timed-sync".into();
    k.job_class = "apple";
    k.launchd_label = Some("com.apple.timed-sync".into());
    keys.push(k);
    // A Developer ID updater job in /Library on an hourly timer.
    let mut k = benign(
        &mut rng,
        "job_devid_updater",
        "developer_id",
        "updates.vendor.example",
        day,
        w,
        &mut |_, _| Some(3600.0),
        Some(3600.0),
        (700.0, 760.0),
        (0.5, 2.0),
    );
    k.job_class = "third_party";
    k.launchd_label = Some("com.vendor.updater".into());
    keys.push(k);
    // A user's own curl in a Terminal: bursts of commands, long pauses.
    let mut k = benign(
        &mut rng,
        "interactive_curl",
        "apple",
        "api.github.example",
        day,
        w,
        &mut |r, _| {
            Some(if r.f() < 0.5 {
                r.range(5.0, 120.0)
            } else {
                r.exp(3600.0)
            })
        },
        None,
        (200.0, 2000.0),
        (0.2, 2.0),
    );
    k.path = "/usr/bin/curl".into();
    k.interpreter = true;
    keys.push(k);
    keys
}

/// One host-day of labelled keys (one malicious beacon and a realistic benign mix).
pub fn host_day(seed: u64, day_index: u64) -> Vec<Key> {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(day_index));
    let day = 1_700_006_400.0 + day_index as f64 * 86400.0; // a midnight UTC
    let w = awake(&mut rng, day);
    let mut keys = Vec::new();
    let period = *rng.pick(&[30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0]);
    let (class, jitter) = match rng.next_u64() % 8 {
        0 => ("cs_j0", Jitter::OneSided(0.0)),
        1 => ("cs_j10", Jitter::OneSided(0.1)),
        2 => ("cs_j30", Jitter::OneSided(0.3)),
        3 => ("cs_j50", Jitter::OneSided(0.5)),
        4 => ("cs_j70", Jitter::OneSided(0.7)),
        5 => ("cs_j90", Jitter::OneSided(0.9)),
        6 => ("empire_j50", Jitter::Symmetric(0.5)),
        _ => ("sliver", Jitter::Additive(period * 0.5)),
    };
    keys.push(beacon(&mut rng, class, period, jitter, day, &w));
    // Benign periodic and near-periodic.
    let launchd = *rng.pick(&[3600.0, 1800.0, 900.0]);
    keys.push(benign(
        &mut rng,
        "launchd_exact",
        "apple",
        "updates.apple.com",
        day,
        &w,
        &mut |_, _| Some(launchd),
        Some(launchd),
        (400.0, 420.0),
        (0.5, 2.0),
    ));
    keys.push(benign(
        &mut rng,
        "launchd_exact_3p",
        "developer_id",
        "api.vendor.example",
        day,
        &w,
        &mut |_, _| Some(launchd),
        Some(launchd),
        (400.0, 420.0),
        (0.5, 2.0),
    ));
    keys.push(benign(
        &mut rng,
        "updater",
        "developer_id",
        "sparkle.vendor.example",
        day,
        &w,
        &mut |r, _| Some(3600.0 + r.range(0.0, 60.0)),
        None,
        (800.0, 900.0),
        (1.0, 3.0),
    ));
    let ntp = *rng.pick(&[64.0, 128.0, 1024.0]);
    keys.push(benign(
        &mut rng,
        "ntp_poll",
        "apple",
        "time.apple.com",
        day,
        &w,
        &mut |_, _| Some(ntp),
        None,
        (48.0, 48.0),
        (0.05, 0.1),
    ));
    keys.push(benign(
        &mut rng,
        "telemetry",
        "developer_id",
        "telemetry.sdk.example",
        day,
        &w,
        &mut |r, _| Some(60.0 * (1.0 + 0.05 * r.normal())),
        None,
        (1000.0, 4000.0),
        (0.3, 1.0),
    ));
    keys.push(benign(
        &mut rng,
        "push_keepalive",
        "apple",
        "push.apple.com",
        day,
        &w,
        &mut |r, _| Some(r.range(1500.0, 1800.0)),
        None,
        (60.0, 80.0),
        (1500.0, 1800.0),
    ));
    // Benign irregular.
    keys.push(benign(
        &mut rng,
        "browsing",
        "developer_id",
        "news.example.org",
        day,
        &w,
        &mut |r, t| {
            Some(if ((t / 3600.0) as i64) % 3 == 0 {
                r.exp(20.0)
            } else {
                r.exp(900.0)
            })
        },
        None,
        (500.0, 50_000.0),
        (1.0, 30.0),
    ));
    for (i, mean) in [60.0, 300.0, 900.0].iter().enumerate() {
        let name = format!("api{i}.service.example");
        keys.push(benign(
            &mut rng,
            "poisson_api",
            "developer_id",
            &name,
            day,
            &w,
            &mut |r, _| Some(r.exp(*mean)),
            None,
            (300.0, 3000.0),
            (0.2, 3.0),
        ));
    }
    keys.push(benign(
        &mut rng,
        "cdn_churn",
        "app_store",
        "cdn.assets.example",
        day,
        &w,
        &mut |r, _| Some(r.exp(120.0)),
        None,
        (100.0, 200_000.0),
        (0.5, 10.0),
    ));
    keys.push(benign(
        &mut rng,
        "backup",
        "developer_id",
        "backup.vendor.example",
        day,
        &w,
        &mut |r, _| Some(r.range(3000.0, 5000.0)),
        None,
        (1e6, 5e7),
        (60.0, 900.0),
    ));
    keys.push(benign(
        &mut rng,
        "dev_tool",
        "unsigned",
        "registry.npmjs.example",
        day,
        &w,
        &mut |r, _| {
            Some(if r.f() < 0.8 {
                r.range(1.0, 5.0)
            } else {
                r.exp(5400.0)
            })
        },
        None,
        (1000.0, 100_000.0),
        (0.5, 5.0),
    ));
    keys.extend(job_keys(seed, day_index, day, &w));
    keys.extend(fast_and_infrastructure_keys(seed, day_index, day, &w));
    keys.extend(in_connection_keys(seed, day_index, day, &w));
    keys
}

/// The live sampler's reading interval (`[sampler] socket_interval`).
pub const SOCKET_INTERVAL: f64 = 5.0;

/// One connection read every `every` seconds (first reading at `open + phase`): the first
/// reading, then each reading where the counters moved with the quiet reading before it. (The
/// store keeps fewer — only the ends of a run of like readings — which time the same check-ins.) `events` are (time, bytes sent, bytes received), in time order.
pub fn sampled_readings(
    events: &[(f64, f64, f64)],
    open: f64,
    close: f64,
    every: f64,
    phase: f64,
) -> Vec<FlowSnapshot> {
    let mut all = Vec::new();
    let (mut sent, mut received, mut next) = (0.0, 0.0, 0usize);
    let mut t = open + phase;
    while t <= close {
        while next < events.len() && events[next].0 <= t {
            sent += events[next].1;
            received += events[next].2;
            next += 1;
        }
        all.push(FlowSnapshot {
            ts: t,
            bytes_sent: sent as i64,
            bytes_received: received as i64,
        });
        t += every;
    }
    let moved = |a: &FlowSnapshot, b: &FlowSnapshot| {
        a.bytes_sent != b.bytes_sent || a.bytes_received != b.bytes_received
    };
    let mut kept: Vec<FlowSnapshot> = Vec::new();
    for (i, r) in all.iter().enumerate() {
        if i == 0 {
            kept.push(*r);
        } else if moved(&all[i - 1], r) {
            if kept.last().map(|k| k.ts) != Some(all[i - 1].ts) {
                kept.push(all[i - 1]);
            }
            kept.push(*r);
        }
    }
    kept
}

/// A connection's traffic between its open and close: (time, bytes sent, bytes received).
type Traffic<'a> = dyn FnMut(&mut Rng, f64, f64) -> Vec<(f64, f64, f64)> + 'a;

/// One persistent connection per awake window (a laptop's sleep drops it; the program
/// reconnects on wake): `traffic(rng, open, close)` gives its (time, sent, received) events.
#[allow(clippy::too_many_arguments)]
fn persistent(
    rng: &mut Rng,
    class: &str,
    malicious: bool,
    path: &str,
    signer_class: &'static str,
    remote_name: &str,
    port: u16,
    address: &str,
    connections: usize,
    windows: &[(f64, f64)],
    traffic: &mut Traffic<'_>,
) -> Key {
    let phase = rng.range(0.0, SOCKET_INTERVAL);
    let (mut conns, mut durations, mut snapshots) = (Vec::new(), Vec::new(), Vec::new());
    for (a, b) in windows {
        for _ in 0..connections {
            let open = a + rng.range(5.0, 120.0);
            if open >= *b {
                continue;
            }
            // The connection's opening burst (handshake, hello), then its own traffic.
            let mut events = vec![(open, rng.range(500.0, 700.0), rng.range(3000.0, 5000.0))];
            events.extend(traffic(rng, open, *b));
            events.sort_by(|x, y| x.0.total_cmp(&y.0));
            let readings = sampled_readings(&events, open, *b, SOCKET_INTERVAL, phase);
            let last = readings.last().copied();
            conns.push(Conn {
                start: open,
                bytes_out: last.map_or(0.0, |r| r.bytes_sent as f64),
                bytes_in: last.map_or(0.0, |r| r.bytes_received as f64),
            });
            durations.push(last.map_or(0.0, |r| r.ts - open));
            snapshots.push(readings);
        }
    }
    Key {
        class: class.into(),
        malicious,
        path: path.into(),
        signer_class,
        remote_name: remote_name.into(),
        port,
        launchd_period: None,
        conns,
        durations,
        addresses: vec![address.into()],
        first_seen_days: if malicious || rng.f() < 0.1 {
            rng.range(0.0, 7.0)
        } else {
            rng.range(30.0, 365.0)
        },
        job_class: "none",
        interpreter: false,
        launchd_label: None,
        snapshots,
    }
}

/// Issue 12's in-connection classes, from a fourth stream: an implant that checks in inside
/// one persistent connection (one connection per awake stretch, so 1–2 connection starts a
/// day), jittered or not, beside long-lived benign connections that must stay quiet — a
/// stream, an interactive SSH session, a push WebSocket's keepalives from an Apple program and
/// a database connection pool. All are read as the live sampler reads them (every 5 s).
fn in_connection_keys(seed: u64, day_index: u64, day: f64, w: &[(f64, f64)]) -> Vec<Key> {
    let _ = day;
    let mut rng = Rng::new(seed.wrapping_mul(15_485_863).wrapping_add(day_index) ^ 0x1c0e);
    let mut keys = Vec::new();
    let period = *rng.pick(&[30.0, 60.0, 300.0, 900.0]);
    let (class, jitter) = match rng.next_u64() % 3 {
        0 => ("in_connection_j0", 0.0),
        1 => ("in_connection_j30", 0.3),
        _ => ("in_connection_j50", 0.5),
    };
    let base_out = rng.range(200.0, 900.0);
    let signer: &'static str = if rng.f() < 2.0 / 3.0 {
        "adhoc"
    } else {
        "unsigned"
    };
    let name = format!("ws{}.c2-persist.example.net", rng.next_u64() % 1000);
    keys.push(persistent(
        &mut rng,
        class,
        true,
        &format!("/Users/Shared/.{class}/agent"),
        signer,
        &name,
        443,
        "198.51.100.90",
        1,
        w,
        &mut |r, open, close| {
            let mut ev = Vec::new();
            let mut t = open + r.range(0.0, period);
            while t < close {
                // 7 % missed beats and tasking now and then, as for connection beacons.
                if r.f() >= 0.07 {
                    let tasking = if r.f() < 0.05 {
                        r.range(5.0, 40.0)
                    } else {
                        1.0
                    };
                    ev.push((t, base_out * r.range(0.95, 1.05) * tasking, 0.0));
                    ev.push((t + r.range(0.05, 0.8), 0.0, r.range(300.0, 600.0) * tasking));
                }
                t += period * (1.0 - jitter * r.f());
            }
            ev
        },
    ));
    // A media stream: requests all the time, paused now and then while the buffer is full.
    keys.push(persistent(
        &mut rng,
        "stream_download",
        false,
        "/Applications/Player.app/Contents/MacOS/Player",
        "developer_id",
        "media.stream.example",
        443,
        "203.0.113.60",
        1,
        w,
        &mut |r, open, close| {
            let end = (open + r.range(1800.0, 3.0 * 3600.0)).min(close);
            let mut ev = Vec::new();
            let mut t = open;
            let mut pause_at = t + r.exp(90.0);
            while t < end {
                ev.push((t, r.range(200.0, 600.0), r.range(5e4, 5e5)));
                t += r.exp(1.5);
                if t > pause_at {
                    t += r.range(5.0, 90.0);
                    pause_at = t + r.exp(90.0);
                }
            }
            ev
        },
    ));
    // An interactive SSH session (Homebrew's ad-hoc-signed ssh): bursts of keystrokes, pauses
    // to think or read, long idle stretches.
    keys.push(persistent(
        &mut rng,
        "ssh_interactive",
        false,
        "/opt/homebrew/bin/ssh",
        "adhoc",
        "bastion.corp.example",
        22,
        "203.0.113.61",
        1,
        w,
        &mut |r, open, close| {
            let end = (open + r.range(1800.0, 4.0 * 3600.0)).min(close);
            let mut ev = Vec::new();
            let mut t = open + r.range(1.0, 10.0);
            while t < end {
                for _ in 0..(r.range(3.0, 40.0) as usize) {
                    ev.push((t, 36.0, r.range(36.0, 120.0)));
                    t += r.range(0.1, 0.6);
                }
                t += if r.f() < 0.6 {
                    r.exp(15.0)
                } else {
                    r.exp(300.0)
                };
            }
            ev
        },
    ));
    // A push WebSocket from an Apple program: a keepalive on a timer, pushes now and then.
    let keepalive = *rng.pick(&[60.0, 240.0, 900.0]);
    keys.push(persistent(
        &mut rng,
        "push_websocket_apple",
        false,
        "/System/Library/PrivateFrameworks/PushKit.framework/pushd",
        "apple",
        "gateway.push-ws.apple.example",
        443,
        "17.57.145.20",
        1,
        w,
        &mut |r, open, close| {
            let mut ev = Vec::new();
            let mut t = open + keepalive;
            while t < close {
                ev.push((t, 40.0, 0.0));
                ev.push((t + r.range(0.05, 0.3), 0.0, 40.0));
                if r.f() < 0.1 {
                    ev.push((
                        t + r.range(1.0, keepalive - 1.0),
                        0.0,
                        r.range(200.0, 4000.0),
                    ));
                }
                t += keepalive * (1.0 + 0.02 * (2.0 * r.f() - 1.0));
            }
            ev
        },
    ));
    // A database connection pool: four connections, queries whenever the app needs them.
    keys.push(persistent(
        &mut rng,
        "db_pool",
        false,
        "/Applications/Ledger.app/Contents/MacOS/Ledger",
        "developer_id",
        "db.vendor.example",
        5432,
        "203.0.113.62",
        4,
        w,
        &mut |r, open, close| {
            let mut ev = Vec::new();
            let mut t = open + r.exp(40.0);
            while t < close {
                ev.push((t, r.range(200.0, 3000.0), 0.0));
                ev.push((t + r.range(0.002, 0.2), 0.0, r.range(500.0, 50_000.0)));
                t += r.exp(40.0);
            }
            ev
        },
    ));
    keys
}

/// Issue 12's classes, from a third stream: an implant's fast session mode (1–10 s check-ins
/// for an hour, jittered or not) beside the periodic infrastructure that must stay quiet — SSDP
/// multicast, and NTP and push channels from programs whose signer is unknown (as in captures
/// converted to observations).
fn fast_and_infrastructure_keys(seed: u64, day_index: u64, day: f64, w: &[(f64, f64)]) -> Vec<Key> {
    let mut rng = Rng::new(seed.wrapping_mul(104_729).wrapping_add(day_index) ^ 0xfa57);
    let mut keys = Vec::new();
    let (class, period, jitter) = match rng.next_u64() % 4 {
        0 => ("fast_1s", 1.0, 0.0),
        1 => ("fast_2s_j20", 2.0, 0.2),
        2 => ("fast_5s_j50", 5.0, 0.5),
        _ => ("fast_10s_j30", 10.0, 0.3),
    };
    let awake_start = w.first().map_or(day, |a| a.0);
    let from = awake_start + rng.range(0.0, 3.0 * 3600.0);
    let mut conns = Vec::new();
    let mut durations = Vec::new();
    let mut t = from;
    while t < from + 3600.0 {
        conns.push(Conn {
            start: t,
            bytes_out: rng.range(200.0, 260.0),
            bytes_in: rng.range(80.0, 120.0),
        });
        durations.push(rng.range(0.05, 0.3));
        t += period * (1.0 - jitter * rng.f());
    }
    keys.push(Key {
        class: class.into(),
        malicious: true,
        path: format!("/Users/Shared/.{class}/agent"),
        signer_class: if rng.f() < 0.5 { "adhoc" } else { "unsigned" },
        remote_name: format!("s{}.fast-c2.example.net", rng.next_u64() % 1000),
        port: 443,
        launchd_period: None,
        conns,
        durations,
        addresses: vec!["198.51.100.77".into()],
        first_seen_days: rng.range(0.0, 7.0),
        job_class: "none",
        interpreter: false,
        launchd_label: None,
        snapshots: Vec::new(),
    });
    let infra = |rng: &mut Rng,
                 class: &str,
                 name: &str,
                 port: u16,
                 address: &str,
                 every: f64,
                 jitter: f64| {
        let mut k = benign(
            rng,
            class,
            "unknown",
            name,
            day,
            w,
            &mut |r, _| Some(every * (1.0 + jitter * (2.0 * r.f() - 1.0))),
            None,
            (48.0, 48.0),
            (0.05, 0.2),
        );
        k.port = port;
        k.addresses = vec![address.into()];
        k.path = format!("/usr/sbin/{class}");
        k
    };
    keys.push(infra(
        &mut rng,
        "ssdp_multicast",
        "239.255.255.250",
        1900,
        "239.255.255.250",
        60.0,
        0.02,
    ));
    keys.push(infra(
        &mut rng,
        "ntp_unknown",
        "2.pool.ntp.org",
        123,
        "162.159.200.1",
        64.0,
        0.0,
    ));
    keys.push(infra(
        &mut rng,
        "push_unknown",
        "17-courier.push.apple.com",
        5223,
        "17.57.144.10",
        1800.0,
        0.05,
    ));
    keys
}

/// A host-day as observations (docs/observations.md): one flow line per connection and a signing line per
/// program, for `launchwatch query --replay`.
pub fn observations(keys: &[Key]) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut signed = std::collections::BTreeSet::new();
    for (k_index, k) in keys.iter().enumerate() {
        if signed.insert(k.path.clone()) {
            out.push(Observation::Signing(SigningObs {
                path: k.path.clone(),
                signer_class: k.signer_class.to_string(),
                status: Some(
                    if k.signer_class == "unsigned" {
                        "unsigned"
                    } else {
                        "valid"
                    }
                    .to_string(),
                ),
                team_id: None,
                identifier: None,
                notarized: None,
            }));
        }
        for (i, (c, d)) in k.conns.iter().zip(&k.durations).enumerate() {
            out.push(Observation::Flow(FlowObs {
                start: c.start,
                end: Some(c.start + d),
                pid: Some(1000 + k_index as i64),
                process_start: None,
                path: k.path.clone(),
                launchd_label: k.launchd_label.clone(),
                protocol: "tcp".into(),
                local_address: Some("192.0.2.10".into()),
                local_port: Some(40000 + (i % 20000) as u16),
                remote_address: k.addresses[i % k.addresses.len()].clone(),
                remote_port: k.port,
                remote_name: Some(k.remote_name.clone()),
                bytes_sent: Some(c.bytes_out as i64),
                bytes_received: Some(c.bytes_in as i64),
                state: Some("CLOSED".into()),
                last_seen: None,
                prev_seen: None,
                prev_bytes_sent: None,
                prev_bytes_received: None,
                snapshots: k.snapshots.get(i).filter(|s| !s.is_empty()).cloned(),
                label_source: None,
                source: None,
                acting_pid: None,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_seed_and_different_across_seeds() {
        assert_eq!(host_day(7, 0), host_day(7, 0));
        assert_ne!(host_day(7, 0)[0].conns, host_day(8, 0)[0].conns);
        let keys = host_day(3, 1);
        // One beacon from each stream: classic, launchd jobs, fast session mode, in-connection.
        assert_eq!(keys.iter().filter(|k| k.malicious).count(), 4);
        assert!(keys.iter().all(|k| k.conns.len() == k.durations.len()));
        let obs = observations(&keys);
        assert!(obs.iter().any(|o| matches!(o, Observation::Signing(_))));
        // Round trip through the exchange format.
        for o in obs.iter().take(50) {
            let line = o.to_json_line();
            assert!(
                matches!(
                    crate::observation::parse_line(&line),
                    Ok(crate::observation::Parsed::Observation(_))
                ),
                "{line}"
            );
        }
    }
}
