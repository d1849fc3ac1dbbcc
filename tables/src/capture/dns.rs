//! DNS responses (RFC 1035 §4): the question and the A, AAAA and CNAME answers, and which
//! addresses the asked name resolved to through its CNAME chain.
//!
//! Names use compression pointers (§4.1.4). A hostile message can point a name at itself or
//! build a cycle, so a pointer must go strictly backwards from where the name started and at
//! most [`MAX_JUMPS`] are followed; a name longer than 255 bytes is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const MAX_JUMPS: usize = 32;
const MAX_NAME: usize = 255;
/// More records than this are not read: no real answer needs them.
const MAX_RECORDS: usize = 256;
/// CNAME hops followed from the question.
const MAX_CHAIN: usize = 16;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    Address(IpAddr),
    Cname(String),
    Other(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: RData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub response: bool,
    pub rcode: u8,
    /// The first question's name (lower case), if any.
    pub question: Option<String>,
    /// Answer-section records.
    pub answers: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    Short,
    BadLabel,
    PointerLoop,
    NameTooLong,
}

fn be16(b: &[u8], o: usize) -> Result<u16, DnsError> {
    Ok(u16::from_be_bytes([
        *b.get(o).ok_or(DnsError::Short)?,
        *b.get(o + 1).ok_or(DnsError::Short)?,
    ]))
}

/// Reads the name at `start`; returns it (lower case, dotted) and the offset after it in the
/// record (after the first pointer, if it jumped).
fn name(msg: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut out = String::new();
    let mut pos = start;
    let mut end = None;
    let mut jumps = 0;
    // Pointers must go strictly backwards from the lowest offset reached so far.
    let mut floor = start;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Short)?;
        match len >> 6 {
            0 => {
                if len == 0 {
                    return Ok((out, end.unwrap_or(pos + 1)));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + len as usize)
                    .ok_or(DnsError::Short)?;
                if out.len() + label.len() + 1 > MAX_NAME {
                    return Err(DnsError::NameTooLong);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                for &c in label {
                    // Bytes outside printable ASCII are escaped, so a name is always text.
                    if c.is_ascii_graphic() && c != b'\\' && c != b'.' {
                        out.push(c.to_ascii_lowercase() as char);
                    } else {
                        out.push_str(&format!("\\{c:03}"));
                    }
                }
                pos += 1 + len as usize;
            }
            3 => {
                let target = usize::from(be16(msg, pos)? & 0x3fff);
                jumps += 1;
                if target >= floor || jumps > MAX_JUMPS {
                    return Err(DnsError::PointerLoop);
                }
                end.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Parses a DNS message (UDP payload, or one TCP message without its length prefix).
pub fn parse(msg: &[u8]) -> Result<Message, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Short);
    }
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    let qd = usize::from(be16(msg, 4)?);
    let an = usize::from(be16(msg, 6)?);
    let mut pos = 12;
    let mut question = None;
    for i in 0..qd.min(MAX_RECORDS) {
        let (n, next) = name(msg, pos)?;
        if i == 0 {
            question = Some(n);
        }
        pos = next + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an.min(MAX_RECORDS) {
        let (owner, next) = name(msg, pos)?;
        let rtype = be16(msg, next)?;
        let ttl = u32::from(be16(msg, next + 4)?) << 16 | u32::from(be16(msg, next + 6)?);
        let rdlen = usize::from(be16(msg, next + 8)?);
        let rdata_at = next + 10;
        let rdata = msg.get(rdata_at..rdata_at + rdlen).ok_or(DnsError::Short)?;
        let data = match (rtype, rdlen) {
            (TYPE_A, 4) => RData::Address(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (TYPE_AAAA, 16) => RData::Address(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(rdata).expect("16"),
            ))),
            (TYPE_CNAME, _) => RData::Cname(name(msg, rdata_at)?.0),
            (t, _) => RData::Other(t),
        };
        answers.push(Record {
            name: owner,
            ttl,
            data,
        });
        pos = rdata_at + rdlen;
    }
    Ok(Message {
        id,
        response: flags & 0x8000 != 0,
        rcode: (flags & 0x000f) as u8,
        question,
        answers,
    })
}

/// One name → address fact a response establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub name: String,
    pub address: IpAddr,
    pub ttl: u32,
}

/// What the name asked for resolved to: every A/AAAA reached from the question through the
/// CNAME chain (at most [`MAX_CHAIN`] hops, cycles ignored). A response without a question
/// (mDNS announcements) maps each address record's own name.
pub fn resolutions(msg: &Message) -> Vec<Resolution> {
    if !msg.response || msg.rcode != 0 {
        return Vec::new();
    }
    let Some(q) = &msg.question else {
        return msg
            .answers
            .iter()
            .filter_map(|r| match r.data {
                RData::Address(a) => Some(Resolution {
                    name: r.name.clone(),
                    address: a,
                    ttl: r.ttl,
                }),
                _ => None,
            })
            .collect();
    };
    let mut chain = vec![q.clone()];
    for _ in 0..MAX_CHAIN {
        let last = chain.last().expect("non-empty");
        let next = msg.answers.iter().find_map(|r| match &r.data {
            RData::Cname(t) if &r.name == last => Some(t.clone()),
            _ => None,
        });
        match next {
            Some(t) if !chain.contains(&t) => chain.push(t),
            _ => break,
        }
    }
    let mut out: Vec<Resolution> = Vec::new();
    for r in &msg.answers {
        if let RData::Address(a) = r.data {
            if chain.contains(&r.name) && !out.iter().any(|o| o.address == a) {
                out.push(Resolution {
                    name: q.clone(),
                    address: a,
                    ttl: r.ttl,
                });
            }
        }
    }
    out
}

