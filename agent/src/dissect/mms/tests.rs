//! MMS tests: the shared captures through the TPKT/COTP path (as the engine runs them) against
//! tshark's truth, hand-built PDUs for every layer, IEC 61850 control objects, violations,
//! truncation, S7 negatives and "never panics".

use super::*;
use crate::dissect::testutil::{Recorder, hex, messages, pcap_path};
use crate::dissect::tpkt;
use crate::stream::BufPool;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- builders

/// A BER TLV with the identifier octets `id` (one or more) and definite length.
fn tlv(id: &[u8], content: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    let n = content.len();
    match n {
        0..=0x7F => v.push(n as u8),
        0x80..=0xFF => v.extend_from_slice(&[0x81, n as u8]),
        _ => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(content);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn vstr(s: &str) -> Vec<u8> {
    tlv(&[0x1A], s.as_bytes())
}

/// ObjectName domain-specific [1] { domainId, itemId }.
fn domain_name(domain: &str, item: &str) -> Vec<u8> {
    tlv(&[0xA1], &cat(&[&vstr(domain), &vstr(item)]))
}

/// VariableAccessSpecification listOfVariable [0] of `names` (ObjectName TLVs).
fn list_of_variable(names: &[Vec<u8>]) -> Vec<u8> {
    let entries: Vec<u8> = names
        .iter()
        .flat_map(|n| tlv(&[0x30], &tlv(&[0xA0], n)))
        .collect();
    tlv(&[0xA0], &entries)
}

/// confirmed-RequestPDU with invokeID 1 and the service TLV `svc`.
fn request(svc: &[u8]) -> Vec<u8> {
    tlv(&[0xA0], &cat(&[&[0x02, 0x01, 0x01], svc]))
}

fn response(svc: &[u8]) -> Vec<u8> {
    tlv(&[0xA1], &cat(&[&[0x02, 0x01, 0x01], svc]))
}

/// Write-Request [5] of `names`, each written a boolean.
fn write(names: &[Vec<u8>]) -> Vec<u8> {
    let data: Vec<u8> = names.iter().flat_map(|_| [0x83, 0x01, 0xFF]).collect();
    tlv(
        &[0xA5],
        &cat(&[&list_of_variable(names), &tlv(&[0xA0], &data)]),
    )
}

/// Read-Request [4] of `names`.
fn read(names: &[Vec<u8>]) -> Vec<u8> {
    tlv(&[0xA4], &tlv(&[0xA1], &list_of_variable(names)))
}

/// Session GIVE TOKENS + DATA TRANSFER, presentation fully-encoded-data, PDV-list with
/// context 3 and single-ASN1-type: the user data of a DT carrying `mms`.
fn data(mms: &[u8]) -> Vec<u8> {
    let pdv = tlv(&[0x30], &cat(&[&[0x02, 0x01, 0x03], &tlv(&[0xA0], mms)]));
    cat(&[&[0x01, 0x00, 0x01, 0x00], &tlv(&[0x61], &pdv)])
}

/// An ACSE APDU inside CP-type (connect) or CPA-PPDU (accept) inside a session CONNECT
/// (13) or ACCEPT (14).
fn connect(si: u8, acse: &[u8]) -> Vec<u8> {
    let pdv = tlv(&[0x30], &cat(&[&[0x02, 0x01, 0x01], &tlv(&[0xA0], acse)]));
    let normal = tlv(
        &[0xA2],
        &cat(&[&hex("81 04 00000001 82 04 00000001"), &tlv(&[0x61], &pdv)]),
    );
    let cp = tlv(&[0x31], &cat(&[&hex("a0 03 80 01 01"), &normal]));
    let mut params = hex("05 06 13 01 00 16 01 02 14 02 00 02");
    params.push(PGI_USER_DATA);
    params.push(cp.len() as u8);
    params.extend_from_slice(&cp);
    cat(&[&[si, params.len() as u8], &params])
}

/// user-information [30] with one EXTERNAL holding `mms` as single-ASN1-type.
fn user_information(mms: &[u8]) -> Vec<u8> {
    let ext = tlv(
        &[0x28],
        &cat(&[&hex("06 02 51 01 02 01 03"), &tlv(&[0xA0], mms)]),
    );
    tlv(&[0xBE], &ext)
}

fn run(ud: &[u8], side: Side, truncated: bool) -> Recorder {
    let mut rec = Recorder::default();
    dissect(ud, side, truncated, &mut rec);
    assert_eq!(rec.pdus.len(), 1, "one pdu per DT");
    assert!(rec.violations.len() <= 1, "at most one violation per DT");
    rec
}

fn kind(rec: &Recorder) -> PduKind {
    rec.pdus[0].1.kind
}

fn object(rec: &Recorder) -> Option<String> {
    rec.objects[0]
        .as_ref()
        .map(|o| String::from_utf8_lossy(o).into_owned())
}

// ---------------------------------------------------------------- captures

/// Replays an ISO-TSAP capture as the engine does (reassembly, `tpkt::frame`, `tpkt::probe`
/// until a flow is decided, then `tpkt::dissect`). Returns the recorder and the protocol of
/// each flow.
type Flows = BTreeMap<(u16, u16, bool), Option<Proto>>;

fn replay(rel: &str) -> (Recorder, Flows) {
    let (msgs, framing) = messages(rel, 102, tpkt::frame);
    assert!(framing.is_empty(), "{rel}: {framing:?}");
    let mut pool = BufPool::new(4);
    let mut flows: BTreeMap<_, (Option<Proto>, tpkt::State)> = BTreeMap::new();
    let mut rec = Recorder::default();
    for m in msgs {
        let (proto, state) = flows.entry(m.flow).or_default();
        if proto.is_none() {
            let h = crate::dissect::Hint {
                port: true,
                tcp: true,
                from_client: m.side == Side::Client,
            };
            match tpkt::probe(&m.bytes, h) {
                tpkt::TpktProbe::Match(p) => *proto = Some(p),
                tpkt::TpktProbe::Unsure => {}
                tpkt::TpktProbe::No => panic!("{rel}: probe said No"),
            }
        }
        if let Some(p) = *proto {
            tpkt::dissect(&m.bytes, m.side, m.truncated, p, state, &mut pool, &mut rec);
        }
    }
    assert_eq!(pool.in_use(), 0);
    (rec, flows.into_iter().map(|(k, (p, _))| (k, p)).collect())
}

fn count(cmds: impl IntoIterator<Item = Cmd>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in cmds {
        *m.entry(c.name().to_string()).or_insert(0) += 1;
    }
    m
}

/// tshark's confirmed service request counts (`tshark.ics.mms.confirmed_service_requests`,
/// keyed by ConfirmedServiceRequest tag), by our command name.
fn tshark_requests(rel: &str) -> BTreeMap<String, usize> {
    let path = pcap_path(&format!("truth/{}", rel.replace(".pcap", ".json")));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let truth: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reqs = truth["tshark"]["ics"]["mms"]["confirmed_service_requests"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    reqs.iter()
        .map(|(tag, n)| {
            let cmd = confirmed_service(tag.parse().unwrap()).unwrap().0;
            (cmd.name().to_string(), n.as_u64().unwrap() as usize)
        })
        .collect()
}

/// Our confirmed-service requests: everything but initiate/conclude/cancel, with `operate`
/// counted as the MMS service it rides on (tshark knows only write and read).
fn our_confirmed_requests(rec: &Recorder) -> BTreeMap<String, usize> {
    let mut m = count(
        rec.requests()
            .into_iter()
            .filter(|c| !matches!(c, Cmd::MmsInitiate | Cmd::MmsConclude | Cmd::MmsCancel)),
    );
    if let Some(n) = m.remove("operate") {
        *m.entry("write".to_string()).or_insert(0) += n;
    }
    m
}

const CAPTURES: [&str; 3] = [
    "iec61850_mms/iti_mms_read.pcap",
    "iec61850_mms/iti_mms_write.pcap",
    "iec61850_mms/iti_mms_session.pcap",
];

#[test]
fn request_counts_match_tshark() {
    for rel in CAPTURES {
        let (rec, flows) = replay(rel);
        assert!(flows.values().all(|p| *p == Some(Proto::Mms)), "{rel}");
        let ours = our_confirmed_requests(&rec);
        let tshark = tshark_requests(rel);
        assert!(!tshark.is_empty(), "{rel}");
        assert_eq!(ours, tshark, "{rel}");
        // Association: one initiate each (tshark: initiate-RequestPDU / -ResponsePDU).
        let reqs = count(rec.requests());
        assert_eq!(reqs.get("initiate"), Some(&1), "{rel}");
        assert_eq!(count(rec.responses()).get("initiate"), Some(&1), "{rel}");
        for (_, p) in &rec.pdus {
            assert_eq!(p.proto, Proto::Mms);
        }
    }
}

#[test]
fn read_capture_in_detail() {
    let (rec, _) = replay("iec61850_mms/iti_mms_read.pcap");
    assert_eq!(
        rec.requests(),
        vec![Cmd::MmsInitiate, Cmd::MmsRead, Cmd::MmsConclude]
    );
    // The server answers the conclude with a confirmed-Response that has no service.
    assert_eq!(
        rec.responses(),
        vec![Cmd::MmsInitiate, Cmd::MmsRead, Cmd::MmsUnknown]
    );
    // tshark calls the ACCEPT malformed (LI 137 for 136 octets, User Data length 0); the
    // service-less response is ours.
    assert_eq!(
        rec.violations,
        vec![Violation::MmsBadSpdu, Violation::MmsBadPdu]
    );
    let read = rec
        .pdus
        .iter()
        .position(|(_, p)| p.kind == PduKind::Request(Cmd::MmsRead))
        .unwrap();
    assert_eq!(rec.objects[read].as_deref(), Some(&b"mu"[..]));
    assert_eq!(rec.pdus[read].0, Side::Client);
}

#[test]
fn write_capture_writes_a_plain_variable_not_a_control_object() {
    let (rec, _) = replay("iec61850_mms/iti_mms_write.pcap");
    // tshark: write of vmd-specific "mu" (integer 0), not an IEC 61850 control object, so
    // a `write`, not an `operate`.
    assert_eq!(
        rec.requests(),
        vec![Cmd::MmsInitiate, Cmd::MmsWrite, Cmd::MmsConclude]
    );
    let w = rec
        .pdus
        .iter()
        .position(|(_, p)| p.kind == PduKind::Request(Cmd::MmsWrite))
        .unwrap();
    assert_eq!(rec.objects[w].as_deref(), Some(&b"mu"[..]));
    // The write's answer is `30 00` where a Write-Response belongs, and the conclude's a
    // confirmed-Response without service.
    assert_eq!(
        rec.responses(),
        vec![Cmd::MmsInitiate, Cmd::MmsUnknown, Cmd::MmsUnknown]
    );
    assert_eq!(
        rec.violations,
        vec![
            Violation::MmsBadSpdu,
            Violation::MmsBadPdu,
            Violation::MmsBadPdu
        ]
    );
}

#[test]
fn session_capture_in_detail() {
    let (rec, _) = replay("iec61850_mms/iti_mms_session.pcap");
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    let want_req: BTreeMap<String, usize> = [
        ("initiate", 1),
        ("identify", 7),
        ("read", 6),
        ("get_named_variable_list_attributes", 4),
        ("write", 4),
        ("get_name_list", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(count(rec.requests()), want_req);
    // tshark: 23 confirmed responses, 115 information reports (112 one way, 3 the other).
    let mut want_resp = want_req.clone();
    want_resp.insert("information_report".into(), 115);
    assert_eq!(count(rec.responses()), want_resp);
    // ICCP is symmetric: both ends send requests.
    assert!(
        rec.pdus
            .iter()
            .any(|(s, p)| *s == Side::Server && matches!(p.kind, PduKind::Request(Cmd::MmsRead)))
    );
    // Identify answers from both ends name the same product.
    assert_eq!(rec.identities.len(), 7);
    for id in &rec.identities {
        assert_eq!(
            (id.1.as_str(), id.2.as_str(), id.3.as_str()),
            ("AREVA T&D Corporation", "e-terracomm", "2.3.1")
        );
    }
    let objects: Vec<(Cmd, String)> = rec
        .pdus
        .iter()
        .zip(&rec.objects)
        .filter_map(|((_, p), o)| match (p.kind, o) {
            (PduKind::Request(c) | PduKind::Response(c), Some(o)) => {
                Some((c, String::from_utf8_lossy(o).into_owned()))
            }
            _ => None,
        })
        .collect();
    for want in [
        (Cmd::MmsRead, "KIRKLAND/Bilateral_Table_ID"),
        (Cmd::MmsGetNameList, "KIRKLAND"),
        (
            Cmd::MmsGetNamedVariableListAttributes,
            "KIRKLAND/EMS_ANALOG_ICCP_IN",
        ),
        (Cmd::MmsWrite, "KIRKLAND/CITEC_TS0"),
        (Cmd::MmsInformationReport, "BELLEVUE/ANALOG_ICCP_IN"),
    ] {
        assert!(
            objects.iter().any(|(c, o)| (*c, o.as_str()) == want),
            "{want:?} not in {objects:?}"
        );
    }
}

#[test]
fn s7_captures_are_never_mms() {
    for rel in [
        "s7comm/iti_s7comm_read_write_var.pcap",
        "s7comm/iti_s7comm_read_plc_status.pcap",
        "s7comm/iti_s7-1200_hmi_s7commplus.pcap",
        "s7comm/iti_snap7_s300_plc_stop.pcap",
    ] {
        let (msgs, _) = messages(rel, 102, tpkt::frame);
        assert!(!msgs.is_empty(), "{rel}");
        for m in &msgs {
            for from_client in [true, false] {
                let h = crate::dissect::Hint {
                    port: true,
                    tcp: true,
                    from_client,
                };
                assert_ne!(
                    tpkt::probe(&m.bytes, h),
                    tpkt::TpktProbe::Match(Proto::Mms),
                    "{rel}"
                );
            }
            // Their DT user data, forced through this dissector, is no MMS service.
            if let Ok(t) = tpkt::Tpdu::parse(&m.bytes, m.truncated)
                && t.kind == tpkt::CotpKind::Dt
                && !t.user_data.is_empty()
            {
                for side in [Side::Client, Side::Server] {
                    let rec = run(t.user_data, side, m.truncated);
                    assert_eq!(kind(&rec), PduKind::Message, "{rel}");
                }
            }
        }
        let (rec, flows) = replay(rel);
        assert!(
            flows.values().all(|p| *p != Some(Proto::Mms)),
            "{rel}: {flows:?}"
        );
        assert!(rec.pdus.iter().all(|(_, p)| p.proto != Proto::Mms), "{rel}");
    }
}

// ---------------------------------------------------------------- IEC 61850 control

#[test]
fn writes_to_control_objects_are_operate() {
    for item in [
        "CSWI1$CO$Pos$Oper",
        "CSWI1$CO$Pos$SBOw",
        "CSWI1$CO$Pos$Cancel",
        "XCBR1$CO$BlkOpn$SBO",
    ] {
        let ud = data(&request(&write(&[domain_name("LD0", item)])));
        let rec = run(&ud, Side::Client, false);
        assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsOperate), "{item}");
        assert_eq!(object(&rec), Some(format!("LD0/{item}")));
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(Cmd::MmsOperate.class(), crate::command::Class::Control);
    }
}

#[test]
fn other_writes_stay_writes() {
    for item in [
        "CSWI1$ST$Pos$stVal",
        "CSWI1$CF$Pos$ctlModel",
        "CSWI1$CO$Pos$Oper$ctlVal",
        "LLN0$BR$brcbA01$RptEna",
        "Oper",
    ] {
        let ud = data(&request(&write(&[domain_name("LD0", item)])));
        let rec = run(&ud, Side::Client, false);
        assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsWrite), "{item}");
        assert_eq!(object(&rec), Some(format!("LD0/{item}")));
    }
    // A vmd-specific name is not an IEC 61850 object reference.
    let vmd = tlv(&[0x80], b"CSWI1$CO$Pos$Oper");
    let rec = run(&data(&request(&write(&[vmd]))), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsWrite));
}

