//! TLS recogniser (SSL 3.0 to TLS 1.3), TCP only.
//!
//! Spec: RFC 8446 §5.1 (TLSPlaintext: ContentType, legacy_record_version, length ≤ 2^14;
//! TLSCiphertext ≤ 2^14 + 256), §4 (Handshake: msg_type, uint24 length), §4.1.2
//! (ClientHello: legacy_version, 32-byte random, session id ≤ 32, cipher suites as an even
//! non-empty vector, compression methods ≥ 1), §4.1.3 (ServerHello); RFC 5246 §6.2.1–6.2.3
//! (record layer of TLS 1.2, ciphertext ≤ 2^14 + 2048), §7.1 (ChangeCipherSpec is one byte
//! of 1); RFC 6101 §5.2 (SSL 3.0 version 3.0) and appendix E.2 (the SSL 2.0-compatible
//! CLIENT-HELLO some clients and scanners still send).
//!
//! What convinces, on any port: a handshake record (22) with version 3.0–3.4 and a sane
//! length holding a ClientHello or ServerHello whose own version is 3.0–3.4 and whose
//! session id length is ≤ 32 (cipher suite vector checked when present); or a well-formed
//! SSLv2-compatible CLIENT-HELLO. On the registered ports also a record of any kind
//! (20–23) with such a version and length: a flow seen mid-stream (application data,
//! encrypted Finished, alerts).

use super::be24;
use crate::dissect::{Hint, Probe, Reader, be16, byte};

/// ChangeCipherSpec, Alert, Handshake, ApplicationData (RFC 8446 §5.1).
const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// Largest record fragment: 2^14 plus the TLS 1.2 ciphertext expansion (RFC 5246 §6.2.3).
const MAX_RECORD: u16 = (1 << 14) + 2048;

const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;

fn version_ok(v: u16) -> bool {
    (0x0300..=0x0304).contains(&v)
}

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return Probe::No;
    }
    let kind = byte(payload, 0);
    if kind == HANDSHAKE {
        let hello = hello(payload);
        if hello == Probe::No && hint.port {
            return record(payload);
        }
        return hello;
    }
    if kind & 0x80 != 0 {
        return sslv2_client_hello(payload);
    }
    if hint.port && (CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&kind) {
        return record(payload);
    }
    Probe::No
}

/// Any record header, for flows seen mid-stream on a TLS port.
fn record(p: &[u8]) -> Probe {
    let Some(head) = p.get(..5) else {
        let plausible = p.get(1).is_none_or(|&b| b == 3) && p.get(2).is_none_or(|&b| b <= 4);
        return if plausible { Probe::Unsure } else { Probe::No };
    };
    let kind = byte(head, 0);
    let len = be16(head, 3);
    let ok = version_ok(be16(head, 1))
        && (1..=MAX_RECORD).contains(&len)
        && (kind != CHANGE_CIPHER_SPEC || (len == 1 && p.get(5).is_none_or(|&b| b == 1)));
    if ok { Probe::Match } else { Probe::No }
}

/// A handshake record starting with a ClientHello or ServerHello.
fn hello(p: &[u8]) -> Probe {
    let mut r = Reader::new(p);
    let _content_type = r.u8();
    // Record header: each field judged as soon as it is there.
    match r.u8() {
        None => return Probe::Unsure,
        Some(3) => {}
        Some(_) => return Probe::No,
    }
    match r.u8() {
        None => return Probe::Unsure,
        Some(0..=4) => {}
        Some(_) => return Probe::No,
    }
    let Some(record_len) = r.u16_be() else {
        return Probe::Unsure;
    };
    if !(4..=1 << 14).contains(&record_len) {
        return Probe::No;
    }
    // Handshake header.
    let Some(msg) = r.u8() else {
        return Probe::Unsure;
    };
    if msg != CLIENT_HELLO && msg != SERVER_HELLO {
        return Probe::No;
    }
    let Some(len) = r.take(3).map(|b| be24(b, 0)) else {
        return Probe::Unsure;
    };
    // legacy_version + random + session id length + cipher suite + compression.
    if !(38..=0xffff).contains(&len) {
        return Probe::No;
    }
    let Some(version) = r.u16_be() else {
        return Probe::Unsure;
    };
    if !version_ok(version) {
        return Probe::No;
    }
    // Convincing already; check what else the segment holds.
    if r.skip(32).is_none() {
        return Probe::Match;
    }
    let Some(sid) = r.u8() else {
        return Probe::Match;
    };
    if sid > 32 {
        return Probe::No;
    }
    if msg == CLIENT_HELLO
        && r.skip(usize::from(sid)).is_some()
        && let Some(suites) = r.u16_be()
    {
        if suites == 0 || !suites.is_multiple_of(2) {
            return Probe::No;
        }
        if r.skip(usize::from(suites)).is_some() && r.u8() == Some(0) {
            // No compression method at all.
            return Probe::No;
        }
    }
    Probe::Match
}

