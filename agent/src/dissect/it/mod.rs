//! Recognisers of the usual IT protocols, for the classifier (DESIGN.md, "Classification").
//!
//! Each submodule answers one question about one payload, `probe(payload, hint) -> Probe`:
//! does it parse as that protocol? They look at headers only (no allocation, no loop over
//! a whole payload where a header check suffices, a bounded scan of the first line for the
//! text protocols) and never panic on wire data. A port is a hint, not proof: on the
//! protocol's registered port the bar is a little lower (e.g. a TLS record in the middle of
//! a stream, any FTP reply code); on any other port the structure itself must convince
//! (e.g. DNS: a sane header and a fully parsed question section). [`Probe::Unsure`] means a
//! plausible prefix that is too short to tell (TCP only: a UDP datagram is whole).
//!
//! The engine calls [`probe_tcp`] and [`probe_udp`]. They try the recognisers whose
//! registered port is on the flow first (with `hint.port` set), then every other one in a
//! fixed order of specificity ([`TCP_ORDER`], [`UDP_ORDER`]), and answer the first match;
//! `Unsure` if none matched but one was unsure; else `No`.
//!
//! Registered ports (the hint; the table is [`Rec::registered`]):
//!
//! | recogniser | TCP | UDP | id |
//! | --- | --- | --- | --- |
//! | [`dns`] | 53, 5355 (2-byte length prefix) | 53, 5353, 5355 | `dns`; `mdns` when 5353 is on the flow, `llmnr` when 5355 is, `netbios` when 137 is |
//! | [`netbios`] | 139 (session service) | 137 (name service), 138 (datagram service) | `netbios` |
//! | [`http`] | 80, 8000, 8080 (recognised on any port) | — | `http` |
//! | [`tls`] | 443, 8443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 6514, 8883, 9443 | — | `tls` |
//! | [`ssh`] | 22 (banner recognised on any port) | — | `ssh` |
//! | [`ntp`] | — | 123 | `ntp` |
//! | [`snmp`] | — | 161, 162 | `snmp` |
//! | [`dhcp`] | — | 67, 68 | `dhcp` |
//! | [`smb`] | 445, 139 | — | `smb` |
//! | [`telnet`] | 23 | — | `telnet` |
//! | [`ftp`] | 21 | — | `ftp` |
//! | [`syslog`] | — | 514 | `syslog` |
//!
//! The ICS protocols (Modbus, DNP3, IEC-104, TPKT/S7/MMS, RDP, …) are recognised by other
//! modules; these recognisers are built so that such frames are `No` here on any port.

pub mod dhcp;
pub mod dns;
pub mod ftp;
pub mod http;
pub mod netbios;
pub mod ntp;
pub mod smb;
pub mod snmp;
pub mod ssh;
pub mod syslog;
pub mod telnet;
pub mod tls;

use super::{Hint, Probe};
use crate::proto::Proto;

/// What the IT recognisers say of a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItProbe {
    /// The payload parses as this protocol.
    Match(Proto),
    /// No recogniser matched, but at least one saw a plausible prefix too short to tell.
    Unsure,
    /// No IT protocol of ours.
    No,
}

/// The recognisers, one per module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rec {
    Dns,
    Netbios,
    Http,
    Tls,
    Ssh,
    Ntp,
    Snmp,
    Dhcp,
    Smb,
    Telnet,
    Ftp,
    Syslog,
}

/// TCP recognisers, most specific first: binary magic and length-checked headers before
/// text lines, text lines with a fixed keyword before looser ones.
pub const TCP_ORDER: [Rec; 8] = [
    Rec::Tls,
    Rec::Ssh,
    Rec::Smb,
    Rec::Http,
    Rec::Ftp,
    Rec::Telnet,
    Rec::Netbios,
    Rec::Dns,
];

/// UDP recognisers, most specific first (DHCP's magic cookie, SNMP's exact BER lengths,
/// NetBIOS' encoded names before the plain DNS format; NTP and syslog last).
pub const UDP_ORDER: [Rec; 6] = [
    Rec::Dhcp,
    Rec::Snmp,
    Rec::Netbios,
    Rec::Dns,
    Rec::Ntp,
    Rec::Syslog,
];

