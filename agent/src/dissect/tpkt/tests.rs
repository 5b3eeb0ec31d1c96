//! TPKT/COTP tests: framing, classification and dissection over the shared captures (as
//! the engine would run them: sequence tracking, `frame`, `probe`, `dissect`) and over
//! small hand-written vectors.

use super::*;
use crate::command::Cmd;
use crate::dissect::testutil::{Recorder, hex, pcap_path, segments};
use crate::dissect::{Identity, Probe};
use crate::stream::tests::Collect;
use crate::stream::{DirStream, StreamStats};
use std::collections::BTreeMap;

const ISO_TSAP_PORT: u16 = 102;

fn hint(port: bool) -> Hint {
    Hint {
        port,
        tcp: true,
        from_client: true,
    }
}

/// A TPKT packet holding a COTP DT with `ud`.
fn dt_eot(ud: &[u8], eot: bool) -> Vec<u8> {
    let len = 7 + ud.len();
    let mut v = vec![
        3,
        0,
        (len >> 8) as u8,
        len as u8,
        2,
        0xF0,
        if eot { 0x80 } else { 0x00 },
    ];
    v.extend_from_slice(ud);
    v
}

fn dt(ud: &[u8]) -> Vec<u8> {
    dt_eot(ud, true)
}

/// A TPKT packet holding the COTP TPDU `cotp` (LI included).
fn tpkt(cotp: &[u8]) -> Vec<u8> {
    let len = 4 + cotp.len();
    let mut v = vec![3, 0, (len >> 8) as u8, len as u8];
    v.extend_from_slice(cotp);
    v
}

/// One flow of a replayed capture.
#[derive(Default)]
struct Flow {
    dirs: [DirStream; 2],
    state: State,
    proto: Option<Proto>,
    /// Probe verdicts until the decision.
    probes: Vec<TpktProbe>,
}

struct Replay {
    rec: Recorder,
    /// Flow protocols by client port.
    flows: BTreeMap<u16, Option<Proto>>,
    framing: Vec<Violation>,
}

impl Replay {
    fn requests(&self) -> BTreeMap<&'static str, usize> {
        count(self.rec.requests())
    }
    fn answers(&self) -> BTreeMap<&'static str, usize> {
        count(self.rec.pdus.iter().filter_map(|(_, p)| match p.kind {
            PduKind::Response(c) | PduKind::Exception(c) => Some(c),
            _ => None,
        }))
    }
}

fn count(cmds: impl IntoIterator<Item = Cmd>) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for c in cmds {
        *m.entry(c.name()).or_insert(0) += 1;
    }
    m
}

/// Replays a capture of ISO-TSAP flows (server port 102): per direction sequence
/// tracking and framing, `probe` on each message until a flow is decided, then `dissect`.
fn replay(rel: &str) -> Replay {
    let mut pool = BufPool::new(16);
    let mut stats = StreamStats::default();
    let mut flows: BTreeMap<u16, Flow> = BTreeMap::new();
    let mut rec = Recorder::default();
    let mut framing = Vec::new();
    for seg in segments(rel) {
        assert!(seg.tcp);
        let (side, client_port) = if seg.dport == ISO_TSAP_PORT {
            (Side::Client, seg.sport)
        } else {
            (Side::Server, seg.dport)
        };
        let flow = flows.entry(client_port).or_default();
        let mut collected = Collect::default();
        let dir = &mut flow.dirs[side.index()];
        if let Some(data) = dir.accept(seq_of(&seg), &seg.payload, &mut pool, &mut stats) {
            dir.feed(data, &mut pool, &mut stats, frame, &mut collected);
        }
        framing.extend(collected.viol);
        for (msg, truncated) in collected.msgs {
            if flow.proto.is_none() {
                let h = Hint {
                    port: true,
                    tcp: true,
                    from_client: side == Side::Client,
                };
                let verdict = probe(&msg, h);
                flow.probes.push(verdict);
                match verdict {
                    TpktProbe::Match(p) => flow.proto = Some(p),
                    TpktProbe::Unsure => {}
                    TpktProbe::No => panic!("{rel}: probe said No to {}", hexs(&msg)),
                }
            }
            if let Some(p) = flow.proto {
                dissect(
                    &msg,
                    side,
                    truncated,
                    p,
                    &mut flow.state,
                    &mut pool,
                    &mut rec,
                );
            }
        }
    }
    for f in flows.values_mut() {
        f.state.release(&mut pool);
        for d in &mut f.dirs {
            d.reset(&mut pool);
        }
    }
    assert_eq!(pool.in_use(), 0);
    assert_eq!(stats.gaps, 0, "{rel}: gaps");
    Replay {
        rec,
        flows: flows.into_iter().map(|(k, f)| (k, f.proto)).collect(),
        framing,
    }
}

