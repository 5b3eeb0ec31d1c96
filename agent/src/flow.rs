//! Flows: bidirectional 5-tuple plus VLAN, with TCP state, counters, first/last seen and
//! the protocol, in a bounded [`LruMap`] (`[flows] max_flows`). Idle flows expire after
//! `[flows] idle_timeout`; when the table is full the least recently used flow is evicted
//! and counted, so a flood of spoofed sources cannot grow memory.
//!
//! A flow record is kept small (about 120 bytes): the default 262 144 flows take about
//! 32 MB. Per-flow ICS reassembly state lives in a separate, smaller table of sessions.

use crate::capture::Ts;
use crate::decode::Addr;
use crate::dissect::Side;
use crate::proto::Proto;

/// A flow's key, normalised so both directions map to the same key: endpoint `a` is
/// the smaller (address, port) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    pub a: Addr,
    pub b: Addr,
    pub a_port: u16,
    pub b_port: u16,
    pub ip_proto: u8,
    pub vlan: u16,
}

impl std::hash::Hash for FlowKey {
    /// Five words instead of field by field (the derive hashes each array as a slice,
    /// with its length): this runs for every packet.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (a0, a1) = self.a.words();
        let (b0, b1) = self.b.words();
        h.write_u64(a0);
        h.write_u64(a1);
        h.write_u64(b0);
        h.write_u64(b1);
        h.write_u64(
            u64::from(self.a_port)
                | (u64::from(self.b_port) << 16)
                | (u64::from(self.ip_proto) << 32)
                | (u64::from(self.vlan) << 40),
        );
    }
}

impl FlowKey {
    /// The key of a packet and whether its source is endpoint `a`.
    pub fn new(
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        ip_proto: u8,
        vlan: u16,
    ) -> (FlowKey, bool) {
        if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    a: src,
                    b: dst,
                    a_port: sport,
                    b_port: dport,
                    ip_proto,
                    vlan,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    a: dst,
                    b: src,
                    a_port: dport,
                    b_port: sport,
                    ip_proto,
                    vlan,
                },
                false,
            )
        }
    }
}

/// Coarse TCP connection state, enough for flow accounting and the detectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpState {
    #[default]
    None,
    SynSent,
    SynReceived,
    Established,
    /// One side sent FIN.
    Closing,
    /// Both sides sent FIN, or a RST was seen.
    Closed,
}

/// Where a flow is in classification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// Payloads are still being probed; packets are held in the flow's counters.
    #[default]
    Pending,
    /// The protocol is known and counted.
    Decided,
}

/// Marker for "no ICS session".
pub const NO_SESSION: u32 = u32::MAX;

/// One flow.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub first: Ts,
    pub last: Ts,
    /// Packets and bytes sent by endpoint a (index 0) and b (index 1).
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// Slot in the ICS session table, or [`NO_SESSION`].
    pub session: u32,
    pub proto: Proto,
    pub class: Class,
    pub tcp: TcpState,
    /// Endpoint a opened the flow (is the client).
    pub client_is_a: bool,
    /// Payload-carrying packets probed while pending.
    pub probes: u8,
    /// FIN seen from a (bit 0) and from b (bit 1).
    pub fins: u8,
    /// Asset bookkeeping done: endpoint a (bit 0), endpoint b (bit 1), roles (bit 2);
    /// detection: see the `NOTE_*` constants.
    pub noted: u8,
    /// The `[[allow]]` rule the flow matched (`detect::site::NO_RULE`: none), valid for
    /// policy generation `rule_gen`.
    pub rule: u16,
    pub rule_gen: u8,
}

/// `Flow::noted`: a packet carried payload.
pub const NOTE_PAYLOAD: u8 = 8;
/// `Flow::noted`: the flow began as a TCP connection attempt (SYN) the scan and flood
/// detectors follow.
pub const NOTE_ATTEMPT: u8 = 16;
/// `Flow::noted`: the attempt's outcome was told to the detectors.
pub const NOTE_ENDED: u8 = 32;
/// `Flow::noted`: the flow was judged against the policy.
pub const NOTE_JUDGED: u8 = 64;

impl Default for Flow {
    fn default() -> Self {
        Flow {
            first: Ts(0),
            last: Ts(0),
            packets: [0; 2],
            bytes: [0; 2],
            session: NO_SESSION,
            proto: Proto::OtherIp,
            class: Class::Pending,
            tcp: TcpState::None,
            client_is_a: true,
            probes: 0,
            fins: 0,
            noted: 0,
            rule: u16::MAX,
            rule_gen: 0,
        }
    }
}