/// SSL 2.0-compatible CLIENT-HELLO (RFC 6101 appendix E.2): a 2-byte record header with
/// the top bit set, msg type 1, version 0.2 or 3.x, and three lengths that add up.
fn sslv2_client_hello(p: &[u8]) -> Probe {
    let Some(h) = p.get(..11) else {
        return Probe::No;
    };
    let record = usize::from(be16(h, 0) & 0x7fff);
    let version = be16(h, 3);
    let suites = usize::from(be16(h, 5));
    let sid = usize::from(be16(h, 7));
    let challenge = usize::from(be16(h, 9));
    let ok = byte(h, 2) == 1
        && (version == 0x0002 || (0x0300..=0x0303).contains(&version))
        && suites > 0
        && suites % 3 == 0
        && (sid == 0 || sid == 16)
        && (16..=32).contains(&challenge)
        && record == 9 + suites + sid + challenge
        && p.len() <= record + 2;
    if ok { Probe::Match } else { Probe::No }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const PORT: Hint = Hint::client(true, true);
    const OFF: Hint = Hint::client(false, true);

    fn client_hello() -> Vec<u8> {
        let mut body = hex("0303");
        body.extend([0x11; 32]);
        body.extend(hex("00 0004 c02f 00ff 01 00 0000"));
        let mut hs = vec![CLIENT_HELLO, 0, 0, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![HANDSHAKE, 3, 1, 0, hs.len() as u8];
        rec.extend(hs);
        rec
    }

    #[test]
    fn client_hello_matches_on_any_port() {
        let ch = client_hello();
        assert_eq!(probe(&ch, OFF), Probe::Match);
        assert_eq!(probe(&ch, PORT), Probe::Match);
        for n in 1..11 {
            assert_eq!(probe(&ch[..n], OFF), Probe::Unsure, "{n}");
        }
        assert_eq!(probe(&ch[..11], OFF), Probe::Match);
    }

    #[test]
    fn broken_hellos_are_no() {
        let ch = client_hello();
        for (at, v) in [(1, 2), (2, 5), (5, 11), (9, 2), (43, 33), (45, 3)] {
            let mut m = ch.clone();
            m[at] = v;
            assert_eq!(probe(&m, OFF), Probe::No, "byte {at} = {v}");
        }
        // Record length zero.
        let mut m = ch.clone();
        m[4] = 0;
        assert_eq!(probe(&m, OFF), Probe::No);
    }

    #[test]
    fn mid_stream_records_on_the_port_only() {
        let app = hex("17 0303 0020 00112233445566778899aabbccddeeff");
        assert_eq!(probe(&app, PORT), Probe::Match);
        assert_eq!(probe(&app, OFF), Probe::No);
        assert_eq!(probe(&hex("14 0303 0001 01"), PORT), Probe::Match);
        assert_eq!(probe(&hex("14 0303 0002 0101"), PORT), Probe::No);
        assert_eq!(probe(&hex("15 0303 0002 0228"), PORT), Probe::Match);
        // Encrypted Finished: a handshake record with an unknown-looking type.
        assert_eq!(probe(&hex("16 0303 0028 9a8b7c6d"), PORT), Probe::Match);
        assert_eq!(probe(&hex("16 0303 0028 9a8b7c6d"), OFF), Probe::No);
        assert_eq!(probe(&hex("17 0309 0020 00"), PORT), Probe::No);
    }

    #[test]
    fn sslv2_client_hello() {
        let mut m = hex("80 2e 01 0301 0015 0000 0010");
        m.extend([0; 21]);
        m.extend([0x42; 16]);
        assert_eq!(probe(&m, OFF), Probe::Match);
        m[2] = 2;
        assert_eq!(probe(&m, OFF), Probe::No);
    }

    #[test]
    fn tpkt_and_other_ics_frames_are_no() {
        for f in [
            hex("0300 0016 11e0 0000 0001 00c1 0201 00c2 0201 02c0 010a"),
            hex("0001 0000 0006 01 03 0000 000a"),
            hex("0564 05c9 0100 0300 5a0f"),
            hex("6804 0700 0000"),
        ] {
            assert_eq!(probe(&f, PORT), Probe::No);
        }
    }
}
