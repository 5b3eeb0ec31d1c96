//! S7comm and S7comm-plus decoding over hand-written PDUs (COTP user data).

use super::*;
use crate::dissect::testutil::{Recorder, hex};
use proptest::prelude::*;

fn s7(pdu: &[u8]) -> Recorder {
    let mut rec = Recorder::default();
    dissect_s7(pdu, Side::Client, false, &mut rec);
    rec
}

fn s7p(pdu: &[u8]) -> Recorder {
    let mut rec = Recorder::default();
    dissect_s7plus(pdu, Side::Client, false, &mut rec);
    rec
}

fn kind(rec: &Recorder) -> PduKind {
    assert_eq!(rec.pdus.len(), 1, "{:?}", rec.pdus);
    rec.pdus[0].1.kind
}

/// A job PDU with parameter `param` and data `data`.
fn job(param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x32, rosctr::JOB, 0, 0, 0, 1];
    v.extend_from_slice(&(param.len() as u16).to_be_bytes());
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(param);
    v.extend_from_slice(data);
    v
}

fn ack_data(param: &[u8], class: u8, code: u8) -> Vec<u8> {
    let mut v = vec![0x32, rosctr::ACK_DATA, 0, 0, 0, 1];
    v.extend_from_slice(&(param.len() as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0, class, code]);
    v.extend_from_slice(param);
    v
}

/// A user-data PDU: type/group byte, sub-function, data part.
fn userdata(type_group: u8, sub: u8, data: &[u8]) -> Vec<u8> {
    let param = [0x00, 0x01, 0x12, 0x04, 0x11, type_group, sub, 0x00];
    let mut v = vec![0x32, rosctr::USERDATA, 0, 0, 0, 1, 0, 8];
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(&param);
    v.extend_from_slice(data);
    v
}

#[test]
fn job_functions_map_to_commands() {
    let read = job(&hex("04 01 12 0a 10 02 0040 0001 84 000000"), &[]);
    assert_eq!(kind(&s7(&read)), PduKind::Request(Cmd::S7ReadVar));
    let write = job(
        &hex("05 01 12 0a 10 02 0004 0001 83 000000"),
        &hex("00 04 0020 a9100001"),
    );
    assert_eq!(kind(&s7(&write)), PduKind::Request(Cmd::S7WriteVar));
    let setup = job(&hex("f0 00 0001 0001 03c0"), &[]);
    assert_eq!(
        kind(&s7(&setup)),
        PduKind::Request(Cmd::S7SetupCommunication)
    );
    let stop = job(&hex("29 0000000000 09 505f50524f4752414d"), &[]);
    assert_eq!(kind(&s7(&stop)), PduKind::Request(Cmd::S7PlcStop));
    // PI service "_INSE" (activate a downloaded block) and "P_PROGRAM" (start).
    let insert = job(
        &hex("28 000000000000fd 000a 0001 3030303030385041 05 5f494e5345"),
        &[],
    );
    assert_eq!(kind(&s7(&insert)), PduKind::Request(Cmd::S7PlcControl));
    let start = job(&hex("28 000000000000fd 0000 09 505f50524f4752414d"), &[]);
    assert_eq!(kind(&s7(&start)), PduKind::Request(Cmd::S7PlcControl));
    for (f, cmd) in [
        (0x00, Cmd::S7CpuServices),
        (0x1a, Cmd::S7RequestDownload),
        (0x1b, Cmd::S7DownloadBlock),
        (0x1c, Cmd::S7DownloadEnded),
        (0x1d, Cmd::S7StartUpload),
        (0x1e, Cmd::S7Upload),
        (0x1f, Cmd::S7EndUpload),
    ] {
        let rec = s7(&job(&[f, 0, 0, 0], &[]));
        assert_eq!(kind(&rec), PduKind::Request(cmd));
        assert!(rec.violations.is_empty());
    }
    for p in [read, write, setup, stop, insert, start] {
        assert!(s7(&p).violations.is_empty(), "{p:02x?}");
    }
}

