//! What each fuzz target does with its bytes, in one place: the libFuzzer targets in
//! `fuzz_targets/` call these, and the normal test suite (`tables/tests/fuzz_corpus.rs`) replays
//! every committed corpus input through the same functions, so an input that once crashed stays
//! a regression test without cargo-fuzz.
//!
//! A function panics only when the code under test breaks its contract; every `Err` is fine.
#![allow(dead_code)] // each fuzz binary uses one of these

use launchwatch_tables as lw;

/// Mach-O (thin, universal), ELF and code-signature parsing.
pub fn binary(data: &[u8]) {
    if let Ok(b) = lw::binary::inspect(data) {
        let _ = lw::binary::crypto_apis(&b);
        let _ = lw::binary::crypto_libraries(&b);
        let _ = lw::tables::signing::static_facts(&b);
    }
}

/// launchd plists (XML, binary): parse, interpret, compute the schedule; and the overrides db.
pub fn plist_job(data: &[u8]) {
    use lw::launchd::{calendar::Utc, job, parse_plist};
    if let Ok(v) = parse_plist(data) {
        if let Ok(j) = job::interpret(&v) {
            let _ = job::schedule_kind(&j);
            let _ = job::timer(&j, 1_700_000_000, &Utc);
            let _ = job::resolve_program(&j, "/Library/LaunchDaemons/x.plist", &|_| false);
        }
    }
    let _ = lw::launchd::parse_overrides(data);
    // Background Task Management keyed archives.
    let _ = lw::launchd::btm::parse(data);
}

/// Hostile JSON Lines for `--replay`.
pub fn observation_line(data: &[u8]) {
    let mut loaded = lw::observation::Loaded::default();
    let _ = lw::observation::read_jsonl_from(std::path::Path::new("f"), data, &mut loaded);
}

/// osqueryd's constraint context JSON, and its round trip.
pub fn query_context(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ctx) = lw::framework::QueryContext::parse_json(text) {
            let _ = ctx.equals("path");
            let _ = ctx.to_json(&["path", "label"]);
        }
    }
}

/// Kernel buffers: macOS pcblist_n (both record shapes, both counter layouts), Linux sock_diag
/// dumps, and /proc, cgroup and launchctl text.
pub fn kernel_buffers(data: &[u8]) {
    use lw::platform::linux::sock_diag as sockdiag;
    use lw::platform::macos::pcblist;
    use lw::platform::parse;
    let _ = pcblist::parse(data, true, 23);
    let _ = pcblist::parse(data, false, 24);
    let _ = sockdiag::parse_dump(data);
    let _ = sockdiag::parse_exact_replies(data, &mut sockdiag::ExactReplies::default());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse::parse_proc_stat(text);
        let _ = parse::parse_launchctl_list(text);
        let _ = parse::parse_launchctl_print(text);
        let _ = lw::jobs::unit_exec_start(text);
        let _ = parse::systemd_unit_from_cgroup(text);
    }
    tracepoint(data);
    let _ = lw::platform::linux::btf::iter_facts(std::io::Cursor::new(data));
    let _ = lw::platform::linux::fd_iter::parse_records(data, |_, _| {});
}

/// perf ring-buffer records of the three tracepoints, decoded against this kernel family's
/// layouts, and tracefs format text.
fn tracepoint(data: &[u8]) {
    use lw::platform::linux::tracepoint::{
        decode_records, parse_format, sample_formats, Decoded, Layouts,
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_format(text);
    }
    let layouts = Layouts::new(
        &parse_format(sample_formats::SOCK_FORMAT).expect("sample format"),
        &parse_format(sample_formats::EXEC_FORMAT).expect("sample format"),
        &parse_format(sample_formats::FORK_FORMAT).expect("sample format"),
    )
    .expect("sample layouts");
    let mut out = Decoded::default();
    decode_records(data, &layouts, &mut out);
}

/// First-payload classification and the entropy figures beside it.
pub fn payload(data: &[u8]) {
    use lw::analytics::payload::{classify, entropy, expected_random_entropy};
    let _ = classify(data, data.first().is_some_and(|b| b & 1 == 1), 443);
    let e = entropy(data);
    assert!(e.is_finite() && (0.0..=8.0).contains(&e), "entropy {e}");
    let x = expected_random_entropy(data.len().min(4096));
    assert!(x.is_finite(), "expected entropy {x}");
}

