//! The pack, measured (docs/pack-eval.md): labelled scenarios for each of the five pack
//! detections — positives and benign lookalikes — drawn under several seeds (periods, jitter,
//! sizes, delays), each seed one replayed Mac. `launchwatch hunt` runs the shipped pack SQL on
//! every seed's Mac (`--replay … --root …`), and the report counts, per analytic, how many
//! positive variants were found and how many findings fell on lookalikes.
//!
//! Every seed's Mac is the demo host's day (`demo`, its own actors counted as cases too) with the
//! scenarios below added on top, ending at the same `demo::NOW`; two of them reach nine days back
//! (a backup client's baseline, and a program whose hourly uploads give egress its z-score),
//! longer than the store's raw retention, as issue 12 asks.
//!
//! Deterministic: the committed report is regenerated and compared by a test, so a change to
//! the pack SQL, an analytic or a scenario shows up as a diff to review. The scenarios draw only
//! uniform numbers (no `ln`, `cos`: libm differs between platforms in the last bit), and the
//! report holds counts, never scores, so it is the same on Linux and macOS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value as Json;

use crate::observation::{Observation, PayloadObs};

use super::demo::{self, Out, CRYPTO_MACHO, KEEP_ALIVE, NOW, PLAIN_MACHO};
use super::simulate::Rng;

const DAY: f64 = 86_400.0;
const HOUR: f64 = 3_600.0;

/// The seeds of the committed report: one replayed Mac each.
pub const SEEDS: std::ops::Range<u64> = 0..10;

/// What a case must do for the report to call it met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A positive: its analytic reports the program (recall ≥ 0.9 over the seeds).
    Alert,
    /// A benign lookalike: no detection reports the program on any seed.
    Quiet,
}

/// One labelled scenario: the program `path` is the subject its analytic must (or must not)
/// report.
pub struct Case {
    pub analytic: &'static str,
    pub name: &'static str,
    pub expect: Expect,
    pub what: &'static str,
    pub path: &'static str,
    /// A reason column (from `hunt`'s triage reasons) that a finding must carry to count.
    pub needs_reason: Option<&'static str>,
}

const FAST_2S: &str = "/Users/alice/Library/Application Support/.fastsync/fastsync";
const FAST_5S: &str = "/Users/alice/Library/Application Support/.relayd/relayd";
const SLOW: &str = "/Users/Shared/.launchd-helper/helperd";
const IN_CONN: &str = "/Library/Application Support/.keepconn/keepconn";
const SSDP: &str = "/Users/alice/Library/Application Support/MediaShare/mediashared";
const WIREGUARD: &str = "/Applications/WireGuard.app/Contents/PlugIns/WireGuardNetworkExtension.appex/Contents/MacOS/WireGuardNetworkExtension";
const CALL: &str = "/Applications/Caller.app/Contents/MacOS/Caller";
const QUIC: &str = "/Applications/Browse.app/Contents/MacOS/Browse";
const LATE_FALLBACK: &str = "/Library/Application Support/.ctrl/ctrld";
const STRATUM_443: &str = "/Library/Application Support/.gpud/gpud";
const POOL_PORT: &str = "/Users/Shared/.xmrig/launcherd";
const NTP_CPU: &str = "/Library/Application Support/RenderFarm/render-agent";
const CUSTOM_CRYPTO: &str = "/Users/alice/Library/Application Support/.keyring/keyringd";
const FIRST_UPLOAD: &str = "/Users/alice/Library/Caches/.tmp/tarpit";
const NINE_DAYS: &str = "/Applications/SyncBox.app/Contents/MacOS/SyncBox";
const BACKUP: &str = "/Applications/SafeBackup.app/Contents/MacOS/SafeBackupAgent";

