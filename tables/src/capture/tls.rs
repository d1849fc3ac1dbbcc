//! The names a TLS ClientHello claims (RFC 8446 §4.1.2): `server_name` (RFC 6066 §3) and whether
//! the hello carries `encrypted_client_hello` (extension 0xfe0d, RFC 9849). With ECH the
//! visible SNI is the client-facing server's public name, not the real destination; GREASE ECH
//! (sent when the client has no ECH config) looks the same on the wire by design, so `ech`
//! means "an ECH extension was sent", never "the true name is X".

/// What a ClientHello says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub ech: bool,
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// Not a TLS handshake record / not a ClientHello.
    NotClientHello,
    /// The bytes stop before the hello ends (a later segment or snaplen has the rest).
    Incomplete,
    Malformed(&'static str),
}

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
pub const EXT_ECH: u16 = 0xfe0d;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or(HelloError::Incomplete)?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, HelloError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// Reads a ClientHello from the start of a TLS stream (one or more handshake records).
pub fn client_hello_from_records(stream: &[u8]) -> Result<ClientHello, HelloError> {
    // Reassemble handshake bytes across records until the hello's declared length is there.
    let mut hs = Vec::new();
    let mut pos = 0;
    loop {
        if pos == 0 && stream.first().is_some_and(|b| *b != 0x16) {
            return Err(HelloError::NotClientHello);
        }
        let header = stream.get(pos..pos + 5).ok_or(HelloError::Incomplete)?;
        if header[0] != 0x16 || header[1] != 0x03 {
            return Err(if pos == 0 {
                HelloError::NotClientHello
            } else {
                HelloError::Malformed("record after the hello")
            });
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 1 << 14 {
            return Err(HelloError::Malformed("record length"));
        }
        let body = &stream[pos + 5..];
        let avail = body.len().min(len);
        hs.extend_from_slice(&body[..avail]);
        if hs.len() >= 4 {
            let need =
                4 + (usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]));
            if hs.len() >= need {
                return client_hello(&hs[..need]);
            }
        }
        if avail < len {
            return Err(HelloError::Incomplete);
        }
        pos += 5 + len;
    }
}

/// Reads a ClientHello handshake message (type, u24 length, body), as QUIC's CRYPTO frames
/// carry it.
pub fn client_hello(msg: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader { b: msg, pos: 0 };
    if r.u8()? != 1 {
        return Err(HelloError::NotClientHello);
    }
    let len = usize::from(r.u8()?) << 16 | usize::from(r.u16()?);
    let body = r.take(len)?;
    let mut r = Reader { b: body, pos: 0 };
    let version = r.u16()?;
    if version >> 8 != 3 {
        return Err(HelloError::Malformed("legacy_version"));
    }
    r.take(32)?; // random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello::default();
    if r.pos == body.len() {
        return Ok(hello); // no extensions (SSL 3.0-era hello)
    }
    let exts = r
        .vec16()
        .map_err(|_| HelloError::Malformed("extensions length"))?;
    let mut e = Reader { b: exts, pos: 0 };
    while e.pos < exts.len() {
        let t = e
            .u16()
            .map_err(|_| HelloError::Malformed("extension header"))?;
        let data = e
            .vec16()
            .map_err(|_| HelloError::Malformed("extension length"))?;
        match t {
            EXT_SERVER_NAME => {
                let mut s = Reader { b: data, pos: 0 };
                let list = s
                    .vec16()
                    .map_err(|_| HelloError::Malformed("server_name list"))?;
                let mut l = Reader { b: list, pos: 0 };
                while l.pos < list.len() {
                    let kind = l
                        .u8()
                        .map_err(|_| HelloError::Malformed("server_name entry"))?;
                    let name = l
                        .vec16()
                        .map_err(|_| HelloError::Malformed("server_name entry"))?;
                    if kind == 0 && hello.sni.is_none() {
                        hello.sni = Some(host_name(name)?);
                    }
                }
            }
            EXT_ALPN => {
                let mut s = Reader { b: data, pos: 0 };
                let list = s.vec16().map_err(|_| HelloError::Malformed("alpn list"))?;
                let mut l = Reader { b: list, pos: 0 };
                while l.pos < list.len() {
                    let p = l.vec8().map_err(|_| HelloError::Malformed("alpn entry"))?;
                    hello.alpn.push(String::from_utf8_lossy(p).into_owned());
                }
            }
            EXT_ECH => hello.ech = true,
            _ => {}
        }
    }
    Ok(hello)
}