/// The TOML config file (/etc/launchwatch.toml is root's, but a Fleet script or MDM profile
/// writes it, and a bad one must be one error, never a crash loop under osqueryd).
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lw::config::Config::parse(text);
    }
}

/// What a fuzz target does with one input.
pub type Harness = fn(&[u8]);

/// Every target by name, as `fuzz/Cargo.toml` names the binaries and `fuzz/corpus/` the
/// directories. The corpus replay test fails for a target missing here.
pub const TARGETS: &[(&str, Harness)] = &[
    ("binary", binary),
    ("plist_job", plist_job),
    ("observation_line", observation_line),
    ("query_context", query_context),
    ("kernel_buffers", kernel_buffers),
    ("payload", payload),
    ("config", config),
    ("dns", dns),
    ("capture", capture),
    ("ntstat", ntstat),
];

/// NetworkStatistics (macOS ntstat) messages: the whole input as one datagram through the
/// splitter and the parser of every mirrored layout, then as u16-LE-length-prefixed datagrams
/// through the client's state machine (subscribed, polling), which must answer and account
/// without panicking whatever the kernel side sends.
pub fn ntstat(data: &[u8]) {
    use lw::platform::macos::ntstat::{Client, TimeRef};
    use lw::platform::macos::ntstat_wire as wire;
    for layout in wire::LAYOUTS {
        let (msgs, _) = wire::split_datagram(data);
        for m in msgs {
            let _ = wire::parse_message(m, layout);
        }
        let time = TimeRef {
            ticks: 24_000_000 * 1000,
            wall: 1_700_000_000.0,
            ticks_per_second: 24_000_000,
        };
        let mut client = Client::new(layout, time, Box::new(|_| None));
        let mut contexts = client.subscribe().len() as u64;
        let _ = client.handle(data);
        let mut rest = data;
        while rest.len() >= 2 {
            let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
            let chunk = &rest[2..rest.len().min(2 + len)];
            for reply in client.handle(chunk) {
                assert!(reply.len() >= 16, "a request shorter than its header");
            }
            rest = &rest[(2 + len).min(rest.len())..];
            if client.poll().is_some() {
                contexts += 1;
            }
        }
        for f in client.open_flows() {
            assert!(f.remote_port != 0 && !f.remote.is_unspecified(), "{f:?}");
        }
        let _ = (client.take_events(), contexts);
    }
}

/// DNS answers: compression pointers (loops, forward jumps), CNAME chains, truncation.
pub fn dns(data: &[u8]) {
    use lw::capture::dns::{parse, resolutions};
    if let Ok(msg) = parse(data) {
        for r in resolutions(&msg) {
            assert!(r.name.len() <= 4 * 255, "escaped names stay bounded");
        }
    }
}

/// Captured frames through the capture engine: the first byte picks the link type, the rest is
/// length-prefixed (u16 LE) frames fed to one engine so flows span frames; plus the name parsers
/// on the raw bytes (ClientHello, HTTP Host, QUIC Initial).
pub fn capture(data: &[u8]) {
    use lw::capture::frame::LinkType;
    use lw::capture::pktap::PktapLayout;
    use lw::capture::{http, quic, tls, CaptureConfig, Engine, NoOwners};
    let _ = tls::client_hello_from_records(data);
    let _ = tls::client_hello(data);
    let _ = http::request_host(data);
    let _ = quic::open_initial(data);
    let Some((&kind, mut rest)) = data.split_first() else {
        return;
    };
    let link = match kind % 7 {
        0 => LinkType::Ethernet,
        1 => LinkType::Null,
        2 => LinkType::Raw,
        3 => LinkType::LinuxSll,
        4 => LinkType::LinuxSll2,
        5 => LinkType::Pktap(PktapLayout::To151),
        _ => LinkType::Pktap(PktapLayout::From152),
    };
    let config = CaptureConfig {
        max_flows: 8,
        ..CaptureConfig::default()
    };
    let mut e = Engine::new(&config, link, NoOwners, Default::default());
    let mut ts = 1.0;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        e.frame(ts, &rest[2..rest.len().min(2 + len)]);
        rest = &rest[(2 + len).min(rest.len())..];
        ts += 0.5;
    }
    e.tick(ts + 3600.0);
    e.tick(ts + 7200.0);
    let _ = e.drain();
}