/// Every labelled case: the demo host's actors first, then the scenarios added on top.
pub fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = demo::ACTORS
        .iter()
        .map(|a| Case {
            analytic: a.analytic,
            name: demo_name(a.path),
            expect: if a.malicious {
                Expect::Alert
            } else {
                Expect::Quiet
            },
            what: a.what,
            path: a.path,
            needs_reason: None,
        })
        .collect();
    let case = |analytic, name, expect, what, path| Case {
        analytic,
        name,
        expect,
        what,
        path,
        needs_reason: None,
    };
    out.extend([
        case("AN1120", "fast_beacon_2s", Expect::Alert,
            "unsigned LaunchAgent in a session mode: a check-in every 2 s (jitter 0–20 %) for an hour to a new destination", FAST_2S),
        case("AN1120", "fast_beacon_5s", Expect::Alert,
            "unsigned LaunchAgent checking in every 5 s (jitter 0–30 %) for an hour", FAST_5S),
        case("AN1120", "beacon_minutes", Expect::Alert,
            "unsigned LaunchDaemon checking in every 1, 5, 15 or 30 min (jitter 0–30 %) all day", SLOW),
        case("AN1120", "in_connection_beacon", Expect::Alert,
            "ad-hoc signed LaunchDaemon holding one TCP connection for six hours, checking in inside it every 30, 60 or 300 s (counter snapshots)", IN_CONN),
        case("AN1120", "ssdp_multicast", Expect::Quiet,
            "unsigned media-sharing LaunchAgent sending SSDP M-SEARCH to 239.255.255.250:1900 every 30–120 s", SSDP),
        case("AN1120", "wireguard", Expect::Quiet,
            "App Store WireGuard tunnel: one UDP flow to :51820 for six hours, 25 s keepalives while idle, random-looking handshake; imports no symmetric-crypto API (own ChaCha20)", WIREGUARD),
        case("AN0402", "dtls_srtp_call", Expect::Quiet,
            "Developer ID call client importing CommonCrypto: 3–8 calls a day, each one UDP flow opening with STUN or a DTLS ClientHello, then SRTP", CALL),
        case("AN0402", "quic", Expect::Quiet,
            "Developer ID browser importing CommonCrypto: QUIC Initial packets to :443 at irregular times", QUIC),
        case("AN1378", "fallback_hours_later", Expect::Alert,
            "ad-hoc signed daemon's 5 or 10 min beacon goes quiet; 45 min–3 h later the same program checks in to a new destination", LATE_FALLBACK),
        case("AN0743", "stratum_on_443", Expect::Alert,
            "unsigned background daemon at 60–99 % CPU for 30 min speaking Stratum to an unnamed address on :443", STRATUM_443),
        case("AN0743", "pool_port_and_name", Expect::Alert,
            "unsigned background daemon at 60–99 % CPU on a pool port to a name that says xmr/pool, no payload captured", POOL_PORT),
        case("AN0743", "cpu_job_syncing_ntp", Expect::Quiet,
            "Developer ID background render job at 70–95 % CPU for 30 min that syncs time with 2.pool.ntp.org (UDP 123)", NTP_CPU),
        case("AN0402", "custom_crypto_channel", Expect::Alert,
            "unsigned program importing CommonCrypto whose connections open with 48–256 random bytes on 443, 8443 or 8000", CUSTOM_CRYPTO),
        case("AN0082", "first_heavy_upload", Expect::Alert,
            "unsigned program's first upload: 3–5 GB in 2.5–3.5 h to a destination it never used (no baseline)", FIRST_UPLOAD),
        Case {
            needs_reason: Some("bytes_sent_per_hour_z"),
            ..case("AN0082", "nine_day_spike", Expect::Alert,
                "Developer ID sync client: hourly 2–20 MB uploads for eight days (longer than the raw retention), then 1.5–3 GB in 40 min between two hourly runs of the pack", NINE_DAYS)
        },
        case("AN0082", "backup_uploader", Expect::Quiet,
            "Developer ID backup agent: a 1.5–3 GB upload every night for nine days to the same server", BACKUP),
    ]);
    out
}

fn demo_name(path: &str) -> &'static str {
    match path {
        demo::BEACON => "demo_beacon_2min",
        demo::FALLBACK => "demo_fallback_17min",
        demo::MINER => "demo_miner_stratum",
        demo::CRYPTO => "demo_custom_crypto",
        demo::UPLOADER => "demo_upload_900mb",
        demo::APPLE_TIMER => "demo_apple_hourly_timer",
        demo::APPLE_NTP => "demo_apple_ntp",
        demo::UPDATER => "demo_devid_updater",
        demo::CHAT => "demo_chat_failover",
        demo::MEET => "demo_call_no_crypto_imports",
        demo::INDEXER => "demo_apple_cpu_job",
        demo::BACKUP => "demo_apple_backup",
        demo::STREAMER => "demo_video_download",
        _ => "demo_other",
    }
}

/// One seed's Mac: the files under `--root` and the replay's JSON lines.
pub struct Host {
    pub files: Vec<(String, Vec<u8>)>,
    pub lines: Vec<String>,
}

fn job(
    files: &mut Vec<(String, Vec<u8>)>,
    plist_path: &str,
    label: &str,
    program: &str,
    extra: &str,
    macho: &[u8],
) {
    files.push((plist_path.into(), demo::plist(label, program, extra)));
    files.push((program.into(), macho.to_vec()));
}

fn background() -> String {
    format!("{KEEP_ALIVE}\t<key>ProcessType</key>\n\t<string>Background</string>\n")
}

fn udp_payload(
    o: &mut Out,
    pid: Option<i64>,
    path: &str,
    dest: (&str, u16),
    ts: f64,
    bytes: &[u8],
) {
    o.obs.push(Observation::Payload(PayloadObs {
        ts,
        pid,
        path: Some(path.into()),
        protocol: "udp".into(),
        remote_address: dest.0.into(),
        remote_port: dest.1,
        direction: Some("out".into()),
        first_bytes: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ..Default::default()
    }));
}

fn set_pid(o: &mut Out, pid: i64, start: f64) {
    if let Some(Observation::Flow(f)) = o.obs.last_mut() {
        f.pid = Some(pid);
        f.process_start = Some(start);
    }
}

/// A flow that keeps its socket open with counter snapshots `(ts, sent, received)` (the replay
/// format's optional `snapshots`): the flow's line gets them added.
struct Snapshotted {
    index: usize,
    snapshots: Vec<(f64, i64, i64)>,
}