#[test]
fn a_control_object_anywhere_in_the_list_makes_the_write_an_operate() {
    let names = [
        domain_name("IED1LD0", "GGIO1$ST$Ind1$stVal"),
        domain_name("IED1LD0", "CSWI2$CO$Pos$Oper"),
    ];
    let rec = run(&data(&request(&write(&names))), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsOperate));
    assert_eq!(object(&rec).as_deref(), Some("IED1LD0/CSWI2$CO$Pos$Oper"));
}

#[test]
fn reading_sbo_selects_and_other_reads_are_reads() {
    let sbo = run(
        &data(&request(&read(&[domain_name("LD0", "CSWI1$CO$Pos$SBO")]))),
        Side::Client,
        false,
    );
    assert_eq!(kind(&sbo), PduKind::Request(Cmd::MmsOperate));
    assert_eq!(object(&sbo).as_deref(), Some("LD0/CSWI1$CO$Pos$SBO"));
    for item in ["CSWI1$CO$Pos$Oper", "MMXU1$MX$TotW$mag$f"] {
        let rec = run(
            &data(&request(&read(&[domain_name("LD0", item)]))),
            Side::Client,
            false,
        );
        assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsRead), "{item}");
    }
}

#[test]
fn an_operate_cut_by_truncation_is_still_an_operate() {
    let ud = data(&request(&write(&[domain_name("LD0", "CSWI1$CO$Pos$Oper")])));
    // Cut inside listOfData: the name is whole.
    let cut = &ud[..ud.len() - 2];
    let rec = run(cut, Side::Client, true);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsOperate));
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    // The same bytes said to be whole: a BER overrun.
    let rec = run(cut, Side::Client, false);
    assert_eq!(rec.violations, vec![Violation::MmsBerOverrun]);
    // Every prefix decodes without a violation when marked truncated.
    for n in 0..ud.len() {
        let rec = run(&ud[..n], Side::Client, true);
        assert!(
            rec.violations.is_empty(),
            "prefix {n}: {:?}",
            rec.violations
        );
    }
}

