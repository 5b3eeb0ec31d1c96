//! SNMP recogniser (v1, v2c, v3), UDP only.
//!
//! Spec: RFC 1157 §4 (v1 `Message ::= SEQUENCE { version INTEGER, community OCTET STRING,
//! data PDUs }`, PDUs tagged [0]–[4]); RFC 1901 §3 and RFC 3416 §3 (v2c: version 1, PDUs
//! [0]–[3], [5] GetBulk, [6] Inform, [7] SNMPv2-Trap, [8] Report); RFC 3412 §6 (v3
//! `SNMPv3Message ::= SEQUENCE { msgVersion INTEGER (3), msgGlobalData HeaderData,
//! msgSecurityParameters OCTET STRING, msgData ScopedPduData }`, `HeaderData ::= SEQUENCE
//! { msgID, msgMaxSize INTEGER, msgFlags OCTET STRING (SIZE(1)), msgSecurityModel
//! INTEGER }`); X.690 §8.1.3 (BER definite lengths, short and long form) and §8.3.2
//! (minimal INTEGER encoding, so a small version is `02 01 xx`).
//!
//! What convinces, on any port: a SEQUENCE whose BER length covers the datagram exactly,
//! version INTEGER 0, 1 or 3; for v1/v2c a community OCTET STRING then a PDU tag of that
//! version whose length ends exactly at the end of the message and which starts with an
//! INTEGER request-id (an OID for a v1 Trap); for v3 a HeaderData SEQUENCE with two
//! INTEGERs, a one-byte flags OCTET STRING and an INTEGER security model. The variable
//! bindings are not parsed (a malformed OID inside is still SNMP). On the registered
//! ports a datagram cut short by the capture (lengths running past its end) still counts.

use super::{Parsed, Stop, check, need};
use crate::dissect::{Hint, Probe, Reader};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if hint.tcp {
        return Probe::No;
    }
    match message(payload) {
        Ok(Cut::No) => Probe::Match,
        Ok(Cut::Yes) if hint.port => Probe::Match,
        _ => Probe::No,
    }
}

/// Whether the datagram holds less than its outer length says (a capture's snap length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    No,
    Yes,
}

