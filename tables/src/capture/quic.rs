//! The SNI of a QUIC connection, from the client's Initial packets (RFC 9000 §17.2.2).
//!
//! Initial packets are protected, but with keys every observer can derive (RFC 9001 §5.2): the
//! secret is HKDF-Extract(version salt, Destination Connection ID), the client's key, IV and
//! header-protection key are HKDF-Expand-Label outputs of it, the AEAD is AES-128-GCM and the
//! header protection AES-128-ECB over a 16-byte sample (§5.4). QUIC v1 (RFC 9001) and v2
//! (RFC 9369: other salt, labels and Initial type bits) are read. The ClientHello arrives in
//! CRYPTO frames (RFC 9000 §19.6), possibly out of order and over several Initial packets.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use super::tls::{client_hello, ClientHello, HelloError};

pub const VERSION_1: u32 = 0x0000_0001;
pub const VERSION_2: u32 = 0x6b33_43cf;

/// RFC 9001 §5.2.
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// RFC 9369 §3.3.1.
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// Bytes of CRYPTO data kept per connection: a ClientHello with post-quantum key shares is
/// about 2 KB; more than this is not a hello worth reading.
const MAX_CRYPTO: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicError {
    NotInitial,
    UnknownVersion(u32),
    Short,
    /// Authentication failed: not a client Initial for these keys (or damaged).
    Decrypt,
    BadFrame,
}

/// The client's Initial keys for one Destination Connection ID.
#[derive(Clone)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

fn expand_label(prk: &Hkdf<Sha256>, label: &str, out: &mut [u8]) {
    // HkdfLabel (RFC 8446 §7.1): u16 length, opaque label<7..255> = "tls13 " + label, context<0..255> = "".
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    prk.expand(&info, out)
        .expect("output lengths are far below 255 × 32");
}

/// Derives the client Initial keys (RFC 9001 §5.2; RFC 9369 §3.3 for v2).
pub fn client_initial_keys(version: u32, dcid: &[u8]) -> Result<InitialKeys, QuicError> {
    let (salt, prefix) = match version {
        VERSION_1 => (&SALT_V1, "quic"),
        VERSION_2 => (&SALT_V2, "quicv2"),
        v => return Err(QuicError::UnknownVersion(v)),
    };
    let (_, initial) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, "client in", &mut client);
    let client = Hkdf::<Sha256>::from_prk(&client).expect("32-byte PRK");
    let mut keys = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, &format!("{prefix} key"), &mut keys.key);
    expand_label(&client, &format!("{prefix} iv"), &mut keys.iv);
    expand_label(&client, &format!("{prefix} hp"), &mut keys.hp);
    Ok(keys)
}

/// A QUIC variable-length integer (RFC 9000 §16).
fn varint(b: &[u8], pos: &mut usize) -> Result<u64, QuicError> {
    let first = *b.get(*pos).ok_or(QuicError::Short)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*pos..*pos + len).ok_or(QuicError::Short)?;
    let mut v = u64::from(first & 0x3f);
    for x in &bytes[1..] {
        v = v << 8 | u64::from(*x);
    }
    *pos += len;
    Ok(v)
}

fn is_initial(first: u8, version: u32) -> bool {
    let long_type = (first >> 4) & 0x03;
    first & 0xc0 == 0xc0
        && match version {
            VERSION_1 => long_type == 0,
            VERSION_2 => long_type == 1,
            _ => false,
        }
}

/// A CRYPTO frame's stream offset and data.
pub type CryptoFrame = (u64, Vec<u8>);

