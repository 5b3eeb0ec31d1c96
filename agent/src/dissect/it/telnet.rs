//! Telnet recogniser: option negotiation at the start of the stream.
//!
//! Spec: RFC 854 (commands: IAC 255, DONT 254, DO 253, WONT 252, WILL 251, SB 250,
//! GA 249 … NOP 241, SE 240; "IAC WILL option" and friends), RFC 855 (option negotiation
//! and subnegotiation `IAC SB option … IAC SE`); option codes from the IANA "Telnet
//! Options" registry (0–49, 138–140, 255 EXOPL).
//!
//! What convinces: the payload starts with Telnet commands — `IAC WILL|WONT|DO|DONT
//! option` with a registered option, `IAC SB option … IAC SE`, or a two-byte command —
//! with at least two negotiations, or on port 23 one negotiation that ends the segment.
//! On port 23 a short line of text (a banner) may come before the first negotiation. A
//! payload cut inside a command is `Unsure`.

use super::printable;
use crate::dissect::{Hint, Probe, byte};

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DONT: u8 = 254;

/// Commands are looked at within this many bytes.
const WINDOW: usize = 64;

/// A registered Telnet option (IANA registry).
fn option_ok(o: u8) -> bool {
    o <= 49 || (138..=140).contains(&o) || o == 255
}

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return Probe::No;
    }
    // Two negotiations; on port 23 one is enough when the segment holds nothing else.
    let need = 2;
    let text = |b: u8| printable(b) || matches!(b, b'\r' | b'\n' | b'\t' | 0);
    let first = byte(payload, 0);
    if first != IAC && !(hint.port && text(first)) {
        return Probe::No;
    }
    let start = if first != IAC {
        // A banner before the negotiation: text up to the first IAC.
        match payload.iter().take(WINDOW).position(|&b| b == IAC) {
            Some(i) if payload.iter().take(i).all(|&b| text(b)) => i,
            _ => return Probe::No,
        }
    } else {
        0
    };
    let mut i = start;
    let mut negotiations = 0;
    while i < start + WINDOW && i < payload.len() {
        if byte(payload, i) != IAC {
            break;
        }
        let Some(&cmd) = payload.get(i + 1) else {
            return short(negotiations, need, hint.port);
        };
        match cmd {
            WILL..=DONT => {
                let Some(&opt) = payload.get(i + 2) else {
                    return short(negotiations, need, hint.port);
                };
                if !option_ok(opt) {
                    return Probe::No;
                }
                negotiations += 1;
                i += 3;
            }
            SB => {
                let Some(&opt) = payload.get(i + 2) else {
                    return short(negotiations, need, hint.port);
                };
                if !option_ok(opt) {
                    return Probe::No;
                }
                // The subnegotiation ends with IAC SE.
                let body = payload.get(i + 3..).unwrap_or(&[]);
                let Some(end) = body.windows(2).take(WINDOW).position(|w| w == [IAC, SE]) else {
                    return if body.len() < WINDOW {
                        short(negotiations, need, hint.port)
                    } else {
                        Probe::No
                    };
                };
                negotiations += 1;
                i += 3 + end + 2;
            }
            // NOP, Data Mark, Break, Interrupt, Abort Output, Are You There, Erase
            // Character, Erase Line, Go Ahead.
            241..=249 => i += 2,
            _ => return Probe::No,
        }
        if negotiations >= need {
            return Probe::Match;
        }
    }
    if hint.port && negotiations == 1 && i == payload.len() {
        Probe::Match
    } else {
        Probe::No
    }
}

/// The payload ended inside a command.
fn short(negotiations: usize, need: usize, port: bool) -> Probe {
    if port || negotiations + 1 >= need {
        Probe::Unsure
    } else {
        Probe::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    const PORT: Hint = Hint::client(true, true);
    const OFF: Hint = Hint::client(false, true);

    #[test]
    fn negotiation_matches() {
        // A server's opening: WILL ECHO, WILL SGA, DO TTYPE, DO NAWS.
        let m = hex("fffb01 fffb03 fffd18 fffd1f");
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::Match);
        assert_eq!(probe(&m[..3], PORT), Probe::Match);
        // One negotiation followed by something else is not enough.
        assert_eq!(probe(&hex("fffb01 41424344"), PORT), Probe::No);
        assert_eq!(probe(&m[..3], OFF), Probe::No);
        assert_eq!(probe(&m[..5], OFF), Probe::Unsure);
        assert_eq!(probe(&m[..1], PORT), Probe::Unsure);
        // Subnegotiation: terminal type IS "XTERM".
        let sb = hex("fffa1800 5854 45524d fff0 fffc01");
        assert_eq!(probe(&sb, OFF), Probe::Match);
    }

    #[test]
    fn banner_then_negotiation_on_port_23() {
        let mut m = b"\r\nWelcome\r\n".to_vec();
        m.extend(hex("fffb01"));
        assert_eq!(probe(&m, PORT), Probe::Match);
        assert_eq!(probe(&m, OFF), Probe::No);
    }

    #[test]
    fn near_misses_are_no() {
        assert_eq!(probe(&hex("fffb99 fffb01"), PORT), Probe::No);
        assert_eq!(probe(&hex("ff00 fffb01"), PORT), Probe::No);
        assert_eq!(probe(b"login: ", PORT), Probe::No);
        assert_eq!(
            probe(&hex("fffb01 fffb03"), Hint { tcp: false, ..OFF }),
            Probe::No
        );
    }
}
