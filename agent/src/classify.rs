//! Classification by payload: which protocol a flow speaks, decided from its first
//! payloads, on any port. The port only chooses which recogniser is asked first and
//! lowers the bar slightly; random bytes or HTTP on 502/20000/2404/102 are not Modbus,
//! DNP3, IEC-104 or S7, and those protocols on other ports are found.
//!
//! Order: the recogniser of the server port's registered protocol, then every ICS
//! recogniser, then the IT recognisers. The first `Match` decides; an `Unsure` keeps the
//! flow pending for its next payload, up to [`MAX_PROBES`] payloads, after which it is
//! `other-tcp` / `other-udp`.

use crate::dissect::it::{self, ItProbe};
use crate::dissect::tpkt::{self, TpktProbe};
use crate::dissect::{Hint, Probe, bacnet, dnp3, enip, iec104, modbus, mqtt, opcua, profinet};
use crate::proto::Proto;

/// Payload-carrying packets a flow may take to be recognised.
pub const MAX_PROBES: u8 = 8;

/// The classifier's answer for one payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Match(Proto),
    Unsure,
    No,
}

/// The industrial recognisers, in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ics {
    Modbus,
    Dnp3,
    Iec104,
    Tpkt,
    Enip,
    Opcua,
    Mqtt,
    Bacnet,
    ProfinetCm,
}

const ICS_TCP: [Ics; 7] = [
    Ics::Modbus,
    Ics::Dnp3,
    Ics::Iec104,
    Ics::Tpkt,
    Ics::Enip,
    Ics::Opcua,
    Ics::Mqtt,
];
const ICS_UDP: [Ics; 4] = [Ics::Dnp3, Ics::Enip, Ics::Bacnet, Ics::ProfinetCm];

fn registered_tcp(port: u16) -> Option<Ics> {
    match port {
        502 => Some(Ics::Modbus),
        20000 => Some(Ics::Dnp3),
        2404 => Some(Ics::Iec104),
        102 | 3389 => Some(Ics::Tpkt),
        44818 => Some(Ics::Enip),
        4840 => Some(Ics::Opcua),
        1883 => Some(Ics::Mqtt),
        _ => None,
    }
}

fn registered_udp(port: u16) -> Option<Ics> {
    match port {
        20000 => Some(Ics::Dnp3),
        2222 | 44818 => Some(Ics::Enip),
        0xBAC0..=0xBACF => Some(Ics::Bacnet),
        34964 => Some(Ics::ProfinetCm),
        _ => None,
    }
}

fn probe_ics(which: Ics, payload: &[u8], hint: Hint) -> Verdict {
    let simple = |p: Probe, proto| match p {
        Probe::Match => Verdict::Match(proto),
        Probe::Unsure => Verdict::Unsure,
        Probe::No => Verdict::No,
    };
    match which {
        Ics::Modbus => simple(modbus::probe(payload, hint), Proto::Modbus),
        Ics::Dnp3 => simple(dnp3::probe(payload, hint), Proto::Dnp3),
        Ics::Iec104 => simple(iec104::probe(payload, hint), Proto::Iec104),
        Ics::Tpkt => match tpkt::probe(payload, hint) {
            TpktProbe::Match(p) => Verdict::Match(p),
            TpktProbe::Unsure => Verdict::Unsure,
            TpktProbe::No => Verdict::No,
        },
        Ics::Enip => simple(enip::probe(payload, hint), Proto::Enip),
        Ics::Opcua => simple(opcua::probe(payload, hint), Proto::Opcua),
        Ics::Mqtt => simple(mqtt::probe(payload, hint), Proto::Mqtt),
        Ics::Bacnet => simple(bacnet::probe(payload, hint), Proto::Bacnet),
        Ics::ProfinetCm => simple(profinet::probe_udp(payload, hint), Proto::Profinet),
    }
}

fn merge(acc: &mut Verdict, v: Verdict) -> bool {
    match v {
        Verdict::Match(_) => {
            *acc = v;
            true
        }
        Verdict::Unsure => {
            *acc = Verdict::Unsure;
            false
        }
        Verdict::No => false,
    }
}

/// The registered protocol first, then the others of `order`: the first match wins.
fn probe_all(
    acc: &mut Verdict,
    order: &[Ics],
    first: Option<Ics>,
    payload: &[u8],
    tcp: bool,
    from_client: bool,
) -> bool {
    if let Some(ics) = first
        && merge(
            acc,
            probe_ics(
                ics,
                payload,
                Hint {
                    port: true,
                    tcp,
                    from_client,
                },
            ),
        )
    {
        return true;
    }
    let hint = Hint {
        port: false,
        tcp,
        from_client,
    };
    order
        .iter()
        .filter(|ics| Some(**ics) != first)
        .any(|ics| merge(acc, probe_ics(*ics, payload, hint)))
}

fn it_verdict(p: ItProbe) -> Verdict {
    match p {
        ItProbe::Match(p) => Verdict::Match(p),
        ItProbe::Unsure => Verdict::Unsure,
        ItProbe::No => Verdict::No,
    }
}

/// Classifies a TCP payload of a flow between client port `cport` and server port
/// `sport`.
pub fn tcp(payload: &[u8], cport: u16, sport: u16, from_client: bool) -> Verdict {
    let mut acc = Verdict::No;
    if probe_all(
        &mut acc,
        &ICS_TCP,
        registered_tcp(sport),
        payload,
        true,
        from_client,
    ) {
        return acc;
    }
    merge(
        &mut acc,
        it_verdict(it::probe_tcp(payload, cport, sport, from_client)),
    );
    acc
}

/// Classifies a UDP datagram.
pub fn udp(payload: &[u8], src_port: u16, dst_port: u16, from_client: bool) -> Verdict {
    let mut acc = Verdict::No;
    let first = registered_udp(dst_port).or_else(|| registered_udp(src_port));
    if probe_all(&mut acc, &ICS_UDP, first, payload, false, from_client) {
        return acc;
    }
    merge(
        &mut acc,
        it_verdict(it::probe_udp(payload, src_port, dst_port)),
    );
    acc
}

/// Whether a protocol's TCP flows go through reassembly and a stateful dissector.
pub fn is_stream_ics(p: Proto) -> bool {
    matches!(
        p,
        Proto::Modbus
            | Proto::Dnp3
            | Proto::Iec104
            | Proto::S7comm
            | Proto::S7commplus
            | Proto::Mms
            | Proto::Enip
            | Proto::Opcua
            | Proto::Mqtt
    )
}

/// Whether a protocol's UDP datagrams go to an industrial dissector.
pub fn is_datagram_ics(p: Proto) -> bool {
    matches!(
        p,
        Proto::Dnp3 | Proto::Enip | Proto::Bacnet | Proto::Profinet
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::hex;

    #[test]
    fn modbus_on_its_port_and_elsewhere() {
        let req = hex("0001 0000 0006 01 03 0000 000a");
        assert_eq!(tcp(&req, 40000, 502, true), Verdict::Match(Proto::Modbus));
        assert_eq!(tcp(&req, 40000, 8502, true), Verdict::Match(Proto::Modbus));
    }

    #[test]
    fn http_on_modbus_port_is_not_modbus() {
        let v = tcp(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 40000, 502, true);
        assert_ne!(v, Verdict::Match(Proto::Modbus));
    }
}
