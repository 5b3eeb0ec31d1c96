//! The truth test: every capture of `../shared/pcaps/` replayed, and compared with what
//! tshark 4.0 says of it (`truth/<topic>/<name>.json`, see its README).
//!
//! - Protocols: for each protocol family tshark finds, our `packets` for it lies between
//!   tshark's count of frames whose top layer is that protocol and that count plus the
//!   file's frames with no recognised payload (`tcp`, `udp`, `ip`, `ipv6`, `data`): we
//!   count every frame of a protocol's flows (handshakes and ACKs too), as nDPI does.
//! - Every frame lands in exactly one protocol.
//! - ICS commands: for Modbus, DNP3, IEC-104, S7comm and MMS, our `ics_commands` equal
//!   tshark's request counts, command by command.
//! - Damaged captures end cleanly, their errors counted.
//!
//! Deliberate differences are listed in [`DIFFERENCES`] with the reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_agent::dissect::{bacnet, mms, modbus};
use infrawatch_agent::engine::EngineConfig;
use infrawatch_agent::replay::replay;
use infrawatch_agent::summary::Summary;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps")
}

/// (file, tshark family, why our count differs).
const DIFFERENCES: &[(&str, &str, &str)] = &[(
    "malformed/ndpi_fuzz_truncated_file.pcap",
    "*",
    "the only record claims 524501 captured bytes in a 239-byte file; tshark's wiretap salvages a frame, we stop at the damaged record and report it",
)];

/// Requests of the industrial protocols whose truth histograms count both directions or
/// name services their own way, computed with tshark 4.0 on each file:
/// - CIP: `tshark -r F -Y 'cip.rr == 0' -T fields -e cip.sc` (services inside Multiple
///   Service Packet listed too). tshark names 0x4E `forward_close` and 0x52
///   `read_tag_fragmented` whatever the class; addressed to Logix tags (0x4E) and to the
///   Connection Manager (0x52) they are `read_modify_write_tag` and `unconnected_send`.
/// - BACnet: `-Y 'bacapp.type == 0' -e bacapp.confirmed_service` and `-Y 'bacapp.type == 1'
///   -e bacapp.unconfirmed_service`; i-Am and i-Have answer who-is/who-has and are
///   responses here.
/// - PROFINET: DCP `-Y 'pn_dcp.service_type == 0' -e pn_dcp.service_id`; IO-CM
///   `-Y 'dcerpc.pkt_type == 0' -e dcerpc.opnum`.
/// - OPC UA: `-T fields -e opcua.servicenodeid.numeric`, request ids only; the encrypted
///   capture's OPN/CLO are counted from their message type (tshark shows no service id
///   when the body is encrypted): one more open and close than tshark's ids.
/// - MQTT: `-T fields -e tcp.srcport -e mqtt.msgtype`, packets from the client; a PUBLISH
///   from the broker (delivery to a subscriber) is a response here.
///
/// Commands tshark's histograms leave out (encapsulation commands such as ListIdentity,
/// BVLC functions, OPC UA HEL) are not compared.
/// BACnet requests of `bacnet/icsnpp_bacnet_error_reject_abort.pcap` by service choice
/// (`-Y 'bacapp.type == 0' -e bacapp.confirmed_service`, `-Y 'bacapp.type == 1' -e
/// bacapp.unconfirmed_service`): confirmed 0–4, 6–12, 14–18, 20–23, 26, 27, 29–31 once
/// and 28 twice; unconfirmed 2–11, 13, 14 once (0 i-Am and 1 i-Have are responses here).
const BACNET_EXAMPLE: &str = "bacnet/icsnpp_bacnet_error_reject_abort.pcap";
const BACNET_CONFIRMED: &[u8] = &[
    0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 20, 21, 22, 23, 26, 27, 28, 28, 29,
    30, 31,
];
const BACNET_UNCONFIRMED: &[u8] = &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14];

type Requests = (&'static str, &'static str, &'static [(&'static str, u64)]);