/// Builds seed `seed`'s Mac.
pub fn host(seed: u64) -> Host {
    let mut files: Vec<(String, Vec<u8>)> = demo::files()
        .into_iter()
        .map(|(p, b)| (p.to_string(), b))
        .collect();
    let mut o = Out {
        obs: demo::day(20_251_130 + seed),
        rng: Rng::new(0x9ac6_e7a1 ^ seed),
        now: NOW,
    };
    let mut snapshotted = Vec::new();
    let day0 = NOW - DAY;
    let agents = "/Users/alice/Library/LaunchAgents";
    let daemons = "/Library/LaunchDaemons";

    // Fast beacons: an implant's interactive session mode, an hour long, ending within the
    // last six hours.
    for (path, label, period, jitter, octet) in [
        (FAST_2S, "com.fastsync.agent", 2.0, 0.2, 31),
        (FAST_5S, "com.relayd.agent", 5.0, 0.3, 32),
    ] {
        job(
            &mut files,
            &format!("{agents}/{label}.plist"),
            label,
            path,
            KEEP_ALIVE,
            PLAIN_MACHO,
        );
        o.signing(path, "unsigned", None, None);
        let end = NOW - o.rng.range(0.0, 6.0 * HOUR);
        let j = o.rng.range(0.0, jitter);
        let addr = format!("203.0.113.{octet}");
        let name = format!(
            "s{seed}.{}-cdn.test",
            label.split('.').nth(1).unwrap_or("x")
        );
        o.beacon(
            path,
            Some(label),
            (&addr, 443, &name),
            period,
            j,
            end - HOUR,
            end,
        );
    }

    // A beacon on the minutes scale, all day.
    {
        let label = "com.launchd.helper";
        job(
            &mut files,
            &format!("{daemons}/{label}.plist"),
            label,
            SLOW,
            KEEP_ALIVE,
            PLAIN_MACHO,
        );
        o.signing(SLOW, "unsigned", None, None);
        let period = *o.rng.pick(&[60.0, 300.0, 900.0, 1800.0]);
        let j = o.rng.range(0.0, 0.3);
        let start = day0 + o.rng.range(0.0, 2.0 * HOUR);
        o.beacon(
            SLOW,
            Some(label),
            ("203.0.113.33", 8443, "api.helper-metrics.test"),
            period,
            j,
            start,
            NOW,
        );
    }

    // An in-connection beacon: one long TCP connection, a check-in every period inside it.
    {
        let label = "com.keepconn.daemon";
        job(
            &mut files,
            &format!("{daemons}/{label}.plist"),
            label,
            IN_CONN,
            KEEP_ALIVE,
            PLAIN_MACHO,
        );
        o.signing(IN_CONN, "adhoc", None, None);
        let period = *o.rng.pick(&[30.0, 60.0, 300.0]);
        let j = o.rng.range(0.0, 0.2);
        let start = NOW - 6.0 * HOUR;
        let (mut t, mut sent, mut received) = (start, 600i64, 3_000i64);
        let mut snaps = Vec::new();
        while t < NOW {
            // As the live store keeps them: the quiet reading one socket interval before a
            // check-in, then the reading where the counters moved.
            if t - 5.0 > start {
                snaps.push((t - 5.0, sent, received));
            }
            sent += (300.0 * o.rng.range(0.95, 1.05)) as i64;
            received += (180.0 * o.rng.range(0.95, 1.05)) as i64;
            snaps.push((t.min(NOW), sent, received));
            t += period * (1.0 - j * o.rng.f());
        }
        o.flow(
            IN_CONN,
            Some(label),
            "tcp",
            ("203.0.113.34", 443, "ws.keepconn-relay.test"),
            start,
            NOW - start,
            sent,
            received,
        );
        snapshotted.push(Snapshotted {
            index: o.obs.len() - 1,
            snapshots: snaps,
        });
    }

    // SSDP discovery: periodic, but multicast, never external.
    {
        let label = "com.mediashare.agent";
        job(
            &mut files,
            &format!("{agents}/{label}.plist"),
            label,
            SSDP,
            KEEP_ALIVE,
            PLAIN_MACHO,
        );
        o.signing(SSDP, "unsigned", None, None);
        let period = o.rng.range(30.0, 120.0);
        let mut t = day0 + o.rng.range(0.0, 600.0);
        while t < NOW {
            o.flow(
                SSDP,
                Some(label),
                "udp",
                ("239.255.255.250", 1900, "239.255.255.250"),
                t,
                0.05,
                130,
                0,
            );
            t += period * (1.0 - 0.05 * o.rng.f());
        }
    }

    // WireGuard: one UDP flow for six hours; idle stretches keep alive every 25 s exactly.
    {
        o.signing(
            WIREGUARD,
            "app_store",
            Some("WGTEAM1234"),
            Some("com.wireguard.macos.network-extension"),
        );
        files.push((WIREGUARD.into(), PLAIN_MACHO.to_vec()));
        let endpoint = ("198.51.101.20", 51820, "vpn.home-router.example");
        let start = NOW - 6.0 * HOUR;
        let (mut t, mut sent, mut received) = (start, 148i64, 92i64);
        let mut snaps = Vec::new();
        while t < NOW {
            if o.rng.f() < 0.3 {
                // Traffic through the tunnel: irregular, larger.
                sent += o.rng.range(0.0, 400_000.0) as i64;
                received += o.rng.range(0.0, 4_000_000.0) as i64;
                snaps.push((t, sent, received));
                t += o.rng.range(1.0, 80.0);
            } else {
                sent += 32;
                snaps.push((t, sent, received));
                t += 25.0;
            }
        }
        o.flow(
            WIREGUARD,
            None,
            "udp",
            endpoint,
            start,
            NOW - start,
            sent,
            received,
        );
        snapshotted.push(Snapshotted {
            index: o.obs.len() - 1,
            snapshots: snaps,
        });
        // Handshake initiation: type 1, three reserved zero bytes, 144 bytes of keys and MACs.
        let mut init = vec![1u8, 0, 0, 0];
        init.extend(o.random_bytes(144));
        udp_payload(
            &mut o,
            None,
            WIREGUARD,
            (endpoint.0, endpoint.1),
            start,
            &init,
        );
    }

    // Calls: WebRTC opens with a STUN binding request; DTLS-SRTP without ICE with a ClientHello.
    {
        o.signing(
            CALL,
            "developer_id",
            Some("CALL123456"),
            Some("com.caller.mac"),
        );
        files.push((CALL.into(), CRYPTO_MACHO.to_vec()));
        let calls = 3 + o.rng.next_u64() % 6;
        for c in 0..calls {
            let start = day0 + o.rng.range(8.0 * HOUR, 23.0 * HOUR);
            let seconds = o.rng.range(180.0, 2400.0);
            let port = 3478 + (c as u16 % 2) * 6_522;
            let server = ("198.51.101.40", port, "sfu.caller.example");
            let bitrate = o.rng.range(40_000.0, 250_000.0);
            let bytes = (bitrate * seconds) as i64;
            o.flow(CALL, None, "udp", server, start, seconds, bytes, bytes);
            let first = if c % 2 == 0 {
                stun_binding(&mut o)
            } else {
                dtls_client_hello(&mut o)
            };
            udp_payload(&mut o, None, CALL, (server.0, server.1), start, &first);
        }
    }

    // QUIC from a browser that imports CommonCrypto, at irregular times.
    {
        o.signing(
            QUIC,
            "developer_id",
            Some("BRWS123456"),
            Some("com.browse.mac"),
        );
        files.push((QUIC.into(), CRYPTO_MACHO.to_vec()));
        let mut t = day0 + 8.0 * HOUR;
        while t < NOW {
            let server = ("198.51.101.50", 443, "www.video-site.example");
            let seconds = o.rng.range(5.0, 600.0);
            o.flow(QUIC, None, "udp", server, t, seconds, 20_000, 400_000);
            let mut initial = vec![0xc3, 0, 0, 0, 1, 8];
            initial.extend(o.random_bytes(1194));
            initial[6] = 0x5d;
            udp_payload(&mut o, None, QUIC, (server.0, server.1), t, &initial);
            t += o.rng.range(60.0, 3600.0);
        }
    }

    // A fallback an hour or more after the primary went quiet.
    {
        let label = "com.ctrl.daemon";
        job(
            &mut files,
            &format!("{daemons}/{label}.plist"),
            label,
            LATE_FALLBACK,
            KEEP_ALIVE,
            PLAIN_MACHO,
        );
        o.signing(LATE_FALLBACK, "adhoc", None, None);
        let period = *o.rng.pick(&[300.0, 600.0]);
        let j = o.rng.range(0.02, 0.2);
        let silent_at = NOW - o.rng.range(7.0 * HOUR, 10.0 * HOUR);
        let delay = o.rng.range(0.75 * HOUR, 3.0 * HOUR);
        let last = o.beacon(
            LATE_FALLBACK,
            Some(label),
            ("203.0.113.40", 443, "ctl.primary-ops.test"),
            period,
            j,
            day0 + 1200.0,
            silent_at,
        );
        o.beacon(
            LATE_FALLBACK,
            Some(label),
            ("203.0.113.41", 8080, "ctl.backup-ops.test"),
            period,
            j,
            last + delay,
            NOW,
        );
    }

    // Miners: Stratum on 443 to an unnamed address, and a pool port and name without payload.
    let stratum = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A","pass":"x","agent":"gpud/1.0"}}"#;
    for (path, label, pid, dest, payload) in [
        (
            STRATUM_443,
            "com.gpud.daemon",
            6101,
            ("203.0.113.50", 443, "203.0.113.50"),
            true,
        ),
        (
            POOL_PORT,
            "com.xmrig.launcher",
            6102,
            ("203.0.113.51", 14444, "xmr-eu1.poolmine.test"),
            false,
        ),
    ] {
        job(
            &mut files,
            &format!("{daemons}/{label}.plist"),
            label,
            path,
            &background(),
            PLAIN_MACHO,
        );
        o.signing(path, "unsigned", None, None);
        let started = NOW - o.rng.range(2400.0, 7200.0);
        let cores = o.rng.range(0.6, 0.99);
        o.cpu(pid, started, path, label, cores);
        let connected = NOW - 2000.0;
        o.flow(
            path,
            Some(label),
            "tcp",
            dest,
            connected,
            2000.0,
            40_000,
            80_000,
        );
        set_pid(&mut o, pid, started);
        if payload {
            o.payload(Some(pid), path, (dest.0, dest.1), connected, stratum);
        }
    }

    // A render job at high CPU that syncs its clock with an NTP pool: no mining.
    {
        let label = "com.renderfarm.agent";
        job(
            &mut files,
            &format!("{daemons}/{label}.plist"),
            label,
            NTP_CPU,
            &background(),
            PLAIN_MACHO,
        );
        o.signing(
            NTP_CPU,
            "developer_id",
            Some("REND123456"),
            Some("com.renderfarm.agent"),
        );
        let pid = 6103;
        let started = NOW - 5.0 * HOUR;
        let cores = o.rng.range(0.7, 0.95);
        o.cpu(pid, started, NTP_CPU, label, cores);
        let mut t = started + o.rng.range(0.0, 60.0);
        while t < NOW {
            o.flow(
                NTP_CPU,
                Some(label),
                "udp",
                ("198.51.101.123", 123, "2.pool.ntp.org"),
                t,
                0.05,
                48,
                48,
            );
            set_pid(&mut o, pid, started);
            t += 1024.0 * o.rng.range(0.98, 1.0);
        }
        // The open socket the query joins on, as a live sample would see it.
        o.flow(
            NTP_CPU,
            Some(label),
            "udp",
            ("198.51.101.123", 123, "2.pool.ntp.org"),
            NOW - 30.0,
            60.0,
            48,
            48,
        );
        set_pid(&mut o, pid, started);
    }

    // A custom crypto channel: random first bytes from a program importing CommonCrypto.
    {
        o.signing(CUSTOM_CRYPTO, "unsigned", None, None);
        files.push((CUSTOM_CRYPTO.into(), CRYPTO_MACHO.to_vec()));
        let port = *o.rng.pick(&[443u16, 8443, 8000]);
        let n = *o.rng.pick(&[48usize, 64, 128, 256]);
        let dest = ("203.0.113.60", port, "203.0.113.60");
        let at = NOW - o.rng.range(600.0, 12.0 * HOUR);
        o.flow(CUSTOM_CRYPTO, None, "tcp", dest, at, 30.0, 4_000, 1_000);
        let bytes = o.random_bytes(n);
        o.payload(None, CUSTOM_CRYPTO, (dest.0, dest.1), at, &bytes);
    }

    // An unsigned program's first heavy upload to a new destination: no baseline to compare.
    {
        o.signing(FIRST_UPLOAD, "unsigned", None, None);
        files.push((FIRST_UPLOAD.into(), PLAIN_MACHO.to_vec()));
        let gb = o.rng.range(3.0, 5.0);
        let seconds = o.rng.range(2.5 * HOUR, 3.5 * HOUR);
        let start = NOW - seconds - o.rng.range(0.0, 2.0 * HOUR);
        o.flow(
            FIRST_UPLOAD,
            None,
            "tcp",
            ("203.0.113.70", 443, "upload.drop-box.test"),
            start,
            seconds,
            (gb * 1e9) as i64,
            3_000_000,
        );
    }

    // Nine days: hourly small uploads (the baseline), then a spike in the last hours.
    {
        o.signing(
            NINE_DAYS,
            "developer_id",
            Some("SYNC123456"),
            Some("com.syncbox.mac"),
        );
        files.push((NINE_DAYS.into(), PLAIN_MACHO.to_vec()));
        let dest = ("198.51.101.70", 443, "api.syncbox.example");
        let mut t = NOW - 9.0 * DAY;
        // Between two hourly runs of the pack: mostly in the hour before now's.
        let spike_at = NOW - o.rng.range(0.9 * HOUR, 1.8 * HOUR);
        while t < spike_at - HOUR {
            let mb = o.rng.range(2.0, 20.0);
            let seconds = o.rng.range(20.0, 120.0);
            o.flow(
                NINE_DAYS,
                None,
                "tcp",
                dest,
                t,
                seconds,
                (mb * 1e6) as i64,
                200_000,
            );
            t += HOUR * o.rng.range(0.9, 1.1);
        }
        let gb = o.rng.range(1.5, 3.0);
        o.flow(
            NINE_DAYS,
            None,
            "tcp",
            dest,
            spike_at,
            2_400.0,
            (gb * 1e9) as i64,
            1_000_000,
        );
    }

    // A backup agent's nightly heavy upload, every night for nine days.
    {
        let label = "com.safebackup.agent";
        job(
            &mut files,
            &format!("{agents}/{label}.plist"),
            label,
            BACKUP,
            KEEP_ALIVE,
            PLAIN_MACHO,
        );
        o.signing(
            BACKUP,
            "developer_id",
            Some("SAFE123456"),
            Some("com.safebackup.agent"),
        );
        let dest = ("198.51.101.80", 443, "ingest.safebackup.example");
        for night in 0..9 {
            // 02:00 UTC ± 30 min on each of the last nine nights.
            let midnight = (NOW / DAY).floor() * DAY - night as f64 * DAY;
            let start = midnight + 2.0 * HOUR + o.rng.range(-1800.0, 1800.0);
            let seconds = o.rng.range(HOUR, 2.0 * HOUR);
            let gb = o.rng.range(1.5, 3.0);
            o.flow(
                BACKUP,
                Some(label),
                "tcp",
                dest,
                start,
                seconds,
                (gb * 1e9) as i64,
                5_000_000,
            );
        }
    }

    let mut lines: Vec<String> = o.obs.iter().map(Observation::to_json_line).collect();
    for s in snapshotted {
        let mut v: Json = serde_json::from_str(&lines[s.index]).expect("a line just written");
        v["snapshots"] = s
            .snapshots
            .iter()
            .map(|(ts, sent, received)| serde_json::json!({"ts": ts, "bytes_sent": sent, "bytes_received": received}))
            .collect();
        lines[s.index] = v.to_string();
    }
    Host { files, lines }
}