/// Builds a response (for tests, benchmarks and fuzz seeds): `answers` are (owner, data).
pub fn build_response(id: u16, question: &str, answers: &[(&str, RData)]) -> Vec<u8> {
    fn put_name(b: &mut Vec<u8>, n: &str) {
        for label in n.split('.').filter(|l| !l.is_empty()) {
            b.push(label.len() as u8);
            b.extend_from_slice(label.as_bytes());
        }
        b.push(0);
    }
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0x81, 0x80, 0, 1]);
    b.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    put_name(&mut b, question);
    b.extend_from_slice(&[0, 1, 0, 1]);
    for (owner, data) in answers {
        // The question's name by pointer (offset 12), as servers write it.
        if *owner == question {
            b.extend_from_slice(&[0xc0, 12]);
        } else {
            put_name(&mut b, owner);
        }
        let (t, rdata) = match data {
            RData::Address(IpAddr::V4(a)) => (TYPE_A, a.octets().to_vec()),
            RData::Address(IpAddr::V6(a)) => (TYPE_AAAA, a.octets().to_vec()),
            RData::Cname(n) => {
                let mut r = Vec::new();
                put_name(&mut r, n);
                (TYPE_CNAME, r)
            }
            RData::Other(t) => (*t, vec![0; 4]),
        };
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        b.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        b.extend_from_slice(&rdata);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cname_chain_resolves_the_asked_name() {
        let msg = build_response(
            7,
            "www.Example.com",
            &[
                ("www.Example.com", RData::Cname("edge.cdn.net".into())),
                ("edge.cdn.net", RData::Cname("e1.cdn.net".into())),
                ("e1.cdn.net", RData::Address(ip("203.0.113.7"))),
                ("e1.cdn.net", RData::Address(ip("2001:db8::7"))),
                ("unrelated.org", RData::Address(ip("198.51.100.1"))),
            ],
        );
        let m = parse(&msg).unwrap();
        assert_eq!(
            (m.id, m.response, m.question.as_deref()),
            (7, true, Some("www.example.com"))
        );
        let r = resolutions(&m);
        assert_eq!(
            r.iter()
                .map(|r| (r.name.as_str(), r.address))
                .collect::<Vec<_>>(),
            [
                ("www.example.com", ip("203.0.113.7")),
                ("www.example.com", ip("2001:db8::7"))
            ]
        );
        assert_eq!(r[0].ttl, 60);
    }

    #[test]
    fn a_real_response_with_compression_pointers() {
        // dig-style answer for a.example: question at 12, answer owner is a pointer to it, and a
        // CNAME whose target ends in a pointer into the question.
        let mut b = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        b.extend_from_slice(&[1, b'a', 7]);
        b.extend_from_slice(b"example");
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        // a.example CNAME b.example  (b + pointer to "example" at 14)
        b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0, 0, 4, 1, b'b', 0xc0, 14]);
        // b.example A 192.0.2.1 (owner: pointer to the CNAME target at 41)
        let target_at = b.len() - 4;
        b.extend_from_slice(&[
            0xc0,
            target_at as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            30,
            0,
            4,
            192,
            0,
            2,
            1,
        ]);
        let m = parse(&b).unwrap();
        assert_eq!(m.answers[0].data, RData::Cname("b.example".into()));
        assert_eq!(m.answers[1].name, "b.example");
        let r = resolutions(&m);
        assert_eq!(
            r,
            [Resolution {
                name: "a.example".into(),
                address: ip("192.0.2.1"),
                ttl: 30
            }]
        );
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        let mut b = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 12]); // points at itself
        assert_eq!(parse(&b), Err(DnsError::PointerLoop));
        let mut b = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 14, 0xc0, 12]); // forward, then back: a cycle
        assert_eq!(parse(&b), Err(DnsError::PointerLoop));
        let mut b = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0x80, 1]);
        assert_eq!(parse(&b), Err(DnsError::BadLabel));
        let mut long = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'x'; 63]);
        }
        long.push(0);
        assert_eq!(parse(&long), Err(DnsError::NameTooLong));
        assert_eq!(parse(&[0; 5]), Err(DnsError::Short));
        let ok = build_response(1, "a.b", &[("a.b", RData::Address(ip("192.0.2.9")))]);
        for cut in 12..ok.len() {
            assert!(parse(&ok[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn queries_errors_and_cname_cycles_give_no_resolutions() {
        let mut q = build_response(1, "a.b", &[("a.b", RData::Address(ip("192.0.2.9")))]);
        q[2] &= 0x7f; // a query
        assert!(resolutions(&parse(&q).unwrap()).is_empty());
        let mut nx = build_response(1, "a.b", &[]);
        nx[3] |= 3;
        assert!(resolutions(&parse(&nx).unwrap()).is_empty());
        let cyc = build_response(
            1,
            "a.b",
            &[
                ("a.b", RData::Cname("c.d".into())),
                ("c.d", RData::Cname("a.b".into())),
                ("c.d", RData::Address(ip("192.0.2.3"))),
            ],
        );
        assert_eq!(
            resolutions(&parse(&cyc).unwrap())[0].address,
            ip("192.0.2.3")
        );
    }
}
