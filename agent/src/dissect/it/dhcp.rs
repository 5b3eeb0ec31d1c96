//! DHCPv4 / BOOTP recogniser, UDP only.
//!
//! Spec: RFC 2131 §2 (message format: op 1 BOOTREQUEST / 2 BOOTREPLY, htype, hlen, hops,
//! xid, secs, flags with only the broadcast bit defined and the rest "MUST be zero",
//! ciaddr/yiaddr/siaddr/giaddr, chaddr 16, sname 64, file 128, then options), §3 (the
//! options field starts with the magic cookie 99.130.83.99); RFC 951 §3 (BOOTP);
//! RFC 2132 §2 (options: pad 0, end 255) and §9.6 (option 53, DHCP message type 1–8);
//! RFC 1700 "Hardware Type" (1 = Ethernet, hlen 6).
//!
//! What convinces, on any port: op 1 or 2, htype 1, hlen 6, hops ≤ 16, the magic cookie at
//! offset 236, and a first option that is pad, end or any option whose length fits. Off
//! the registered ports also the zero flag bits and, when option 53 comes first, a known
//! message type.

use super::be32;
use crate::dissect::{Hint, Probe, be16, byte};

/// Offset of the magic cookie (RFC 2131 §2: 236 bytes of fixed fields).
const COOKIE_AT: usize = 236;
const MAGIC_COOKIE: u32 = 0x6382_5363;

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if hint.tcp || payload.len() < COOKIE_AT + 4 + 1 {
        return Probe::No;
    }
    let op = byte(payload, 0);
    let fixed = matches!(op, 1 | 2)
        && byte(payload, 1) == 1
        && byte(payload, 2) == 6
        && byte(payload, 3) <= 16
        && be32(payload, COOKIE_AT) == MAGIC_COOKIE;
    if !fixed {
        return Probe::No;
    }
    let first = byte(payload, COOKIE_AT + 4);
    let option_len = payload.get(COOKIE_AT + 5).copied();
    let first_ok = match first {
        0 | 255 => true,
        _ => option_len.is_some_and(|l| COOKIE_AT + 6 + usize::from(l) <= payload.len()),
    };
    if !first_ok {
        return Probe::No;
    }
    if !hint.port {
        // RFC 2131 §2: flags other than BROADCAST are zero.
        if be16(payload, 10) & 0x7fff != 0 {
            return Probe::No;
        }
        // RFC 2132 §9.6: option 53 is one byte, a type 1..=8 (RFC 4388 and 6926 add 10–18).
        if first == 53 && !(option_len == Some(1) && matches!(byte(payload, COOKIE_AT + 6), 1..=18))
        {
            return Probe::No;
        }
    }
    Probe::Match
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: Hint = Hint::client(true, false);
    const OFF: Hint = Hint::client(false, false);

    fn discover() -> Vec<u8> {
        let mut m = vec![0u8; 300];
        m[..4].copy_from_slice(&[1, 1, 6, 0]);
        m[4..8].copy_from_slice(&[0x39, 0x03, 0xf3, 0x26]);
        m[28..34].copy_from_slice(&[0x00, 0x05, 0x3c, 0x04, 0x8d, 0x59]);
        m[236..240].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m[240..243].copy_from_slice(&[53, 1, 1]);
        m[243] = 255;
        m
    }

    #[test]
    fn discover_matches_on_any_port() {
        assert_eq!(probe(&discover(), PORT), Probe::Match);
        assert_eq!(probe(&discover(), OFF), Probe::Match);
        // Minimal: cookie and end option.
        let mut m = discover();
        m[240] = 255;
        assert_eq!(probe(&m[..241], OFF), Probe::Match);
        assert_eq!(probe(&discover()[..241], OFF), Probe::No);
    }

    #[test]
    fn near_misses_are_no() {
        for (at, v) in [(0, 3), (1, 6), (2, 16), (3, 17), (236, 0x64), (241, 200)] {
            let mut m = discover();
            m[at] = v;
            assert_eq!(probe(&m, PORT), Probe::No, "byte {at} = {v}");
        }
        assert_eq!(probe(&discover()[..240], PORT), Probe::No);
        assert_eq!(probe(&discover(), Hint { tcp: true, ..PORT }), Probe::No);
        let mut m = discover();
        m[11] = 1;
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::No);
        let mut m = discover();
        m[242] = 77;
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::No);
    }
}