/// A STUN binding request as a WebRTC client sends it first: header with the magic cookie, a
/// random transaction ID, USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY, FINGERPRINT.
fn stun_binding(o: &mut Out) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4, 0x42];
    m.extend(o.random_bytes(12));
    m.extend([0x00, 0x06, 0x00, 0x09]);
    m.extend(b"a9Kq:x7Tz\0\0\0");
    m.extend([0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff]);
    m.extend([0x80, 0x2a, 0x00, 0x08]);
    m.extend(o.random_bytes(8));
    m.extend([0x00, 0x08, 0x00, 0x14]);
    m.extend(o.random_bytes(20));
    m.extend([0x80, 0x28, 0x00, 0x04]);
    m.extend(o.random_bytes(4));
    m
}

/// A DTLS 1.2 ClientHello record (content type 22, version DTLS 1.0 on the record, 1.2 inside)
/// offering the SRTP extension.
fn dtls_client_hello(o: &mut Out) -> Vec<u8> {
    let mut m = vec![0x16, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x9c];
    m.extend([0x01, 0, 0, 0x90, 0, 0, 0, 0, 0, 0, 0, 0x90, 0xfe, 0xfd]);
    m.extend(o.random_bytes(32));
    m.extend([0x00, 0x00]);
    m.extend([
        0x00, 0x10, 0xc0, 0x2b, 0xc0, 0x2f, 0xcc, 0xa9, 0xcc, 0xa8, 0xc0, 0x09, 0xc0, 0x13, 0xc0,
        0x0a, 0xc0, 0x14,
    ]);
    m.extend([0x01, 0x00, 0x00, 0x2e]);
    m.extend([0x00, 0x17, 0x00, 0x00, 0xff, 0x01, 0x00, 0x01, 0x00]);
    m.extend([
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18,
    ]);
    m.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    m.extend([
        0x00, 0x0e, 0x00, 0x07, 0x00, 0x04, 0x00, 0x01, 0x00, 0x07, 0x00,
    ]);
    m
}

