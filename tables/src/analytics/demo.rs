//! The demo host (`launchwatch simulate --host DIR`): one day of a Mac on which each of the
//! five pack detections has exactly one positive, next to benign lookalikes of every one of
//! them. It writes a filesystem root (launchd plists, the executables the crypto-import check
//! reads) and the observations a recording of that host would hold, so `hunt` / `query
//! --replay … --root …` run the shipped pack against it unchanged.
//!
//! Deterministic (fixed clock and seed): the README's example output and the end-to-end test
//! that every analytic fires on its positive and on none of the lookalikes both depend on it.
//! The beacon-evaluation generator (`simulate --seed N`) is separate and unchanged.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::observation::{FlowObs, Observation, PayloadObs, ProcessObs, SigningObs};

use super::simulate::Rng;

/// "Now" on the demo host: 2025-11-30 23:50 UTC (ten minutes before the hour turns, so the
/// current hour holds the heavy upload).
pub const NOW: f64 = 1_764_546_600.0;
const DAY: f64 = 86_400.0;

/// A committed test fixture that imports symmetric-crypto APIs (CommonCrypto's CCCrypt), and
/// one that imports none: real Mach-O bytes for `launchwatch_crypto_imports` to parse.
pub(crate) const CRYPTO_MACHO: &[u8] =
    include_bytes!("../../../tests/fixtures/macho/crypto_x86_64");
pub(crate) const PLAIN_MACHO: &[u8] = include_bytes!("../../../tests/fixtures/macho/plain_arm64");

/// What the demo contains, for the CLI's summary and for tests: (analytic, what, path).
pub struct Actor {
    pub analytic: &'static str,
    pub malicious: bool,
    pub what: &'static str,
    pub path: &'static str,
}

pub const BEACON: &str = "/Users/alice/Library/Application Support/.syncd/syncd";
pub const FALLBACK: &str = "/Library/Application Support/.dsync/dsyncd";
pub const MINER: &str = "/Users/Shared/.cache/kcached";
pub const CRYPTO: &str = "/Users/alice/Library/Application Support/.vault/vaultd";
pub const UPLOADER: &str = "/Users/alice/Library/Caches/.u/archiver";

pub const APPLE_TIMER: &str = "/usr/libexec/softwareupdate_check";
pub const APPLE_NTP: &str = "/usr/libexec/timed";
pub const UPDATER: &str = "/Library/Application Support/Acme/AcmeUpdater";
pub const CHAT: &str = "/Applications/Chatter.app/Contents/MacOS/Chatter";
pub const MEET: &str = "/Applications/Meet.app/Contents/MacOS/Meet";
pub const INDEXER: &str =
    "/System/Library/PrivateFrameworks/PhotoAnalysis.framework/Versions/A/Support/photoanalysisd";
pub const BACKUP: &str = "/System/Library/CoreServices/backupd.bundle/Contents/Resources/backupd";
pub const STREAMER: &str = "/Applications/Streamer.app/Contents/MacOS/Streamer";

pub const ACTORS: &[Actor] = &[
    Actor { analytic: "AN1120", malicious: true, what: "unsigned user LaunchAgent beaconing every ~2 min to a destination first seen today", path: BEACON },
    Actor { analytic: "AN1378", malicious: true, what: "ad-hoc signed daemon whose 5-minute beacon goes silent, then turns to a new destination and port", path: FALLBACK },
    Actor { analytic: "AN0743", malicious: true, what: "unsigned background daemon at ~95 % CPU for 30 min speaking Stratum to a pool port", path: MINER },
    Actor { analytic: "AN0402", malicious: true, what: "unsigned program importing CommonCrypto that opens with random, non-TLS bytes", path: CRYPTO },
    Actor { analytic: "AN0082", malicious: true, what: "unsigned program uploading 900 MB over 1.5 h to a new destination", path: UPLOADER },
    Actor { analytic: "AN1120", malicious: false, what: "Apple-signed hourly timer (StartInterval 3600) to apple.com", path: APPLE_TIMER },
    Actor { analytic: "AN1120", malicious: false, what: "Apple-signed NTP every 1024 s to pool.ntp.org (a 'pool' name, low CPU)", path: APPLE_NTP },
    Actor { analytic: "AN1120", malicious: false, what: "Developer ID updater on its hourly launchd timer to a destination known for 60 days; imports crypto but speaks TLS", path: UPDATER },
    Actor { analytic: "AN1378", malicious: false, what: "Developer ID chat client failing over to a backup server it already used today", path: CHAT },
    Actor { analytic: "AN0402", malicious: false, what: "Developer ID call client sending random-looking media bytes without importing symmetric crypto", path: MEET },
    Actor { analytic: "AN0743", malicious: false, what: "Apple background job at ~90 % CPU for 30 min over TLS", path: INDEXER },
    Actor { analytic: "AN0082", malicious: false, what: "Apple backup uploading 2 GB", path: BACKUP },
    Actor { analytic: "AN0082", malicious: false, what: "Developer ID video client holding a 3-hour download", path: STREAMER },
];