#[test]
fn unknown_job_function_is_counted_as_unknown() {
    let rec = s7(&job(&[0x99, 0, 0], &[]));
    assert_eq!(kind(&rec), PduKind::Request(Cmd::S7Unknown));
    assert_eq!(rec.violations, vec![Violation::S7UnknownFunction]);
}

#[test]
fn bad_job_parameters_are_violations_but_keep_the_command() {
    // read_var announcing two items but holding one.
    let rec = s7(&job(&hex("04 02 12 0a 10 02 0040 0001 84 000000"), &[]));
    assert_eq!(kind(&rec), PduKind::Request(Cmd::S7ReadVar));
    assert_eq!(rec.violations, vec![Violation::S7BadParameter]);
    // plc_stop whose name runs past the parameter.
    let rec = s7(&job(&hex("29 0000000000 20 505f50"), &[]));
    assert_eq!(kind(&rec), PduKind::Request(Cmd::S7PlcStop));
    assert_eq!(rec.violations, vec![Violation::S7BadParameter]);
    // A job without parameter names no function.
    let rec = s7(&job(&[], &[]));
    assert_eq!(kind(&rec), PduKind::Message);
    assert_eq!(rec.violations, vec![Violation::S7BadParameter]);
}

#[test]
fn bad_headers_are_violations() {
    let mut wrong_id = job(&[0x29, 0, 0, 0, 0, 0, 0], &[]);
    wrong_id[0] = 0x33;
    let mut wrong_rosctr = wrong_id.clone();
    wrong_rosctr[0] = 0x32;
    wrong_rosctr[1] = 5;
    for p in [wrong_id, wrong_rosctr, hex("32 01 00"), vec![]] {
        let rec = s7(&p);
        assert_eq!(kind(&rec), PduKind::Message, "{p:02x?}");
        assert_eq!(rec.violations, vec![Violation::S7BadHeader], "{p:02x?}");
    }
    // Lengths that disagree with the PDU: still decoded, and flagged.
    let mut p = job(&hex("29 0000000000 09 505f50524f4752414d"), &[]);
    p.push(0);
    let rec = s7(&p);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::S7PlcStop));
    assert_eq!(rec.violations, vec![Violation::S7BadHeader]);
    // A user-data PDU whose parameter is cut by COTP segmentation is not an error either.
    let ud = userdata(0x44, 0x01, &hex("ff 09 0004 0011 0000"));
    let mut rec = Recorder::default();
    dissect_s7(&ud[..14], Side::Client, true, &mut rec);
    assert_eq!((kind(&rec), rec.violations.len()), (PduKind::Message, 0));
    // A short prefix of a segmented PDU is not an error.
    let mut rec = Recorder::default();
    dissect_s7(&hex("32 01 00"), Side::Client, true, &mut rec);
    assert_eq!(kind(&rec), PduKind::Message);
    assert!(rec.violations.is_empty());
}

#[test]
fn acks_are_responses_or_exceptions() {
    assert_eq!(
        kind(&s7(&ack_data(&[0x04, 0x01], 0, 0))),
        PduKind::Response(Cmd::S7ReadVar)
    );
    assert_eq!(
        kind(&s7(&ack_data(&[0x29], 0, 0))),
        PduKind::Response(Cmd::S7PlcStop)
    );
    // Error class 0x85 (error on supplies), code 0x00.
    assert_eq!(
        kind(&s7(&ack_data(&[0x05, 0x01], 0x85, 0x00))),
        PduKind::Exception(Cmd::S7WriteVar)
    );
    // ROSCTR 2: a bare acknowledgement, or an error without a parameter.
    let ack = hex("32 02 0000 0001 0000 0000 00 00");
    assert_eq!(kind(&s7(&ack)), PduKind::Message);
    let nak = hex("32 02 0000 0001 0000 0000 81 04");
    assert_eq!(kind(&s7(&nak)), PduKind::Exception(Cmd::S7Unknown));
    assert!(s7(&nak).violations.is_empty());
}