#[test]
fn long_object_references_are_cut_to_the_buffer() {
    let item = format!("CSWI1$CO$Pos{}$Oper", "x".repeat(300));
    let rec = run(
        &data(&request(&write(&[domain_name("LD0", &item)]))),
        Side::Client,
        false,
    );
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsOperate));
    assert_eq!(rec.objects[0].as_ref().map(Vec::len), Some(OBJECT_MAX));
}

// ---------------------------------------------------------------- services

#[test]
fn every_confirmed_service_tag_maps_to_an_mms_command() {
    let mut seen = std::collections::HashSet::new();
    for tag in (0..=77).chain(80..=86) {
        let (cmd, _) = confirmed_service(tag).unwrap_or_else(|| panic!("tag {tag}"));
        assert_eq!(cmd.proto(), Proto::Mms);
        assert!(seen.insert(cmd), "{tag}: {} twice", cmd.name());
        // As a request on the wire, primitive and constructed alike.
        let id = if tag < 31 {
            vec![0x80 | tag as u8]
        } else {
            vec![0x9F, tag as u8]
        };
        let rec = run(&data(&request(&tlv(&id, &[]))), Side::Client, false);
        assert_eq!(kind(&rec), PduKind::Request(cmd), "tag {tag}");
        assert!(rec.violations.is_empty(), "tag {tag}: {:?}", rec.violations);
    }
    for tag in [78, 79, 87, 200] {
        assert!(confirmed_service(tag).is_none());
    }
    for tag in 0..=22 {
        assert!(seen.insert(additional_service(tag).unwrap()));
    }
    assert!(additional_service(23).is_none());
}