impl Flow {
    pub fn total_packets(&self) -> u64 {
        self.packets[0] + self.packets[1]
    }
    pub fn total_bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
    /// The side of a packet sent by endpoint a (`from_a`) or b.
    pub fn side(&self, from_a: bool) -> Side {
        if from_a == self.client_is_a {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Advances the TCP state with a segment's flags.
    pub fn tcp_update(&mut self, from_a: bool, flags: u8) {
        use crate::decode::tcp_flags::{ACK, FIN, RST, SYN};
        if flags & RST != 0 {
            self.tcp = TcpState::Closed;
            return;
        }
        if flags & FIN != 0 {
            self.fins |= if from_a { 1 } else { 2 };
            self.tcp = if self.fins == 3 {
                TcpState::Closed
            } else {
                TcpState::Closing
            };
            return;
        }
        self.tcp = match (self.tcp, flags & (SYN | ACK)) {
            (TcpState::None, SYN) => TcpState::SynSent,
            (TcpState::None | TcpState::SynSent, x) if x == SYN | ACK => TcpState::SynReceived,
            (TcpState::SynReceived, ACK) => TcpState::Established,
            (TcpState::None, _) => TcpState::Established,
            (s, _) => s,
        };
    }
}

/// Well-known service ports: when a flow is picked up mid-stream (no SYN seen), the
/// endpoint on one of these is taken as the server.
pub fn is_service_port(p: u16) -> bool {
    matches!(
        p,
        20..=23 | 25 | 53 | 67 | 68 | 80 | 102 | 110 | 123 | 137..=139 | 143 | 161 | 162 | 389 | 443 | 445 | 502 | 514 | 636
            | 853 | 993 | 995 | 1883 | 2222 | 2404 | 3389 | 4840 | 5353 | 5355 | 8080 | 8443 | 8883 | 20000 | 34964
            | 44818 | 47808
    )
}

/// Who opened a flow, judged from its first packet: a SYN's sender; a SYN-ACK's
/// receiver; else the side not on a service port; else the sender.
pub fn first_sender_is_client(tcp_flags: Option<u8>, sport: u16, dport: u16) -> bool {
    use crate::decode::tcp_flags::{ACK, CWR, ECE, PSH, SYN, URG};
    if let Some(f) = tcp_flags {
        // Only a plain SYN or SYN-ACK says who connected; odd combinations (SYN+FIN,
        // XMAS…) say nothing.
        if f & !(PSH | URG | ECE | CWR) == SYN {
            return true;
        }
        if f & !(PSH | URG | ECE | CWR) == SYN | ACK {
            return false;
        }
    }
    match (is_service_port(sport), is_service_port(dport)) {
        (true, false) => false,
        (false, true) => true,
        _ => {
            // Both or neither well known: the lower port is usually the service.
            !(sport < 1024 && dport >= 1024)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_direction_independent() {
        let x = Addr::v4([10, 0, 0, 1]);
        let y = Addr::v4([10, 0, 0, 2]);
        let (k1, a1) = FlowKey::new(x, 40000, y, 502, 6, 0);
        let (k2, a2) = FlowKey::new(y, 502, x, 40000, 6, 0);
        assert_eq!(k1, k2);
        assert_ne!(a1, a2);
        let (k3, _) = FlowKey::new(x, 40000, y, 502, 6, 7);
        assert_ne!(k1, k3, "VLAN is part of the key");
    }

    #[test]
    fn flow_record_is_compact() {
        assert!(
            std::mem::size_of::<Flow>() <= 72,
            "{}",
            std::mem::size_of::<Flow>()
        );
        assert!(
            std::mem::size_of::<FlowKey>() <= 40,
            "{}",
            std::mem::size_of::<FlowKey>()
        );
    }

    #[test]
    fn client_side_from_first_packet() {
        use crate::decode::tcp_flags::{ACK, SYN};
        assert!(first_sender_is_client(Some(SYN), 40000, 502));
        assert!(!first_sender_is_client(Some(SYN | ACK), 502, 40000));
        assert!(!first_sender_is_client(Some(ACK), 502, 40000));
        assert!(first_sender_is_client(None, 51000, 53));
        assert!(first_sender_is_client(None, 40001, 40002));
    }

    #[test]
    fn tcp_states() {
        use crate::decode::tcp_flags::{ACK, FIN, RST, SYN};
        let mut f = Flow::default();
        f.tcp_update(true, SYN);
        assert_eq!(f.tcp, TcpState::SynSent);
        f.tcp_update(false, SYN | ACK);
        assert_eq!(f.tcp, TcpState::SynReceived);
        f.tcp_update(true, ACK);
        assert_eq!(f.tcp, TcpState::Established);
        f.tcp_update(true, FIN | ACK);
        assert_eq!(f.tcp, TcpState::Closing);
        f.tcp_update(false, FIN | ACK);
        assert_eq!(f.tcp, TcpState::Closed);
        let mut g = Flow::default();
        g.tcp_update(true, RST);
        assert_eq!(g.tcp, TcpState::Closed);
    }
}
