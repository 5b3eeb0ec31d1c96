//! DNS message recogniser, also used for mDNS and LLMNR, which share the format (the
//! classifier tells them apart by port).
//!
//! Spec: RFC 1035 §4.1.1 (header: ID, QR, OPCODE, AA, TC, RD, RA, Z, RCODE, four counts),
//! §4.1.2 (question: QNAME, QTYPE, QCLASS), §4.1.3 (resource record), §4.1.4 (compression
//! pointers `11xxxxxx`), §4.2.1/§4.2.2 (UDP; TCP with a two-byte length prefix), §2.3.4
//! (labels ≤ 63 octets, names ≤ 255); RFC 6895 §2 (opcodes 0–2, 4–6; RCODEs 0–10 in the
//! header; AD/CD bits); RFC 6762 §18.12 and §10.2 (mDNS: the top bit of a question's class
//! is "unicast response", of a record's class "cache flush"); RFC 4795 §2.1.1 (LLMNR
//! header); RFC 6891 §6.1.2 (OPT record: its class is a payload size).
//!
//! What convinces:
//! - always: a 12-byte header with a known opcode, RCODE 0 in a query and ≤ 10 in a
//!   response, at least one record, and counts that fit in the message (a question takes
//!   ≥ 5 bytes, a record ≥ 11); the questions (up to [`MAX_QUESTIONS`]) parsed — labels,
//!   pointers to earlier offsets, a non-zero type and a known class — or, with no question,
//!   the first record;
//! - off the registered ports: also Z = 0, every question parsed (at most
//!   [`MAX_QUESTIONS`]), known question types, graphic label bytes and exact classes.

use super::{Parsed, Stop, check, need};
use crate::dissect::{Hint, Probe, Reader};

/// Questions parsed at most (real queries carry one; mDNS may carry several).
pub const MAX_QUESTIONS: u16 = 4;

/// DNS header length (RFC 1035 §4.1.1).
const HEADER: usize = 12;

/// Probes a UDP datagram, or a TCP payload starting with the two-byte length prefix.
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return match message(payload, payload.len(), hint.port) {
            Ok(()) => Probe::Match,
            Err(_) => Probe::No,
        };
    }
    // RFC 1035 §4.2.2: the message is prefixed with its length.
    let mut r = Reader::new(payload);
    let Some(len) = r.u16_be() else {
        return Probe::No;
    };
    let len = usize::from(len);
    if len < HEADER {
        return Probe::No;
    }
    let body = r.rest();
    if body.is_empty() {
        // Some resolvers write the length prefix in a segment of its own.
        return if hint.port { Probe::Unsure } else { Probe::No };
    }
    let body = body.get(..len).unwrap_or(body);
    match message(body, len, hint.port) {
        Ok(()) => Probe::Match,
        Err(Stop::Bad) => Probe::No,
        // The header is sane and the rest of the message is in the next segments. A
        // segment cut inside the header is not how a DNS message starts.
        Err(Stop::Short) if body.len() >= HEADER => Probe::Unsure,
        Err(Stop::Short) => Probe::No,
    }
}

/// The header fields a recogniser needs (RFC 1035 §4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn read(r: &mut Reader<'_>) -> Option<Header> {
        Some(Header {
            id: r.u16_be()?,
            flags: r.u16_be()?,
            qdcount: r.u16_be()?,
            ancount: r.u16_be()?,
            nscount: r.u16_be()?,
            arcount: r.u16_be()?,
        })
    }
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0xf
    }
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }
    /// Records after the question section.
    pub fn records(&self) -> u32 {
        u32::from(self.ancount) + u32::from(self.nscount) + u32::from(self.arcount)
    }
}