#[test]
fn design_names_and_classes() {
    use crate::command::Class;
    for (name, class) in [
        ("read", Class::Read),
        ("write", Class::Write),
        ("get_name_list", Class::Read),
        ("start", Class::State),
        ("stop", Class::State),
        ("resume", Class::State),
        ("reset", Class::State),
        ("kill", Class::State),
        ("operate", Class::Control),
        ("initiate", Class::Other),
        ("conclude", Class::Other),
        ("initiate_download_sequence", Class::Program),
        ("download_segment", Class::Program),
        ("file_open", Class::Program),
        ("file_delete", Class::Program),
        ("obtain_file", Class::Program),
        ("vmd_stop", Class::State),
        ("information_report", Class::Read),
    ] {
        let cmd = Cmd::find(Proto::Mms, name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(cmd.class(), class, "{name}");
    }
}

#[test]
fn program_invocation_and_file_services_name_their_object() {
    let pi = |tag: u8| tlv(&[0xBF, tag], &tlv(&[0x80], b"PLC_PROG"));
    for (svc, cmd, obj) in [
        (pi(40), Cmd::MmsStart, "PLC_PROG"),
        (pi(41), Cmd::MmsStop, "PLC_PROG"),
        (pi(42), Cmd::MmsResume, "PLC_PROG"),
        (pi(43), Cmd::MmsReset, "PLC_PROG"),
        (pi(44), Cmd::MmsKill, "PLC_PROG"),
        // deleteProgramInvocation [39] IMPLICIT Identifier
        (
            tlv(&[0x9F, 39], b"PLC_PROG"),
            Cmd::MmsDeleteProgramInvocation,
            "PLC_PROG",
        ),
        // initiateDownloadSequence [26] { domainName [0], listOfCapabilities [1], sharable [2] }
        (
            tlv(
                &[0xBA],
                &cat(&[&tlv(&[0x80], b"DOM1"), &hex("a1 00 82 01 00")]),
            ),
            Cmd::MmsInitiateDownloadSequence,
            "DOM1",
        ),
        // fileOpen [72] { fileName [0] SEQUENCE OF GraphicString, initialPosition [1] }
        (
            tlv(
                &[0xBF, 72],
                &cat(&[
                    &tlv(&[0xA0], &tlv(&[0x19], b"/COMTRADE/a.cfg")),
                    &hex("81 01 00"),
                ]),
            ),
            Cmd::MmsFileOpen,
            "/COMTRADE/a.cfg",
        ),
        // fileDelete [76] IMPLICIT FileName
        (
            tlv(&[0xBF, 76], &tlv(&[0x19], b"fw.bin")),
            Cmd::MmsFileDelete,
            "fw.bin",
        ),
        // obtainFile [46] { sourceFile [1], destinationFile [2] }
        (
            tlv(
                &[0xBF, 46],
                &cat(&[
                    &tlv(&[0xA1], &tlv(&[0x19], b"src")),
                    &tlv(&[0xA2], &tlv(&[0x19], b"dst")),
                ]),
            ),
            Cmd::MmsObtainFile,
            "dst",
        ),
        // getNameList [1] { objectClass, objectScope [1] domainSpecific [1] }
        (
            tlv(
                &[0xA1],
                &cat(&[&hex("a0 03 80 01 09"), &tlv(&[0xA1], &tlv(&[0x81], b"LD0"))]),
            ),
            Cmd::MmsGetNameList,
            "LD0",
        ),
        // getVariableAccessAttributes [6] name [0] ObjectName
        (
            tlv(&[0xA6], &tlv(&[0xA0], &domain_name("LD0", "LLN0"))),
            Cmd::MmsGetVariableAccessAttributes,
            "LD0/LLN0",
        ),
        // defineNamedVariableList [11] { variableListName, listOfVariable [0] }
        (
            tlv(
                &[0xAB],
                &cat(&[&domain_name("LD0", "LLN0$DS1"), &hex("a0 00")]),
            ),
            Cmd::MmsDefineNamedVariableList,
            "LD0/LLN0$DS1",
        ),
    ] {
        let rec = run(&data(&request(&svc)), Side::Client, false);
        assert_eq!(kind(&rec), PduKind::Request(cmd), "{}", cmd.name());
        assert_eq!(object(&rec).as_deref(), Some(obj), "{}", cmd.name());
        assert!(
            rec.violations.is_empty(),
            "{}: {:?}",
            cmd.name(),
            rec.violations
        );
    }
}

#[test]
fn additional_service_vmd_stop_is_a_state_command() {
    // additionalService [78] { vMDStop [0] NULL }
    let rec = run(
        &data(&request(&tlv(&[0xBF, 78], &hex("80 00")))),
        Side::Client,
        false,
    );
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsVmdStop));
    assert_eq!(Cmd::MmsVmdStop.class(), crate::command::Class::State);
    let rec = run(
        &data(&response(&tlv(&[0xBF, 78], &hex("81 00")))),
        Side::Server,
        false,
    );
    assert_eq!(kind(&rec), PduKind::Response(Cmd::MmsVmdReset));
    let rec = run(
        &data(&request(&tlv(&[0xBF, 78], &hex("9f 30 00")))),
        Side::Client,
        false,
    );
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsUnknown));
    assert_eq!(rec.violations, vec![Violation::MmsUnknownService]);
}

