//! The `Host` an HTTP/1.x request names (RFC 9112 §3.2), from the first bytes of a request.

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// True when the bytes start with a request method.
pub fn is_request(b: &[u8]) -> bool {
    METHODS.iter().any(|m| b.starts_with(m))
}

/// The Host header's value (lower case, as sent, port included), or for CONNECT without one the
/// request target. `None` when the bytes are not a request or the header is not in them.
pub fn request_host(b: &[u8]) -> Option<String> {
    let method = METHODS.iter().find(|m| b.starts_with(m))?;
    let line_end = find(b, b"\r\n")?;
    let mut pos = line_end + 2;
    while pos < b.len() {
        let end = find(&b[pos..], b"\r\n").map(|e| pos + e)?;
        let line = &b[pos..end];
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|c| *c == b':') {
            if line[..colon].eq_ignore_ascii_case(b"host") {
                return host_value(&line[colon + 1..]);
            }
        }
        pos = end + 2;
    }
    if *method == b"CONNECT " {
        let target = &b[method.len()..line_end];
        let target = &target[..target.iter().position(|c| *c == b' ')?];
        return host_value(target);
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn host_value(v: &[u8]) -> Option<String> {
    let v = v.trim_ascii();
    (!v.is_empty() && v.len() <= 261 && v.iter().all(|c| c.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(v).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_in_any_case_and_position() {
        assert_eq!(
            request_host(
                b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST:  Api.Example.com:8080 \r\n\r\n"
            )
            .as_deref(),
            Some("api.example.com:8080")
        );
        assert_eq!(
            request_host(b"CONNECT tunnel.example:443 HTTP/1.1\r\n\r\n").as_deref(),
            Some("tunnel.example:443")
        );
    }

    #[test]
    fn no_host_no_request_or_a_cut_header() {
        assert_eq!(request_host(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(request_host(b"SSH-2.0-x\r\n"), None);
        assert_eq!(
            request_host(b"GET / HTTP/1.1\r\nHost: a.exam"),
            None,
            "cut before the line ends"
        );
        assert_eq!(
            request_host(b"GET / HTTP/1.1\r\nHost: \x01bad\r\n\r\n"),
            None
        );
        assert_eq!(request_host(b""), None);
    }
}
