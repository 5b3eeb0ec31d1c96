//! L2–L4 decoding: link types (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback),
//! VLAN/QinQ and PPPoE sessions looked through, then IPv4/IPv6 (with extension headers),
//! ARP, ICMP/ICMPv6, IGMP, TCP and UDP by etherparse's lax slicing, which keeps what it
//! could read of a truncated packet.
//!
//! The result borrows the frame and allocates nothing. A frame that cannot be decoded
//! up to its transport header is [`L3::Malformed`] with the [`Layer`] that failed, which
//! becomes the `layer` label of `infrawatch_decode_errors_total`.

use crate::capture::LinkType;
use crate::proto::Proto;
use etherparse::{
    Icmpv4Slice, Icmpv6Slice, IgmpSlice, LaxIpv4Slice, LaxIpv6Slice, TcpSlice, UdpSlice,
};

/// The layer at which decoding failed (a bounded label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Layer {
    Link,
    Vlan,
    Pppoe,
    Arp,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Igmp,
}

impl Layer {
    pub const ALL: &'static [Layer] = &[
        Layer::Link,
        Layer::Vlan,
        Layer::Pppoe,
        Layer::Arp,
        Layer::Ipv4,
        Layer::Ipv6,
        Layer::Tcp,
        Layer::Udp,
        Layer::Icmp,
        Layer::Icmpv6,
        Layer::Igmp,
    ];
    pub const COUNT: usize = Layer::ALL.len();
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Vlan => "vlan",
            Layer::Pppoe => "pppoe",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::Icmpv6 => "icmpv6",
            Layer::Igmp => "igmp",
        }
    }
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// An IP address in 16 bytes: IPv6 as is, IPv4 as `::ffff:a.b.c.d`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Addr(pub [u8; 16]);

impl std::hash::Hash for Addr {
    /// Two words (the derive would hash a length-prefixed slice).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (lo, hi) = self.words();
        h.write_u64(lo);
        h.write_u64(hi);
    }
}

impl Addr {
    /// The address as two native-endian words.
    #[inline]
    pub fn words(&self) -> (u64, u64) {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(self.0.get(..8).unwrap_or(&[0; 8]));
        hi.copy_from_slice(self.0.get(8..).unwrap_or(&[0; 8]));
        (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
    }

    pub fn v4(a: [u8; 4]) -> Addr {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&a);
        Addr(b)
    }
    pub fn v6(a: [u8; 16]) -> Addr {
        Addr(a)
    }
    pub fn is_v4(&self) -> bool {
        self.0[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }
    pub fn to_ip(&self) -> std::net::IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        }
    }
    pub fn from_ip(ip: std::net::IpAddr) -> Addr {
        match ip {
            std::net::IpAddr::V4(v4) => Addr::v4(v4.octets()),
            std::net::IpAddr::V6(v6) => Addr::v6(v6.octets()),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_ip())
    }
}

/// A MAC address.
pub type Mac = [u8; 6];

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// TCP flags in the header's bit order (FIN = 0x01 … CWR = 0x80).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// The transport part of an IP packet.
#[derive(Clone, Copy, Debug)]
pub enum L4<'a> {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        flags: u8,
        payload: &'a [u8],
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: &'a [u8],
    },
    Icmp {
        icmp_type: u8,
        code: u8,
        payload: &'a [u8],
    },
    Icmpv6 {
        icmp_type: u8,
        code: u8,
        /// The ICMPv6 message body after the first 8 bytes.
        payload: &'a [u8],
    },
    Igmp,
    /// Any other IP protocol number.
    Other(u8),
    /// A non-first IP fragment: no transport header.
    Fragment,
}

/// An IP packet.
#[derive(Clone, Copy, Debug)]
pub struct Ip<'a> {
    pub src: Addr,
    pub dst: Addr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IP protocol number (the last next-header for IPv6).
    pub proto: u8,
    /// Part of a fragmented datagram (first or later fragment).
    pub fragmented: bool,
    /// IPv4 identification or IPv6 fragment identification, for fragment tracking.
    pub frag_id: u32,
    pub l4: L4<'a>,
}

/// An ARP packet (Ethernet/IPv4 only; others are `other-l2`-like but counted as arp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: [u8; 4],
    pub target_mac: Mac,
    pub target_ip: [u8; 4],
}