#[test]
fn modifiers_before_the_service_are_skipped() {
    let svc = tlv(&[0xBF, 40], &tlv(&[0x80], b"P1"));
    let pdu = tlv(
        &[0xA0],
        &cat(&[&hex("02 01 07"), &tlv(&[0x30], &hex("a0 00")), &svc]),
    );
    let rec = run(&data(&pdu), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsStart));
    assert!(rec.violations.is_empty());
}

#[test]
fn unknown_services_are_unknown_and_counted() {
    let rec = run(&data(&request(&hex("9f 63 00"))), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsUnknown));
    assert_eq!(rec.violations, vec![Violation::MmsUnknownService]);
    // A universal tag where the service belongs.
    let rec = run(&data(&request(&hex("04 00"))), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsUnknown));
    assert_eq!(rec.violations, vec![Violation::MmsBadPdu]);
    // No service at all.
    let rec = run(&data(&hex("a0 03 02 01 01")), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsUnknown));
    assert_eq!(rec.violations, vec![Violation::MmsBadPdu]);
    // An MMSpdu tag ISO 9506 does not define.
    let rec = run(&data(&hex("ae 00")), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Message);
    assert_eq!(rec.violations, vec![Violation::MmsBadPdu]);
}

// ---------------------------------------------------------------- other PDUs