/// A DNS host name as text: printable ASCII only, lower case, at most 255 bytes.
fn host_name(b: &[u8]) -> Result<String, HelloError> {
    if b.is_empty() || b.len() > 255 || !b.iter().all(|c| c.is_ascii_graphic()) {
        return Err(HelloError::Malformed("server_name is not a host name"));
    }
    Ok(String::from_utf8_lossy(b).to_ascii_lowercase())
}

/// Builds a ClientHello handshake message (for tests and fixtures).
pub fn build_client_hello(sni: Option<&str>, ech: bool, alpn: &[&str]) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut ext = |t: u16, data: &[u8]| {
        exts.extend_from_slice(&t.to_be_bytes());
        exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        exts.extend_from_slice(data);
    };
    ext(0x0a0a, &[]); // GREASE
    if let Some(n) = sni {
        let mut d = ((n.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend_from_slice(&(n.len() as u16).to_be_bytes());
        d.extend_from_slice(n.as_bytes());
        ext(EXT_SERVER_NAME, &d);
    }
    if !alpn.is_empty() {
        let mut l = Vec::new();
        for p in alpn {
            l.push(p.len() as u8);
            l.extend_from_slice(p.as_bytes());
        }
        let mut d = (l.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&l);
        ext(EXT_ALPN, &d);
    }
    if ech {
        ext(EXT_ECH, &[0, 0, 1, 0, 1, 7, 0, 0, 0, 0]);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x42; 32]);
    body.push(32);
    body.extend_from_slice(&[0x24; 32]);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    msg
}

/// Wraps a handshake message in one TLS record.
pub fn record(msg: &[u8]) -> Vec<u8> {
    let mut r = vec![0x16, 3, 1];
    r.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    r.extend_from_slice(msg);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_alpn_and_ech_from_a_hello() {
        let h = record(&build_client_hello(
            Some("API.Example.com"),
            false,
            &["h2", "http/1.1"],
        ));
        let got = client_hello_from_records(&h).unwrap();
        assert_eq!(got.sni.as_deref(), Some("api.example.com"));
        assert_eq!(got.alpn, ["h2", "http/1.1"]);
        assert!(!got.ech);
        let e = client_hello_from_records(&record(&build_client_hello(
            Some("public.example"),
            true,
            &[],
        )))
        .unwrap();
        assert!(e.ech, "ECH is reported as such");
        assert_eq!(
            e.sni.as_deref(),
            Some("public.example"),
            "the outer (public) name, not a guess"
        );
    }

    #[test]
    fn a_hello_split_over_two_records_and_a_cut_one() {
        let msg = build_client_hello(Some("split.example"), false, &[]);
        let mut two = Vec::new();
        two.extend(record(&msg[..40]));
        two.extend(record(&msg[40..]));
        assert_eq!(
            client_hello_from_records(&two).unwrap().sni.as_deref(),
            Some("split.example")
        );
        let whole = record(&msg);
        for cut in 0..whole.len() {
            assert_eq!(
                client_hello_from_records(&whole[..cut]),
                Err(HelloError::Incomplete),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn what_is_not_a_hello() {
        assert_eq!(
            client_hello_from_records(b"GET / HTTP/1.1\r\n"),
            Err(HelloError::NotClientHello)
        );
        let mut server_hello = build_client_hello(None, false, &[]);
        server_hello[0] = 2;
        assert_eq!(
            client_hello_from_records(&record(&server_hello)),
            Err(HelloError::NotClientHello)
        );
        let mut bad_name = build_client_hello(Some("a\u{7f}b"), false, &[]);
        assert!(matches!(
            client_hello(&bad_name),
            Err(HelloError::Malformed(_))
        ));
        // An extension length past the block is malformed, not a panic.
        let n = bad_name.len();
        bad_name[n - 1] = 0xff;
        bad_name.truncate(n - 5);
        assert!(client_hello(&bad_name).is_err());
        assert_eq!(
            client_hello_from_records(&[0x16, 3, 1, 0, 0]),
            Err(HelloError::Malformed("record length"))
        );
    }
}