/// Checks a DNS message of declared length `len` whose first bytes are `msg`.
fn message(msg: &[u8], len: usize, port: bool) -> Parsed {
    let mut r = Reader::new(msg);
    let h = need(Header::read(&mut r))?;
    // RFC 6895 §2.2: 0 QUERY, 1 IQUERY (obsolete), 2 STATUS, 4 NOTIFY, 5 UPDATE, 6 DSO.
    check(matches!(h.opcode(), 0 | 1 | 2 | 4 | 5 | 6))?;
    if h.is_response() {
        check(h.rcode() <= 10)?;
    } else {
        check(h.rcode() == 0)?;
    }
    if !port {
        // RFC 1035 §4.1.1: Z "must be zero in all queries and responses".
        check(h.flags & 0x0040 == 0)?;
        check(h.qdcount <= MAX_QUESTIONS)?;
    }
    let records = h.records();
    check(h.qdcount > 0 || records > 0)?;
    // Smallest question: root name + type + class; smallest record: root name + 10.
    let least = HEADER as u64 + 5 * u64::from(h.qdcount) + 11 * u64::from(records);
    check(least <= len as u64)?;
    for _ in 0..h.qdcount.min(MAX_QUESTIONS) {
        question(&mut r, port)?;
    }
    if h.qdcount == 0 {
        record(&mut r, port)?;
    }
    Ok(())
}

/// A question entry (RFC 1035 §4.1.2).
fn question(r: &mut Reader<'_>, port: bool) -> Parsed {
    name(r, port)?;
    let qtype = need(r.u16_be())?;
    let qclass = need(r.u16_be())?;
    if port {
        check(qtype != 0)?;
        // mDNS: the top bit asks for a unicast response (RFC 6762 §18.12).
        check(class_ok(qclass & 0x7fff))
    } else {
        // Assigned TYPEs/QTYPEs (RFC 6895 §3.1): data and meta types, the QTYPEs
        // 251–255, URI/CAA and friends, TA/DLV, and the private-use range.
        check(matches!(qtype, 1..=260 | 32768 | 32769 | 65280..=65534))?;
        check(class_ok(qclass))
    }
}

/// A resource record (RFC 1035 §4.1.3); its data may continue past a TCP segment.
fn record(r: &mut Reader<'_>, port: bool) -> Parsed {
    name(r, port)?;
    let rtype = need(r.u16_be())?;
    let rclass = need(r.u16_be())?;
    let _ttl = need(r.u32_be())?;
    let rdlength = need(r.u16_be())?;
    check(rtype != 0)?;
    // OPT (RFC 6891 §6.1.2) carries the UDP payload size in its class.
    if rtype != 41 {
        // mDNS: the top bit is "cache flush" (RFC 6762 §10.2).
        check(class_ok(if port { rclass & 0x7fff } else { rclass }))?;
    }
    need(r.skip(usize::from(rdlength)))
}

/// IN, CH, HS, NONE, ANY (RFC 1035 §3.2.4–3.2.5, RFC 2136 §1.3).
fn class_ok(class: u16) -> bool {
    matches!(class, 1 | 3 | 4 | 254 | 255)
}

