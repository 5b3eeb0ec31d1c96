//! Modbus/TCP: MBAP header (Modbus Messaging on TCP/IP Implementation Guide V1.0b,
//! section 3.1.3) and the Modbus Application Protocol PDU (Specification V1.1b3,
//! sections 6 and 7), decoded to the function with its class, the unit id and the
//! address ranges a request touches; 43/14 Read Device Identification answers feed the
//! asset's identity.
//!
//! Direction decides request or response: the client (the side that connected) sends
//! requests; the server answers with the same function code, or the code + 0x80 and an
//! exception code.

use super::{
    AddrRange, AddrSpace, FrameLen, Hint, Identity, Pdu, PduKind, PduSink, Probe, Reader, Side,
    Violation, be16, byte,
};
use crate::command::Cmd;
use crate::proto::Proto;

/// MBAP header length (transaction id, protocol id, length, unit id).
const MBAP: usize = 7;
/// Largest MBAP length field: unit id + 253-byte PDU.
const MAX_LEN: u16 = 254;

/// Length of the ADU at the start of `buf` (TCP framing).
pub fn frame(buf: &[u8]) -> FrameLen {
    if buf.len() < 6 {
        return FrameLen::Need(6);
    }
    if be16(buf, 2) != 0 {
        return FrameLen::Invalid(Violation::ModbusBadProtocolId);
    }
    let len = be16(buf, 4);
    if !(2..=MAX_LEN).contains(&len) {
        return FrameLen::Invalid(Violation::ModbusBadLength);
    }
    FrameLen::Len(6 + usize::from(len))
}

/// The command of a function code (without the exception bit).
pub fn command(fc: u8, mei: Option<u8>) -> Cmd {
    match fc {
        1 => Cmd::ModbusReadCoils,
        2 => Cmd::ModbusReadDiscreteInputs,
        3 => Cmd::ModbusReadHoldingRegisters,
        4 => Cmd::ModbusReadInputRegisters,
        5 => Cmd::ModbusWriteSingleCoil,
        6 => Cmd::ModbusWriteSingleRegister,
        7 => Cmd::ModbusReadExceptionStatus,
        8 => Cmd::ModbusDiagnostics,
        11 => Cmd::ModbusGetCommEventCounter,
        12 => Cmd::ModbusGetCommEventLog,
        15 => Cmd::ModbusWriteMultipleCoils,
        16 => Cmd::ModbusWriteMultipleRegisters,
        17 => Cmd::ModbusReportServerId,
        20 => Cmd::ModbusReadFileRecord,
        21 => Cmd::ModbusWriteFileRecord,
        22 => Cmd::ModbusMaskWriteRegister,
        23 => Cmd::ModbusReadWriteMultipleRegisters,
        24 => Cmd::ModbusReadFifoQueue,
        43 if mei == Some(14) => Cmd::ModbusReadDeviceIdentification,
        43 => Cmd::ModbusEncapsulatedInterfaceTransport,
        // Modicon PI-MBUS-300 programming and polling codes.
        9 | 13 | 18 | 126 => Cmd::ModbusLegacyProgram,
        10 | 14 => Cmd::ModbusLegacyPoll,
        19 => Cmd::ModbusResetCommLink,
        125 => Cmd::ModbusFirmwareReplacement,
        // Schneider Electric UMAS (Unity): programming, start/stop over Modbus.
        90 => Cmd::ModbusUmas,
        65..=72 | 100..=110 => Cmd::ModbusUserDefined,
        _ => Cmd::ModbusUnknown,
    }
}

/// Whether a function code is defined by the specification or a known vendor use.
fn known(fc: u8) -> bool {
    command(fc, None) != Cmd::ModbusUnknown
}

/// Exact PDU length (function code included) of a request, where the specification
/// fixes it; `None` when it varies.
fn fixed_request_len(fc: u8) -> Option<usize> {
    match fc {
        1..=6 => Some(5),
        7 | 11 | 12 | 17 => Some(1),
        22 => Some(7),
        24 => Some(3),
        _ => None,
    }
}