#[test]
fn userdata_groups_map_to_commands() {
    let ok = hex("ff 09 0000");
    for (tg, sub, want) in [
        (0x44, 0x01, PduKind::Request(Cmd::S7ReadSzl)),
        (0x44, 0x02, PduKind::Request(Cmd::S7MessageService)),
        (0x44, 0x03, PduKind::Request(Cmd::S7CpuFunction)),
        (0x41, 0x09, PduKind::Request(Cmd::S7ForceVariable)),
        (0x41, 0x08, PduKind::Request(Cmd::S7ForceVariable)),
        (0x41, 0x0c, PduKind::Request(Cmd::S7MemoryReset)),
        (0x41, 0x02, PduKind::Request(Cmd::S7ProgrammerCommand)),
        (0x42, 0x01, PduKind::Request(Cmd::S7CyclicData)),
        (0x43, 0x01, PduKind::Request(Cmd::S7BlockFunctions)),
        (0x45, 0x01, PduKind::Request(Cmd::S7Password)),
        (0x46, 0x01, PduKind::Request(Cmd::S7Bsend)),
        (0x47, 0x01, PduKind::Request(Cmd::S7ReadClock)),
        (0x47, 0x03, PduKind::Request(Cmd::S7ReadClock)),
        (0x47, 0x02, PduKind::Request(Cmd::S7SetClock)),
        (0x47, 0x04, PduKind::Request(Cmd::S7SetClock)),
        (0x4f, 0x01, PduKind::Request(Cmd::S7NcProgramming)),
        (0x7f, 0x01, PduKind::Request(Cmd::S7NcProgramming)),
        (0x87, 0x01, PduKind::Response(Cmd::S7ReadClock)),
        (0x00, 0x00, PduKind::Response(Cmd::S7ModeTransition)),
        (0x02, 0x01, PduKind::Response(Cmd::S7CyclicData)),
    ] {
        let rec = s7(&userdata(tg, sub, &ok));
        assert_eq!(kind(&rec), want, "{tg:02x}/{sub:02x}");
        assert!(
            rec.violations.is_empty(),
            "{tg:02x}/{sub:02x}: {:?}",
            rec.violations
        );
    }
    // Unknown group and time sub-function.
    for (tg, sub) in [(0x48u8, 1u8), (0x47, 9)] {
        let rec = s7(&userdata(tg, sub, &ok));
        assert_eq!(kind(&rec), PduKind::Request(Cmd::S7Unknown));
        assert_eq!(rec.violations, vec![Violation::S7UnknownFunction]);
    }
    // Unknown type nibble, and a parameter that is not user data.
    let rec = s7(&userdata(0x54, 1, &ok));
    assert_eq!(
        (kind(&rec), rec.violations.clone()),
        (PduKind::Message, vec![Violation::S7BadParameter])
    );
    let mut bad_head = userdata(0x44, 1, &ok);
    bad_head[11] = 0x13;
    let rec = s7(&bad_head);
    assert_eq!(
        (kind(&rec), rec.violations.clone()),
        (PduKind::Message, vec![Violation::S7BadParameter])
    );
}

#[test]
fn userdata_errors_are_exceptions() {
    // "Object does not exist" in the data part of an answer.
    let rec = s7(&userdata(0x84, 0x01, &hex("0a 00 0000")));
    assert_eq!(kind(&rec), PduKind::Exception(Cmd::S7ReadSzl));
    // …but in a follow-up request it only asks for the next data unit.
    let rec = s7(&userdata(0x44, 0x01, &hex("0a 00 0000")));
    assert_eq!(kind(&rec), PduKind::Request(Cmd::S7ReadSzl));
    // The 8-byte parameter form carries its own error code.
    let mut p = hex("32 07 0000 0001 000c 0004 000112 08 12 87 02 01 00 00 d602 ff09 0000");
    p.truncate(26);
    let rec = s7(&p);
    assert_eq!(kind(&rec), PduKind::Exception(Cmd::S7SetClock));
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
}

/// An SZL answer (data part of a read-SZL response) with `records` of `rec_len` bytes.
fn szl_answer(id: u16, rec_len: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&rec_len.to_be_bytes());
    body.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for r in records {
        body.extend_from_slice(r);
    }
    let mut d = vec![0xff, 0x09];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(&body);
    d
}

