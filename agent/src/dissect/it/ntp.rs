//! NTP recogniser, UDP only.
//!
//! Spec: RFC 5905 §7.3 (packet header: LI, VN 1–4, Mode 1–7, Stratum 0–16 used, Poll,
//! Precision, Root Delay, Root Dispersion as 16.16 fixed point, 48 bytes before extension
//! fields and MAC), §7.5 (extension fields: multiples of 4 bytes), RFC 5906 §4 and
//! RFC 7822 §3 (extension fields and MAC lengths); RFC 9327 §2 (mode 6 control messages:
//! 12-byte header, REM bits, opcode, count ≤ 468); mode 7 (ntpd's private "ntpdc"
//! requests, no RFC: ntpd's `ntp_request.h` layout of an 8-byte header with
//! implementation 0, 2 or 3 and two 12-bit counts), which monlist amplification uses.
//!
//! What convinces, on port 123: a 48+ byte packet with version 1–4, mode 1–5, stratum
//! ≤ 16, a poll exponent in −7..=17, root delay and root dispersion under 256 s; a mode 6
//! header with a known opcode, a request's zero offset and a count that accounts for the
//! datagram; a mode 7 header with consistent counts. On other ports only modes 1–5 of version 3 or
//! 4, with a length of 48 plus whole 4-byte words (extension fields, MAC) and also the
//! precision in −32..=0 and a poll in 0..=17.

use super::be32;
use crate::dissect::{Hint, Probe, be16, byte};

/// The fixed NTP header (RFC 5905 §7.3).
const HEADER: usize = 48;

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if hint.tcp {
        return Probe::No;
    }
    let version = (byte(payload, 0) >> 3) & 7;
    let mode = byte(payload, 0) & 7;
    let ok = match mode {
        1..=5 => packet(payload, version, hint.port),
        6 => hint.port && control(payload, version),
        7 => hint.port && private(payload, version),
        _ => false,
    };
    if ok { Probe::Match } else { Probe::No }
}

/// Modes 1–5: symmetric active/passive, client, server, broadcast (RFC 5905 §7.3).
fn packet(p: &[u8], version: u8, port: bool) -> bool {
    if p.len() < HEADER {
        return false;
    }
    let stratum = byte(p, 1);
    let poll = byte(p, 2) as i8;
    let precision = byte(p, 3) as i8;
    // Root delay and root dispersion below 256 s: the top byte of each is 0.
    let common = stratum <= 16 && be32(p, 4) >> 24 == 0 && be32(p, 8) >> 24 == 0;
    if port {
        common && (1..=4).contains(&version) && (-7..=17).contains(&poll)
    } else {
        common
            && (3..=4).contains(&version)
            && (0..=17).contains(&poll)
            && (-32..=0).contains(&precision)
            && (p.len() - HEADER).is_multiple_of(4)
    }
}

/// Mode 6 control message header (RFC 9327 §2).
fn control(p: &[u8], version: u8) -> bool {
    let Some(h) = p.get(..12) else {
        return false;
    };
    let rem_op = byte(h, 1);
    let response = rem_op & 0x80 != 0;
    let opcode = rem_op & 0x1f;
    let offset = be16(h, 8);
    let count = usize::from(be16(h, 10));
    // After the data: padding to a word and an optional MAC (key id + up to 20 bytes).
    let trailer = p.len().checked_sub(12 + count);
    (1..=4).contains(&version)
        // RFC 9327 §2: opcodes 1–7, ntpd's 8–12 (nonce, MRU, …) and 31.
        && matches!(opcode, 1..=12 | 31)
        // A request has neither the error nor the more bit, and no offset.
        && (if response { offset.is_multiple_of(4) } else { rem_op & 0x60 == 0 && offset == 0 })
        && count <= 468
        && trailer.is_some_and(|t| t < 4 + 24)
}

/// Mode 7 private request or response (ntpd `ntp_request.h`): R M VN Mode, A + sequence,
/// implementation, request code, err + item count, mbz + item size.
fn private(p: &[u8], version: u8) -> bool {
    let Some(h) = p.get(..8) else {
        return false;
    };
    let implementation = byte(h, 2);
    let request = byte(h, 3);
    let items = usize::from(be16(h, 4) & 0x0fff);
    let err = be16(h, 4) >> 12;
    let mbz = be16(h, 6) >> 12;
    let item_size = usize::from(be16(h, 6) & 0x0fff);
    (1..=4).contains(&version)
        && matches!(implementation, 0 | 2 | 3)
        && request <= 45
        && err <= 7
        && mbz == 0
        && item_size <= 500
        && 8 + items * item_size <= p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const PORT: Hint = Hint::client(true, false);
    const OFF: Hint = Hint::client(false, false);

    /// zeek_ntp.pcap frame 1 (v4 client).
    fn client() -> Vec<u8> {
        hex(
            "230206ea00000bd90000063055c7d663e09ab55c12dcc914e09ab5540c60c23be09ab55413a64a3be09ab59607050baa",
        )
    }

    #[test]
    fn packets_match() {
        assert_eq!(probe(&client(), PORT), Probe::Match);
        assert_eq!(probe(&client(), OFF), Probe::Match);
        // SNTP request: everything zero but the first byte.
        let mut sntp = vec![0u8; 48];
        sntp[0] = 0x1b;
        assert_eq!(probe(&sntp, PORT), Probe::Match);
        assert_eq!(probe(&sntp, OFF), Probe::Match);
        // With a key id and MD5 digest.
        let mut mac = client();
        mac.extend([0u8; 20]);
        assert_eq!(probe(&mac, OFF), Probe::Match);
    }

    #[test]
    fn near_misses_are_no() {
        let c = client();
        assert_eq!(probe(&c[..47], PORT), Probe::No);
        assert_eq!(probe(&c, Hint { tcp: true, ..PORT }), Probe::No);
        for (at, v) in [(0, 0x03), (0, 0x28), (1, 17), (2, 40), (4, 1), (8, 1)] {
            let mut m = c.clone();
            m[at] = v;
            assert_eq!(probe(&m, PORT), Probe::No, "byte {at} = {v}");
        }
        // Off port: odd lengths, old versions, positive precision.
        let mut m = c.clone();
        m.push(0);
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::No);
        let mut m = c.clone();
        m[0] = 0x13; // v2
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::No);
        let mut m = c.clone();
        m[3] = 0x10;
        assert_eq!(probe(&m, OFF), Probe::No);
    }

    #[test]
    fn control_and_private_on_the_port() {
        // ntpq "readvar" request.
        let rv = hex("16 02 0001 0000 0000 0000 0000");
        assert_eq!(probe(&rv, PORT), Probe::Match);
        assert_eq!(probe(&rv, OFF), Probe::No);
        // ntpdc monlist request (implementation 3, request 42), padded.
        let mut ml = hex("17 00 03 2a 0000 0000");
        ml.extend([0u8; 40]);
        assert_eq!(probe(&ml, PORT), Probe::Match);
        assert_eq!(probe(&ml, OFF), Probe::No);
        let mut bad = ml.clone();
        bad[2] = 9;
        assert_eq!(probe(&bad, PORT), Probe::No);
    }
}