fn seq_of(seg: &crate::dissect::testutil::Seg) -> u32 {
    seg.seq
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn truth(rel: &str) -> serde_json::Value {
    let path = pcap_path(&format!("truth/{rel}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// tshark's S7 job-request counts (`tshark.ics.s7comm.job_functions`, keys "code:name"),
/// by our command name.
fn tshark_jobs(rel: &str) -> BTreeMap<String, usize> {
    let t = truth(rel);
    let jobs = t["tshark"]["ics"]["s7comm"]["job_functions"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    jobs.iter()
        .map(|(k, v)| {
            let name = k.split_once(':').map(|(_, n)| n).unwrap_or(k);
            assert!(
                Cmd::find(Proto::S7comm, name).is_some(),
                "no command {name}"
            );
            (name.to_string(), v.as_u64().unwrap_or(0) as usize)
        })
        .collect()
}

/// tshark's user-data counts (`userdata_group_subfunc`, "group/subfunction", requests and
/// answers together), by our command name.
fn tshark_userdata(rel: &str) -> BTreeMap<&'static str, usize> {
    let t = truth(rel);
    let ud = t["tshark"]["ics"]["s7comm"]["userdata_group_subfunc"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut m = BTreeMap::new();
    for (k, v) in &ud {
        let (g, s) = k.split_once('/').unwrap_or((k, "0"));
        let cmd = s7comm::userdata_cmd(g.parse().unwrap_or(0xFF), s.parse().unwrap_or(0))
            .unwrap_or(Cmd::S7Unknown);
        *m.entry(cmd.name()).or_insert(0) += v.as_u64().unwrap_or(0) as usize;
    }
    m
}

fn as_owned(m: BTreeMap<&'static str, usize>) -> BTreeMap<String, usize> {
    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn assert_all_pdus_are(r: &Replay, proto: Proto) {
    assert!(!r.rec.pdus.is_empty());
    for (_, p) in &r.rec.pdus {
        assert_eq!(p.proto, proto, "{p:?}");
        if let PduKind::Request(c) | PduKind::Response(c) | PduKind::Exception(c) = p.kind {
            assert_eq!(c.proto(), proto, "{p:?}");
        }
    }
}

// ---------------------------------------------------------------- real captures

#[test]
fn plc_stop_capture_counts_match_tshark() {
    let rel = "s7comm/iti_snap7_s300_plc_stop.pcap";
    let r = replay(rel);
    assert_eq!(
        r.flows.values().collect::<Vec<_>>(),
        vec![&Some(Proto::S7comm)]
    );
    assert_all_pdus_are(&r, Proto::S7comm);
    assert_eq!(
        as_owned(r.requests()),
        tshark_jobs("s7comm/iti_snap7_s300_plc_stop.json")
    );
    assert_eq!(
        as_owned(r.requests()),
        BTreeMap::from([("plc_stop".to_string(), 1)])
    );
    assert_eq!(r.answers(), BTreeMap::from([("plc_stop", 1)]));
    assert!(
        r.rec.violations.is_empty() && r.framing.is_empty(),
        "{:?}",
        r.rec.violations
    );
}

#[test]
fn read_write_var_capture_counts_match_tshark() {
    let rel = "s7comm/iti_s7comm_read_write_var.pcap";
    let r = replay(rel);
    assert!(
        r.flows.values().all(|p| *p == Some(Proto::S7comm)),
        "{:?}",
        r.flows
    );
    assert_all_pdus_are(&r, Proto::S7comm);
    let want = tshark_jobs("s7comm/iti_s7comm_read_write_var.json");
    assert_eq!(as_owned(r.requests()), want);
    assert_eq!(
        r.requests(),
        BTreeMap::from([
            ("read_var", 3),
            ("setup_communication", 1),
            ("write_var", 4)
        ])
    );
    // Every job was acknowledged with data (tshark: ROSCTR 3 = 8).
    assert_eq!(r.answers(), r.requests());
    assert!(
        r.rec.violations.is_empty() && r.framing.is_empty(),
        "{:?}",
        r.rec.violations
    );
}

#[test]
fn read_plc_status_capture_counts_match_tshark() {
    let rel = "s7comm/iti_s7comm_read_plc_status.pcap";
    let r = replay(rel);
    assert!(
        r.flows.values().any(|p| *p == Some(Proto::S7comm)),
        "{:?}",
        r.flows
    );
    assert!(
        r.flows
            .values()
            .all(|p| p.is_none() || *p == Some(Proto::S7comm)),
        "{:?}",
        r.flows
    );
    assert_all_pdus_are(&r, Proto::S7comm);

    // Jobs: exactly tshark's `job_functions`.
    let jobs: BTreeMap<String, usize> = as_owned(r.requests())
        .into_iter()
        .filter(|(k, _)| s7comm_job_name(k))
        .collect();
    assert_eq!(jobs, tshark_jobs("s7comm/iti_s7comm_read_plc_status.json"));

    // User data: tshark counts requests and answers together per group/subfunction.
    let mut ud = BTreeMap::new();
    for (_, p) in &r.rec.pdus {
        if let PduKind::Request(c) | PduKind::Response(c) | PduKind::Exception(c) = p.kind
            && !s7comm_job_name(c.name())
        {
            *ud.entry(c.name()).or_insert(0) += 1;
        }
    }
    assert_eq!(
        ud,
        tshark_userdata("s7comm/iti_s7comm_read_plc_status.json")
    );
    // Requests alone (tshark -Y s7comm.param.userdata.type==4: 68 × 4/1, 2 × 4/2, 1 × 7/1).
    assert_eq!(
        r.requests(),
        BTreeMap::from([
            ("message_service", 2),
            ("read_clock", 1),
            ("read_szl", 68),
            ("setup_communication", 1)
        ])
    );
    // One SZL answer is "object does not exist" (return code 0x0a).
    let exceptions: Vec<_> = r
        .rec
        .pdus
        .iter()
        .filter(|(_, p)| matches!(p.kind, PduKind::Exception(_)))
        .collect();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0].1.kind, PduKind::Exception(Cmd::S7ReadSzl));
    assert!(
        r.rec.violations.is_empty() && r.framing.is_empty(),
        "{:?}",
        r.rec.violations
    );

    // Identity from SZL 0x0011 (module identification), 0x0111 (one record of it) and
    // 0x001C (component identification), all told by the PLC (server side).
    let ids: Vec<_> = r
        .rec
        .identities
        .iter()
        .map(|(s, v, m, f, sn, n)| {
            (
                *s,
                v.as_str(),
                m.as_str(),
                f.as_str(),
                sn.as_str(),
                n.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (Side::Server, "Siemens", "6ES7 151-8AB01-0AB0", "", "", ""),
            (
                Side::Server,
                "Siemens",
                "6ES7 151-8AB01-0AB0",
                "V3.2.6",
                "",
                ""
            ),
            (
                Side::Server,
                "Siemens",
                "IM151-8 PN/DP CPU",
                "",
                "S C-C6TW74882012",
                "IM151-8-CPU"
            ),
        ]
    );
}

fn s7comm_job_name(name: &str) -> bool {
    (0..=255u8)
        .filter_map(s7comm::job_cmd)
        .any(|c| c.name() == name)
}

#[test]
fn s7commplus_capture_is_s7commplus_with_its_functions() {
    // Wireshark 4.0 has no S7comm-plus dissector: the counts were read off the hex (each
    // DT: 72 ver len16, opcode, 0000, function16) — the client's frames appear twice in
    // this capture and sequence tracking drops the copies.
    let rel = "s7comm/iti_s7-1200_hmi_s7commplus.pcap";
    let r = replay(rel);
    assert_eq!(
        r.flows.values().collect::<Vec<_>>(),
        vec![&Some(Proto::S7commplus)]
    );
    assert_all_pdus_are(&r, Proto::S7commplus);
    let want = BTreeMap::from([
        ("create_object", 1),
        ("get_multi_variables", 9),
        ("set_multi_variables", 2),
    ]);
    assert_eq!(r.requests(), want);
    assert_eq!(r.answers(), want);
    assert!(
        r.rec.violations.is_empty() && r.framing.is_empty(),
        "{:?}",
        r.rec.violations
    );
    // The connection's CR (called TSAP SIMATIC-ROOT-HMI) and CC left it undecided; the
    // first DT decided.
    assert!(r.rec.identities.is_empty());
}

#[test]
fn mms_captures_are_mms_not_s7() {
    for rel in [
        "iec61850_mms/iti_mms_read.pcap",
        "iec61850_mms/iti_mms_session.pcap",
        "iec61850_mms/iti_mms_write.pcap",
    ] {
        let r = replay(rel);
        assert!(!r.flows.is_empty());
        assert!(
            r.flows.values().all(|p| *p == Some(Proto::Mms)),
            "{rel}: {:?}",
            r.flows
        );
        assert_all_pdus_are(&r, Proto::Mms);
        // Decoded down to MMS services (details in `mms::tests`).
        assert!(r.requests().contains_key("initiate"), "{rel}");
        // Framing is sound; what the ITI captures' stack gets wrong is MMS's own.
        assert!(r.framing.is_empty(), "{rel}: {:?}", r.framing);
        assert!(
            r.rec
                .violations
                .iter()
                .all(|v| v.name().starts_with("mms_")),
            "{rel}: {:?}",
            r.rec.violations
        );
    }
}

#[test]
fn both_directions_of_each_capture_classify_alike() {
    // The first DT of each side, probed alone, names the same protocol.
    for (rel, want) in [
        ("s7comm/iti_s7comm_read_write_var.pcap", Proto::S7comm),
        ("s7comm/iti_s7comm_read_plc_status.pcap", Proto::S7comm),
        ("s7comm/iti_s7-1200_hmi_s7commplus.pcap", Proto::S7commplus),
        ("iec61850_mms/iti_mms_read.pcap", Proto::Mms),
        ("iec61850_mms/iti_mms_write.pcap", Proto::Mms),
    ] {
        for side_port_is_server in [false, true] {
            let first_dt = segments(rel)
                .into_iter()
                .filter(|s| (s.sport == ISO_TSAP_PORT) == side_port_is_server)
                .find(|s| byte(&s.payload, 5) == 0xF0 && s.payload.len() > 7)
                .unwrap_or_else(|| panic!("{rel}: no DT"));
            assert_eq!(
                probe(&first_dt.payload, hint(true)),
                TpktProbe::Match(want),
                "{rel}"
            );
            // The same bytes on another port.
            assert_eq!(
                probe(&first_dt.payload, hint(false)),
                TpktProbe::Match(want),
                "{rel}"
            );
        }
    }
}

// ---------------------------------------------------------------- probe

#[test]
fn http_and_random_bytes_on_port_102_are_not_iso_tsap() {
    assert_eq!(
        probe(b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n", hint(true)),
        TpktProbe::No
    );
    assert_eq!(probe(b"HTTP/1.1 200 OK\r\n\r\n", hint(true)), TpktProbe::No);
    assert_eq!(
        probe(&hex("16 03 01 00 a5 01 00 00 a1 03 03"), hint(true)),
        TpktProbe::No
    );
    assert_eq!(probe(&[], hint(true)), TpktProbe::Unsure);
    // A deterministic stream of random payloads: none is taken for an ISO-TSAP protocol.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let len = (next() % 300) as usize + 1;
        let p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(
            !matches!(probe(&p, hint(true)), TpktProbe::Match(_)),
            "{}",
            hexs(&p)
        );
        // Even with a valid TPKT + COTP DT header in front, random user data is not S7.
        let d = dt(&p);
        assert!(
            !matches!(
                probe(&d, hint(true)),
                TpktProbe::Match(Proto::S7comm | Proto::S7commplus)
            ),
            "{}",
            hexs(&d)
        );
    }
    // UDP is never TPKT.
    let job = hex("0300001f02f080320100000000000e00000401120a10020040000184000000");
    assert_eq!(
        probe(
            &job,
            Hint {
                port: true,
                tcp: false,
                from_client: true
            }
        ),
        TpktProbe::No
    );
}

#[test]
fn connection_request_alone_is_unsure_and_decides_with_the_next_packet() {
    let cr = hex("0300001611e00000000100c1020100c2020102c00109");
    let cc = hex("0300001611d00001000300c00109c1020100c2020102");
    let setup = hex("0300001902f08032010000ffff00080000f000000100010780");
    assert_eq!(probe(&cr, hint(true)), TpktProbe::Unsure);
    assert_eq!(probe(&cc, hint(true)), TpktProbe::Unsure);
    // Coalesced in one payload: the DT behind the CR decides.
    let mut both = cr.clone();
    both.extend_from_slice(&setup);
    assert_eq!(probe(&both, hint(true)), TpktProbe::Match(Proto::S7comm));
    // Cut short: the header alone, or half an S7 header, is not enough.
    assert_eq!(probe(&setup[..4], hint(true)), TpktProbe::Unsure);
    assert_eq!(probe(&setup[..12], hint(true)), TpktProbe::Unsure);
    assert_eq!(probe(&setup[..2], hint(true)), TpktProbe::Unsure);
    // Other transport TPDUs tell nothing either.
    assert_eq!(
        probe(&tpkt(&hex("06 80 0001 0002 00")), hint(true)),
        TpktProbe::Unsure
    );
    // …but a broken COTP is not ISO transport.
    assert_eq!(probe(&tpkt(&hex("02 30 00")), hint(true)), TpktProbe::No);
    assert_eq!(probe(&tpkt(&hex("09 f0 80")), hint(true)), TpktProbe::No);
}

#[test]
fn rdp_negotiation_is_rdp() {
    let mut ud = b"Cookie: mstshash=operator\r\n".to_vec();
    ud.extend_from_slice(&hex("01 00 08 00 03 00 00 00"));
    let mut cotp = vec![6, 0xE0, 0, 0, 0, 0, 0];
    cotp.extend_from_slice(&ud);
    assert_eq!(
        probe(&tpkt(&cotp), hint(true)),
        TpktProbe::Match(Proto::Rdp)
    );
    // RDP_NEG_REQ alone, and on a port other than 3389.
    let cr = tpkt(&hex("06 e0 0000 0000 00 01 00 08 00 0b 00 00 00"));
    assert_eq!(probe(&cr, hint(false)), TpktProbe::Match(Proto::Rdp));
    // The server's RDP_NEG_RSP in the CC.
    let cc = tpkt(&hex("06 d0 0000 1234 00 02 1f 08 00 02 00 00 00"));
    assert_eq!(probe(&cc, hint(true)), TpktProbe::Match(Proto::Rdp));
    // An S7 CR is not RDP.
    assert_eq!(
        probe(
            &hex("0300001611e00000000100c1020100c2020102c00109"),
            hint(true)
        ),
        TpktProbe::Unsure
    );
}

#[test]
fn s7comm_s7commplus_and_mms_are_told_apart_in_both_directions() {
    let s7_job = hex("0300001f02f080320100000000000e00000401120a10020040000184000000");
    let s7_ack = hex("0300001602f0803203000000020002000100000501ff");
    let s7_ud_req = hex("0300002102f080320700000300000800080001120411440100ff09000401320004");
    let s7p_req = dt(&hex(
        "72 02 00 0f 31 0000 054c 0000 0003 0000 03be 34 00 72 02 00 00",
    ));
    let s7p_rsp = hex("0300001f02f0807202001032000005420000000a3400000000000072020000");
    let s7p_v3 = {
        let mut ud = hex("72 03 00 2a 20");
        ud.extend_from_slice(&[0xAA; 32]);
        ud.extend_from_slice(&hex("31 0000 04bb 0000 0001 72 03 00 00"));
        dt(&ud)
    };
    // The first 54 bytes of an MMS CONNECT SPDU of 180 (iti_mms_read.pcap).
    let mms_cn = hex(
        "030000bb02f0800db20506130100160102140200023302000134020001c19c318199a003800101a28191810400000001820400000001",
    );
    let mms_data =
        hex("0300002a02f08001000100611d301b020103a016a014020100a40f800100a10aa0083006a00480026d75");
    let mms_ac_hdr = {
        // ACCEPT with one parameter (session user requirements) and nothing else.
        dt(&hex("0e 04 14 02 00 02"))
    };
    for (bytes, want) in [
        (&s7_job, Proto::S7comm),
        (&s7_ack, Proto::S7comm),
        (&s7_ud_req, Proto::S7comm),
        (&s7p_req, Proto::S7commplus),
        (&s7p_rsp, Proto::S7commplus),
        (&s7p_v3, Proto::S7commplus),
        (&mms_data, Proto::Mms),
        (&mms_ac_hdr, Proto::Mms),
    ] {
        assert_eq!(
            probe(bytes, hint(true)),
            TpktProbe::Match(want),
            "{}",
            hexs(bytes)
        );
        assert_eq!(
            probe(bytes, hint(false)),
            TpktProbe::Match(want),
            "other port: {}",
            hexs(bytes)
        );
    }
    // The MMS CONNECT above is cut (its length says 0xbb): partial, still decided.
    assert_eq!(probe(&mms_cn, hint(true)), TpktProbe::Match(Proto::Mms));
    // An S7 header whose lengths disagree with the message is not S7.
    let mut bad = s7_ack.clone();
    bad[14] = 0x05; // parameter length 5
    assert_eq!(probe(&bad, hint(true)), TpktProbe::No);
    // Keep-alive-like empty DT: undecided.
    assert_eq!(probe(&hex("0300000702f000"), hint(true)), TpktProbe::Unsure);
    // TLS records inside COTP DT: S7comm-plus after InitSsl.
    assert_eq!(
        probe(&dt(&hex("17 03 03 00 05 01 02 03 04 05")), hint(true)),
        TpktProbe::Match(Proto::S7commplus)
    );
    // MCS Connect-Initial inside DT: RDP.
    assert_eq!(
        probe(&dt(&hex("7f 65 82 01 94 04 01 01")), hint(true)),
        TpktProbe::Match(Proto::Rdp)
    );
}

// ---------------------------------------------------------------- frame

#[test]
fn frame_reads_the_tpkt_length() {
    assert_eq!(frame(&[]), FrameLen::Need(4));
    assert_eq!(frame(&[3, 0]), FrameLen::Need(4));
    assert_eq!(frame(&hex("03 00 00 1f 02 f0")), FrameLen::Len(31));
    assert_eq!(
        frame(&hex("47 45 54 20")),
        FrameLen::Invalid(Violation::TpktBadVersion)
    );
    assert_eq!(
        frame(&hex("03 00 00 06 02 f0")),
        FrameLen::Invalid(Violation::TpktBadLength)
    );
    assert_eq!(frame(&hex("03 00 ff ff")), FrameLen::Len(65535));
}

// ---------------------------------------------------------------- dissect

fn run(msgs: &[(&[u8], Side)], proto: Proto) -> (Recorder, State) {
    let mut rec = Recorder::default();
    let mut state = State::default();
    let mut pool = BufPool::new(1);
    for (m, side) in msgs {
        dissect(m, *side, false, proto, &mut state, &mut pool, &mut rec);
    }
    (rec, state)
}

#[test]
fn state_is_small_and_released() {
    assert!(std::mem::size_of::<State>() <= 16);
    let half = dt_eot(&hex("32 01 0000 0001 0010 0000 29 00 00"), false);
    let (_, mut state) = run(&[(&half, Side::Client)], Proto::S7comm);
    assert_ne!(state, State::default());
    state.release(&mut BufPool::new(1));
    assert_eq!(state, State::default());
}

#[test]
fn cotp_control_tpdus_are_messages() {
    let cr = hex("0300001611e00000000100c1020100c2020102c00109");
    let cc = hex("0300001611d00001000300c00109c1020100c2020102");
    let dr = tpkt(&hex("06 80 0001 0002 00"));
    let dc = tpkt(&hex("05 c0 0001 0002"));
    let ak = tpkt(&hex("04 61 0001 05"));
    let er = tpkt(&hex("04 70 0001 02"));
    let (rec, _) = run(
        &[
            (&cr, Side::Client),
            (&cc, Side::Server),
            (&ak, Side::Client),
            (&er, Side::Server),
            (&dr, Side::Client),
            (&dc, Side::Server),
        ],
        Proto::S7comm,
    );
    assert_eq!(rec.pdus.len(), 6);
    assert!(
        rec.pdus
            .iter()
            .all(|(_, p)| p.kind == PduKind::Message && p.proto == Proto::S7comm)
    );
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
}

#[test]
fn broken_tpkt_and_cotp_are_violations() {
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        (hex("04 00 00 07 02 f0 80"), Violation::TpktBadVersion),
        // The length field disagrees with the message.
        (hex("03 00 00 08 02 f0 80"), Violation::TpktBadLength),
        (hex("03 00 00 05 02"), Violation::TpktBadLength),
        // LI beyond the packet, LI 255, LI below the DT fixed part.
        (tpkt(&hex("09 f0 80 32")), Violation::CotpBadLength),
        (tpkt(&hex("ff f0 80")), Violation::CotpBadLength),
        (tpkt(&hex("01 f0 80")), Violation::CotpBadLength),
        (tpkt(&hex("03 e0 00 00")), Violation::CotpBadLength),
        // Unknown TPDU codes.
        (tpkt(&hex("02 30 80")), Violation::CotpUnknownPdu),
        (tpkt(&hex("02 f1 80")), Violation::CotpUnknownPdu),
    ];
    for (msg, want) in cases {
        let (rec, _) = run(&[(&msg, Side::Client)], Proto::S7comm);
        assert_eq!(rec.violations, vec![want], "{}", hexs(&msg));
        assert_eq!(rec.pdus.len(), 1);
        assert_eq!(rec.pdus[0].1.kind, PduKind::Message);
    }
}

#[test]
fn segmented_tsdu_is_decoded_from_its_first_dt() {
    // A plc_stop job split over two DTs (EOT = 0, then EOT = 1).
    let pdu = hex("32 01 0000 0200 0010 0000 29 00 00 00 00 00 09 50 5f 50 52 4f 47 52 41 4d");
    let first = dt_eot(&pdu[..14], false);
    let last = dt_eot(&pdu[14..], true);
    let next = dt(&hex(
        "32 01 0000 0300 0010 0000 29 00 00 00 00 00 09 50 5f 50 52 4f 47 52 41 4d",
    ));
    let (rec, state) = run(
        &[
            (&first, Side::Client),
            (&last, Side::Client),
            (&next, Side::Client),
        ],
        Proto::S7comm,
    );
    assert_eq!(rec.requests(), vec![Cmd::S7PlcStop, Cmd::S7PlcStop]);
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert_eq!(state, State::default());

    // Continuations are tracked per direction: the server's answer in between is decoded.
    let ack = hex("0300001402f08032030000000200010000000029");
    let (rec, _) = run(
        &[
            (&first, Side::Client),
            (&ack, Side::Server),
            (&last, Side::Client),
        ],
        Proto::S7comm,
    );
    assert_eq!(rec.requests(), vec![Cmd::S7PlcStop]);
    assert_eq!(rec.responses(), vec![Cmd::S7PlcStop]);

    // An empty DT with EOT = 0 (sent before requests by some stacks) starts nothing.
    let empty = hex("0300000702f000");
    let (rec, _) = run(
        &[(&empty, Side::Client), (&next, Side::Client)],
        Proto::S7comm,
    );
    assert_eq!(rec.requests(), vec![Cmd::S7PlcStop]);
    assert_eq!(rec.pdus.len(), 2);
}

#[test]
fn truncated_messages_decode_their_header() {
    // A write_var of 1500 bytes of which the engine kept 1024.
    let mut pdu = hex("32 01 0000 0005 000e 05bd 05 01 12 0a 10 02 05c5 0001 84 000000");
    pdu.extend_from_slice(&hex("00 04 2e28"));
    pdu.resize(1500 - 7, 0xAB);
    let msg = dt(&pdu);
    assert_eq!(frame(&msg), FrameLen::Len(1500));
    let mut rec = Recorder::default();
    let mut state = State::default();
    dissect(
        &msg[..1024],
        Side::Client,
        true,
        Proto::S7comm,
        &mut state,
        &mut BufPool::new(1),
        &mut rec,
    );
    assert_eq!(rec.requests(), vec![Cmd::S7WriteVar]);
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
}

#[test]
fn s7commplus_fragments_are_decoded_once() {
    // A get_multi_variables response in two S7comm-plus fragments: the first has no
    // trailer, the last has one.
    let first = dt(&hex("72 02 00 0c 32 0000 054c 0000 0003 34 00 01"));
    let last = dt(&hex("72 02 00 04 00 08 01 02 72 02 00 00"));
    let whole = dt(&hex(
        "72 02 00 0f 31 0000 054c 0000 0004 0000 03be 34 00 72 02 00 00",
    ));
    let (rec, state) = run(
        &[
            (&first, Side::Server),
            (&whole, Side::Client),
            (&last, Side::Server),
            (&whole, Side::Client),
        ],
        Proto::S7commplus,
    );
    assert_eq!(rec.responses(), vec![Cmd::S7pGetMultiVariables]);
    assert_eq!(
        rec.requests(),
        vec![Cmd::S7pGetMultiVariables, Cmd::S7pGetMultiVariables]
    );
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert_eq!(state, State::default());
}

#[test]
fn mms_data_reaches_the_mms_dissector_and_rdp_data_is_a_message() {
    // A read of "mu" (iti_mms_read.pcap).
    let mms =
        hex("0300002a02f08001000100611d301b020103a016a014020100a40f800100a10aa0083006a00480026d75");
    let (rec, _) = run(&[(&mms, Side::Client)], Proto::Mms);
    assert_eq!(rec.requests(), vec![Cmd::MmsRead]);
    assert_eq!(rec.objects, vec![Some(b"mu".to_vec())]);
    // Its first DT of a segmented TSDU is decoded (truncated), the continuation skipped.
    let (ud, tail) = mms.split_at(mms.len() - 4);
    let first = dt_eot(&ud[7..], false);
    let cont = dt_eot(tail, true);
    let (rec, _) = run(&[(&first, Side::Client), (&cont, Side::Client)], Proto::Mms);
    assert_eq!(rec.requests(), vec![Cmd::MmsRead]);
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    let rdp = dt(&hex("7f 65 82 01 94 04 01 01"));
    let (rec, _) = run(&[(&rdp, Side::Client)], Proto::Rdp);
    assert_eq!(
        rec.pdus,
        vec![(Side::Client, Pdu::new(Proto::Rdp, PduKind::Message))]
    );
    assert!(rec.violations.is_empty());
}

#[test]
fn identity_reaches_the_sink_through_dissect() {
    // SZL 0x0011 answer with one index-1 record (module identification).
    let mut szl = hex("ff 09 0024 0011 0000 001c 0001 0001");
    szl.extend_from_slice(b"6ES7 315-2EH14-0AB0 ");
    szl.extend_from_slice(&hex("00c0 0004 0001"));
    let mut pdu = hex("32 07 0000 0001 000c");
    pdu.extend_from_slice(&(szl.len() as u16).to_be_bytes());
    pdu.extend_from_slice(&hex("000112 08 12 84 01 01 00 00 0000"));
    pdu.extend_from_slice(&szl);
    let (rec, _) = run(&[(&dt(&pdu), Side::Server)], Proto::S7comm);
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert_eq!(rec.responses(), vec![Cmd::S7ReadSzl]);
    let id = &rec.identities[0];
    assert_eq!(
        (id.0, id.1.as_str(), id.2.as_str()),
        (Side::Server, "Siemens", "6ES7 315-2EH14-0AB0")
    );
    let _ = Identity::default();
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

    fn all(bytes: &[u8]) {
        let _ = frame(bytes);
        let _ = probe(bytes, hint(true));
        let mut pool = BufPool::new(1);
        for proto in [
            Proto::S7comm,
            Proto::S7commplus,
            Proto::Mms,
            Proto::Rdp,
            Proto::Modbus,
        ] {
            for truncated in [false, true] {
                let mut state = State::default();
                for side in [Side::Client, Side::Server, Side::Client] {
                    dissect(
                        bytes, side, truncated, proto, &mut state, &mut pool, &mut Null,
                    );
                }
            }
        }
        assert_eq!(pool.in_use(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            all(&bytes);
        }

        /// Valid TPKT + COTP DT around arbitrary user data, often starting like S7.
        #[test]
        fn arbitrary_user_data(
            first in prop_oneof![Just(0x32u8), Just(0x72u8), Just(0x01u8), Just(0x0du8), any::<u8>()],
            second in prop_oneof![Just(1u8), Just(3u8), Just(7u8), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..400),
            eot in any::<bool>(),
        ) {
            let mut ud = vec![first, second];
            ud.extend_from_slice(&rest);
            all(&dt_eot(&ud, eot));
            let _ = probe(&dt_eot(&ud, eot), hint(false));
        }
    }
}

#[test]
fn probe_agrees_with_the_probe_enum() {
    // `Probe` (the generic verdict) is what the S7 helpers return.
    assert_eq!(s7comm::probe_s7(&[], false), Probe::Unsure);
    assert_eq!(s7comm::probe_s7plus(&[0x72], true), Probe::No);
}