/// What a frame carries above the link layer.
#[derive(Clone, Copy, Debug)]
pub enum L3<'a> {
    Ip(Ip<'a>),
    Arp(Option<Arp>),
    /// A link-layer protocol with its payload (after the EtherType).
    Link(Proto, u16, &'a [u8]),
    Malformed(Layer),
}

/// A decoded frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Source and destination MAC, when the link type has them (Ethernet).
    pub src_mac: Option<Mac>,
    pub dst_mac: Option<Mac>,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    /// The frame's HSR tag or PRP trailer (IEC 62439-3), when it has one.
    pub redundancy: Option<Redundancy>,
    pub l3: L3<'a>,
}

/// Which redundancy protocol tagged a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedundancyKind {
    /// High-availability Seamless Redundancy: a tag after the MAC addresses (0x892F).
    Hsr,
    /// Parallel Redundancy Protocol: a 6-octet trailer ending in 0x88FB.
    Prp,
}

/// The redundancy identity of a frame: the same sequence number from the same source
/// on LAN A and LAN B (or both ring directions) is one frame sent twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redundancy {
    pub kind: RedundancyKind,
    pub seq: u16,
    /// PRP: 0xA or 0xB; HSR: the path id.
    pub lan: u8,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_IPV6: u16 = 0x86DD;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_PPPOE_DISCOVERY: u16 = 0x8863;
const ETH_LLDP: u16 = 0x88CC;
const ETH_GOOSE: u16 = 0x88B8;
const ETH_SV: u16 = 0x88BA;
const ETH_PROFINET: u16 = 0x8892;
const ETH_HSR: u16 = 0x892F;
const PRP_SUFFIX: u16 = 0x88FB;
const PRP_TRAILER: usize = 6;

/// A PRP redundancy control trailer at the end of an Ethernet frame (IEC 62439-3 4.2.7):
/// sequence number, LAN id (0xA / 0xB) with the LSDU size, and the suffix 0x88FB. The
/// size must agree with the frame (the LSDU runs from after the source MAC, or after a
/// VLAN tag, to the trailer's end), so a payload that merely ends in 0x88FB is not taken
/// for a trailer.
fn prp_trailer(frame: &[u8]) -> Option<Redundancy> {
    let n = frame.len();
    let t = frame.get(n.checked_sub(PRP_TRAILER)?..)?;
    if be16(t, 4)? != PRP_SUFFIX {
        return None;
    }
    let lan = t.get(2)? >> 4;
    let size = usize::from(be16(t, 2)? & 0x0fff);
    if !(lan == 0xA || lan == 0xB) || !(size == n.checked_sub(12)? || size == n.checked_sub(16)?) {
        return None;
    }
    Some(Redundancy {
        kind: RedundancyKind::Prp,
        seq: be16(t, 0)?,
        lan,
    })
}