fn module_record(index: u16, mlfb: &[u8], ausbg: [u8; 2], ausbe: [u8; 2]) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    let mut m = mlfb.to_vec();
    m.resize(20, b' ');
    r.extend_from_slice(&m);
    r.extend_from_slice(&[0x00, 0xc0]);
    r.extend_from_slice(&ausbg);
    r.extend_from_slice(&ausbe);
    r
}

fn component_record(index: u16, text: &[u8]) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    let mut t = text.to_vec();
    t.resize(32, 0);
    r.extend_from_slice(&t);
    r
}

fn identities(data: &[u8]) -> Vec<(Side, String, String, String, String, String)> {
    let mut rec = Recorder::default();
    dissect_s7(&userdata(0x84, 0x01, data), Side::Server, false, &mut rec);
    assert_eq!(kind(&rec), PduKind::Response(Cmd::S7ReadSzl));
    assert!(rec.violations.is_empty());
    rec.identities
}

#[test]
fn szl_module_identification_gives_model_and_firmware() {
    let data = szl_answer(
        0x0011,
        28,
        &[
            module_record(1, b"6ES7 315-2EH14-0AB0", [0, 4], [0, 1]),
            module_record(6, b"6ES7 315-2EH14-0AB0", [0, 4], [0, 1]),
            module_record(7, b"", [b'V', 3], [3, 12]),
        ],
    );
    assert_eq!(
        identities(&data),
        vec![(
            Side::Server,
            "Siemens".into(),
            "6ES7 315-2EH14-0AB0".into(),
            "V3.3.12".into(),
            String::new(),
            String::new()
        )]
    );
    // Only the hardware record: its order number is the model.
    let data = szl_answer(
        0x0011,
        28,
        &[module_record(6, b"6ES7 214-1AG40-0XB0", [0, 4], [0, 1])],
    );
    assert_eq!(identities(&data)[0].2, "6ES7 214-1AG40-0XB0");
}

#[test]
fn szl_component_identification_gives_name_model_serial() {
    let data = szl_answer(
        0x001c,
        34,
        &[
            component_record(1, b"PLC_1"),
            component_record(2, b"CPU 315-2 PN/DP"),
            component_record(3, b""),
            component_record(4, b"Original Siemens Equipment"),
            component_record(5, b"S C-X4U421302009"),
            component_record(7, b"CPU 315-2 PN/DP"),
        ],
    );
    assert_eq!(
        identities(&data),
        vec![(
            Side::Server,
            "Siemens".into(),
            "CPU 315-2 PN/DP".into(),
            String::new(),
            "S C-X4U421302009".into(),
            "PLC_1".into()
        )]
    );
    // Cut short after the first record (answer continued in the next PDU): what is whole counts.
    let mut cut = data.clone();
    cut.truncate(12 + 34 + 10);
    assert_eq!(identities(&cut)[0].5, "PLC_1");
}

#[test]
fn other_szl_answers_and_continuations_give_no_identity() {
    // SZL 0x0424 (mode): not identification.
    assert!(identities(&szl_answer(0x0424, 20, &[vec![0; 20]])).is_empty());
    // Identification list with a record length that does not fit it.
    assert!(identities(&szl_answer(0x001c, 20, &[vec![0; 20]])).is_empty());
    // A continuation: text where the SZL header would be.
    assert!(identities(&hex("ff 09 0010 4d4d 4320 3239 3030 4643 3141 0000 0000")).is_empty());
    // Empty records: nothing to tell.
    assert!(
        identities(&szl_answer(
            0x0011,
            28,
            &[module_record(1, b"", [0, 0], [0, 0])]
        ))
        .is_empty()
    );
}

// ---------------------------------------------------------------- S7comm-plus