#[test]
fn pdu_types_map_to_kinds() {
    for (mms, want) in [
        (hex("8b 00"), PduKind::Request(Cmd::MmsConclude)),
        (hex("8c 00"), PduKind::Response(Cmd::MmsConclude)),
        (
            hex("ad 05 a0 03 80 01 00"),
            PduKind::Exception(Cmd::MmsConclude),
        ),
        (hex("85 01 05"), PduKind::Request(Cmd::MmsCancel)),
        (hex("86 01 05"), PduKind::Response(Cmd::MmsCancel)),
        (hex("a7 00"), PduKind::Exception(Cmd::MmsCancel)),
        (hex("a8 00"), PduKind::Request(Cmd::MmsInitiate)),
        (hex("a9 00"), PduKind::Response(Cmd::MmsInitiate)),
        (hex("aa 00"), PduKind::Exception(Cmd::MmsInitiate)),
        // reject of a confirmed-requestPDU (invalid-argument) and of a conclude-request
        (
            hex("a4 06 80 01 01 81 01 04"),
            PduKind::Exception(Cmd::MmsUnknown),
        ),
        (hex("a4 03 89 01 00"), PduKind::Exception(Cmd::MmsConclude)),
        // confirmed-Error: invokeID [0], serviceError [2] { errorClass [0], …,
        // serviceSpecificInformation [3] start [1] }
        (
            hex("a2 0e 80 01 01 a2 09 a0 03 80 01 01 a3 02 81 00"),
            PduKind::Exception(Cmd::MmsStart),
        ),
        (
            hex("a2 0a 80 01 01 a2 05 a0 03 84 01 02"),
            PduKind::Exception(Cmd::MmsUnknown),
        ),
        // unconfirmed: unsolicitedStatus [1], eventNotification [2]
        (
            hex("a3 02 a1 00"),
            PduKind::Response(Cmd::MmsUnsolicitedStatus),
        ),
        (
            hex("a3 02 a2 00"),
            PduKind::Response(Cmd::MmsEventNotification),
        ),
    ] {
        let rec = run(&data(&mms), Side::Server, false);
        assert_eq!(kind(&rec), want, "{mms:02x?}");
        assert!(
            rec.violations.is_empty(),
            "{mms:02x?}: {:?}",
            rec.violations
        );
    }
}

#[test]
fn iec61850_report_names_its_report() {
    // informationReport [0] { variableListName [1] vmd-specific "RPT", listOfAccessResult }
    let rpt = hex("a3 12 a0 10 a1 05 80 03 52 50 54 a0 07 8a 05 52 70 74 49 44");
    let rec = run(&data(&rpt), Side::Server, false);
    assert_eq!(kind(&rec), PduKind::Response(Cmd::MmsInformationReport));
    assert_eq!(object(&rec).as_deref(), Some("RPT"));
}

#[test]
fn identify_response_is_an_identity() {
    let svc = tlv(
        &[0xA2],
        &cat(&[
            &tlv(&[0x80], b"libiec61850.com"),
            &tlv(&[0x81], b"LIBIEC61850"),
            &tlv(&[0x82], b"1.5.1"),
        ]),
    );
    let rec = run(&data(&response(&svc)), Side::Server, false);
    assert_eq!(kind(&rec), PduKind::Response(Cmd::MmsIdentify));
    assert_eq!(rec.identities.len(), 1);
    let id = &rec.identities[0];
    assert_eq!(
        (id.0, id.1.as_str(), id.2.as_str(), id.3.as_str()),
        (Side::Server, "libiec61850.com", "LIBIEC61850", "1.5.1")
    );
    // The request carries none.
    let rec = run(&data(&request(&hex("82 00"))), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsIdentify));
    assert!(rec.identities.is_empty());
}

// ---------------------------------------------------------------- association

fn aarq(extra: &[u8], mms: &[u8]) -> Vec<u8> {
    tlv(
        &[0x60],
        &cat(&[
            &hex("80 02 07 80 a1 07 06 05 28 ca 22 02 03"),
            extra,
            &user_information(mms),
        ]),
    )
}

fn aare(result: u8, mms: &[u8]) -> Vec<u8> {
    tlv(
        &[0x61],
        &cat(&[
            &hex("80 02 07 80 a1 07 06 05 28 ca 22 02 03"),
            &[0xA2, 0x03, 0x02, 0x01, result],
            &hex("a3 05 a1 03 02 01 00"),
            &user_information(mms),
        ]),
    )
}

const INITIATE_REQ: &str =
    "a8 1b 80 03 00 fd e8 81 01 0a 82 01 0a 83 01 05 a4 0b 80 01 01 81 02 05 f1 82 02 03 ee";

