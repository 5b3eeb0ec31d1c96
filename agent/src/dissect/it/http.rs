//! HTTP/1.x recogniser: a request line or a status line, on any port.
//!
//! Spec: RFC 9112 §3 (request-line = method SP request-target SP HTTP-version CRLF),
//! §3.2 (request-target forms: origin `/…`, absolute `scheme://…`, authority for CONNECT,
//! asterisk for OPTIONS), §2.3 (HTTP-version = "HTTP/" DIGIT "." DIGIT), §2.2 (a bare LF
//! may end a line), §4 (status-line = HTTP-version SP 3DIGIT SP [reason-phrase]); RFC 9110
//! §9.1 (method tokens are case-sensitive) and §9.3 (the standard methods); RFC 5789
//! (PATCH); RFC 9113 §3.4 (the HTTP/2 connection preface `PRI * HTTP/2.0`). The same idea
//! as Zeek's dynamic protocol detection, which keys HTTP on the method or on `HTTP/`.
//!
//! What convinces: a standard method, one space, a request target of visible ASCII of a
//! valid form, then ` HTTP/1.0` or ` HTTP/1.1` and the line end, within [`MAX_LINE`] bytes
//! (a longer target of visible ASCII is taken as a long URL); or `HTTP/1.x`, a status code
//! 100–599 and a space or line end. A strict prefix of either is `Unsure` (on any port
//! from three bytes on, on the registered ports from one).

use super::{Prefix, Stop, line_end, prefix};
use crate::dissect::{Hint, Probe, byte};

/// The request methods of RFC 9110 §9.3 and RFC 5789, followed by their space.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// The request line is looked at up to this many bytes.
pub const MAX_LINE: usize = 4096;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return Probe::No;
    }
    let mut partial = false;
    match prefix(payload, b"HTTP/1.") {
        Prefix::Full => return status_line(payload),
        Prefix::Partial => partial = true,
        Prefix::No => {}
    }
    match prefix(payload, PREFACE) {
        Prefix::Full => return Probe::Match,
        Prefix::Partial => partial = true,
        Prefix::No => {}
    }
    for method in METHODS {
        match prefix(payload, method) {
            Prefix::Full => return request_line(payload, method.len()),
            Prefix::Partial => partial = true,
            Prefix::No => {}
        }
    }
    if partial && (hint.port || payload.len() >= 3) {
        Probe::Unsure
    } else {
        Probe::No
    }
}

/// `HTTP/1.` is already there (RFC 9112 §4).
fn status_line(p: &[u8]) -> Probe {
    // "HTTP/1.1 200 " is 13 bytes; see what is there.
    let want: [fn(u8) -> bool; 6] = [
        |b| b == b'0' || b == b'1',
        |b| b == b' ',
        |b| (b'1'..=b'5').contains(&b),
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| b == b' ' || b == b'\r' || b == b'\n',
    ];
    for (i, ok) in want.iter().enumerate() {
        match p.get(7 + i) {
            Some(&b) if ok(b) => {}
            Some(_) => return Probe::No,
            None => return Probe::Unsure,
        }
    }
    Probe::Match
}

/// The method and its space are there; `at` is where the request target starts.
fn request_line(p: &[u8], at: usize) -> Probe {
    // RFC 9112 §3.2: origin-form, absolute-form, authority-form, asterisk-form.
    let first = byte(p, at);
    let form_ok = first == b'/' || first == b'*' || first == b'[' || first.is_ascii_alphanumeric();
    if p.len() > at && !form_ok {
        return Probe::No;
    }
    let target = p.get(at..).unwrap_or(&[]);
    let Some(space) = target
        .iter()
        .take(MAX_LINE)
        .position(|&b| !b.is_ascii_graphic())
    else {
        return if target.len() >= MAX_LINE {
            Probe::Match
        } else {
            Probe::Unsure
        };
    };
    if space == 0 || byte(target, space) != b' ' {
        return Probe::No;
    }
    let version = at + space + 1;
    let rest = p.get(version..).unwrap_or(&[]);
    for lit in [b"HTTP/1.1".as_slice(), b"HTTP/1.0"] {
        match prefix(rest, lit) {
            Prefix::Full => {
                return match line_end(p, version + lit.len(), 1, |_| false) {
                    Ok(_) => Probe::Match,
                    Err(Stop::Short) => Probe::Unsure,
                    Err(Stop::Bad) => Probe::No,
                };
            }
            Prefix::Partial => return Probe::Unsure,
            Prefix::No => {}
        }
    }
    if rest.is_empty() {
        Probe::Unsure
    } else {
        Probe::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: Hint = Hint::client(true, true);
    const OFF: Hint = Hint::client(false, true);

    #[test]
    fn requests_match_on_any_port() {
        for req in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"POST /api/v1/x?y=1 HTTP/1.0\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n",
            b"GET http://example.com/ HTTP/1.1\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(
                probe(req, PORT),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(req)
            );
            assert_eq!(
                probe(req, OFF),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn responses_match() {
        assert_eq!(probe(b"HTTP/1.1 200 OK\r\n", OFF), Probe::Match);
        assert_eq!(probe(b"HTTP/1.0 404 Not Found\r\n", OFF), Probe::Match);
        assert_eq!(probe(b"HTTP/1.1 204\r\n", OFF), Probe::Match);
        assert_eq!(probe(b"HTTP/1.1 999 X\r\n", OFF), Probe::No);
        assert_eq!(probe(b"HTTP/1.1 20", OFF), Probe::Unsure);
    }

    #[test]
    fn prefixes_are_unsure() {
        assert_eq!(probe(b"GE", PORT), Probe::Unsure);
        assert_eq!(probe(b"GE", OFF), Probe::No);
        assert_eq!(probe(b"GET", OFF), Probe::Unsure);
        assert_eq!(probe(b"GET /index.html", OFF), Probe::Unsure);
        assert_eq!(probe(b"GET /index.html HTTP/1", OFF), Probe::Unsure);
        assert_eq!(probe(b"GET /index.html HTTP/1.1", OFF), Probe::Unsure);
        assert_eq!(probe(b"GET /index.html HTTP/1.1\r", OFF), Probe::Unsure);
    }

    #[test]
    fn near_misses_are_no() {
        for p in [
            &b"get / HTTP/1.1\r\n"[..],
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/2.0\r\n",
            b"GET / HTTP/1.1 x\r\n",
            b"GET /a\x01b HTTP/1.1\r\n",
            b"OPTIONS rtsp://cam/ RTSP/1.0\r\n",
            b"INVITE sip:bob@example.com SIP/2.0\r\n",
            b"M-SEARCH * HTTP/1.1\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            let hint = if p.starts_with(b"HTTP") {
                Hint { tcp: false, ..OFF }
            } else {
                OFF
            };
            assert_eq!(probe(p, hint), Probe::No, "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn long_targets() {
        let mut p = b"GET /".to_vec();
        p.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert_eq!(probe(&p, OFF), Probe::Match);
        assert_eq!(probe(&p[..1000], OFF), Probe::Unsure);
    }
}