fn mac_at(b: &[u8], at: usize) -> Option<Mac> {
    b.get(at..at + 6).and_then(|s| s.try_into().ok())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decodes one frame of the given link type.
pub fn decode(link: LinkType, data: &[u8]) -> Frame<'_> {
    let mut f = Frame {
        src_mac: None,
        dst_mac: None,
        vlan: 0,
        redundancy: None,
        l3: L3::Malformed(Layer::Link),
    };
    match link {
        LinkType::Ethernet => {
            let (Some(dst), Some(src), Some(ethertype)) =
                (mac_at(data, 0), mac_at(data, 6), be16(data, 12))
            else {
                return f;
            };
            f.dst_mac = Some(dst);
            f.src_mac = Some(src);
            // A PRP frame is decoded without its trailer.
            f.redundancy = prp_trailer(data);
            let end = data.len()
                - if f.redundancy.is_some() {
                    PRP_TRAILER
                } else {
                    0
                };
            let payload = data.get(14..end).unwrap_or(&[]);
            if ethertype <= 1500 {
                // IEEE 802.3 length field: LLC follows. STP uses DSAP/SSAP 0x42.
                f.l3 = match (payload.first(), payload.get(1)) {
                    (Some(0x42), Some(0x42)) => L3::Link(Proto::Stp, ethertype, payload),
                    _ => L3::Link(Proto::OtherL2, ethertype, payload),
                };
                return f;
            }
            f.l3 = ether(&mut f.vlan, &mut f.redundancy, ethertype, payload, 0);
        }
        LinkType::LinuxSll => {
            // 16-byte header: packet type, ARPHRD, address length, 8-byte address, protocol.
            let (Some(hatype), Some(proto)) = (be16(data, 2), be16(data, 14)) else {
                return f;
            };
            if hatype == 1 && data.get(4..6) == Some(&[0, 6]) {
                f.src_mac = mac_at(data, 6);
            }
            f.l3 = ether(
                &mut f.vlan,
                &mut f.redundancy,
                proto,
                data.get(16..).unwrap_or(&[]),
                0,
            );
        }
        LinkType::LinuxSll2 => {
            // 20-byte header: protocol, reserved, ifindex, ARPHRD, packet type, addr len, addr.
            let (Some(proto), Some(hatype)) = (be16(data, 0), be16(data, 8)) else {
                return f;
            };
            if data.len() < 20 {
                return f;
            }
            if hatype == 1 && data.get(11) == Some(&6) {
                f.src_mac = mac_at(data, 12);
            }
            f.l3 = ether(
                &mut f.vlan,
                &mut f.redundancy,
                proto,
                data.get(20..).unwrap_or(&[]),
                0,
            );
        }
        LinkType::RawIp => f.l3 = raw_ip(data),
        LinkType::Ipv4 => f.l3 = ip(ETH_IPV4, data),
        LinkType::Ipv6 => f.l3 = ip(ETH_IPV6, data),
        LinkType::Null | LinkType::Loop => {
            let Some(fam) = data.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
                return f;
            };
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(fam)
            } else {
                // Host byte order of the capturing machine: accept either.
                let le = u32::from_le_bytes(fam);
                if le <= 0xffff {
                    le
                } else {
                    u32::from_be_bytes(fam)
                }
            };
            let rest = data.get(4..).unwrap_or(&[]);
            f.l3 = match family {
                2 => ip(ETH_IPV4, rest),
                // AF_INET6 differs by BSD: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
                24 | 28 | 30 | 10 => ip(ETH_IPV6, rest),
                _ => L3::Link(Proto::OtherL2, 0, rest),
            };
        }
    }
    f
}

fn raw_ip(data: &[u8]) -> L3<'_> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ip(ETH_IPV4, data),
        Some(6) => ip(ETH_IPV6, data),
        _ => L3::Malformed(Layer::Ipv4),
    }
}

/// Decodes what follows an EtherType, looking through VLAN tags and PPPoE.
fn ether<'a>(
    vlan: &mut u16,
    red: &mut Option<Redundancy>,
    ethertype: u16,
    payload: &'a [u8],
    depth: u8,
) -> L3<'a> {
    match ethertype {
        ETH_IPV4 | ETH_IPV6 => ip(ethertype, payload),
        ETH_ARP => L3::Arp(arp(payload)),
        ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
            if depth >= 4 {
                return L3::Malformed(Layer::Vlan);
            }
            let (Some(tci), Some(inner)) = (be16(payload, 0), be16(payload, 2)) else {
                return L3::Malformed(Layer::Vlan);
            };
            if *vlan == 0 {
                *vlan = tci & 0x0fff;
            }
            let rest = payload.get(4..).unwrap_or(&[]);
            if inner <= 1500 {
                return match (rest.first(), rest.get(1)) {
                    (Some(0x42), Some(0x42)) => L3::Link(Proto::Stp, inner, rest),
                    _ => L3::Link(Proto::OtherL2, inner, rest),
                };
            }
            ether(vlan, red, inner, rest, depth + 1)
        }
        ETH_PPPOE_SESSION => {
            // RFC 2516: ver/type 0x11, code 0, session id, length; then the PPP protocol.
            let (Some(0x11), Some(0), Some(len), Some(ppp)) = (
                payload.first(),
                payload.get(1),
                be16(payload, 4),
                be16(payload, 6),
            ) else {
                return L3::Malformed(Layer::Pppoe);
            };
            let body = payload.get(8..).unwrap_or(&[]);
            let body = body
                .get(..usize::from(len).saturating_sub(2))
                .unwrap_or(body);
            match ppp {
                0x0021 => ip(ETH_IPV4, body),
                0x0057 => ip(ETH_IPV6, body),
                _ => L3::Link(Proto::OtherL2, ethertype, payload),
            }
        }
        ETH_PPPOE_DISCOVERY => L3::Link(Proto::OtherL2, ethertype, payload),
        ETH_HSR => {
            // IEC 62439-3 5.2: path id and LSDU size, sequence number, then the
            // encapsulated EtherType.
            if depth >= 4 {
                return L3::Malformed(Layer::Link);
            }
            let (Some(path_size), Some(seq), Some(inner)) =
                (be16(payload, 0), be16(payload, 2), be16(payload, 4))
            else {
                return L3::Malformed(Layer::Link);
            };
            *red = Some(Redundancy {
                kind: RedundancyKind::Hsr,
                seq,
                lan: (path_size >> 12) as u8,
            });
            let rest = payload.get(6..).unwrap_or(&[]);
            if inner <= 1500 {
                return L3::Link(Proto::OtherL2, inner, rest);
            }
            ether(vlan, red, inner, rest, depth + 1)
        }
        ETH_LLDP => L3::Link(Proto::Lldp, ethertype, payload),
        ETH_GOOSE => L3::Link(Proto::Goose, ethertype, payload),
        ETH_SV => L3::Link(Proto::Sv, ethertype, payload),
        ETH_PROFINET => L3::Link(Proto::Profinet, ethertype, payload),
        _ => L3::Link(Proto::OtherL2, ethertype, payload),
    }
}

