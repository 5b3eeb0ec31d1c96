//! NetBIOS over TCP/IP recogniser: name service (UDP 137), datagram service (UDP 138),
//! session service (TCP 139).
//!
//! Spec: RFC 1002 §4.1 (first-level encoding: a 16-byte NetBIOS name as 32 bytes
//! `'A'..='P'`, a label of length 0x20, then the scope labels), §4.2.1 (name service
//! header: NAME_TRN_ID, R, OPCODE, NM_FLAGS with two reserved zero bits, RCODE, the four
//! counts; question types NB 0x20 / NBSTAT 0x21, class IN), §4.2.1.3 (record types A, NS,
//! NULL, NB, NBSTAT), §4.3.1 (session packet: TYPE, FLAGS with only the length extension
//! bit, LENGTH; §4.3.2–4.3.7 the request, responses, retarget and keep-alive),
//! §4.4.1 (datagram header: MSG_TYPE 0x10–0x16, FLAGS with four reserved zero bits,
//! DGM_ID, SOURCE_IP, SOURCE_PORT; §4.4.2–4.4.4 the datagram, error and query packets).
//!
//! What convinces: an encoded name (32 letters `A`–`P`) where the packet type puts one,
//! plus the header rules above. The session service's short fixed packets (positive
//! response, keep-alive, …) carry no name, so they count only on TCP 139. A session
//! *message* (type 0) is left to the SMB recogniser: on its own it is just a length.

use super::{Parsed, Stop, check, need};
use crate::dissect::{Hint, Probe, Reader, be16, byte};

/// Length of a first-level encoded NetBIOS name label.
const ENCODED: u8 = 0x20;

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if hint.tcp {
        return session(payload, hint.port);
    }
    if datagram(payload).is_ok() || name_service(payload).is_ok() {
        Probe::Match
    } else {
        Probe::No
    }
}

/// An encoded NetBIOS name with its scope (RFC 1002 §4.1, RFC 1001 §14.1). With
/// `pointer`, a compression pointer to an earlier name is accepted instead.
fn encoded_name(r: &mut Reader<'_>, pointer: bool) -> Parsed {
    let start = r.pos();
    let first = need(r.u8())?;
    if pointer && first & 0xc0 == 0xc0 {
        let target = (usize::from(first & 0x3f) << 8) | usize::from(need(r.u8())?);
        return check((12..start).contains(&target));
    }
    check(first == ENCODED)?;
    let label = need(r.take(usize::from(ENCODED)))?;
    check(label.iter().all(|b| (b'A'..=b'P').contains(b)))?;
    // Scope labels, usually none; the name is at most 255 bytes.
    let mut total = 1 + usize::from(ENCODED);
    loop {
        let len = need(r.u8())?;
        if len == 0 {
            return Ok(());
        }
        check(len <= 63)?;
        let label = need(r.take(usize::from(len)))?;
        check(label.iter().all(|&b| b > 0x20 && b != 0x7f))?;
        total += usize::from(len) + 1;
        check(total < 255)?;
    }
}

/// Name service packet (RFC 1002 §4.2.1).
fn name_service(p: &[u8]) -> Parsed {
    let mut r = Reader::new(p);
    // The header has the DNS layout (RFC 1002 §4.2.1.1).
    let h = need(super::dns::Header::read(&mut r))?;
    let (flags, qd, an, ns, ar) = (h.flags, h.qdcount, h.ancount, h.nscount, h.arcount);
    let response = h.is_response();
    let opcode = h.opcode();
    // 0 query, 5 registration, 6 release, 7 WACK, 8 refresh (and 9, multi-homed
    // registration, which Windows sends).
    check(matches!(opcode, 0 | 5 | 6 | 7 | 8 | 9))?;
    // The two zero bits of NM_FLAGS.
    check(flags & 0x0060 == 0)?;
    let rcode = flags & 0xf;
    check(if response { rcode <= 7 } else { rcode == 0 })?;
    // Every packet of §4.2 has at most one entry in each section.
    check(qd <= 1 && an <= 1 && ns <= 1 && ar <= 1 && qd + an >= 1)?;
    encoded_name(&mut r, false)?;
    let rtype = need(r.u16_be())?;
    let class = need(r.u16_be())?;
    check(class == 1)?;
    if qd == 1 {
        check(matches!(rtype, 0x20 | 0x21))
    } else {
        check(matches!(rtype, 0x01 | 0x02 | 0x0a | 0x20 | 0x21))
    }
}

/// Datagram service packet (RFC 1002 §4.4).
fn datagram(p: &[u8]) -> Parsed {
    let mut r = Reader::new(p);
    let kind = need(r.u8())?;
    let flags = need(r.u8())?;
    check((0x10..=0x16).contains(&kind) && flags & 0xf0 == 0)?;
    need(r.skip(2 + 4 + 2))?; // DGM_ID, SOURCE_IP, SOURCE_PORT
    match kind {
        // DIRECT_UNIQUE, DIRECT_GROUP, BROADCAST: DGM_LENGTH, PACKET_OFFSET, the source
        // and destination names, then the user data.
        0x10..=0x12 => {
            let dgm_length = usize::from(need(r.u16_be())?);
            let _offset = need(r.u16_be())?;
            check(dgm_length >= 2 * 34 && dgm_length <= r.remaining())?;
            encoded_name(&mut r, false)?;
            encoded_name(&mut r, false)
        }
        // DATAGRAM ERROR: destination name not present, invalid source/destination name.
        0x13 => {
            let code = need(r.u8())?;
            check(matches!(code, 0x82..=0x84) && r.is_empty())
        }
        // DATAGRAM QUERY REQUEST, POSITIVE/NEGATIVE QUERY RESPONSE.
        _ => {
            encoded_name(&mut r, false)?;
            check(r.is_empty())
        }
    }
}