const REQUESTS: &[Requests] = &[
    ("enip_cip/iti_cip_stop_plc.pcap", "enip", &[("stop", 1)]),
    (
        "enip_cip/icsnpp_cip_set_attribute_single.pcapng",
        "enip",
        &[("set_attribute_single", 1)],
    ),
    (
        "enip_cip/ndpi_ethernetip_read_tag.pcap",
        "enip",
        &[
            ("get_attributes_all", 2),
            ("multiple_service_packet", 36),
            ("read_tag", 308),
            ("read_modify_write_tag", 17),
            ("unconnected_send", 2),
        ],
    ),
    (
        "enip_cip/icsnpp_enip_cip_example.pcap",
        "enip",
        &[
            ("get_attribute_list", 543),
            ("multiple_service_packet", 41),
            ("set_attribute_list", 1),
        ],
    ),
    (
        "bacnet/iti_bacnet_read_property.pcap",
        "bacnet",
        &[("read_property", 9)],
    ),
    (
        "profinet/iti_profinet_dcp_identify.pcap",
        "profinet",
        &[("identify", 14)],
    ),
    (
        "profinet/iti_profinet_dcp_set_ip.pcap",
        "profinet",
        &[("identify", 1), ("set", 1)],
    ),
    (
        "profinet/icsnpp_pnio_cm_read.pcapng",
        "profinet",
        &[("read", 6), ("read_implicit", 3)],
    ),
    (
        "opcua/icsnpp_python_opcua_minimal.pcap",
        "opcua",
        &[
            ("open_secure_channel", 1),
            ("create_session", 1),
            ("activate_session", 1),
            ("browse", 1),
            ("translate_browse_paths_to_node_ids", 2),
            ("close_session", 1),
            ("close_secure_channel", 1),
        ],
    ),
    (
        "opcua/icsnpp_open62541_encrypted.pcapng",
        "opcua",
        &[
            ("get_endpoints", 1),
            ("open_secure_channel", 2),
            ("close_secure_channel", 2),
        ],
    ),
    (
        "mqtt/zeek_mqtt.pcap",
        "mqtt",
        &[
            ("connect", 2),
            ("pingreq", 5),
            ("subscribe", 1),
            ("publish", 1),
            ("disconnect", 1),
        ],
    ),
    (
        "mqtt/suricata_mqtt311_pub_qos1.pcap",
        "mqtt",
        &[("connect", 1), ("publish", 1), ("disconnect", 1)],
    ),
];

/// Families without a protocol id of ours (not compared, DESIGN.md "Tests and test data").
const NOT_OURS: &[&str] = &[
    "dhcpv6",
    "dtls",
    "dcerpc",
    "smb_netlogon",
    "cotp",
    "tpkt",
    "ssdp",
    "nbns_other",
];

/// Families tshark leaves unrecognised: the tolerance of the protocol counts.
const UNRECOGNISED: &[&str] = &["tcp", "udp", "ip", "ipv6", "data"];

/// IEC-104 requests (cause of transmission 6 or 8), which the truth files count in
/// both directions; computed with
/// `tshark -r F -Y 'iec60870_asdu.causetx == 6 || iec60870_asdu.causetx == 8' -T fields -e iec60870_asdu.typeid`
/// and, for U-format activations, `-Y 'iec60870_104.type == 3' -e iec60870_104.utype`.
const IEC104_REQUESTS: &[(&str, &[(&str, u64)])] = &[
    (
        "iec104/iti_iec104_diverse_commands.pcap",
        &[
            ("c_ic_na_1", 1),
            ("c_sc_na_1", 2),
            ("c_dc_na_1", 2),
            ("c_se_nc_1", 4),
            ("c_sc_ta_1", 2),
            ("c_dc_ta_1", 4),
            ("c_se_ta_1", 2),
            ("c_se_tc_1", 2),
            ("testfr", 2),
        ],
    ),
    ("iec104/ndpi_iec104_monitoring.pcap", &[]),
];