/// Does this payload look like Modbus/TCP?
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if payload.len() < MBAP + 1 {
        // Not even one header and function code: only worth waiting for on port 502.
        return if hint.port && payload.len() >= 4 && be16(payload, 2) == 0 {
            Probe::Unsure
        } else {
            Probe::No
        };
    }
    let mut rest = payload;
    let mut frames = 0;
    while !rest.is_empty() {
        let total = match frame(rest) {
            FrameLen::Len(t) => t,
            FrameLen::Need(_) => break,
            FrameLen::Invalid(_) => return Probe::No,
        };
        let fc = byte(rest, MBAP);
        let base = fc & 0x7f;
        if fc & 0x80 != 0 {
            // An exception answer: function code + 1-byte exception code 1..=0x0B.
            let code = byte(rest, MBAP + 1);
            if hint.from_client || total != MBAP + 2 || !(1..=0x0b).contains(&code) {
                return Probe::No;
            }
        } else if !hint.port {
            // Off the registered port the frame must be a well-formed, known request or
            // answer, not just a plausible header.
            if !known(base) {
                return Probe::No;
            }
            if hint.from_client
                && let Some(n) = fixed_request_len(base)
                && total != MBAP + n
            {
                return Probe::No;
            }
        }
        if total > rest.len() {
            // A frame that continues in the next segment: fine after a whole frame,
            // or on the registered port.
            return if frames > 0 || hint.port {
                Probe::Match
            } else {
                Probe::Unsure
            };
        }
        frames += 1;
        rest = rest.get(total..).unwrap_or(&[]);
    }
    if frames > 0 {
        Probe::Match
    } else {
        Probe::Unsure
    }
}

/// Per-flow state: Modbus/TCP needs none beyond reassembly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State;

fn range(space: AddrSpace, start: u16, count: u16) -> Option<AddrRange> {
    Some(AddrRange {
        space,
        start,
        count,
    })
}

/// Decodes one ADU (or the first bytes of an oversized one).
pub fn dissect(msg: &[u8], side: Side, truncated: bool, sink: &mut dyn PduSink) {
    let mut r = Reader::new(msg);
    let (Some(_tid), Some(proto_id), Some(len), Some(unit), Some(fc)) =
        (r.u16_be(), r.u16_be(), r.u16_be(), r.u8(), r.u8())
    else {
        sink.violation(Violation::ModbusBadLength);
        return;
    };
    if proto_id != 0 {
        sink.violation(Violation::ModbusBadProtocolId);
        return;
    }
    if !truncated && usize::from(len) + 6 != msg.len() {
        sink.violation(Violation::ModbusBadLength);
    }
    let base = fc & 0x7f;
    let mei = if base == 43 { r.peek(0) } else { None };
    let cmd = command(base, mei);
    let mut pdu = Pdu::new(Proto::Modbus, PduKind::Message);
    pdu.unit = Some(u32::from(unit));
    if fc & 0x80 != 0 {
        pdu.kind = PduKind::Exception(cmd);
        if side == Side::Client {
            sink.violation(Violation::ModbusBadPdu);
        }
        sink.pdu(side, &pdu);
        return;
    }
    if cmd == Cmd::ModbusUnknown {
        sink.violation(Violation::ModbusUnknownFunction);
    }
    match side {
        Side::Client => {
            pdu.kind = PduKind::Request(cmd);
            if !request_details(base, &mut r, &mut pdu) && !truncated {
                sink.violation(Violation::ModbusBadPdu);
            }
        }
        Side::Server => {
            pdu.kind = PduKind::Response(cmd);
            if cmd == Cmd::ModbusReadDeviceIdentification {
                device_identification(&mut r, side, sink);
            }
        }
    }
    sink.pdu(side, &pdu);
}