/// Writes seed `seed`'s Mac into `dir` (`root/…` and `observations.jsonl`).
pub fn write_host(dir: &Path, seed: u64) -> Result<(PathBuf, PathBuf), String> {
    let h = host(seed);
    let root = dir.join("root");
    demo::write_root(&root, &h.files)?;
    let file = dir.join("observations.jsonl");
    let mut text = h.lines.join("\n");
    text.push('\n');
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((root, file))
}

/// What `hunt --json` reported on one seed's Mac: per program path, the analytics that found
/// it and the reasons of each finding; plus findings on programs no case names.
#[derive(Default)]
pub struct SeedResult {
    pub found: BTreeMap<String, BTreeMap<String, Vec<BTreeMap<String, String>>>>,
}

/// Runs `bin hunt --json` on seed `seed`'s Mac written under `work`.
pub fn hunt_seed(bin: &Path, work: &Path, seed: u64) -> Result<SeedResult, String> {
    let dir = work.join(format!("seed-{seed}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (root, obs) = write_host(&dir, seed)?;
    let out = std::process::Command::new(bin)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["hunt", "--json", "--replay"])
        .arg(&obs)
        .arg("--root")
        .arg(&root)
        .env("HOME", &dir)
        .env("XDG_STATE_HOME", &dir)
        .env("TZ", "UTC")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "hunt on seed {seed}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Json = serde_json::from_slice(&out.stdout).map_err(|e| format!("hunt --json: {e}"))?;
    let mut r = SeedResult::default();
    for d in v.as_array().ok_or("hunt --json: not an array")? {
        let mitre = d["mitre"].as_str().unwrap_or_default().to_string();
        for f in d["findings"].as_array().into_iter().flatten() {
            let path = f["finding"]["path"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let reasons = f["reasons"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            r.found
                .entry(path)
                .or_default()
                .entry(mitre.clone())
                .or_default()
                .push(reasons);
        }
    }
    Ok(r)
}

/// Per case, over the seeds: on how many its own analytic found it (with the reason it
/// needs), and which analytics found it at all.
pub struct CaseResult {
    pub hits: usize,
    pub seeds: usize,
    /// analytic → seeds on which it reported the program.
    pub by_analytic: BTreeMap<String, usize>,
}

pub struct Evaluation {
    pub seeds: std::ops::Range<u64>,
    /// Per seed: observation lines and SHA-256 of the replay and the files under `--root`.
    pub inputs: Vec<(u64, usize, String)>,
    pub cases: Vec<(Case, CaseResult)>,
    /// Findings on programs no case names: (analytic, path) → seeds.
    pub unlabelled: BTreeMap<(String, String), usize>,
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seed `seed`'s Mac, fingerprinted: (seed, observation lines, SHA-256 of lines and files).
fn fingerprint(seed: u64) -> (u64, usize, String) {
    let h = host(seed);
    let mut parts: Vec<&[u8]> = h.lines.iter().map(|l| l.as_bytes()).collect();
    for (p, b) in &h.files {
        parts.push(p.as_bytes());
        parts.push(b);
    }
    (seed, h.lines.len(), sha256_hex(&parts))
}

/// Replays every seed in `seeds` through `bin hunt` and tallies the cases.
pub fn evaluate(
    bin: &Path,
    work: &Path,
    seeds: std::ops::Range<u64>,
) -> Result<Evaluation, String> {
    let cases = cases();
    let mut results: Vec<CaseResult> = cases
        .iter()
        .map(|_| CaseResult {
            hits: 0,
            seeds: 0,
            by_analytic: BTreeMap::new(),
        })
        .collect();
    let mut unlabelled = BTreeMap::new();
    let mut inputs = Vec::new();
    for seed in seeds.clone() {
        inputs.push(fingerprint(seed));
        let r = hunt_seed(bin, work, seed)?;
        for (case, res) in cases.iter().zip(results.iter_mut()) {
            res.seeds += 1;
            let Some(found) = r.found.get(case.path) else {
                continue;
            };
            for a in found.keys() {
                *res.by_analytic.entry(a.clone()).or_default() += 1;
            }
            let hit = found.get(case.analytic).is_some_and(|findings| {
                findings.iter().any(|reasons| {
                    case.needs_reason
                        .is_none_or(|c| reasons.get(c).is_some_and(|v| !v.is_empty()))
                })
            });
            if hit {
                res.hits += 1;
            }
        }
        for (path, found) in &r.found {
            if cases.iter().any(|c| c.path == path) {
                continue;
            }
            for a in found.keys() {
                *unlabelled.entry((a.clone(), path.clone())).or_default() += 1;
            }
        }
    }
    Ok(Evaluation {
        seeds,
        inputs,
        cases: cases.into_iter().zip(results).collect(),
        unlabelled,
    })
}

pub const ANALYTICS: [&str; 5] = ["AN1120", "AN1378", "AN0743", "AN0402", "AN0082"];

impl Evaluation {
    /// Recall of `analytic` over its positive cases' variants.
    pub fn recall(&self, analytic: &str) -> (usize, usize) {
        self.cases
            .iter()
            .filter(|(c, _)| c.analytic == analytic && c.expect == Expect::Alert)
            .fold((0, 0), |(h, n), (_, r)| (h + r.hits, n + r.seeds))
    }

    /// Findings of `analytic` on lookalikes (any lookalike, not only its own), as seed-variants.
    pub fn false_alerts(&self, analytic: &str) -> usize {
        self.cases
            .iter()
            .filter(|(c, _)| c.expect == Expect::Quiet)
            .map(|(_, r)| r.by_analytic.get(analytic).copied().unwrap_or(0))
            .sum::<usize>()
            + self
                .unlabelled
                .iter()
                .filter(|((a, _), _)| a == analytic)
                .map(|(_, n)| n)
                .sum::<usize>()
    }

    /// Every case as its expectation asks: positives at recall ≥ 0.9, lookalikes quiet. The
    /// failures, worded.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (c, r) in &self.cases {
            let recall = r.hits as f64 / r.seeds.max(1) as f64;
            match c.expect {
                Expect::Alert if recall < 0.9 => out.push(format!(
                    "{} {}: recall {}/{} below 0.9",
                    c.analytic, c.name, r.hits, r.seeds
                )),
                Expect::Quiet if !r.by_analytic.is_empty() => out.push(format!(
                    "{} {}: lookalike reported by {:?}",
                    c.analytic, c.name, r.by_analytic
                )),
                _ => {}
            }
        }
        for ((a, p), n) in &self.unlabelled {
            out.push(format!("{a}: {p} (no case) reported on {n} seeds"));
        }
        out
    }
}

/// What the cases decide and why, after the tables.
const NOTES: &str = "
## What the lookalikes decide, and why

- **WireGuard** is quiet by design. AN1120 times connection starts, and a tunnel is one UDP flow
  for hours. Its 25 s keepalives are check-ins inside that flow, but only while the tunnel idles;
  traffic through it breaks the rhythm, and the client is App Store signed, so in-connection timing
  should leave it quiet too (re-check when it lands: this report will show it). An unsigned
  `wireguard-go` that a LaunchDaemon keeps idling towards a server never seen before is, by timing,
  an in-connection beacon, and is meant to be reported: it is not a lookalike here. AN0402 keys on
  a program that imports symmetric-crypto APIs *and* opens with random bytes: WireGuard's handshake
  is random-looking (class `random`), but the extension carries its own ChaCha20-Poly1305 and
  imports none. The price is said in the query's doc: an implant with its own cipher is invisible
  to AN0402 as well.
- **Calls (DTLS/SRTP)** open with a STUN binding request (WebRTC) or a DTLS ClientHello; both are
  structured (magic cookie, zero-filled lengths and reserved fields), class `other`, never
  `random`, so the caller's CommonCrypto imports do not matter. A call is one UDP flow, not a
  series of check-ins.
- **QUIC** Initial packets are recognised by their long header (class `quic`), whatever the
  program imports.
- **SSDP** to 239.255.255.250 is `multicast`, never external, so no beacon is scored however
  regular and unsigned it is.
- **A CPU-heavy job syncing time with 2.pool.ntp.org** is not mining: a pool name counts only
  with a mining-pool port, and never an NTP name.
- **Backups with a baseline**: a Developer ID agent's nightly 1.5–3 GB stays within its own
  hourly history (z-score) and goes to a destination it has used all along, so neither the volume
  nor the first-upload rule fires.

Fixed on the way (the analytic, not the scenario): `launchwatch_egress` judged only the current,
partial hour, so a signed program's 1–3 GB burst that filled the hour between two hourly runs of
the pack was never scored; it now takes the heavier of this and the last hour against the older
history (tested apart in `an_upload_between_two_hourly_runs_is_judged_at_the_next_run`).
`nine_day_spike` places its burst between the last two runs before the replay's end: a replay
runs the pack once, and a burst hours older is what the earlier hourly runs would have reported.
";

/// The report in docs/pack-eval.md.
pub fn report(e: &Evaluation) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let n = e.seeds.end - e.seeds.start;
    let _ = writeln!(s, "<!-- Generated by: cargo bench -p launchwatch --bench pack_eval > docs/pack-eval.md (deterministic; a test fails when it drifts). -->");
    let _ = writeln!(s, "# The pack, measured\n");
    let _ = writeln!(s, "Generated by `cargo bench -p launchwatch --bench pack_eval` (scenarios: `tables/src/analytics/pack_eval.rs`).");
    let _ = writeln!(s, "Each of seeds {}..{} is one replayed Mac: the demo host's day (`launchwatch simulate --host`) drawn", e.seeds.start, e.seeds.end);
    let _ = writeln!(s, "with that seed, plus the scenarios below, with launchd plists and programs under `--root`. Two");
    let _ = writeln!(s, "scenarios reach nine days back, beyond the store's 24 h raw retention. `launchwatch hunt --json");
    let _ = writeln!(s, "--replay … --root …` runs the shipped pack SQL verbatim on each Mac; a case counts as found on a");
    let _ = writeln!(s, "seed when its analytic's query reports the case's program (`path`). Seeds vary periods, jitter,");
    let _ = writeln!(
        s,
        "sizes, delays and CPU load, so recall is a fraction of {n} variants per case.\n"
    );
    let _ = writeln!(s, "## Per analytic\n");
    let _ = writeln!(
        s,
        "Recall over the positive variants; false alerts are the analytic's findings"
    );
    let _ = writeln!(s, "on any lookalike, or on a program no case names, summed over the seeds ({n} replayed Macs).\n");
    let _ = writeln!(
        s,
        "| analytic | positive cases | recall | lookalike cases | false alerts |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for a in ANALYTICS {
        let (h, t) = e.recall(a);
        let pos = e
            .cases
            .iter()
            .filter(|(c, _)| c.analytic == a && c.expect == Expect::Alert)
            .count();
        let look = e
            .cases
            .iter()
            .filter(|(c, _)| c.analytic == a && c.expect == Expect::Quiet)
            .count();
        let _ = writeln!(
            s,
            "| {a} | {pos} | {h}/{t} = {:.2} | {look} | {} |",
            h as f64 / t.max(1) as f64,
            e.false_alerts(a)
        );
    }
    let _ = writeln!(s, "\n## Cases\n");
    let _ = writeln!(s, "\"found\" is the seeds on which the case's own analytic reported it; \"reported by\" lists every");
    let _ = writeln!(
        s,
        "analytic that reported the program on some seed (a positive may trip more than one).\n"
    );
    let _ = writeln!(
        s,
        "| analytic | case | expected | scenario | found | reported by | met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for a in ANALYTICS {
        for (c, r) in e.cases.iter().filter(|(c, _)| c.analytic == a) {
            let expected = match c.expect {
                Expect::Alert => "alert",
                Expect::Quiet => "quiet",
            };
            let by = if r.by_analytic.is_empty() {
                "—".to_string()
            } else {
                r.by_analytic
                    .iter()
                    .map(|(a, n)| format!("{a} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let recall = r.hits as f64 / r.seeds.max(1) as f64;
            let met = match c.expect {
                Expect::Alert => {
                    if recall >= 0.9 {
                        "yes"
                    } else {
                        "**no**"
                    }
                }
                Expect::Quiet => {
                    if r.by_analytic.is_empty() {
                        "yes"
                    } else {
                        "**no**"
                    }
                }
            };
            let needs = c
                .needs_reason
                .map(|col| format!(" (with `{col}`)"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | `{}` | {expected} | {}{needs} | {}/{} | {by} | {met} |",
                c.analytic, c.name, c.what, r.hits, r.seeds
            );
        }
    }
    s.push_str(NOTES);
    if !e.unlabelled.is_empty() {
        let _ = writeln!(s, "\n## Findings on programs no case names\n");
        for ((a, p), n) in &e.unlabelled {
            let _ = writeln!(s, "- {a}: `{p}` on {n} seeds");
        }
    }
    let _ = writeln!(s, "\n## Inputs\n");
    let _ = writeln!(
        s,
        "What this report was made from, so a change to either shows here as a diff: the shipped"
    );
    let _ = writeln!(
        s,
        "detections' SQL and each seed's Mac (SHA-256, first 64 bits).\n"
    );
    let _ = writeln!(s, "| pack query | SQL |");
    let _ = writeln!(s, "|---|---|");
    for q in crate::pack::bundled()
        .into_iter()
        .filter(|q| q.mitre != "none")
    {
        let _ = writeln!(
            s,
            "| `{}` | `{}` |",
            q.name,
            sha256_hex(&[q.sql.as_bytes()])
        );
    }
    let _ = writeln!(s, "\n| seed | observations | replay and root |");
    let _ = writeln!(s, "|---|---|---|");
    for (seed, lines, hash) in &e.inputs {
        let _ = writeln!(s, "| {seed} | {lines} | `{hash}` |");
    }
    let failures = e.failures();
    let _ = writeln!(s, "\n## Verdict\n");
    if failures.is_empty() {
        let _ = writeln!(s, "Every positive at recall ≥ 0.9, every lookalike quiet.");
    } else {
        for f in failures {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_traffic_and_the_hosts_are_deterministic_and_end_at_the_demo_now() {
        let a = host(3);
        assert_eq!(a.lines, host(3).lines);
        assert_ne!(a.lines, host(4).lines, "seeds vary the scenarios");
        let text = a.lines.join("\n");
        for c in cases() {
            assert!(
                text.contains(&serde_json::to_string(c.path).unwrap()),
                "{} has observations",
                c.name
            );
        }
        let newest = a
            .lines
            .iter()
            .filter_map(|l| match crate::observation::parse_line(l) {
                Ok(crate::observation::Parsed::Observation(o)) => o.time(),
                other => panic!("{other:?}"),
            })
            .fold(0.0, f64::max);
        assert_eq!(newest, NOW);
        // The in-connection scenario writes counter snapshots on its flow.
        assert!(a
            .lines
            .iter()
            .any(|l| l.contains(IN_CONN) && l.contains("\"snapshots\":[{")));
    }
}