/// DNP3 captures where tshark 4.0's own counts are wrong, with the corrected counts:
/// (file, requests, answers, why).
type Correction = (
    &'static str,
    &'static [(&'static str, u64)],
    u64,
    &'static str,
);

const DNP3_CORRECTED: &[Correction] = &[(
    "dnp3/icsnpp_dnp3_example.pcap",
    &[("select", 134), ("operate", 133), ("read", 97)],
    368,
    "tshark 4.0 cannot reassemble a fragment whose transport sequence wraps 63→0: it loses \
     three two-frame responses (ending in frames 18, 114, 210) and one three-frame \
     unsolicited response (frame 810), then joins frame 311 (another connection) onto \
     frame 210's leftover and reads a confirm that was never sent",
)];

fn our_id(family: &str) -> Option<&str> {
    match family {
        "enip_cip" => Some("enip"),
        "iec61850_sv" => Some("sv"),
        f if NOT_OURS.contains(&f) => None,
        f => Some(f),
    }
}

fn differs(file: &str, family: &str) -> bool {
    DIFFERENCES
        .iter()
        .any(|(f, fam, _)| *f == file && (*fam == "*" || *fam == family))
}

fn truth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![shared().join("truth")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn commands_of(s: &Summary, proto: &str) -> BTreeMap<String, u64> {
    s.ics_commands
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&format!("{proto}/"))
                .map(|c| (c.to_string(), *v))
        })
        .collect()
}