/// Where the demo went.
pub struct Written {
    pub root: PathBuf,
    pub observations: PathBuf,
    pub lines: usize,
}

/// Writes `dir/root/…` and `dir/observations.jsonl`. `dir` may exist; files in it are replaced.
pub fn write_host(dir: &Path) -> Result<Written, String> {
    let root = dir.join("root");
    write_root(&root, &files())?;
    let obs = observations();
    let mut text = String::new();
    for o in &obs {
        text.push_str(&o.to_json_line());
        text.push('\n');
    }
    let file = dir.join("observations.jsonl");
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Written {
        root,
        observations: file,
        lines: obs.len(),
    })
}

/// Writes `files` (absolute paths on the simulated Mac) under `root`: plists readable by all,
/// programs executable.
pub(crate) fn write_root<P: AsRef<str>>(root: &Path, files: &[(P, Vec<u8>)]) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for (path, bytes) in files {
        let path = path.as_ref();
        let full = root.join(path.trim_start_matches('/'));
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&full, bytes).map_err(|e| io(&full, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if path.ends_with(".plist") {
                0o644
            } else {
                0o755
            };
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io(&full, e))?;
        }
    }
    Ok(())
}

pub(crate) fn plist(label: &str, program: &str, extra: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         \t<key>Label</key>\n\t<string>{label}</string>\n\
         \t<key>ProgramArguments</key>\n\t<array>\n\t\t<string>{program}</string>\n\t</array>\n\
         {extra}</dict>\n</plist>\n"
    )
    .into_bytes()
}

pub(crate) const KEEP_ALIVE: &str =
    "\t<key>RunAtLoad</key>\n\t<true/>\n\t<key>KeepAlive</key>\n\t<true/>\n";
pub(crate) const HOURLY: &str = "\t<key>StartInterval</key>\n\t<integer>3600</integer>\n";

/// The demo's filesystem: plists for every launchd job and an executable for each program.
pub(crate) fn files() -> Vec<(&'static str, Vec<u8>)> {
    let background =
        format!("{KEEP_ALIVE}\t<key>ProcessType</key>\n\t<string>Background</string>\n");
    vec![
        (
            "/Users/alice/Library/LaunchAgents/com.syncd.agent.plist",
            plist("com.syncd.agent", BEACON, KEEP_ALIVE),
        ),
        (
            "/Library/LaunchDaemons/com.dsync.daemon.plist",
            plist("com.dsync.daemon", FALLBACK, KEEP_ALIVE),
        ),
        (
            "/Library/LaunchDaemons/com.kcache.daemon.plist",
            plist("com.kcache.daemon", MINER, &background),
        ),
        (
            "/System/Library/LaunchDaemons/com.apple.softwareupdate.check.plist",
            plist("com.apple.softwareupdate.check", APPLE_TIMER, HOURLY),
        ),
        (
            "/System/Library/LaunchDaemons/com.apple.timed.plist",
            plist("com.apple.timed", APPLE_NTP, KEEP_ALIVE),
        ),
        (
            "/Library/LaunchAgents/com.acme.updater.plist",
            plist("com.acme.updater", UPDATER, HOURLY),
        ),
        (
            "/System/Library/LaunchAgents/com.apple.photoanalysisd.plist",
            plist("com.apple.photoanalysisd", INDEXER, &background),
        ),
        (BEACON, PLAIN_MACHO.to_vec()),
        (FALLBACK, PLAIN_MACHO.to_vec()),
        (MINER, PLAIN_MACHO.to_vec()),
        (CRYPTO, CRYPTO_MACHO.to_vec()),
        (UPLOADER, PLAIN_MACHO.to_vec()),
        (UPDATER, CRYPTO_MACHO.to_vec()),
        (MEET, PLAIN_MACHO.to_vec()),
    ]
}

/// The demo's observation builder, shared with the pack evaluation's scenarios
/// (`pack_eval`): flows, beacons, CPU and payloads on a Mac whose clock stops at `now`.
pub(crate) struct Out {
    pub(crate) obs: Vec<Observation>,
    pub(crate) rng: Rng,
    pub(crate) now: f64,
}