fn arp(p: &[u8]) -> Option<Arp> {
    // Ethernet (1) / IPv4 (0x0800), hlen 6, plen 4.
    if be16(p, 0)? != 1 || be16(p, 2)? != ETH_IPV4 || p.get(4..6)? != [6, 4] {
        return None;
    }
    Some(Arp {
        op: be16(p, 6)?,
        sender_mac: mac_at(p, 8)?,
        sender_ip: p.get(14..18)?.try_into().ok()?,
        target_mac: mac_at(p, 18)?,
        target_ip: p.get(24..28)?.try_into().ok()?,
    })
}

/// IPv4/IPv6 and the transport header, by etherparse.
fn ip(ethertype: u16, data: &[u8]) -> L3<'_> {
    // The network and transport slices are taken one by one (etherparse's lax slices)
    // rather than through `LaxSlicedPacket`, which builds the whole layered view and
    // costs several times more per packet.
    let (ip_layer, src, dst, ttl, frag_offset_nonzero, frag_id, fragmented, payload) =
        if ethertype == ETH_IPV4 {
            let Ok((v4, auth_err)) = LaxIpv4Slice::from_slice(data) else {
                return L3::Malformed(Layer::Ipv4);
            };
            if auth_err.is_some() {
                return L3::Malformed(Layer::Ipv4);
            }
            let h = v4.header();
            (
                Layer::Ipv4,
                Addr::v4(h.source()),
                Addr::v4(h.destination()),
                h.ttl(),
                h.fragments_offset().value() != 0,
                u32::from(h.identification()),
                v4.is_payload_fragmented(),
                v4.payload().clone(),
            )
        } else {
            let Ok((v6, ext_err)) = LaxIpv6Slice::from_slice(data) else {
                return L3::Malformed(Layer::Ipv6);
            };
            if ext_err.is_some() {
                return L3::Malformed(Layer::Ipv6);
            }
            let h = v6.header();
            // Read the fragment header ourselves: etherparse 0.21's extension iterator
            // reads past the end of a truncated header chain (found by our fuzzer).
            let (nonzero, id) = ipv6_fragment(data).unwrap_or((false, 0));
            (
                Layer::Ipv6,
                Addr::v6(h.source()),
                Addr::v6(h.destination()),
                h.hop_limit(),
                nonzero,
                id,
                v6.is_payload_fragmented(),
                v6.payload().clone(),
            )
        };
    let proto = payload.ip_number.0;
    let mut out = Ip {
        src,
        dst,
        ttl,
        proto,
        fragmented,
        frag_id,
        l4: L4::Other(proto),
    };
    if fragmented {
        out.l4 = if frag_offset_nonzero {
            L4::Fragment
        } else {
            // A first fragment carries the transport header but not the whole payload.
            first_fragment_transport(proto, payload.payload).unwrap_or(L4::Other(proto))
        };
        return L3::Ip(out);
    }
    let p = payload.payload;
    out.l4 = match proto {
        6 => match TcpSlice::from_slice(p) {
            Ok(t) => L4::Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                flags: t.header_slice().get(13).copied().unwrap_or(0),
                payload: t.payload(),
            },
            Err(_) => return L3::Malformed(Layer::Tcp),
        },
        17 => match UdpSlice::from_slice_lax(p) {
            Ok(u) => L4::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
                payload: u.payload(),
            },
            Err(_) => return L3::Malformed(Layer::Udp),
        },
        1 => match Icmpv4Slice::from_slice(p) {
            Ok(i) => L4::Icmp {
                icmp_type: i.type_u8(),
                code: i.code_u8(),
                payload: i.payload(),
            },
            Err(_) => return L3::Malformed(Layer::Icmp),
        },
        58 => match Icmpv6Slice::from_slice(p) {
            Ok(i) => L4::Icmpv6 {
                icmp_type: i.type_u8(),
                code: i.code_u8(),
                payload: i.payload(),
            },
            Err(_) => return L3::Malformed(Layer::Icmpv6),
        },
        2 => match IgmpSlice::from_slice(p) {
            Ok(_) => L4::Igmp,
            Err(_) => return L3::Malformed(Layer::Igmp),
        },
        _ => L4::Other(proto),
    };
    let _ = ip_layer;
    L3::Ip(out)
}