/// Fills the request's address ranges; false when the PDU breaks the specification.
fn request_details(fc: u8, r: &mut Reader<'_>, pdu: &mut Pdu) -> bool {
    let data_len = r.remaining();
    match fc {
        1..=4 => {
            let (Some(start), Some(qty)) = (r.u16_be(), r.u16_be()) else {
                return false;
            };
            let (space, max) = match fc {
                1 => (AddrSpace::Coils, 2000),
                2 => (AddrSpace::DiscreteInputs, 2000),
                3 => (AddrSpace::HoldingRegisters, 125),
                _ => (AddrSpace::InputRegisters, 125),
            };
            pdu.range = range(space, start, qty);
            data_len == 4
                && (1..=max).contains(&qty)
                && u32::from(start) + u32::from(qty) <= 0x1_0000
        }
        5 => {
            let (Some(addr), Some(value)) = (r.u16_be(), r.u16_be()) else {
                return false;
            };
            pdu.range = range(AddrSpace::Coils, addr, 1);
            data_len == 4 && (value == 0xff00 || value == 0)
        }
        6 => {
            let (Some(addr), Some(_)) = (r.u16_be(), r.u16_be()) else {
                return false;
            };
            pdu.range = range(AddrSpace::HoldingRegisters, addr, 1);
            data_len == 4
        }
        15 | 16 => {
            let (Some(start), Some(qty), Some(count)) = (r.u16_be(), r.u16_be(), r.u8()) else {
                return false;
            };
            let (space, max, bytes) = if fc == 15 {
                (AddrSpace::Coils, 1968, qty.div_ceil(8))
            } else {
                (AddrSpace::HoldingRegisters, 123, qty.saturating_mul(2))
            };
            pdu.range = range(space, start, qty);
            (1..=max).contains(&qty)
                && u16::from(count) == bytes
                && r.remaining() == usize::from(count)
        }
        22 => {
            let Some(addr) = r.u16_be() else {
                return false;
            };
            pdu.range = range(AddrSpace::HoldingRegisters, addr, 1);
            data_len == 6
        }
        23 => {
            let (Some(rs), Some(rq), Some(ws), Some(wq), Some(count)) =
                (r.u16_be(), r.u16_be(), r.u16_be(), r.u16_be(), r.u8())
            else {
                return false;
            };
            pdu.range = range(AddrSpace::HoldingRegisters, ws, wq);
            pdu.range2 = range(AddrSpace::HoldingRegisters, rs, rq);
            (1..=125).contains(&rq)
                && (1..=121).contains(&wq)
                && u16::from(count) == wq * 2
                && r.remaining() == usize::from(count)
        }
        24 => {
            let Some(addr) = r.u16_be() else {
                return false;
            };
            pdu.range = range(AddrSpace::HoldingRegisters, addr, 1);
            data_len == 2
        }
        20 | 21 => {
            // Sub-requests of 7 bytes each (reference type 6, file, record, length),
            // after a byte count; file numbers go in the range as the "start".
            let Some(count) = r.u8() else {
                return false;
            };
            if let (Some(6), Some(file)) = (r.peek(0), r.peek(1).zip(r.peek(2))) {
                pdu.range = range(
                    AddrSpace::FileRecords,
                    u16::from_be_bytes([file.0, file.1]),
                    1,
                );
            }
            usize::from(count) == r.remaining() && (7..=0xf5).contains(&count)
        }
        8 => data_len >= 4,
        43 => data_len >= 1,
        _ => true,
    }
}