#[test]
fn association_is_initiate() {
    let rec = run(
        &connect(13, &aarq(&[], &hex(INITIATE_REQ))),
        Side::Client,
        false,
    );
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsInitiate));
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert_eq!(rec.pdus[0].1.flags, 0);
    let rec = run(&connect(14, &aare(0, &hex("a9 00"))), Side::Server, false);
    assert_eq!(kind(&rec), PduKind::Response(Cmd::MmsInitiate));
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    // Refused by ACSE (rejected-permanent), by MMS (initiate-Error) or by the session.
    let rec = run(&connect(14, &aare(1, &hex("aa 00"))), Side::Server, false);
    assert_eq!(kind(&rec), PduKind::Exception(Cmd::MmsInitiate));
    let rec = run(&connect(14, &aare(0, &hex("aa 00"))), Side::Server, false);
    assert_eq!(kind(&rec), PduKind::Exception(Cmd::MmsInitiate));
    let rec = run(&hex("0c 03 32 01 00"), Side::Server, false);
    assert_eq!(kind(&rec), PduKind::Exception(Cmd::MmsInitiate));
}

#[test]
fn a_password_in_the_aarq_is_flagged() {
    // mechanism-name [11] 2.2.3.1 (password), calling-authentication-value [12] charstring [0]
    let auth = hex("8b 03 52 03 01 ac 08 80 06 73 65 63 72 65 74");
    let rec = run(
        &connect(13, &aarq(&auth, &hex(INITIATE_REQ))),
        Side::Client,
        false,
    );
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsInitiate));
    assert_eq!(
        rec.pdus[0].1.flags & crate::dissect::PDU_CLEARTEXT_CREDENTIALS,
        crate::dissect::PDU_CLEARTEXT_CREDENTIALS
    );
}

#[test]
fn release_and_abort_are_messages() {
    // FINISH with user data (CP-less: fully-encoded RLRQ), DISCONNECT, ABORT, and ACSE RLRQ
    // on data transfer.
    let rlrq = hex("62 03 80 01 00");
    let pdv = tlv(&[0x30], &cat(&[&[0x02, 0x01, 0x01], &tlv(&[0xA0], &rlrq)]));
    let ud = tlv(&[0x61], &pdv);
    let mut finish = vec![0x09, (ud.len() + 2) as u8, PGI_USER_DATA, ud.len() as u8];
    finish.extend_from_slice(&ud);
    for (bytes, side) in [
        (finish, Side::Client),
        (hex("0a 00"), Side::Server),
        (hex("19 03 11 01 03"), Side::Client),
        (cat(&[&[0x01, 0x00, 0x01, 0x00], &ud]), Side::Client),
    ] {
        let rec = run(&bytes, side, false);
        assert_eq!(kind(&rec), PduKind::Message, "{bytes:02x?}");
        assert!(
            rec.violations.is_empty(),
            "{bytes:02x?}: {:?}",
            rec.violations
        );
    }
}

// ---------------------------------------------------------------- broken input

#[test]
fn ber_violations_are_named() {
    // Indefinite length.
    let rec = run(
        &data(&hex("a0 80 02 01 01 a4 00 00 00")),
        Side::Client,
        false,
    );
    assert_eq!(rec.violations, vec![Violation::MmsBerBadEncoding]);
    // A child longer than its parent.
    let rec = run(&data(&hex("a0 05 02 01 01 a4 05 00")), Side::Client, false);
    assert_eq!(rec.violations, vec![Violation::MmsBerOverrun]);
    // Deep inside the data: a structure [2] claiming more than its write holds.
    let bad = request(&tlv(
        &[0xA5],
        &cat(&[
            &list_of_variable(&[domain_name("LD0", "X")]),
            &hex("a0 04 a2 02 83 05"),
        ]),
    ));
    let rec = run(&data(&bad), Side::Client, false);
    assert_eq!(rec.violations, vec![Violation::MmsBerOverrun]);
    // Nesting past MAX_DEPTH.
    let mut deep = hex("83 01 00");
    for _ in 0..MAX_DEPTH + 2 {
        deep = tlv(&[0xA2], &deep);
    }
    let pdu = request(&tlv(
        &[0xA5],
        &cat(&[
            &list_of_variable(&[domain_name("LD0", "X")]),
            &tlv(&[0xA0], &deep),
        ]),
    ));
    let rec = run(&data(&pdu), Side::Client, false);
    assert_eq!(kind(&rec), PduKind::Request(Cmd::MmsWrite));
    assert_eq!(rec.violations, vec![Violation::MmsBerTooDeep]);
    // A tag number of four octets.
    let rec = run(
        &data(&hex("a0 08 02 01 01 bf 81 81 81 01")),
        Side::Client,
        false,
    );
    assert_eq!(rec.violations, vec![Violation::MmsBerBadEncoding]);
}

#[test]
fn check_ber_accepts_what_it_should() {
    assert_eq!(check_ber(&[], false), Ok(()));
    assert_eq!(check_ber(&hex("30 00 30 03 02 01 00"), false), Ok(()));
    assert_eq!(check_ber(&hex("30 05 02 01 00"), true), Ok(()));
    assert_eq!(
        check_ber(&hex("30 05 02 01 00"), false),
        Err(Violation::MmsBerOverrun)
    );
    assert_eq!(
        check_ber(&hex("30 03 02 05"), true),
        Err(Violation::MmsBerOverrun)
    );
    assert_eq!(check_ber(&hex("30 82 01 00 02"), true), Ok(()));
    assert_eq!(check_ber(&hex("02"), false), Err(Violation::MmsBerOverrun));
    assert_eq!(check_ber(&hex("02"), true), Ok(()));
    assert_eq!(
        check_ber(&hex("02 85 00 00 00 00 01"), false),
        Err(Violation::MmsBerBadEncoding)
    );
}