fn as_counts(v: Option<&Value>) -> BTreeMap<String, u64> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_capture_agrees_with_tshark() {
    let files = truth_files();
    assert!(
        files.len() >= 60,
        "truth files found: {} (is ../shared/pcaps present?)",
        files.len()
    );
    let mut failures: Vec<String> = Vec::new();
    let mut compared = 0usize;
    for tf in &files {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(tf).unwrap()).unwrap();
        let rel = truth["file"].as_str().unwrap().to_string();
        let out = replay(&[shared().join(&rel)], &EngineConfig::default());
        let s = &out.summary;
        if differs(&rel, "*") {
            assert!(!s.file_errors.is_empty(), "{rel}: the damage is reported");
            continue;
        }
        assert!(!out.failed, "{rel}: replay failed: {:?}", s.file_errors);

        // Every frame counted once, and every frame of the file read.
        let total: u64 = s.protocols.values().map(|p| p.packets).sum();
        if total != s.packets {
            failures.push(format!(
                "{rel}: protocols sum to {total} of {} packets",
                s.packets
            ));
        }
        let expected_packets = truth["packets"].as_u64().unwrap();
        if s.packets != expected_packets {
            failures.push(format!(
                "{rel}: read {} packets, tshark {expected_packets}",
                s.packets
            ));
        }

        let families = as_counts(truth["tshark"].get("family"));
        let unrec: u64 = families
            .iter()
            .filter(|(k, _)| UNRECOGNISED.contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum();
        for (fam, &n) in &families {
            if UNRECOGNISED.contains(&fam.as_str()) || differs(&rel, fam) {
                continue;
            }
            let Some(id) = our_id(fam) else { continue };
            let ours = s.protocols.get(id).map_or(0, |p| p.packets);
            compared += 1;
            if ours < n || ours > n + unrec {
                failures.push(format!(
                    "{rel}: {id}: ours {ours}, tshark {n} (+{unrec} unrecognised) — ours: {:?}",
                    s.protocols
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.packets))
                        .collect::<BTreeMap<_, _>>()
                ));
            }
        }

        let ics = &truth["tshark"]["ics"];
        // Modbus: request function codes.
        if let Some(m) = ics.get("modbus") {
            let mut expected: BTreeMap<String, u64> = BTreeMap::new();
            for (code, n) in as_counts(m.get("request_function_codes")) {
                let code: u8 = code.parse().unwrap();
                let name = if code == 43 {
                    // tshark counts 43 alone; we split it by MEI type.
                    "43".to_string()
                } else {
                    modbus::command(code, None).name().to_string()
                };
                *expected.entry(name).or_default() += n;
            }
            let mut ours = commands_of(s, "modbus");
            let mei: u64 = [
                "read_device_identification",
                "encapsulated_interface_transport",
            ]
            .iter()
            .filter_map(|k| ours.remove(*k))
            .sum();
            if mei > 0 {
                ours.insert("43".into(), mei);
            }
            if ours != expected {
                failures.push(format!(
                    "{rel}: modbus requests: ours {ours:?}, tshark {expected:?}"
                ));
            }
        }
        // DNP3: application function codes; below 128 are requests.
        if let Some(d) = ics.get("dnp3") {
            let mut req = BTreeMap::new();
            let mut resp = BTreeMap::new();
            for (k, n) in as_counts(d.get("al_function_codes")) {
                let (code, name) = k.split_once(':').unwrap();
                let code: u32 = code.parse().unwrap();
                if code < 128 {
                    req.insert(name.to_string(), n);
                } else {
                    resp.insert(name.to_string(), n);
                }
            }
            if let Some((_, requests, answers, _why)) =
                DNP3_CORRECTED.iter().find(|(f, ..)| *f == rel)
            {
                req = requests.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                resp = BTreeMap::from([("all".to_string(), *answers)]);
            }
            let ours = commands_of(s, "dnp3");
            if ours != req {
                failures.push(format!(
                    "{rel}: dnp3 requests: ours {ours:?}, tshark {req:?}"
                ));
            }
            let ours_resp: BTreeMap<String, u64> = s
                .ics_responses
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("dnp3/").map(|c| (c.to_string(), *v)))
                .filter(|(k, _)| k != "exception")
                .collect();
            let exceptions = s.ics_responses.get("dnp3/exception").copied().unwrap_or(0);
            let ours_total: u64 = ours_resp.values().sum::<u64>() + exceptions;
            let tshark_total: u64 = resp.values().sum();
            if ours_total != tshark_total {
                failures.push(format!("{rel}: dnp3 responses: ours {ours_resp:?} + {exceptions} exceptions, tshark {resp:?}"));
            }
        }
        // S7comm: job functions (requests).
        if let Some(s7) = ics.get("s7comm") {
            let expected: BTreeMap<String, u64> = as_counts(s7.get("job_functions"))
                .into_iter()
                .map(|(k, n)| {
                    (
                        k.split_once(':')
                            .map_or(k.clone(), |(_, name)| name.to_string()),
                        n,
                    )
                })
                .collect();
            let ours: BTreeMap<String, u64> = commands_of(s, "s7comm")
                .into_iter()
                .filter(|(k, _)| {
                    // User-data functions are not job functions.
                    infrawatch_agent::command::Cmd::find(infrawatch_agent::proto::Proto::S7comm, k)
                        .is_some_and(|c| {
                            c.index()
                                <= infrawatch_agent::command::Cmd::S7SetupCommunication.index()
                        })
                })
                .collect();
            if ours != expected {
                failures.push(format!(
                    "{rel}: s7comm job requests: ours {ours:?}, tshark {expected:?}"
                ));
            }
        }
        if rel == BACNET_EXAMPLE {
            let mut expected: BTreeMap<String, u64> = BTreeMap::new();
            let names = BACNET_CONFIRMED
                .iter()
                .map(|c| bacnet::confirmed_service(*c))
                .chain(
                    BACNET_UNCONFIRMED
                        .iter()
                        .map(|c| bacnet::unconfirmed_service(*c)),
                );
            for cmd in names {
                *expected.entry(cmd.name().to_string()).or_default() += 1;
            }
            let ours = commands_of(s, "bacnet");
            if ours != expected {
                failures.push(format!(
                    "{rel}: bacnet requests: ours {ours:?}, tshark {expected:?}"
                ));
            }
        }
        // Other industrial protocols: requests computed with tshark (see REQUESTS).
        for (_, proto, expected) in REQUESTS.iter().filter(|(f, ..)| *f == rel) {
            let ours = commands_of(s, proto);
            for (name, n) in expected.iter() {
                let got = ours.get(*name).copied().unwrap_or(0);
                if got != *n {
                    failures.push(format!(
                        "{rel}: {proto}/{name}: ours {got}, tshark {n} (ours: {ours:?})"
                    ));
                }
            }
        }
        for (fam, key) in [
            ("enip_cip", "enip"),
            ("bacnet", "bacnet"),
            ("opcua", "opcua"),
            ("mqtt", "mqtt"),
        ] {
            if ics.get(fam).or_else(|| ics.get(key)).is_some()
                && rel != BACNET_EXAMPLE
                && !REQUESTS.iter().any(|(f, ..)| *f == rel)
            {
                failures.push(format!(
                    "{rel}: no request counts listed for this {key} capture"
                ));
            }
        }
        // GOOSE: one message per frame with a gocbRef, one publisher per gocbRef.
        if let Some(g) = ics.get("goose") {
            let frames = g["frames_with_gocbRef"].as_u64().unwrap_or(0);
            let publishers = g["distinct_gocbRef"].as_u64().unwrap_or(0);
            let pdus = s.protocols.get("goose").map_or(0, |p| p.pdus);
            if pdus != frames || s.health.goose_publishers != publishers {
                failures.push(format!(
                    "{rel}: goose: ours {pdus} messages from {} publishers, tshark {frames} from {publishers}",
                    s.health.goose_publishers
                ));
            }
        }
        // MMS: confirmed service requests, by ConfirmedServiceRequest tag. Initiate,
        // conclude and cancel are PDUs of their own, not confirmed services; `operate` is
        // a write on the wire (or an SBO read: none in these captures).
        if let Some(m) = ics.get("mms") {
            let expected: BTreeMap<String, u64> = as_counts(m.get("confirmed_service_requests"))
                .into_iter()
                .map(|(tag, n)| {
                    let cmd = mms::confirmed_service_cmd(tag.parse().unwrap()).unwrap();
                    (cmd.name().to_string(), n)
                })
                .collect();
            let mut ours = commands_of(s, "mms");
            for k in ["initiate", "conclude", "cancel"] {
                ours.remove(k);
            }
            if let Some(n) = ours.remove("operate") {
                *ours.entry("write".to_string()).or_default() += n;
            }
            if ours != expected {
                failures.push(format!(
                    "{rel}: mms requests: ours {ours:?}, tshark {expected:?}"
                ));
            }
        }
        // IEC-104: requests computed with tshark (see IEC104_REQUESTS).
        if let Some((_, expected)) = IEC104_REQUESTS.iter().find(|(f, _)| *f == rel) {
            let expected: BTreeMap<String, u64> =
                expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let ours = commands_of(s, "iec104");
            if ours != expected {
                failures.push(format!(
                    "{rel}: iec104 requests: ours {ours:?}, tshark {expected:?}"
                ));
            }
        } else if ics.get("iec104").is_some() {
            failures.push(format!(
                "{rel}: no request counts listed for this IEC-104 capture"
            ));
        }
    }
    assert!(compared > 50, "only {compared} protocol comparisons made");
    assert!(
        failures.is_empty(),
        "{} disagreement(s) with tshark:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn damaged_captures_end_cleanly_with_errors_counted() {
    for rel in [
        "malformed/ndpi_fuzz_truncated_file.pcap",
        "malformed/iti_openics_dnp3_malformed.pcap",
        "malformed/zeek_modbus_fuzz-72.pcap",
        "malformed/ndpi_malformed_icmp.pcap",
        "malformed/zeek_snmp_oid_subidentifier_too_long.pcap",
        "malformed/iti_dnp3_direct_operate_malformed_crob.pcap",
    ] {
        let out = replay(&[shared().join(rel)], &EngineConfig::default());
        let s = &out.summary;
        let errors: u64 = s.decode_errors.values().sum::<u64>()
            + s.violations.values().sum::<u64>()
            + s.file_errors.len() as u64;
        assert!(
            errors > 0 || rel.contains("icmp") || rel.contains("snmp"),
            "{rel}: no error counted: {s:?}"
        );
    }
}
