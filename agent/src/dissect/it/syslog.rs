//! Syslog recogniser, UDP only: the `<PRI>` header of RFC 3164 and RFC 5424.
//!
//! Spec: RFC 5424 §6.2.1 (PRI = `<` 1–3 digits `>`, value = facility × 8 + severity ≤ 191,
//! no leading zeros), §6.2.2 (VERSION `1` then SP), §6.2.3 (TIMESTAMP or the NILVALUE
//! `-`); RFC 3164 §4.1.1 (PRI) and §4.1.2 (TIMESTAMP `Mmm dd hh:mm:ss`, the day padded
//! with a space); RFC 5426 §3.1 (one message per UDP datagram, port 514).
//!
//! What convinces: a valid PRI, then on port 514 printable text; elsewhere the RFC 5424
//! `1 ` and a timestamp or `-`, or an RFC 3164 timestamp.

use super::printable;
use crate::dissect::{Hint, Probe, byte};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if hint.tcp || byte(payload, 0) != b'<' {
        return Probe::No;
    }
    let Some(after) = pri(payload) else {
        return Probe::No;
    };
    let rest = payload.get(after..).unwrap_or(&[]);
    let ok = if hint.port {
        !rest.is_empty()
            && rest
                .iter()
                .take(16)
                .all(|&b| printable(b) || b == b'\t' || b >= 0x80)
    } else {
        rfc5424(rest) || rfc3164(rest)
    };
    if ok { Probe::Match } else { Probe::No }
}

/// `<PRI>` (RFC 5424 §6.2.1): the offset after `>`, if valid.
fn pri(p: &[u8]) -> Option<usize> {
    let digits = p
        .iter()
        .skip(1)
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || byte(p, 1 + digits) != b'>' {
        return None;
    }
    if digits > 1 && byte(p, 1) == b'0' {
        return None;
    }
    let value = p
        .iter()
        .skip(1)
        .take(digits)
        .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
    (value <= 191).then_some(2 + digits)
}

/// `1 ` then a full-date (`YYYY-`) or the NILVALUE (RFC 5424 §6.2.2–6.2.3).
fn rfc5424(r: &[u8]) -> bool {
    if !r.starts_with(b"1 ") {
        return false;
    }
    let ts = r.get(2..).unwrap_or(&[]);
    ts.starts_with(b"- ")
        || (ts.len() >= 5 && ts.iter().take(4).all(u8::is_ascii_digit) && byte(ts, 4) == b'-')
}

/// `Mmm dd hh:mm:ss ` (RFC 3164 §4.1.2).
fn rfc3164(r: &[u8]) -> bool {
    let Some(ts) = r.get(..16) else {
        return false;
    };
    let month = ts
        .get(..3)
        .is_some_and(|m| MONTHS.iter().any(|name| name.as_slice() == m));
    let digit = |i: usize| byte(ts, i).is_ascii_digit();
    month
        && byte(ts, 3) == b' '
        && (byte(ts, 4) == b' ' || digit(4))
        && digit(5)
        && byte(ts, 6) == b' '
        && digit(7)
        && digit(8)
        && byte(ts, 9) == b':'
        && digit(10)
        && digit(11)
        && byte(ts, 12) == b':'
        && digit(13)
        && digit(14)
        && byte(ts, 15) == b' '
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: Hint = Hint::client(true, false);
    const OFF: Hint = Hint::client(false, false);

    #[test]
    fn messages_match() {
        let m5424 = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - msg";
        let m3164 = b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8";
        let nil = b"<13>1 - host app - - - hello";
        for m in [&m5424[..], m3164, nil] {
            assert_eq!(
                probe(m, PORT),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(m)
            );
            assert_eq!(
                probe(m, OFF),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(m)
            );
        }
        assert_eq!(probe(b"<0>kernel: boot", PORT), Probe::Match);
        assert_eq!(probe(b"<0>kernel: boot", OFF), Probe::No);
        assert_eq!(probe(b"<34>Oct  1 02:04:05 host x", OFF), Probe::Match);
    }

    #[test]
    fn near_misses_are_no() {
        for m in [
            &b"<192>1 - - - - - x"[..],
            b"<034>hello",
            b"<>hello",
            b"<1234>hello",
            b"<34",
            b"<34>",
            b"<34>\x00\x01\x02",
            b"34>hello",
        ] {
            assert_eq!(probe(m, PORT), Probe::No, "{}", String::from_utf8_lossy(m));
        }
        assert_eq!(
            probe(b"<13>1 - host app - - - hello", Hint { tcp: true, ..PORT }),
            Probe::No
        );
    }
}
