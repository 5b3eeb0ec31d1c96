//! SMB recogniser (SMB1, SMB2/3 and the SMB3 transform headers), TCP 445 and 139.
//!
//! Spec: MS-SMB2 §2.1 (Direct TCP transport: a zero byte and a 3-byte length before each
//! message), §2.2.1 (SMB2 header: ProtocolId `FE 'SMB'`, StructureSize 64, Command
//! 0x0000–0x0012), §2.2.41 (transform header: ProtocolId `FD 'SMB'`, 52 bytes, Flags /
//! EncryptionAlgorithm 1), §2.2.42 (compression transform header: ProtocolId `FC 'SMB'`,
//! algorithm 0–4, flags 0 or 1); MS-CIFS §2.2.3.1 (SMB1 header: Protocol `FF 'SMB'`,
//! 32 bytes, then WordCount); RFC 1002 §4.3.1 (over TCP 139 the same four bytes are a
//! NetBIOS session message: type 0, flags 0 or 1, 17-bit length).
//!
//! What convinces, on any port: the four framing bytes with a length large enough for the
//! header, then one of the four protocol ids and its header rules. On the registered ports
//! a payload of fewer than eight bytes that starts like a frame is `Unsure`.

use super::be24;
use crate::dissect::{Hint, Probe, byte, le16};

/// Header lengths: SMB1 header + WordCount, SMB2 header, transform, compression transform.
const SMB1_MIN: u32 = 33;
const SMB2_MIN: u32 = 64;
const TRANSFORM_MIN: u32 = 52;
const COMPRESSION_MIN: u32 = 16;

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp || byte(payload, 0) != 0 {
        return Probe::No;
    }
    let Some(id) = payload.get(4..8) else {
        return if hint.port { Probe::Unsure } else { Probe::No };
    };
    let len = be24(payload, 1);
    // `h` is the SMB message after the 4-byte framing.
    let h = payload.get(4..).unwrap_or(&[]);
    let ok = match id {
        [0xff, b'S', b'M', b'B'] => len >= SMB1_MIN,
        [0xfe, b'S', b'M', b'B'] => {
            len >= SMB2_MIN && h.len() >= 14 && le16(h, 4) == 64 && le16(h, 12) <= 0x12
        }
        [0xfd, b'S', b'M', b'B'] => len >= TRANSFORM_MIN && (h.len() < 44 || le16(h, 42) == 1),
        [0xfc, b'S', b'M', b'B'] => {
            len >= COMPRESSION_MIN && (h.len() < 12 || (le16(h, 8) <= 4 && le16(h, 10) <= 1))
        }
        _ => false,
    };
    if ok {
        return Probe::Match;
    }
    // SMB2 header cut before its command.
    if id == [0xfe, b'S', b'M', b'B']
        && len >= SMB2_MIN
        && h.len() < 14
        && h.get(4).is_none_or(|&b| b == 64)
    {
        return Probe::Unsure;
    }
    Probe::No
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const PORT: Hint = Hint::client(true, true);
    const OFF: Hint = Hint::client(false, true);

    fn smb2_negotiate() -> Vec<u8> {
        let mut m = hex(
            "00 0000 6a fe534d42 4000 0000 00000000 0000 0000 00000000 00000000 0000000000000000",
        );
        m.extend([0u8; 32]);
        m.extend(hex("2400 0200 0100 0000"));
        m
    }

    #[test]
    fn smb2_matches_on_any_port() {
        assert_eq!(probe(&smb2_negotiate(), PORT), Probe::Match);
        assert_eq!(probe(&smb2_negotiate(), OFF), Probe::Match);
        assert_eq!(probe(&smb2_negotiate()[..12], OFF), Probe::Unsure);
        let mut bad = smb2_negotiate();
        bad[8] = 0x41; // StructureSize 65
        assert_eq!(probe(&bad, OFF), Probe::No);
        let mut bad = smb2_negotiate();
        bad[16] = 0x13; // no such command
        assert_eq!(probe(&bad, OFF), Probe::No);
    }

    #[test]
    fn smb1_over_netbios_matches() {
        let m = hex(
            "00 0000 85 ff534d42 72 00000000 18 5328 0000 0000000000000000 0000 0000 fffe 0000 0000 00 6200",
        );
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m[..4], PORT), Probe::Unsure);
        assert_eq!(probe(&m[..4], OFF), Probe::No);
    }

    #[test]
    fn transforms_match() {
        let mut t = hex("00 0000 a0 fd534d42");
        t.extend([0u8; 32]);
        t.extend(hex("50000000 0000 0100 1122334455667788"));
        assert_eq!(probe(&t, OFF), Probe::Match);
        t[4 + 42] = 2;
        assert_eq!(probe(&t, OFF), Probe::No);
        let c = hex("00 0000 40 fc534d42 00100000 0100 0000 00000000");
        assert_eq!(probe(&c, OFF), Probe::Match);
    }

    #[test]
    fn others_are_no() {
        for f in [
            hex("0001 0000 0006 01 03 0000 000a"),
            hex("0000 0000 0006 01 03 0000 000a"),
            hex("0300 0016 11e0 0000 0001 00c1"),
            hex("00 0000 40 ff534d41 72"),
            hex("00 0000 10 ff534d42 72"),
        ] {
            assert_eq!(probe(&f, PORT), Probe::No);
        }
    }
}