impl Out {
    #[allow(clippy::too_many_arguments)] // one flow, every field named at the call sites' helpers
    pub(crate) fn flow(
        &mut self,
        path: &str,
        label: Option<&str>,
        protocol: &str,
        (address, port, name): (&str, u16, &str),
        start: f64,
        seconds: f64,
        sent: i64,
        received: i64,
    ) {
        let end = start + seconds;
        self.obs.push(Observation::Flow(FlowObs {
            start,
            end: (end < self.now).then_some(end),
            pid: None,
            process_start: None,
            path: path.into(),
            launchd_label: label.map(str::to_string),
            protocol: protocol.into(),
            local_address: None,
            local_port: None,
            remote_address: address.into(),
            remote_port: port,
            remote_name: Some(name.into()),
            bytes_sent: Some(sent),
            bytes_received: Some(received),
            state: Some(
                if end < self.now {
                    "CLOSED"
                } else {
                    "ESTABLISHED"
                }
                .into(),
            )
            .filter(|_| protocol == "tcp"),
            last_seen: Some(end.min(self.now)),
            prev_seen: None,
            prev_bytes_sent: None,
            prev_bytes_received: None,
            snapshots: None,
            label_source: None,
            source: None,
            acting_pid: None,
        }));
    }

    /// A check-in every `period` seconds (one-sided jitter `jitter`) from `from` to `to`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn beacon(
        &mut self,
        path: &str,
        label: Option<&str>,
        dest: (&str, u16, &str),
        period: f64,
        jitter: f64,
        from: f64,
        to: f64,
    ) -> f64 {
        let mut t = from;
        let mut last = from;
        while t < to {
            let sent = (420.0 * self.rng.range(0.97, 1.03)) as i64;
            let received = (610.0 * self.rng.range(0.97, 1.03)) as i64;
            let seconds = self.rng.range(0.3, 1.2);
            self.flow(path, label, "tcp", dest, t, seconds, sent, received);
            last = t;
            t += period * (1.0 - jitter * self.rng.f());
        }
        last
    }

    pub(crate) fn signing(
        &mut self,
        path: &str,
        class: &str,
        team: Option<&str>,
        identifier: Option<&str>,
    ) {
        self.obs.push(Observation::Signing(SigningObs {
            path: path.into(),
            signer_class: class.into(),
            status: Some(
                match class {
                    "unsigned" => "unsigned",
                    "adhoc" => "adhoc",
                    _ => "valid",
                }
                .into(),
            ),
            team_id: team.map(str::to_string),
            identifier: identifier.map(str::to_string),
            notarized: (class == "developer_id").then_some(1),
        }));
    }

    /// CPU samples every 10 s over the last 30 minutes at `cores` of one core.
    pub(crate) fn cpu(&mut self, pid: i64, start_time: f64, path: &str, label: &str, cores: f64) {
        let name = path.rsplit('/').next().unwrap_or(path);
        let mut cpu = 3600.0 * cores;
        let mut t = self.now - 1800.0;
        while t <= self.now {
            self.obs.push(Observation::Process(ProcessObs {
                ts: t,
                pid,
                start_time,
                ppid: Some(1),
                uid: Some(0),
                path: Some(path.into()),
                name: Some(name.into()),
                cpu_time: cpu,
                launchd_label: Some(label.into()),
                pgid: None,
                label_source: None,
                responsible_pid: None,
            }));
            cpu += 10.0 * cores * self.rng.range(0.97, 1.03);
            t += 10.0;
        }
    }

    pub(crate) fn payload(
        &mut self,
        pid: Option<i64>,
        path: &str,
        dest: (&str, u16),
        ts: f64,
        bytes: &[u8],
    ) {
        self.obs.push(Observation::Payload(PayloadObs {
            ts,
            pid,
            path: Some(path.into()),
            protocol: "tcp".into(),
            remote_address: dest.0.into(),
            remote_port: dest.1,
            direction: Some("out".into()),
            first_bytes: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ..Default::default()
        }));
    }

    pub(crate) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut b: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
        // Never a TLS record type or a QUIC long header by chance.
        b[0] = 0x8a;
        b
    }
}

/// Every observation of the demo day, in time order within each program.
pub fn observations() -> Vec<Observation> {
    day(20_251_130)
}