/// 43/14 Read Device Identification answer (specification 6.21): objects 0 VendorName,
/// 1 ProductCode, 2 MajorMinorRevision, 4 ProductName, 5 ModelName, 6
/// UserApplicationName.
fn device_identification(r: &mut Reader<'_>, side: Side, sink: &mut dyn PduSink) {
    let (Some(0x0e), Some(_code), Some(_conformity), Some(_more), Some(_next), Some(count)) =
        (r.u8(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8())
    else {
        return;
    };
    let mut id = Identity::default();
    let mut product_code = None;
    let mut product_name = None;
    for _ in 0..count {
        let (Some(obj), Some(len)) = (r.u8(), r.u8()) else {
            break;
        };
        let Some(value) = r.take(usize::from(len)) else {
            break;
        };
        match obj {
            0 => id.vendor = Some(value),
            1 => product_code = Some(value),
            2 => id.firmware = Some(value),
            4 => product_name = Some(value),
            5 => id.model = Some(value),
            6 => id.name = Some(value),
            _ => {}
        }
    }
    if id.model.is_none() {
        id.model = product_name.or(product_code);
    }
    if id != Identity::default() {
        sink.identity(side, &id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Recorder, hex, messages};
    use std::collections::BTreeMap;

    fn hint(port: bool, from_client: bool) -> Hint {
        Hint {
            port,
            tcp: true,
            from_client,
        }
    }

    /// Runs a capture's Modbus segments through framing and dissection.
    fn run_capture(rel: &str) -> Recorder {
        let (msgs, framing) = messages(rel, 502, frame);
        let mut rec = Recorder {
            violations: framing,
            ..Recorder::default()
        };
        for m in msgs {
            dissect(&m.bytes, m.side, m.truncated, &mut rec);
        }
        rec
    }

    fn fc_counts(cmds: &[Cmd]) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in cmds {
            *m.entry(c.name()).or_default() += 1;
        }
        m
    }

    #[test]
    fn icsnpp_example_matches_tshark_request_counts() {
        let rec = run_capture("modbus/icsnpp_modbus_example.pcap");
        let counts = fc_counts(&rec.requests());
        // truth/modbus/icsnpp_modbus_example.json: request_function_codes
        let expected: BTreeMap<&str, usize> = [
            ("read_holding_registers", 3),
            ("read_coils", 2),
            ("read_discrete_inputs", 2),
            ("mask_write_register", 2),
            ("read_write_multiple_registers", 2),
            ("read_input_registers", 2),
            ("write_multiple_coils", 1),
            ("write_multiple_registers", 1),
            ("report_server_id", 1),
            ("read_file_record", 1),
            ("write_file_record", 1),
            ("read_fifo_queue", 1),
            ("read_device_identification", 1),
            ("write_single_coil", 1),
            ("write_single_register", 1),
            ("read_exception_status", 1),
            ("diagnostics", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts, expected);
        let exceptions = rec
            .pdus
            .iter()
            .filter(|(_, p)| matches!(p.kind, PduKind::Exception(_)))
            .count();
        assert_eq!(rec.responses().len() + exceptions, 24);
    }

    #[test]
    fn fc23_request_has_both_ranges() {
        let rec = run_capture("modbus/zeek_4sics_fc23_read_write_registers.pcap");
        let (_, req) = rec
            .pdus
            .iter()
            .find(|(s, _)| *s == Side::Client)
            .copied()
            .unwrap();
        assert_eq!(
            req.kind,
            PduKind::Request(Cmd::ModbusReadWriteMultipleRegisters)
        );
        assert!(req.range.is_some() && req.range2.is_some());
        // This request asks to read 0 registers and write 0x2112: outside the spec.
        assert_eq!(rec.violations, vec![Violation::ModbusBadPdu]);
    }

    #[test]
    fn device_identification_feeds_identity() {
        let rec = run_capture("modbus/icsnpp_modbus_example.pcap");
        assert_eq!(rec.identities.len(), 1, "one 43/14 answer");
        let (side, vendor, ..) = &rec.identities[0];
        assert_eq!(*side, Side::Server);
        assert_eq!(vendor, "Zeek Modbus Test");
    }

    #[test]
    fn requests_carry_unit_and_ranges() {
        let mut rec = Recorder::default();
        dissect(
            &hex("0001 0000 0006 11 03 006b 0003"),
            Side::Client,
            false,
            &mut rec,
        );
        let (_, p) = rec.pdus[0];
        assert_eq!(p.kind, PduKind::Request(Cmd::ModbusReadHoldingRegisters));
        assert_eq!(p.unit, Some(0x11));
        assert_eq!(
            p.range,
            Some(AddrRange {
                space: AddrSpace::HoldingRegisters,
                start: 0x6b,
                count: 3
            })
        );
        assert!(rec.violations.is_empty());
    }

    #[test]
    fn exceptions_and_bad_pdus() {
        let mut rec = Recorder::default();
        dissect(
            &hex("0001 0000 0003 01 83 02"),
            Side::Server,
            false,
            &mut rec,
        );
        assert_eq!(
            rec.pdus[0].1.kind,
            PduKind::Exception(Cmd::ModbusReadHoldingRegisters)
        );
        // Quantity 0 is not allowed (spec 6.3).
        dissect(
            &hex("0002 0000 0006 01 03 0000 0000"),
            Side::Client,
            false,
            &mut rec,
        );
        assert_eq!(rec.violations, vec![Violation::ModbusBadPdu]);
        // MBAP length disagreeing with the frame.
        dissect(
            &hex("0003 0000 0009 01 03 0000 0001"),
            Side::Client,
            false,
            &mut rec,
        );
        assert!(rec.violations.contains(&Violation::ModbusBadLength));
        // An undefined function code is counted as such.
        dissect(&hex("0004 0000 0002 01 29"), Side::Client, false, &mut rec);
        assert_eq!(
            rec.pdus.last().unwrap().1.kind,
            PduKind::Request(Cmd::ModbusUnknown)
        );
        assert!(rec.violations.contains(&Violation::ModbusUnknownFunction));
    }

    #[test]
    fn probe_accepts_modbus_on_any_port() {
        let req = hex("0001 0000 0006 01 03 0000 000a");
        assert_eq!(probe(&req, hint(true, true)), Probe::Match);
        assert_eq!(probe(&req, hint(false, true)), Probe::Match);
        let two = [req.clone(), req.clone()].concat();
        assert_eq!(probe(&two, hint(false, true)), Probe::Match);
        let resp = hex("0001 0000 0017 01 03 14 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000");
        assert_eq!(probe(&resp, hint(false, false)), Probe::Match);
    }

    #[test]
    fn probe_rejects_other_protocols_on_502() {
        for p in [
            &b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n"[..],
            &hex("16 0301 0200 01 0001fc 0303")[..],
            &hex("0564 0a c4 0a00 0100 0000")[..],
            &hex("68 04 07 00 00 00")[..],
            &hex("0300 0016 11 e0 0000 0001 00 c1 02 0100 c2 02 0102 c0 01 0a")[..],
        ] {
            assert_eq!(probe(p, hint(true, true)), Probe::No, "{p:02x?}");
        }
        // A request of the wrong size for its function is not Modbus off port 502.
        assert_eq!(
            probe(&hex("0001 0000 0007 01 03 0000 000a 00"), hint(false, true)),
            Probe::No
        );
    }

    #[test]
    fn random_bytes_are_not_modbus() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 4000,
            ..Config::default()
        });
        let matches = std::cell::Cell::new(0u32);
        runner
            .run(&proptest::collection::vec(any::<u8>(), 8..300), |bytes| {
                if probe(&bytes, hint(false, true)) == Probe::Match {
                    matches.set(matches.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(matches.get(), 0);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), trunc: bool) {
            let mut rec = Recorder::default();
            let _ = probe(&bytes, hint(true, true));
            let _ = frame(&bytes);
            dissect(&bytes, Side::Client, trunc, &mut rec);
            dissect(&bytes, Side::Server, trunc, &mut rec);
        }
    }
}