#[test]
fn s7plus_functions_map_to_commands() {
    for (f, cmd) in [
        (0x04bbu16, Cmd::S7pExplore),
        (0x04ca, Cmd::S7pCreateObject),
        (0x04d4, Cmd::S7pDeleteObject),
        (0x04f2, Cmd::S7pSetVariable),
        (0x04fc, Cmd::S7pGetVariable),
        (0x0506, Cmd::S7pAddLink),
        (0x051a, Cmd::S7pRemoveLink),
        (0x0524, Cmd::S7pGetLink),
        (0x0542, Cmd::S7pSetMultiVariables),
        (0x054c, Cmd::S7pGetMultiVariables),
        (0x0556, Cmd::S7pBeginSequence),
        (0x0560, Cmd::S7pEndSequence),
        (0x056b, Cmd::S7pInvoke),
        (0x057c, Cmd::S7pSetVarSubStreamed),
        (0x0586, Cmd::S7pGetVarSubStreamed),
        (0x0590, Cmd::S7pGetVariablesAddress),
        (0x059a, Cmd::S7pAbort),
        (0x05b3, Cmd::S7pInitSsl),
        (0x0999, Cmd::S7pUnknown),
    ] {
        let [hi, lo] = f.to_be_bytes();
        let req = [0x72, 2, 0, 9, 0x31, 0, 0, hi, lo, 0, 0, 0, 1, 0x72, 2, 0, 0];
        let rec = s7p(&req);
        assert_eq!(kind(&rec), PduKind::Request(cmd), "{f:04x}");
        assert!(rec.violations.is_empty());
        let rsp = [0x72, 1, 0, 9, 0x32, 0, 0, hi, lo, 0, 0, 0, 1, 0x72, 1, 0, 0];
        assert_eq!(kind(&s7p(&rsp)), PduKind::Response(cmd), "{f:04x}");
        assert_eq!(probe_s7plus(&req, true), Probe::Match);
    }
}

#[test]
fn s7plus_notifications_errors_keepalives_and_integrity() {
    let ntf = hex("72 02 00 09 33 0000 0001 0000 0000 72 02 00 00");
    assert_eq!(kind(&s7p(&ntf)), PduKind::Response(Cmd::S7pNotification));
    let err = hex("72 02 00 05 32 0000 04b1 72 02 00 00");
    assert_eq!(kind(&s7p(&err)), PduKind::Exception(Cmd::S7pError));
    let keepalive = hex("72 ff 03 00");
    assert_eq!(kind(&s7p(&keepalive)), PduKind::Message);
    assert_eq!(probe_s7plus(&keepalive, true), Probe::Match);
    // Version 3: integrity part (length 0x20 and 32 bytes) before the opcode.
    let mut v3 = hex("72 03 00 26 20");
    v3.extend_from_slice(&[0x5a; 32]);
    v3.extend_from_slice(&hex("31 0000 056b 72 03 00 00"));
    let rec = s7p(&v3);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::S7pInvoke));
    assert!(rec.violations.is_empty());
    // Version 3 with an unreadable data part: a message, not a violation.
    let opaque = hex("72 03 00 04 99 88 77 66 72 03 00 00");
    let rec = s7p(&opaque);
    assert_eq!((kind(&rec), rec.violations.len()), (PduKind::Message, 0));
    // TLS after InitSsl: opaque as well.
    let rec = s7p(&hex("17 03 03 00 04 01 02 03 04"));
    assert_eq!((kind(&rec), rec.violations.len()), (PduKind::Message, 0));
}

#[test]
fn s7plus_bad_headers_are_violations() {
    for p in [
        hex("72 07 00 05 31 0000 04bb 72 07 00 00"), // unknown version
        hex("72 02 00 30 31 0000 04bb 72 02 00 00"), // length beyond the PDU
        hex("72 02 00 05 31 0000 04bb 99 99 99 99"), // no trailer where one must be
        hex("72 02 00 05 44 0000 04bb 72 02 00 00"), // unknown opcode
        hex("72 02"),                                // header cut
        hex("55 02 00 00"),                          // not S7comm-plus at all
    ] {
        let rec = s7p(&p);
        assert_eq!(kind(&rec), PduKind::Message, "{p:02x?}");
        assert_eq!(rec.violations, vec![Violation::S7plusBadHeader], "{p:02x?}");
    }
}

#[test]
fn s7plus_trailer_tells_fragments() {
    let whole = hex("72 02 00 05 31 0000 04bb 72 02 00 00");
    assert_eq!(s7plus_has_trailer(&whole, whole.len()), Some(true));
    assert_eq!(s7plus_has_trailer(&whole[..9], 9), Some(false));
    // Truncated: the full length decides.
    assert_eq!(s7plus_has_trailer(&whole[..6], whole.len()), Some(true));
    assert_eq!(s7plus_has_trailer(&hex("72 ff 00 00"), 4), None);
    assert_eq!(s7plus_has_trailer(&hex("32 01"), 2), None);
}