/// Decrypts the first client Initial packet of `datagram`: its CRYPTO frames as (offset, data),
/// and the bytes of the datagram the packet used.
pub fn open_initial(datagram: &[u8]) -> Result<(Vec<CryptoFrame>, usize), QuicError> {
    let b = datagram;
    let first = *b.first().ok_or(QuicError::Short)?;
    if b.len() < 7 || first & 0x80 == 0 {
        return Err(QuicError::NotInitial);
    }
    let version = u32::from_be_bytes(b[1..5].try_into().expect("4"));
    if version != VERSION_1 && version != VERSION_2 {
        return Err(QuicError::UnknownVersion(version));
    }
    if !is_initial(first, version) {
        return Err(QuicError::NotInitial);
    }
    let mut pos = 5;
    let dcid_len = usize::from(b[pos]);
    if dcid_len > 20 {
        return Err(QuicError::NotInitial);
    }
    let dcid = b.get(pos + 1..pos + 1 + dcid_len).ok_or(QuicError::Short)?;
    pos += 1 + dcid_len;
    let scid_len = usize::from(*b.get(pos).ok_or(QuicError::Short)?);
    pos += 1 + scid_len;
    let token_len = varint(b, &mut pos)? as usize;
    pos = pos.checked_add(token_len).ok_or(QuicError::Short)?;
    let length = varint(b, &mut pos)? as usize;
    let pn_offset = pos;
    let end = pn_offset
        .checked_add(length)
        .filter(|e| *e <= b.len())
        .ok_or(QuicError::Short)?;
    let sample = b
        .get(pn_offset + 4..pn_offset + 20)
        .ok_or(QuicError::Short)?;
    let keys = client_initial_keys(version, dcid)?;
    // Header protection: AES-ECB of the sample gives the mask.
    let hp = aes::Aes128::new(&keys.hp.into());
    let mut mask = aes::Block::clone_from_slice(sample);
    hp.encrypt_block(&mut mask);
    let first = first ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 0x03) + 1;
    if pn_offset + pn_len > end {
        return Err(QuicError::Short);
    }
    let mut header = b[..pn_offset + pn_len].to_vec();
    header[0] = first;
    let mut pn: u64 = 0;
    for i in 0..pn_len {
        header[pn_offset + i] ^= mask[1 + i];
        pn = pn << 8 | u64::from(header[pn_offset + i]);
    }
    let mut nonce = keys.iv;
    for (i, byte) in pn.to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= byte;
    }
    let aead = Aes128Gcm::new(&keys.key.into());
    let plain = aead
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &b[pn_offset + pn_len..end],
                aad: &header,
            },
        )
        .map_err(|_| QuicError::Decrypt)?;
    Ok((crypto_frames(&plain)?, end))
}

/// The CRYPTO frames of a decrypted Initial payload. Initial packets may carry only PADDING,
/// PING, ACK, CRYPTO and CONNECTION_CLOSE (RFC 9000 §12.4).
fn crypto_frames(p: &[u8]) -> Result<Vec<CryptoFrame>, QuicError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < p.len() {
        let t = varint(p, &mut pos).map_err(|_| QuicError::BadFrame)?;
        match t {
            0x00 | 0x01 => {}
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges (gap, len), [ECN ×3].
                for _ in 0..3 {
                    varint(p, &mut pos)?;
                }
                let ranges = varint(p, &mut pos)?;
                varint(p, &mut pos)?;
                for _ in 0..ranges.min(1024) * 2 {
                    varint(p, &mut pos)?;
                }
                if t == 0x03 {
                    for _ in 0..3 {
                        varint(p, &mut pos)?;
                    }
                }
            }
            0x06 => {
                let offset = varint(p, &mut pos)?;
                let len = varint(p, &mut pos)? as usize;
                let data = p
                    .get(pos..pos.checked_add(len).ok_or(QuicError::BadFrame)?)
                    .ok_or(QuicError::BadFrame)?;
                out.push((offset, data.to_vec()));
                pos += len;
            }
            // CONNECTION_CLOSE ends what the packet says; anything else is not allowed here.
            0x1c => break,
            _ => return Err(QuicError::BadFrame),
        }
    }
    Ok(out)
}

/// The client's CRYPTO stream as it arrives over one or more Initial datagrams.
#[derive(Debug, Default, Clone)]
pub struct InitialCrypto {
    pieces: Vec<CryptoFrame>,
    bytes: usize,
}

impl InitialCrypto {
    /// Adds every client Initial packet of one datagram (coalesced packets after it are skipped).
    pub fn add_datagram(&mut self, datagram: &[u8]) -> Result<(), QuicError> {
        let (frames, _) = open_initial(datagram)?;
        for (offset, data) in frames {
            if self.bytes + data.len() > MAX_CRYPTO || offset > MAX_CRYPTO as u64 {
                break;
            }
            self.bytes += data.len();
            self.pieces.push((offset, data));
        }
        Ok(())
    }

    /// The contiguous stream from offset 0.
    fn stream(&self) -> Vec<u8> {
        let mut pieces: Vec<&CryptoFrame> = self.pieces.iter().collect();
        pieces.sort_by_key(|p| p.0);
        let mut s = Vec::new();
        for (off, data) in pieces {
            let off = *off as usize;
            if off > s.len() {
                break;
            }
            let skip = s.len() - off;
            if skip < data.len() {
                s.extend_from_slice(&data[skip..]);
            }
        }
        s
    }