impl Rec {
    /// Is `port` a registered port of this recogniser on this transport?
    pub const fn registered(self, port: u16, tcp: bool) -> bool {
        match (self, tcp) {
            (Rec::Dns, true) => matches!(port, 53 | 5355),
            (Rec::Dns, false) => matches!(port, 53 | 5353 | 5355),
            (Rec::Netbios, true) => port == 139,
            (Rec::Netbios, false) => matches!(port, 137 | 138),
            (Rec::Http, true) => matches!(port, 80 | 8000 | 8080),
            (Rec::Tls, true) => matches!(
                port,
                443 | 465
                    | 563
                    | 636
                    | 853
                    | 989
                    | 990
                    | 992
                    | 993
                    | 994
                    | 995
                    | 5061
                    | 6514
                    | 8443
                    | 8883
                    | 9443
            ),
            (Rec::Ssh, true) => port == 22,
            (Rec::Ntp, false) => port == 123,
            (Rec::Snmp, false) => matches!(port, 161 | 162),
            (Rec::Dhcp, false) => matches!(port, 67 | 68),
            (Rec::Smb, true) => matches!(port, 445 | 139),
            (Rec::Telnet, true) => port == 23,
            (Rec::Ftp, true) => port == 21,
            (Rec::Syslog, false) => port == 514,
            _ => false,
        }
    }

    /// Runs this recogniser.
    pub fn probe(self, payload: &[u8], hint: Hint) -> Probe {
        match self {
            Rec::Dns => dns::probe(payload, hint),
            Rec::Netbios => netbios::probe(payload, hint),
            Rec::Http => http::probe(payload, hint),
            Rec::Tls => tls::probe(payload, hint),
            Rec::Ssh => ssh::probe(payload, hint),
            Rec::Ntp => ntp::probe(payload, hint),
            Rec::Snmp => snmp::probe(payload, hint),
            Rec::Dhcp => dhcp::probe(payload, hint),
            Rec::Smb => smb::probe(payload, hint),
            Rec::Telnet => telnet::probe(payload, hint),
            Rec::Ftp => ftp::probe(payload, hint),
            Rec::Syslog => syslog::probe(payload, hint),
        }
    }

    /// The protocol id of a match on a flow between ports `a` and `b`. The DNS format is
    /// shared by mDNS, LLMNR and the NetBIOS name service, told apart by their ports only
    /// (RFC 6762 §3, RFC 4795 §2, RFC 1002 §4.2): a DNS-format message on UDP 137 that
    /// the stricter NBNS check refused (an unusual name, say) is still NetBIOS.
    pub const fn proto(self, a: u16, b: u16) -> Proto {
        match self {
            Rec::Dns if a == 5353 || b == 5353 => Proto::Mdns,
            Rec::Dns if a == 5355 || b == 5355 => Proto::Llmnr,
            Rec::Dns if a == 137 || b == 137 => Proto::Netbios,
            Rec::Dns => Proto::Dns,
            Rec::Netbios => Proto::Netbios,
            Rec::Http => Proto::Http,
            Rec::Tls => Proto::Tls,
            Rec::Ssh => Proto::Ssh,
            Rec::Ntp => Proto::Ntp,
            Rec::Snmp => Proto::Snmp,
            Rec::Dhcp => Proto::Dhcp,
            Rec::Smb => Proto::Smb,
            Rec::Telnet => Proto::Telnet,
            Rec::Ftp => Proto::Ftp,
            Rec::Syslog => Proto::Syslog,
        }
    }
}