#[test]
fn probes_check_headers() {
    let stop = job(&hex("29 0000000000 09 505f50524f4752414d"), &[]);
    assert_eq!(probe_s7(&stop, true), Probe::Match);
    assert_eq!(probe_s7(&stop[..8], false), Probe::Unsure);
    assert_eq!(probe_s7(&stop[..8], true), Probe::No);
    assert_eq!(probe_s7(&stop[..15], false), Probe::Match);
    let mut extra = stop.clone();
    extra.push(0);
    assert_eq!(probe_s7(&extra, true), Probe::No);
    assert_eq!(probe_s7(&job(&[], &[]), true), Probe::No);
    let ud = userdata(0x44, 1, &hex("ff 09 0004 0011 0000"));
    assert_eq!(probe_s7(&ud, true), Probe::Match);
    let mut bad_ud = ud.clone();
    bad_ud[10] = 0x01;
    assert_eq!(probe_s7(&bad_ud, true), Probe::No);
    assert_eq!(probe_s7(b"2\x01 random text here", true), Probe::No);
    // S7comm-plus: versions, lengths, opcodes.
    assert_eq!(
        probe_s7plus(&hex("72 02 00 05 31 0000 04bb"), true),
        Probe::Match
    ); // first fragment
    assert_eq!(probe_s7plus(&hex("72 02 00 05 31"), false), Probe::Match);
    assert_eq!(probe_s7plus(&hex("72 02 00"), false), Probe::Unsure);
    assert_eq!(
        probe_s7plus(&hex("72 09 00 05 31 0000 04bb"), true),
        Probe::No
    );
    assert_eq!(
        probe_s7plus(&hex("72 02 00 05 41 0000 04bb"), true),
        Probe::No
    );
    assert_eq!(
        probe_s7plus(&hex("72 02 00 06 31 0000 04bb"), true),
        Probe::No
    );
    assert_eq!(
        probe_s7plus(&hex("72 fe 00 02 01 02 72 fe 00 00"), true),
        Probe::Match
    );
}

#[test]
fn version_formatting_fits_its_buffer() {
    let mut b = [0u8; 16];
    let n = format_version(&mut b, 255, 255, 255);
    assert_eq!(&b[..n], b"V255.255.255");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), truncated in any::<bool>()) {
        let mut rec = Recorder::default();
        dissect_s7(&bytes, Side::Server, truncated, &mut rec);
        dissect_s7plus(&bytes, Side::Server, truncated, &mut rec);
        prop_assert_eq!(rec.pdus.len(), 2);
        let _ = probe_s7(&bytes, truncated);
        let _ = probe_s7plus(&bytes, truncated);
        let _ = s7plus_has_trailer(&bytes, bytes.len());
    }

    /// Well-formed headers around arbitrary parameters and data reach the deep decoders
    /// (user data, SZL records, job parameter checks).
    #[test]
    fn never_panics_behind_a_valid_header(
        rosctr in prop_oneof![Just(1u8), Just(2u8), Just(3u8), Just(7u8)],
        param in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        ud_prefix in any::<bool>(),
    ) {
        let mut param = param;
        if rosctr == 7 && ud_prefix {
            let mut p = vec![0x00, 0x01, 0x12, 0x08, 0x12, 0x84, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
            p.truncate(param.len().clamp(8, 12));
            param = p;
        }
        let mut pdu = vec![0x32, rosctr, 0, 0, 0, 1];
        pdu.extend_from_slice(&(param.len() as u16).to_be_bytes());
        pdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        if rosctr == 2 || rosctr == 3 {
            pdu.extend_from_slice(&[0, 0]);
        }
        pdu.extend_from_slice(&param);
        pdu.extend_from_slice(&data);
        let mut rec = Recorder::default();
        dissect_s7(&pdu, Side::Server, false, &mut rec);
        prop_assert_eq!(rec.pdus.len(), 1);
        prop_assert!(!rec.violations.contains(&Violation::S7BadHeader));
    }
}