/// Session service packet (RFC 1002 §4.3).
fn session(p: &[u8], port: bool) -> Probe {
    let kind = byte(p, 0);
    if !matches!(kind, 0x81..=0x85) {
        return Probe::No;
    }
    if p.len() < 4 {
        // The request may be cut after its header; the short packets are whole.
        return if port && p.get(1).is_none_or(|f| f & 0xfe == 0) {
            Probe::Unsure
        } else {
            Probe::No
        };
    }
    let flags = byte(p, 1);
    if flags & 0xfe != 0 {
        return Probe::No;
    }
    let length = (usize::from(flags & 1) << 16) | usize::from(be16(p, 2));
    let body = p.get(4..).unwrap_or(&[]);
    let fixed = |len: usize, ok: bool| {
        if port && length == len && body.len() == len && ok {
            Probe::Match
        } else {
            Probe::No
        }
    };
    match kind {
        // SESSION REQUEST: called name, calling name.
        0x81 => {
            if length < 2 * 34 || body.len() > length {
                return Probe::No;
            }
            let mut r = Reader::new(body);
            match encoded_name(&mut r, false).and_then(|()| encoded_name(&mut r, false)) {
                Ok(()) if r.is_empty() => Probe::Match,
                Ok(()) => Probe::No,
                Err(Stop::Short) => Probe::Unsure,
                Err(Stop::Bad) => Probe::No,
            }
        }
        // POSITIVE SESSION RESPONSE, SESSION KEEP ALIVE.
        0x82 | 0x85 => fixed(0, true),
        // NEGATIVE SESSION RESPONSE: error code.
        0x83 => fixed(1, matches!(byte(p, 4), 0x80..=0x83 | 0x8f)),
        // RETARGET SESSION RESPONSE: IP address and port.
        _ => fixed(6, be16(p, 8) != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const UDP137: Hint = Hint::client(true, false);
    const UDP_OFF: Hint = Hint::client(false, false);
    const TCP139: Hint = Hint::client(true, true);
    const TCP_OFF: Hint = Hint::client(false, true);

    /// "WORKGROUP<1d>" first-level encoded, no scope (zeek_wikipedia.pcap frame 132).
    const NAME: &str = "20 464845504643454c45484643455046464641434143414341434143414341424e 00";

    #[test]
    fn name_query_matches() {
        // mixed_it/zeek_wikipedia.pcap frame 132.
        let q = hex(&format!("2469 0110 0001 0000 0000 0000 {NAME} 0020 0001"));
        assert_eq!(probe(&q, UDP137), Probe::Match);
        assert_eq!(probe(&q, UDP_OFF), Probe::Match);
        // Not an encoded name.
        let mut bad = q.clone();
        bad[14] = b'Z';
        assert_eq!(probe(&bad, UDP137), Probe::No);
        // Reserved NM_FLAGS bit.
        let mut bad = q.clone();
        bad[3] |= 0x20;
        assert_eq!(probe(&bad, UDP137), Probe::No);
    }

    #[test]
    fn name_query_response_matches() {
        let r = hex(&format!(
            "2469 8500 0000 0001 0000 0000 {NAME} 0020 0001 000493e0 0006 6000 c0a80001"
        ));
        assert_eq!(probe(&r, UDP137), Probe::Match);
    }

    #[test]
    fn datagram_matches() {
        let n = NAME.replace(' ', "");
        let d = hex(&format!(
            "11 02 8001 c0a80001 008a 004c 0000 {n}{n} 0102030405060708"
        ));
        assert_eq!(probe(&d, UDP_OFF), Probe::Match);
        let mut bad = d.clone();
        bad[1] = 0x12;
        assert_eq!(probe(&bad, UDP_OFF), Probe::No);
    }

    #[test]
    fn session_request_and_short_packets() {
        let n = NAME.replace(' ', "");
        let req = hex(&format!("81 00 0044 {n}{n}"));
        assert_eq!(probe(&req, TCP139), Probe::Match);
        assert_eq!(probe(&req, TCP_OFF), Probe::Match);
        assert_eq!(probe(&req[..20], TCP139), Probe::Unsure);
        assert_eq!(probe(&req[..2], TCP139), Probe::Unsure);
        assert_eq!(probe(&hex("82000000"), TCP139), Probe::Match);
        assert_eq!(probe(&hex("82000000"), TCP_OFF), Probe::No);
        assert_eq!(probe(&hex("85000000"), TCP139), Probe::Match);
        assert_eq!(probe(&hex("8300000182"), TCP139), Probe::Match);
        assert_eq!(probe(&hex("8300000170"), TCP139), Probe::No);
        // MQTT SUBSCRIBE (0x82) is not a positive session response.
        assert_eq!(
            probe(&hex("82 0a 0001 0005 74 6f 70 69 63 00"), TCP139),
            Probe::No
        );
        // A session message is SMB's business.
        assert_eq!(probe(&hex("00 000004 01020304"), TCP139), Probe::No);
    }
}