#[test]
fn broken_upper_layers_are_violations() {
    for (ud, want) in [
        // Unknown SPDU identifier.
        (hex("42 00"), Violation::MmsBadSpdu),
        // CONNECT whose LI runs past the data.
        (hex("0d 20 05 06"), Violation::MmsBadSpdu),
        // DATA TRANSFER with a user data that is not presentation User-data.
        (hex("01 00 01 00 30 00"), Violation::MmsBadPpdu),
        // PDV-list without presentation-data-values.
        (
            hex("01 00 01 00 61 05 30 03 02 01 03"),
            Violation::MmsBadPpdu,
        ),
        // CONNECT whose User Data is not a CP-type SET.
        (hex("0d 04 c1 02 30 00"), Violation::MmsBadPpdu),
        // An APPLICATION tag ACSE does not define, on data transfer.
        (data(&hex("65 00")), Violation::MmsBadAcse),
        // A REFUSE with trailing bytes.
        (hex("0c 00 00"), Violation::MmsBadSpdu),
    ] {
        let rec = run(&ud, Side::Client, false);
        assert_eq!(kind(&rec), PduKind::Message, "{ud:02x?}");
        assert_eq!(rec.violations, vec![want], "{ud:02x?}");
    }
    // AARQ with an APPLICATION tag ACSE does not define.
    let rec = run(&connect(13, &hex("65 00")), Side::Client, false);
    assert_eq!(rec.violations, vec![Violation::MmsBadAcse]);
}

#[test]
fn empty_and_cut_user_data() {
    for (ud, truncated) in [
        (&[][..], false),
        (&[][..], true),
        (&[0x01][..], true),
        (&[0x01, 0x00, 0x01][..], true),
        (&[0x01, 0x00][..], false),
        (&[0x0d, 0xff][..], true),
    ] {
        let rec = run(ud, Side::Client, truncated);
        assert_eq!(kind(&rec), PduKind::Message);
        if truncated {
            assert!(rec.violations.is_empty(), "{ud:02x?}: {:?}", rec.violations);
        }
    }
}

#[test]
fn random_bytes_are_no_mms_service() {
    // Deterministic pseudo-random user data (xorshift): no request or response comes out of
    // noise unless it happens to start like a session SPDU carrying presentation data.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut services = 0;
    for _ in 0..2000 {
        let mut ud = [0u8; 64];
        for b in &mut ud {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let rec = run(&ud, Side::Client, false);
        if kind(&rec) != PduKind::Message {
            services += 1;
        }
    }
    assert_eq!(services, 0);
}

#[test]
fn the_probe_wants_presentation_user_data_after_the_session_header() {
    let h = crate::dissect::Hint {
        port: true,
        tcp: true,
        from_client: true,
    };
    let dt = |ud: &[u8]| {
        let mut v = vec![3, 0, 0, (7 + ud.len()) as u8, 2, 0xF0, 0x80];
        v.extend_from_slice(ud);
        v
    };
    assert_eq!(
        tpkt::probe(&dt(&data(&hex("8b 00"))), h),
        tpkt::TpktProbe::Match(Proto::Mms)
    );
    assert_eq!(
        tpkt::probe(&dt(&hex("01 00 01 00 30 00")), h),
        tpkt::TpktProbe::No
    );
    assert_eq!(
        tpkt::probe(&dt(&hex("01 00 01 00")), h),
        tpkt::TpktProbe::No
    );
}

// ---------------------------------------------------------------- never panic

mod never_panic {
    use super::*;
    use proptest::prelude::*;

    struct Null;
    impl PduSink for Null {
        fn pdu(&mut self, _: Side, _: &Pdu) {}
        fn violation(&mut self, _: Violation) {}
        fn identity(&mut self, _: Side, _: &Identity<'_>) {}
    }

    fn all(ud: &[u8]) {
        for truncated in [false, true] {
            dissect(ud, Side::Client, truncated, &mut Null);
            dissect(ud, Side::Server, truncated, &mut Null);
        }
        let _ = check_ber(ud, false);
        let _ = check_ber(ud, true);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn arbitrary_user_data(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            all(&bytes);
        }

        /// Valid session and presentation around arbitrary MMS bytes, often starting with a
        /// confirmed request or response.
        #[test]
        fn arbitrary_mms(
            first in prop_oneof![Just(0xA0u8), Just(0xA1u8), Just(0xA3u8), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..400,
        ) {
            let mut mms = vec![first];
            mms.extend_from_slice(&rest);
            let ud = data(&mms);
            all(&ud);
            all(&ud[..cut.min(ud.len())]);
            let c = connect(13, &aarq(&[], &mms));
            all(&c);
            all(&c[..cut.min(c.len())]);
        }

        /// Nested constructed TLVs of random shape.
        #[test]
        fn nested_ber(depths in proptest::collection::vec(0u8..40, 1..6)) {
            let mut pdu = hex("83 01 00");
            for d in depths {
                for _ in 0..d {
                    pdu = tlv(&[0xA2], &pdu);
                }
            }
            let ud = data(&request(&tlv(&[0xA5], &pdu)));
            all(&ud);
        }
    }
}
