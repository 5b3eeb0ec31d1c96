//! SSH recogniser: the identification string, or an unencrypted KEXINIT packet.
//!
//! Spec: RFC 4253 §4.2 (`SSH-protoversion-softwareversion SP comments CR LF`, at most 255
//! bytes, softwareversion printable US-ASCII without spaces), §5.1 (`SSH-1.99-` from a
//! server that also speaks the old protocol), §6 (binary packet: uint32 packet_length,
//! byte padding_length ≥ 4, payload, padding; the whole a multiple of 8 before keys are
//! agreed), §7.1 (SSH_MSG_KEXINIT = 20, a 16-byte cookie, then name-lists such as
//! `kex_algorithms`, each a uint32 length and US-ASCII names); RFC 4251 §5 (name-list).
//!
//! What convinces, on any port: `SSH-2.0-` or `SSH-1.99-` followed by at least one
//! software-version byte; a KEXINIT whose lengths agree and whose first name-list starts
//! with a lower-case letter. On port 22 also the SSH-1 banner `SSH-1.5-` and any
//! unencrypted key-exchange packet (message 20–49, lengths agreeing). A strict prefix of
//! a banner is `Unsure`. Packets after NEWKEYS are encrypted: nothing to recognise.

use super::{Prefix, be32, prefix, printable};
use crate::dissect::{Hint, Probe, byte};

/// SSH_MSG_KEXINIT (RFC 4253 §12).
const KEXINIT: u8 = 20;

/// The longest identification string (RFC 4253 §4.2).
const MAX_BANNER: usize = 255;

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return Probe::No;
    }
    let mut partial = false;
    for (lit, anywhere) in [
        (&b"SSH-2.0-"[..], true),
        (b"SSH-1.99-", true),
        (b"SSH-1.5-", false),
    ] {
        if !anywhere && !hint.port {
            continue;
        }
        match prefix(payload, lit) {
            Prefix::Full => return software_version(payload, lit.len()),
            Prefix::Partial => partial = true,
            Prefix::No => {}
        }
    }
    if partial && (hint.port || payload.len() >= 3) {
        return Probe::Unsure;
    }
    match kexinit(payload) {
        Probe::No if hint.port => kex_packet(payload),
        verdict => verdict,
    }
}

/// softwareversion: printable US-ASCII without spaces, then a space, CR or LF.
fn software_version(p: &[u8], at: usize) -> Probe {
    let rest = p.get(at..).unwrap_or(&[]);
    let n = rest
        .iter()
        .take(MAX_BANNER)
        .take_while(|&&b| b.is_ascii_graphic())
        .count();
    if n == 0 {
        return if rest.is_empty() {
            Probe::Unsure
        } else {
            Probe::No
        };
    }
    match rest.get(n) {
        None => Probe::Match,
        Some(&b) if b == b' ' || b == b'\r' || b == b'\n' => Probe::Match,
        Some(_) => Probe::No,
    }
}

/// An unencrypted SSH_MSG_KEXINIT packet (RFC 4253 §6, §7.1).
fn kexinit(p: &[u8]) -> Probe {
    if p.len() < 27 || byte(p, 5) != KEXINIT {
        return Probe::No;
    }
    let packet_length = be32(p, 0);
    let padding = u32::from(byte(p, 4));
    let first_list = be32(p, 22);
    let ok = (32..=35_000).contains(&packet_length)
        && (packet_length + 4).is_multiple_of(8)
        && padding >= 4
        && u64::from(padding) + 1 + 17 + 4 + u64::from(first_list) <= u64::from(packet_length)
        && first_list > 0
        && byte(p, 26).is_ascii_lowercase()
        && p.get(26..)
            .unwrap_or(&[])
            .iter()
            .take(first_list.min(64) as usize)
            .all(|&b| printable(b) && b != b' ');
    if ok { Probe::Match } else { Probe::No }
}

/// On port 22, any unencrypted key-exchange packet (RFC 4253 §6; message numbers 20–49
/// are "algorithm negotiation" and "key exchange method specific", RFC 4250 §4.1.2): a
/// flow whose banners were missed.
fn kex_packet(p: &[u8]) -> Probe {
    let Some(h) = p.get(..6) else {
        return Probe::No;
    };
    let packet_length = be32(h, 0);
    let padding = u32::from(byte(h, 4));
    let ok = (12..=35_000).contains(&packet_length)
        && (packet_length + 4).is_multiple_of(8)
        && padding >= 4
        && padding + 2 <= packet_length
        && (20..=49).contains(&byte(h, 5));
    if ok { Probe::Match } else { Probe::No }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const PORT: Hint = Hint::client(true, true);
    const OFF: Hint = Hint::client(false, true);

    #[test]
    fn banners_match_on_any_port() {
        for b in [
            &b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"[..],
            b"SSH-1.99-OpenSSH_3.9p1\n",
            b"SSH-2.0-dropbear_2022.83\r\n",
            b"SSH-2.0-Cisco-1.25\r\n",
            b"SSH-2.0-x",
        ] {
            assert_eq!(
                probe(b, OFF),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(probe(b"SSH-1.5-1.2.27\n", PORT), Probe::Match);
        assert_eq!(probe(b"SSH-1.5-1.2.27\n", OFF), Probe::No);
    }

    #[test]
    fn prefixes_and_near_misses() {
        assert_eq!(probe(b"SSH-2.0-", OFF), Probe::Unsure);
        assert_eq!(probe(b"SSH-", OFF), Probe::Unsure);
        assert_eq!(probe(b"SS", OFF), Probe::No);
        assert_eq!(probe(b"SS", PORT), Probe::Unsure);
        assert_eq!(probe(b"SSH-2.0- \r\n", OFF), Probe::No);
        assert_eq!(probe(b"SSH-2.0-abc\x01\r\n", OFF), Probe::No);
        assert_eq!(probe(b"SSH-3.0-x\r\n", PORT), Probe::No);
        assert_eq!(probe(b"ssh-2.0-x\r\n", PORT), Probe::No);
    }

    #[test]
    fn kexinit_matches() {
        // Start of zeek_ssh_single_conn.pcap frame 8: packet_length 604, padding 7.
        let mut k = hex("0000025c 07 14 7804f8bb207281ea50847685da516797 0000003d");
        k.extend(b"diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1");
        assert_eq!(probe(&k, OFF), Probe::Match);
        let mut bad = k.clone();
        bad[3] = 0x5d; // length not a multiple of 8
        assert_eq!(probe(&bad, OFF), Probe::No);
        let mut bad = k.clone();
        bad[4] = 3; // padding < 4
        assert_eq!(probe(&bad, OFF), Probe::No);
    }

    #[test]
    fn kex_packets_on_port_22() {
        // zeek_ssh_single_conn.pcap frame 12: SSH_MSG_KEX_DH_GEX_REQUEST.
        let m = hex("00000014 06 22 00000400 00000400 00002000 000000000000");
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::No);
        let mut bad = m.clone();
        bad[5] = 94; // SSH_MSG_CHANNEL_DATA is never sent in the clear
        assert_eq!(probe(&bad, PORT), Probe::No);
    }
}