/// A domain name (RFC 1035 §3.1, §4.1.4): labels of 1–63 bytes ending in the root label,
/// or in a pointer to an earlier offset past the header; 255 bytes at most. Off the
/// registered ports label bytes must be graphic (hostnames, service labels, UTF-8).
pub(super) fn name(r: &mut Reader<'_>, port: bool) -> Parsed {
    let start = r.pos();
    let mut total = 0usize;
    loop {
        let len = need(r.u8())?;
        match len {
            0 => return Ok(()),
            1..=63 => {
                let label = need(r.take(usize::from(len)))?;
                if !port {
                    check(label.iter().all(|&b| b > 0x20 && b != 0x7f))?;
                }
                total += usize::from(len) + 1;
                check(total < 255)?;
            }
            0xc0..=0xff => {
                let low = need(r.u8())?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                // Compression points backwards, at a name that started earlier.
                return check((HEADER..start).contains(&target));
            }
            // 0x40 and 0x80: extended label types (RFC 6891 §5), not used on the wire.
            _ => return Err(Stop::Bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const UDP53: Hint = Hint::client(true, false);
    const UDP_OFF: Hint = Hint::client(false, false);
    const TCP53: Hint = Hint::client(true, true);
    const TCP_OFF: Hint = Hint::client(false, true);

    /// Query for www.example.com A, id 0x1234, RD.
    fn query() -> Vec<u8> {
        hex("1234 0100 0001 0000 0000 0000 03777777 076578616d706c65 03636f6d 00 0001 0001")
    }

    #[test]
    fn query_matches_on_any_port() {
        assert_eq!(probe(&query(), UDP53), Probe::Match);
        assert_eq!(probe(&query(), UDP_OFF), Probe::Match);
    }

    #[test]
    fn response_with_compression_matches() {
        let mut m = query();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1; // ancount
        m.extend(hex("c00c 0001 0001 00000e10 0004 5db8d822"));
        assert_eq!(probe(&m, UDP_OFF), Probe::Match);
    }

    #[test]
    fn tcp_needs_the_length_prefix_and_waits_for_the_rest() {
        let q = query();
        let mut m = (q.len() as u16).to_be_bytes().to_vec();
        m.extend(&q);
        assert_eq!(probe(&m, TCP53), Probe::Match);
        assert_eq!(probe(&m, TCP_OFF), Probe::Match);
        assert_eq!(probe(&m[..2], TCP53), Probe::Unsure);
        assert_eq!(probe(&m[..2], TCP_OFF), Probe::No);
        assert_eq!(probe(&m[..1], TCP53), Probe::No);
        assert_eq!(probe(&m[..9], TCP53), Probe::No);
        assert_eq!(probe(&m[..20], TCP53), Probe::Unsure);
        assert_eq!(probe(&m[..20], TCP_OFF), Probe::Unsure);
        // Without the prefix, a TCP payload is not DNS.
        assert_eq!(probe(&q, TCP53), Probe::No);
    }

    #[test]
    fn broken_structure_is_no() {
        let q = query();
        // Truncated question.
        assert_eq!(probe(&q[..20], UDP53), Probe::No);
        // A query with an RCODE.
        let mut m = q.clone();
        m[3] = 0x03;
        assert_eq!(probe(&m, UDP53), Probe::No);
        // Opcode 3 is unassigned.
        let mut m = q.clone();
        m[2] = 0x18;
        assert_eq!(probe(&m, UDP53), Probe::No);
        // Counts that cannot fit.
        let mut m = q.clone();
        m[6] = 0x10;
        assert_eq!(probe(&m, UDP53), Probe::No);
        // Unknown class.
        let mut m = q.clone();
        let n = m.len();
        m[n - 1] = 9;
        assert_eq!(probe(&m, UDP53), Probe::No);
        // A forward pointer in the question.
        let m = hex("1234 0100 0001 0000 0000 0000 c020 0001 0001");
        assert_eq!(probe(&m, UDP53), Probe::No);
        // Label too long (64).
        let mut m = hex("1234 0100 0001 0000 0000 0000 40");
        m.extend([b'a'; 64]);
        m.extend(hex("00 0001 0001"));
        assert_eq!(probe(&m, UDP53), Probe::No);
    }

    #[test]
    fn off_port_is_stricter() {
        // Z bit set: tolerated on 53 only.
        let mut m = query();
        m[3] = 0x40;
        assert_eq!(probe(&m, UDP53), Probe::Match);
        assert_eq!(probe(&m, UDP_OFF), Probe::No);
        // Control bytes in a label.
        let m = hex("1234 0100 0001 0000 0000 0000 03010203 00 0001 0001");
        assert_eq!(probe(&m, UDP53), Probe::Match);
        assert_eq!(probe(&m, UDP_OFF), Probe::No);
    }

    #[test]
    fn mdns_response_without_question() {
        // After mixed_it/zeek_wikipedia.pcap frame 2: an SRV record with the cache-flush bit.
        let m = hex(
            "0000 8400 0000 0001 0000 0000 0667656d696e69095f736674702d737368045f746370056c6f63616c00 \
             0021 8001 00000078 000f 000000000016 0667656d696e69 c022",
        );
        assert_eq!(probe(&m, UDP53), Probe::Match);
        // The cache-flush bit is mDNS only: off port the class must be exact.
        assert_eq!(probe(&m, UDP_OFF), Probe::No);
    }

    #[test]
    fn http_on_port_53_is_not_dns() {
        let http = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(probe(http, UDP53), Probe::No);
        assert_eq!(probe(http, TCP53), Probe::No);
    }
}
