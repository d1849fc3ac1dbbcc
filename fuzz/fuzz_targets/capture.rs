#![no_main]
//! Captured frames of every link type through the capture engine: link/IP/TCP/UDP framing,
//! pktap headers (both layouts), the flow state machine, the classifier on both directions,
//! TLS ClientHello, HTTP Host, QUIC Initial and DNS answers.
use libfuzzer_sys::fuzz_target;
use launchwatch_tables::capture::frame::LinkType;
use launchwatch_tables::capture::pktap::PktapLayout;
use launchwatch_tables::capture::{tls, http, quic, CaptureConfig, Engine, NoOwners};

fuzz_target!(|data: &[u8]| {
    let _ = tls::client_hello_from_records(data);
    let _ = tls::client_hello(data);
    let _ = http::request_host(data);
    let _ = quic::open_initial(data);
    // The first byte picks the link type; the rest is a stream of length-prefixed frames fed to
    // one engine, so flows span frames.
    let Some((&kind, mut rest)) = data.split_first() else { return };
    let link = match kind % 7 {
        0 => LinkType::Ethernet,
        1 => LinkType::Null,
        2 => LinkType::Raw,
        3 => LinkType::LinuxSll,
        4 => LinkType::LinuxSll2,
        5 => LinkType::Pktap(PktapLayout::To151),
        _ => LinkType::Pktap(PktapLayout::From152),
    };
    let config = CaptureConfig { max_flows: 8, ..CaptureConfig::default() };
    let mut e = Engine::new(&config, link, NoOwners, Default::default());
    let mut ts = 1.0;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let frame = &rest[2..rest.len().min(2 + len)];
        e.frame(ts, frame);
        rest = &rest[(2 + len).min(rest.len())..];
        ts += 0.5;
    }
    e.tick(ts + 3600.0);
    e.tick(ts + 7200.0);
    let _ = e.drain();
});