/// Tries the recognisers of `order` on a flow between `server` (or, for UDP, destination)
/// and `other`: those registered on either port first, with `hint.port`, then the rest.
/// `from_client` says, given whether the recogniser's port is `server`, whether the
/// payload comes from the client.
fn run(
    payload: &[u8],
    order: &[Rec],
    tcp: bool,
    server: u16,
    other: u16,
    from_client: impl Fn(bool) -> bool,
) -> ItProbe {
    if payload.is_empty() {
        return ItProbe::No;
    }
    let mut unsure = false;
    for hinted in [true, false] {
        for &rec in order {
            let on_server = rec.registered(server, tcp);
            let port = on_server || rec.registered(other, tcp);
            if port != hinted {
                continue;
            }
            let hint = Hint {
                port,
                tcp,
                from_client: from_client(on_server || !port),
            };
            match rec.probe(payload, hint) {
                Probe::Match => return ItProbe::Match(rec.proto(server, other)),
                Probe::Unsure => unsure = true,
                Probe::No => {}
            }
        }
    }
    if unsure { ItProbe::Unsure } else { ItProbe::No }
}

/// A TCP payload of a flow whose client port is `cport` and server port `sport`.
pub fn probe_tcp(payload: &[u8], cport: u16, sport: u16, from_client: bool) -> ItProbe {
    run(payload, &TCP_ORDER, true, sport, cport, |_| from_client)
}

/// A UDP datagram from `src_port` to `dst_port`. The side sending to the recogniser's
/// registered port (or, off its ports, the sender) is taken as the client.
pub fn probe_udp(payload: &[u8], src_port: u16, dst_port: u16) -> ItProbe {
    run(
        payload,
        &UDP_ORDER,
        false,
        dst_port,
        src_port,
        |to_registered| to_registered,
    )
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the recognisers.

/// Why a structural parse stopped before reaching a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The bytes break the protocol's rules.
    Bad,
    /// The payload ended first.
    Short,
}

type Parsed<T = ()> = Result<T, Stop>;

/// A value read past the end of the payload is [`Stop::Short`].
fn need<T>(v: Option<T>) -> Parsed<T> {
    v.ok_or(Stop::Short)
}

/// A rule of the protocol: [`Stop::Bad`] when broken.
fn check(rule: bool) -> Parsed {
    if rule { Ok(()) } else { Err(Stop::Bad) }
}

/// How a payload compares with a literal it should start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// The payload starts with the whole literal.
    Full,
    /// The payload is shorter than the literal and is a prefix of it.
    Partial,
    /// Neither.
    No,
}

fn prefix(payload: &[u8], lit: &[u8]) -> Prefix {
    if payload.starts_with(lit) {
        Prefix::Full
    } else if !payload.is_empty() && lit.starts_with(payload) {
        Prefix::Partial
    } else {
        Prefix::No
    }
}

/// Printable US-ASCII, space included.
fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// Big-endian u32 at `i`, 0 past the end (callers check lengths first).
fn be32(buf: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([
        super::byte(buf, i),
        super::byte(buf, i + 1),
        super::byte(buf, i + 2),
        super::byte(buf, i + 3),
    ])
}

/// Big-endian 24-bit value at `i`, 0 past the end.
fn be24(buf: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([
        0,
        super::byte(buf, i),
        super::byte(buf, i + 1),
        super::byte(buf, i + 2),
    ])
}

/// The end of the first text line: the index of its `\n` (or of the `\r` before it) in
/// the first `max` bytes. `Err(Short)` if the payload ends first, `Err(Bad)` if `max`
/// bytes hold no line end or a byte `ok` refuses comes first.
fn line_end(payload: &[u8], from: usize, max: usize, ok: impl Fn(u8) -> bool) -> Parsed<usize> {
    let window = payload.get(from..).unwrap_or(&[]);
    for (i, &b) in window.iter().take(max).enumerate() {
        match b {
            b'\r' => {
                return match window.get(i + 1) {
                    Some(b'\n') => Ok(from + i),
                    Some(_) => Err(Stop::Bad),
                    None => Err(Stop::Short),
                };
            }
            b'\n' => return Ok(from + i),
            _ if ok(b) => {}
            _ => return Err(Stop::Bad),
        }
    }
    if window.len() >= max {
        Err(Stop::Bad)
    } else {
        Err(Stop::Short)
    }
}

#[cfg(test)]
mod tests;