/// The fragment header of an IPv6 packet, if any: (offset is non-zero, identification).
/// Walks the extension header chain (RFC 8200 section 4) with bounds checks.
fn ipv6_fragment(packet: &[u8]) -> Option<(bool, u32)> {
    let mut next = *packet.get(6)?;
    let mut at = 40usize;
    for _ in 0..8 {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units after 8.
            0 | 43 | 60 => {
                next = *packet.get(at)?;
                at = at.checked_add((usize::from(*packet.get(at + 1)?) + 1) * 8)?;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                next = *packet.get(at)?;
                at = at.checked_add((usize::from(*packet.get(at + 1)?) + 2) * 4)?;
            }
            44 => {
                let off = be16(packet, at + 2)? >> 3;
                let id = u32::from_be_bytes(packet.get(at + 4..at + 8)?.try_into().ok()?);
                return Some((off != 0, id));
            }
            _ => return None,
        }
    }
    None
}

/// etherparse leaves the transport of a fragmented datagram undecoded; the first
/// fragment still carries the TCP/UDP header, so read the ports from it.
fn first_fragment_transport(proto: u8, p: &[u8]) -> Option<L4<'_>> {
    match proto {
        6 => {
            let off = usize::from(p.get(12)? >> 4) * 4;
            Some(L4::Tcp {
                sport: be16(p, 0)?,
                dport: be16(p, 2)?,
                seq: u32::from_be_bytes(p.get(4..8)?.try_into().ok()?),
                flags: *p.get(13)?,
                payload: p.get(off..).unwrap_or(&[]),
            })
        }
        17 => Some(L4::Udp {
            sport: be16(p, 0)?,
            dport: be16(p, 2)?,
            payload: p.get(8..).unwrap_or(&[]),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    fn eth(ethertype: &str, rest: &str) -> Vec<u8> {
        hex(&format!("020000000001 020000000002 {ethertype} {rest}"))
    }

    const IPV4_TCP_502: &str = "45000034 0001 0000 40 06 0000 0a000001 0a000002  \
                                c000 01f6 00000001 00000000 5018 2000 0000 0000 \
                                0001 0000 0006 01 03 0000 0001";

    #[test]
    fn ethernet_ipv4_tcp() {
        let b = eth("0800", IPV4_TCP_502);
        let f = decode(LinkType::Ethernet, &b);
        let L3::Ip(ip) = f.l3 else {
            panic!("{:?}", f.l3)
        };
        assert_eq!(ip.src.to_string(), "10.0.0.1");
        assert_eq!(ip.ttl, 64);
        let L4::Tcp {
            sport,
            dport,
            payload,
            flags,
            ..
        } = ip.l4
        else {
            panic!()
        };
        assert_eq!(
            (sport, dport, payload.len(), flags),
            (0xc000, 502, 12, 0x18)
        );
    }

    #[test]
    fn qinq_and_pppoe_are_looked_through() {
        let inner = format!(
            "8864 1100 0001 {:04x} 0021 {IPV4_TCP_502}",
            IPV4_TCP_502.split_whitespace().collect::<String>().len() / 2 + 2
        );
        let b = eth("88a8", &format!("0064 8100 00c8 {inner}"));
        let f = decode(LinkType::Ethernet, &b);
        assert_eq!(f.vlan, 100);
        assert!(
            matches!(
                f.l3,
                L3::Ip(Ip {
                    l4: L4::Tcp { dport: 502, .. },
                    ..
                })
            ),
            "{:?}",
            f.l3
        );
    }

    #[test]
    fn link_layer_protocols_and_stp() {
        assert!(matches!(
            decode(LinkType::Ethernet, &eth("88cc", "0000")).l3,
            L3::Link(Proto::Lldp, ..)
        ));
        assert!(matches!(
            decode(LinkType::Ethernet, &eth("88b8", "0000")).l3,
            L3::Link(Proto::Goose, ..)
        ));
        assert!(matches!(
            decode(LinkType::Ethernet, &eth("0026", "424203000000")).l3,
            L3::Link(Proto::Stp, ..)
        ));
        assert!(matches!(
            decode(LinkType::Ethernet, &eth("9999", "00")).l3,
            L3::Link(Proto::OtherL2, ..)
        ));
    }

    #[test]
    fn arp_fields() {
        let b = eth(
            "0806",
            "0001 0800 06 04 0001 020000000002 0a000001 000000000000 0a000002",
        );
        let f = decode(LinkType::Ethernet, &b);
        let L3::Arp(Some(a)) = f.l3 else { panic!() };
        assert_eq!(
            (a.op, a.sender_ip, a.target_ip),
            (1, [10, 0, 0, 1], [10, 0, 0, 2])
        );
    }

    #[test]
    fn truncated_headers_are_malformed_by_layer() {
        assert!(matches!(
            decode(LinkType::Ethernet, &hex("0200")).l3,
            L3::Malformed(Layer::Link)
        ));
        assert!(matches!(
            decode(LinkType::Ethernet, &eth("0800", "4500")).l3,
            L3::Malformed(Layer::Ipv4)
        ));
        assert!(matches!(
            decode(LinkType::Ethernet, &eth("8100", "00")).l3,
            L3::Malformed(Layer::Vlan)
        ));
        let short_tcp = "45000020 0001 0000 40 06 0000 0a000001 0a000002 c000 01f6 0000";
        assert!(
            matches!(
                decode(LinkType::Ethernet, &eth("0800", short_tcp)).l3,
                L3::Malformed(Layer::Tcp)
            ),
            "{:?}",
            decode(LinkType::Ethernet, &eth("0800", short_tcp)).l3
        );
    }

    #[test]
    fn bsd_loopback_and_raw_ip() {
        let mut null = vec![2, 0, 0, 0];
        null.extend(hex(IPV4_TCP_502));
        assert!(matches!(decode(LinkType::Null, &null).l3, L3::Ip(_)));
        assert!(matches!(
            decode(LinkType::RawIp, &hex(IPV4_TCP_502)).l3,
            L3::Ip(_)
        ));
    }

    #[test]
    fn ipv6_truncated_extension_chain_does_not_read_past_the_end() {
        // Regression (found by fuzz/packet_path): a hop-by-hop header claiming 2 KiB.
        let pkt = hex(
            "6000 0000 0010 00 40  20010002000000000000000000000001 20010002000000000000000000000002 11ff 0000 0000 0000 0000",
        );
        let _ = decode(LinkType::RawIp, &pkt);
        // A fragment header, second fragment.
        let frag = hex(
            "6000 0000 0010 2c 40  20010002000000000000000000000001 20010002000000000000000000000002 1100 0008 0000 002a 0000000000000000",
        );
        assert_eq!(ipv6_fragment(&frag), Some((true, 42)));
        let f = decode(LinkType::RawIp, &frag);
        assert!(
            matches!(
                f.l3,
                L3::Ip(Ip {
                    l4: L4::Fragment,
                    frag_id: 42,
                    ..
                })
            ),
            "{:?}",
            f.l3
        );
    }

    #[test]
    fn non_first_fragments_have_no_transport() {
        let frag =
            "45000020 0001 0001 40 11 0000 0a000001 0a000002 0000000000000000 0000000000000000";
        let b = hex(frag);
        let f = decode(LinkType::RawIp, &b);
        assert!(
            matches!(
                f.l3,
                L3::Ip(Ip {
                    l4: L4::Fragment,
                    fragmented: true,
                    ..
                })
            ),
            "{:?}",
            f.l3
        );
    }
}
