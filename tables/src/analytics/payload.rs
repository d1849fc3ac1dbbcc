//! First-payload classification (docs/design.md, "First payloads"): known protocols first, then
//! plaintext, then a randomness test that is fair to short payloads — entropy is compared
//! with what *random bytes of the same length* would score, not with 8 bits.
//!
//! Classes (docs/tables.md, launchwatch_payloads): `tls`, `ssh`, `http`, `quic`, `dns`, `stratum`, `random`, `printable`,
//! `other`, `undetermined` (fewer than 32 bytes).

/// Shannon entropy, bits per byte.
pub fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in data {
        counts[*b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| *c as f64 / n)
        .map(|p| -p * p.log2())
        .sum()
}

/// Expected plug-in entropy of `n` uniformly random bytes: the exact expectation of the
/// occupancy computed by summing over the binomial count of each byte value.
pub fn expected_random_entropy(n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    let p: f64 = 1.0 / 256.0;
    // E[H] = −256 · Σ_k P(count = k) · (k/n) · log2(k/n), count ~ Binomial(n, 1/256).
    let mut sum = 0.0;
    let mut log_pmf = nf * (1.0 - p).ln(); // k = 0
    for k in 1..=n {
        log_pmf += ((nf - k as f64 + 1.0) / k as f64).ln() + (p / (1.0 - p)).ln();
        let pmf = log_pmf.exp();
        if pmf < 1e-300 && k as f64 > nf * p * 4.0 + 50.0 {
            break;
        }
        let q = k as f64 / nf;
        sum += pmf * q * q.log2();
    }
    -256.0 * sum
}

fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// The class and whether it is a confident call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Tls,
    Ssh,
    Http,
    Quic,
    Dns,
    Stratum,
    Random,
    Printable,
    Other,
    Undetermined,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Tls => "tls",
            Class::Ssh => "ssh",
            Class::Http => "http",
            Class::Quic => "quic",
            Class::Dns => "dns",
            Class::Stratum => "stratum",
            Class::Random => "random",
            Class::Printable => "printable",
            Class::Other => "other",
            Class::Undetermined => "undetermined",
        }
    }
}

/// Classifies a flow's first client payload. `udp` and `port` help the datagram protocols.
pub fn classify(data: &[u8], udp: bool, port: u16) -> Class {
    let d = data;
    // TLS: handshake or application-data record, version 3.x (the GFW's coarse exemption).
    if d.len() >= 3 && (0x16..=0x17).contains(&d[0]) && d[1] == 0x03 && d[2] <= 0x09 {
        return Class::Tls;
    }
    if d.len() >= 4 && d[..4].eq_ignore_ascii_case(b"SSH-") {
        return Class::Ssh;
    }
    for m in [
        &b"GET "[..],
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"CONNECT ",
        b"OPTIONS ",
        b"TRACE ",
        b"PATCH ",
        b"PRI * HTTP/2.0",
    ] {
        if d.starts_with(m) {
            return Class::Http;
        }
    }
    // QUIC long header (form and fixed bits set) with version 1, 2 or a draft; on UDP any long
    // header with the fixed bit is treated as QUIC rather than random.
    if udp && d.len() >= 5 && d[0] & 0xc0 == 0xc0 {
        return Class::Quic;
    }
    // DNS on its ports: a header with one question and a sane opcode.
    if (port == 53 || port == 5353) && d.len() >= 12 {
        let qd = u16::from_be_bytes([d[4], d[5]]);
        if (1..=4).contains(&qd) && (d[2] >> 3) & 0x0f <= 5 {
            return Class::Dns;
        }
    }
    // Stratum / JSON-RPC mining: a JSON object with a mining method.
    let head = String::from_utf8_lossy(&d[..d.len().min(512)]);
    if head.trim_start().starts_with('{')
        && [
            "mining.subscribe",
            "mining.authorize",
            "\"login\"",
            "eth_submitLogin",
            "mining.hello",
        ]
        .iter()
        .any(|m| head.contains(m))
    {
        return Class::Stratum;
    }
    if d.len() < 32 {
        return Class::Undetermined;
    }
    let n = d.len() as f64;
    let printable_count = d.iter().filter(|b| printable(**b)).count();
    let longest_run = d
        .iter()
        .fold((0usize, 0usize), |(best, run), b| {
            if printable(*b) {
                (best.max(run + 1), run + 1)
            } else {
                (best, 0)
            }
        })
        .0;
    // Plaintext: the GFW's Ex2–Ex4.
    if d[..6].iter().all(|b| printable(*b)) || printable_count as f64 / n > 0.5 || longest_run > 20
    {
        return Class::Printable;
    }
    let popcount = d.iter().map(|b| b.count_ones()).sum::<u32>() as f64 / n;
    if popcount > 3.4 && popcount < 4.6 && entropy(d) >= expected_random_entropy(d.len()) - 0.35 {
        return Class::Random;
    }
    Class::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut r = crate::analytics::simulate::Rng::new(seed);
        (0..n).map(|_| r.next_u64() as u8).collect()
    }

    #[test]
    fn expected_entropy_matches_known_values() {
        // Random n-byte payloads (simulated): 32 → 4.88, 256 → 7.18, 1024 → 7.81.
        for (n, want) in [(32, 4.88), (64, 5.77), (256, 7.18), (1024, 7.81)] {
            let e = expected_random_entropy(n);
            assert!((e - want).abs() < 0.02, "{n}: {e}");
        }
    }

    #[test]
    fn real_protocol_openings() {
        // A TLS 1.3 ClientHello's first bytes (record header, handshake type 1, legacy version).
        let hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        assert_eq!(classify(&hello, false, 443), Class::Tls);
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.6\r\n", false, 22), Class::Ssh);
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, 80),
            Class::Http
        );
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false, 80),
            Class::Http
        );
        let mut quic = vec![0xc3, 0, 0, 0, 1];
        quic.extend(random_bytes(1195, 1));
        assert_eq!(classify(&quic, true, 443), Class::Quic);
        let dns = [
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 7, b'e', b'x',
        ];
        assert_eq!(classify(&dns, true, 53), Class::Dns);
        let stratum = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"wallet","pass":"x","agent":"XMRig/6.21.0"}}"#;
        assert_eq!(classify(stratum, false, 3333), Class::Stratum);
    }

    #[test]
    fn random_payloads_of_every_size_and_what_is_not_random() {
        for n in [32, 64, 256, 1024] {
            let hits = (0..200)
                .filter(|s| classify(&random_bytes(n, *s), false, 8443) == Class::Random)
                .count();
            assert!(
                hits >= 180,
                "{n} bytes: {hits}/200 random payloads called random"
            );
        }
        assert_eq!(
            classify(&random_bytes(31, 9), false, 8443),
            Class::Undetermined
        );
        // base64 of random bytes is printable, not random.
        let b64: Vec<u8> = random_bytes(192, 3)
            .iter()
            .map(|b| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(*b % 64) as usize]
            })
            .collect();
        assert_eq!(classify(&b64, false, 8443), Class::Printable);
        // Mostly zeros (a binary protocol header) is neither random nor text.
        let mut sparse = vec![0u8; 200];
        sparse[0] = 0x80;
        sparse[7] = 0x01;
        assert_eq!(classify(&sparse, false, 9000), Class::Other);
    }
}