    /// The ClientHello, once all of it has arrived.
    pub fn client_hello(&self) -> Result<ClientHello, HelloError> {
        client_hello(&self.stream())
    }
}

/// Protects a client Initial (for tests and fixtures): `frames` is the plaintext payload.
pub fn seal_initial(version: u32, dcid: &[u8], pn: u32, frames: &[u8]) -> Vec<u8> {
    let keys = client_initial_keys(version, dcid).expect("known version");
    let long_type = if version == VERSION_2 { 1 } else { 0 };
    let mut h = vec![0xc0 | long_type << 4 | 0x03];
    h.extend_from_slice(&version.to_be_bytes());
    h.push(dcid.len() as u8);
    h.extend_from_slice(dcid);
    h.push(0); // no SCID
    h.push(0); // no token
    let length = 4 + frames.len() + 16;
    h.extend_from_slice(&(0x4000u16 | length as u16).to_be_bytes());
    let pn_offset = h.len();
    h.extend_from_slice(&pn.to_be_bytes());
    let mut nonce = keys.iv;
    for (i, byte) in u64::from(pn).to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= byte;
    }
    let sealed = Aes128Gcm::new(&keys.key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: frames,
                aad: &h,
            },
        )
        .expect("seal");
    let mut packet = h;
    packet.extend_from_slice(&sealed);
    let hp = aes::Aes128::new(&keys.hp.into());
    let mut mask = aes::Block::clone_from_slice(&packet[pn_offset + 4..pn_offset + 20]);
    hp.encrypt_block(&mut mask);
    packet[0] ^= mask[0] & 0x0f;
    for i in 0..4 {
        packet[pn_offset + i] ^= mask[1 + i];
    }
    packet
}

/// A CRYPTO frame.
pub fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend_from_slice(&(0x8000_0000u32 | offset as u32).to_be_bytes());
    f.extend_from_slice(&(0x4000u16 | data.len() as u16).to_be_bytes());
    f.extend_from_slice(data);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::tls::build_client_hello;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn initial_keys_match_rfc_9001_appendix_a() {
        // RFC 9001 A.1: client Initial keys for DCID 0x8394c8f03e515708.
        let k = client_initial_keys(VERSION_1, &hex("8394c8f03e515708")).unwrap();
        assert_eq!(k.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(k.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(k.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        assert_eq!(
            client_initial_keys(0xbabababa, &[1]).err(),
            Some(QuicError::UnknownVersion(0xbabababa))
        );
    }

    #[test]
    fn sni_from_a_hello_split_over_two_initials_out_of_order() {
        let hello = build_client_hello(Some("quic.example"), false, &["h3"]);
        let dcid = hex("0011223344556677");
        for version in [VERSION_1, VERSION_2] {
            let (a, b) = hello.split_at(60);
            // The second half first, padded, as Chrome shuffles CRYPTO frames.
            let mut p1 = crypto_frame(60, b);
            p1.resize(1100, 0);
            let mut p2 = crypto_frame(0, a);
            p2.resize(1100, 0);
            let mut c = InitialCrypto::default();
            c.add_datagram(&seal_initial(version, &dcid, 0, &p1))
                .unwrap();
            assert_eq!(c.client_hello(), Err(HelloError::Incomplete));
            c.add_datagram(&seal_initial(version, &dcid, 1, &p2))
                .unwrap();
            let h = c.client_hello().unwrap();
            assert_eq!(
                (h.sni.as_deref(), h.alpn.as_slice()),
                (Some("quic.example"), &["h3".to_string()][..])
            );
        }
    }

    #[test]
    fn damaged_or_foreign_packets_are_refused() {
        let mut frames = crypto_frame(0, &build_client_hello(Some("x.example"), false, &[]));
        frames.resize(1100, 0);
        let good = seal_initial(VERSION_1, &[9; 8], 2, &frames);
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 30] ^= 1;
        assert_eq!(open_initial(&flipped).err(), Some(QuicError::Decrypt));
        for cut in [0, 3, 10, 30, good.len() - 1] {
            assert!(open_initial(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut short_header = good.clone();
        short_header[0] &= 0x7f;
        assert_eq!(
            open_initial(&short_header).err(),
            Some(QuicError::NotInitial)
        );
        let mut other_version = good;
        other_version[1..5].copy_from_slice(&[0xff, 0, 0, 0x1d]);
        assert!(matches!(
            open_initial(&other_version),
            Err(QuicError::UnknownVersion(_))
        ));
    }
}
