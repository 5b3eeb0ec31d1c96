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
use crate::dissect::{Hint, Probe, dnp3, iec104, modbus};
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ics {
    Modbus,
    Dnp3,
    Iec104,
    Tpkt,
}

const ICS_TCP: [Ics; 4] = [Ics::Modbus, Ics::Dnp3, Ics::Iec104, Ics::Tpkt];

fn registered_tcp(port: u16) -> Option<Ics> {
    match port {
        502 => Some(Ics::Modbus),
        20000 => Some(Ics::Dnp3),
        2404 => Some(Ics::Iec104),
        102 | 3389 => Some(Ics::Tpkt),
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

/// Classifies a TCP payload of a flow between client port `cport` and server port
/// `sport`.
pub fn tcp(payload: &[u8], cport: u16, sport: u16, from_client: bool) -> Verdict {
    let mut acc = Verdict::No;
    let first = registered_tcp(sport);
    if let Some(ics) = first {
        let hint = Hint {
            port: true,
            tcp: true,
            from_client,
        };
        if merge(&mut acc, probe_ics(ics, payload, hint)) {
            return acc;
        }
    }
    let hint = Hint {
        port: false,
        tcp: true,
        from_client,
    };
    for ics in ICS_TCP {
        if Some(ics) == first {
            continue;
        }
        if merge(&mut acc, probe_ics(ics, payload, hint)) {
            return acc;
        }
    }
    let it = match it::probe_tcp(payload, cport, sport, from_client) {
        ItProbe::Match(p) => Verdict::Match(p),
        ItProbe::Unsure => Verdict::Unsure,
        ItProbe::No => Verdict::No,
    };
    merge(&mut acc, it);
    acc
}

/// Classifies a UDP datagram.
pub fn udp(payload: &[u8], src_port: u16, dst_port: u16, from_client: bool) -> Verdict {
    let mut acc = Verdict::No;
    let hint = Hint {
        port: src_port == 20000 || dst_port == 20000,
        tcp: false,
        from_client,
    };
    if merge(&mut acc, probe_ics(Ics::Dnp3, payload, hint)) {
        return acc;
    }
    let it = match it::probe_udp(payload, src_port, dst_port) {
        ItProbe::Match(p) => Verdict::Match(p),
        ItProbe::Unsure => Verdict::Unsure,
        ItProbe::No => Verdict::No,
    };
    merge(&mut acc, it);
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