/// A BER definite length (X.690 §8.1.3): short form, or long form in 1–3 bytes.
fn length(r: &mut Reader<'_>) -> Parsed<usize> {
    let first = need(r.u8())?;
    if first < 0x80 {
        return Ok(usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    check((1..=3).contains(&n))?;
    let mut len = 0usize;
    for _ in 0..n {
        len = (len << 8) | usize::from(need(r.u8())?);
    }
    Ok(len)
}

/// A tag and length; the value must fit in what is left of the enclosing value.
fn header(r: &mut Reader<'_>, tag: u8, room: usize) -> Parsed<usize> {
    check(need(r.u8())? == tag)?;
    let len = length(r)?;
    check(len <= room)?;
    Ok(len)
}

/// A small INTEGER (1–4 bytes) whose value is returned.
fn integer(r: &mut Reader<'_>) -> Parsed<u32> {
    check(need(r.u8())? == INTEGER)?;
    let len = length(r)?;
    check((1..=4).contains(&len))?;
    let bytes = need(r.take(len))?;
    Ok(bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
}

fn message(p: &[u8]) -> Parsed<Cut> {
    let mut r = Reader::new(p);
    check(need(r.u8())? == SEQUENCE)?;
    let total = length(&mut r)?;
    // The message is the whole datagram, or was cut by the capture after its headers.
    check(total >= r.remaining())?;
    let cut = if total > r.remaining() {
        Cut::Yes
    } else {
        Cut::No
    };
    inner(&mut r, total)?;
    Ok(cut)
}

/// The message body after the outer SEQUENCE header; `total` bytes long.
fn inner(r: &mut Reader<'_>, total: usize) -> Parsed {
    let end = r.pos() + total;
    // version: exactly `02 01 0x`.
    check(need(r.take(2))? == [INTEGER, 1])?;
    let version = need(r.u8())?;
    match version {
        0 | 1 => {
            let community = header(r, OCTET_STRING, end.saturating_sub(r.pos()))?;
            need(r.skip(community))?;
            let tag = need(r.u8())?;
            let known = if version == 0 {
                (0xa0..=0xa4).contains(&tag)
            } else {
                matches!(tag, 0xa0..=0xa3 | 0xa5..=0xa8)
            };
            check(known)?;
            let pdu = length(r)?;
            // The PDU ends where the message ends.
            check(r.pos() + pdu == end)?;
            // request-id INTEGER, or the enterprise OID of a v1 Trap.
            let first = need(r.peek(0))?;
            check(first == if tag == 0xa4 { OID } else { INTEGER })
        }
        3 => {
            let global = header(r, SEQUENCE, end.saturating_sub(r.pos()))?;
            let global_end = r.pos() + global;
            let _msg_id = integer(r)?;
            // msgMaxSize INTEGER (484..2147483647).
            check(integer(r)? >= 484)?;
            // msgFlags OCTET STRING (SIZE(1)): only auth, priv and reportable, and never
            // priv without auth (RFC 3412 §6.4).
            check(need(r.take(2))? == [OCTET_STRING, 1])?;
            let flags = need(r.u8())?;
            check(flags & !0x07 == 0 && flags & 0x03 != 0x02)?;
            // msgSecurityModel: 1–3 are SNMPv1, SNMPv2c and USM (RFC 3411 §5).
            check(integer(r)? != 0)?;
            check(r.pos() == global_end)?;
            // msgSecurityParameters OCTET STRING.
            check(need(r.peek(0))? == OCTET_STRING)
        }
        _ => Err(Stop::Bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const PORT: Hint = Hint::client(true, false);
    const OFF: Hint = Hint::client(false, false);

    #[test]
    fn v1_get_and_response_match_on_any_port() {
        // zeek_snmpv1_get.pcap frames 1 and 2.
        let get =
            hex("302602010004067075626c6963a019020126020100020100300e300c06082b060102010102000500");
        let resp = hex(
            "303802010004067075626c6963a22b0201260201000201003020301e06082b0601020101020006122b060104018f5101010182295d011b020201",
        );
        for m in [&get, &resp] {
            assert_eq!(probe(m, PORT), Probe::Match);
            assert_eq!(probe(m, OFF), Probe::Match);
        }
        // Cut short: still SNMP on the port, not elsewhere.
        assert_eq!(probe(&get[..30], PORT), Probe::Match);
        assert_eq!(probe(&get[..30], OFF), Probe::No);
        // A trailing byte breaks the exact length.
        let mut m = get.clone();
        m.push(0);
        assert_eq!(probe(&m, PORT), Probe::No);
    }

    #[test]
    fn malformed_oid_is_still_snmp() {
        let m = hex(
            "302a02010004067075626c6963a01d02010102010002010030123010060c2b80808080808080808080000500",
        );
        assert_eq!(probe(&m, OFF), Probe::Match);
    }

    #[test]
    fn v2c_getbulk_and_v3() {
        let bulk = hex(
            "302902010104067075626c6963a51c02040a0b0c0d02010002010a300e300c06082b060102010102000500",
        );
        assert_eq!(probe(&bulk, OFF), Probe::Match);
        // GetBulk is not a v1 PDU.
        let mut v1 = bulk.clone();
        v1[4] = 0;
        assert_eq!(probe(&v1, OFF), Probe::No);
        // v3 discovery request (noAuthNoPriv, reportable, USM).
        let v3 = hex(
            "303e020103 3011 02044a69b7c8 020300ffe3 040104 020103 0410 300e0400020100020100040004000400 \
             3014 0400 0400 a00e 02043e4f8a7b 020100 020100 3000",
        );
        assert_eq!(probe(&v3, OFF), Probe::Match);
    }

    #[test]
    fn other_ber_is_no() {
        // CLDAP searchRequest: SEQUENCE, messageID, [APPLICATION 3].
        let ldap = hex(
            "3025 020101 6320 0400 0a0100 0a0100 020100 020100 010100 870b6f626a656374636c617373 3000",
        );
        assert_eq!(probe(&ldap, OFF), Probe::No);
        assert_eq!(probe(&hex("3003020102"), PORT), Probe::No);
    }
}