/// The demo day drawn from `seed`: the same actors, schedules and sizes, other jitter. The pack
/// evaluation replays it under several seeds as the background Mac of its scenarios.
pub(crate) fn day(seed: u64) -> Vec<Observation> {
    let mut o = Out {
        obs: Vec::new(),
        rng: Rng::new(seed),
        now: NOW,
    };
    let day0 = NOW - DAY;

    // Who signed what (replayed signing facts win over the files' own bytes).
    o.signing(BEACON, "unsigned", None, None);
    o.signing(FALLBACK, "adhoc", None, None);
    o.signing(MINER, "unsigned", None, None);
    o.signing(CRYPTO, "unsigned", None, None);
    o.signing(UPLOADER, "unsigned", None, None);
    o.signing(
        APPLE_TIMER,
        "apple",
        None,
        Some("com.apple.softwareupdate_check"),
    );
    o.signing(APPLE_NTP, "apple", None, Some("com.apple.timed"));
    o.signing(
        UPDATER,
        "developer_id",
        Some("ACME123456"),
        Some("com.acme.updater"),
    );
    o.signing(
        CHAT,
        "developer_id",
        Some("CHAT123456"),
        Some("com.chatter.mac"),
    );
    o.signing(
        MEET,
        "developer_id",
        Some("MEET123456"),
        Some("com.meet.mac"),
    );
    o.signing(INDEXER, "apple", None, Some("com.apple.photoanalysisd"));
    o.signing(BACKUP, "apple", None, Some("com.apple.backupd"));
    o.signing(
        STREAMER,
        "developer_id",
        Some("STRM123456"),
        Some("com.streamer.mac"),
    );

    // AN1120 positive: ~2-minute check-ins all day to a destination first seen today.
    let c2 = ("203.0.113.66", 443, "cdn.syncd-update.test");
    o.beacon(
        BEACON,
        Some("com.syncd.agent"),
        c2,
        120.0,
        0.1,
        day0 + 1800.0,
        NOW,
    );

    // AN1378 positive: a 5-minute beacon that stops six hours ago; 17 minutes later the same
    // program starts checking in elsewhere, on another port.
    let primary = ("203.0.113.77", 443, "relay.dsync-primary.test");
    let backup = ("203.0.113.78", 8443, "relay.dsync-backup.test");
    let label = Some("com.dsync.daemon");
    let last = o.beacon(
        FALLBACK,
        label,
        primary,
        300.0,
        0.05,
        day0 + 600.0,
        NOW - 6.0 * 3600.0,
    );
    o.beacon(FALLBACK, label, backup, 300.0, 0.05, last + 1000.0, NOW);

    // AN0743 positive: a background daemon at ~95 % of a core, on a pool port, speaking Stratum.
    let (pid, started) = (4242, NOW - 7200.0);
    o.cpu(pid, started, MINER, "com.kcache.daemon", 0.95);
    let pool = ("203.0.113.99", 3333, "xmr.kcache-pool.test");
    o.flow(
        MINER,
        Some("com.kcache.daemon"),
        "tcp",
        pool,
        NOW - 2400.0,
        2400.0,
        48_000,
        91_000,
    );
    if let Some(Observation::Flow(f)) = o.obs.last_mut() {
        f.pid = Some(pid);
        f.process_start = Some(started);
    }
    let login = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A","pass":"x","agent":"kcached/6.21"}}"#;
    o.payload(Some(pid), MINER, (pool.0, pool.1), NOW - 2400.0, login);

    // AN0402 positive: imports CommonCrypto, opens with random bytes on a non-TLS port.
    let vault = ("203.0.113.120", 8000, "sync.vault-relay.test");
    o.flow(CRYPTO, None, "tcp", vault, NOW - 3000.0, 40.0, 9_000, 2_000);
    let random = o.random_bytes(256);
    o.payload(None, CRYPTO, (vault.0, vault.1), NOW - 3000.0, &random);

    // AN0082 positive: 900 MB up over 1.5 hours, ending in the current hour.
    let drop = ("203.0.113.150", 443, "put.files-drop.test");
    o.flow(
        UPLOADER,
        None,
        "tcp",
        drop,
        NOW - 5400.0,
        5280.0,
        900_000_000,
        2_000_000,
    );

    // Lookalikes. Apple's hourly timer and NTP (a "pool" name) all day.
    let swscan = ("198.51.100.20", 443, "swscan.apple.com");
    o.beacon(
        APPLE_TIMER,
        Some("com.apple.softwareupdate.check"),
        swscan,
        3600.0,
        0.01,
        day0 + 300.0,
        NOW,
    );
    let mut t = day0 + 100.0;
    while t < NOW {
        o.flow(
            APPLE_NTP,
            Some("com.apple.timed"),
            "udp",
            ("198.51.100.123", 123, "0.pool.ntp.org"),
            t,
            0.05,
            76,
            76,
        );
        t += 1024.0;
    }
    o.cpu(88, day0 - DAY, APPLE_NTP, "com.apple.timed", 0.001);

    // A Developer ID updater on its hourly timer to a destination it has used for 60 days,
    // importing crypto and speaking TLS.
    let acme = ("198.51.100.30", 443, "updates.acme.example");
    for days_ago in [60.0, 45.0, 30.0, 15.0] {
        o.flow(
            UPDATER,
            Some("com.acme.updater"),
            "tcp",
            acme,
            NOW - days_ago * DAY,
            2.0,
            900,
            4_000,
        );
    }
    o.beacon(
        UPDATER,
        Some("com.acme.updater"),
        acme,
        3600.0,
        0.01,
        day0 + 900.0,
        NOW,
    );
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xfb, 0x01, 0x00, 0x00, 0xf7, 0x03, 0x03,
    ];
    hello.extend(o.random_bytes(245));
    o.payload(None, UPDATER, (acme.0, acme.1), day0 + 900.0, &hello);

    // A chat client's minute heartbeat fails over to a backup it already used this morning.
    let chat = ("198.51.100.40", 443, "edge.chatter.example");
    let chat_backup = ("198.51.100.41", 443, "edge.chatter-backup.example");
    for d in [
        (NOW - 50.0 * DAY, chat),
        (NOW - 50.0 * DAY + 60.0, chat_backup),
    ] {
        o.flow(CHAT, None, "tcp", d.1, d.0, 60.0, 2_000, 2_000);
    }
    o.beacon(
        CHAT,
        None,
        chat_backup,
        60.0,
        0.05,
        day0 + 3.0 * 3600.0,
        day0 + 4.0 * 3600.0,
    );
    o.beacon(
        CHAT,
        None,
        chat,
        60.0,
        0.05,
        day0 + 4.0 * 3600.0,
        NOW - 5.0 * 3600.0,
    );
    o.beacon(
        CHAT,
        None,
        chat_backup,
        60.0,
        0.05,
        NOW - 5.0 * 3600.0 + 90.0,
        NOW,
    );

    // A call client: random-looking media, no symmetric-crypto imports.
    let meet = ("198.51.100.50", 3478, "turn.meet.example");
    o.flow(
        MEET,
        None,
        "tcp",
        meet,
        NOW - 4000.0,
        1800.0,
        30_000_000,
        32_000_000,
    );
    let media = o.random_bytes(256);
    o.payload(None, MEET, (meet.0, meet.1), NOW - 4000.0, &media);

    // Apple's photo analysis: a background job at ~90 % CPU for 30 minutes, over TLS.
    let (ipid, istart) = (501, NOW - 4000.0);
    o.cpu(ipid, istart, INDEXER, "com.apple.photoanalysisd", 0.9);
    let icloud = ("198.51.100.60", 443, "gateway.icloud.com");
    o.flow(
        INDEXER,
        Some("com.apple.photoanalysisd"),
        "tcp",
        icloud,
        NOW - 1500.0,
        1500.0,
        3_000_000,
        400_000,
    );
    if let Some(Observation::Flow(f)) = o.obs.last_mut() {
        f.pid = Some(ipid);
        f.process_start = Some(istart);
    }
    o.payload(
        Some(ipid),
        INDEXER,
        (icloud.0, icloud.1),
        NOW - 1500.0,
        &hello,
    );

    // Apple's backup pushes 2 GB; a video client holds a 3-hour download.
    o.flow(
        BACKUP,
        None,
        "tcp",
        ("198.51.100.70", 443, "backup.icloud.com"),
        NOW - 3300.0,
        3000.0,
        2_000_000_000,
        20_000_000,
    );
    o.flow(
        STREAMER,
        None,
        "tcp",
        ("198.51.100.80", 443, "video.streamer.example"),
        NOW - 4.0 * 3600.0,
        3.0 * 3600.0,
        5_000_000,
        3_000_000_000,
    );
    o.obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_deterministic_and_every_actor_has_traffic_or_a_job() {
        assert_eq!(observations(), observations());
        let newest = observations()
            .iter()
            .filter_map(Observation::time)
            .fold(0.0, f64::max);
        assert_eq!(newest, NOW, "replay's now is the demo's now");
        for a in ACTORS {
            assert!(
                observations().iter().any(|o| match o {
                    Observation::Flow(f) => f.path == a.path,
                    _ => false,
                }),
                "{} has flows",
                a.path
            );
        }
    }
}
