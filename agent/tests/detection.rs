//! Detection on real captures (DESIGN.md, "Detection"): what each shared capture must
//! raise, and must not, with default thresholds; captures made here from real frames for
//! what no public capture shows (a rate that triples, a poll that stops, a replayed
//! GOOSE message).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::frames::{self, Frame, ModbusPoller};
use serde_json::Value;
use std::path::Path;

fn replay(rel: &str, args: &[&str]) -> Value {
    let path = frames::shared(rel);
    frames::replay_json(args, &[path.as_path()])
}

fn of_kind(report: &Value, kind: &str) -> Vec<Value> {
    frames::anomalies(report)
        .into_iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

/// With no policy, every state/program/control/config command raises `ics_command` with
/// its class's severity (DESIGN.md: "With no policy at all").
#[test]
fn no_policy_reports_commands_that_change_the_process() {
    let cases = [
        (
            "s7comm/iti_snap7_s300_plc_stop.pcap",
            "s7comm",
            "plc_stop",
            "state",
            "critical",
        ),
        (
            "dnp3/iti_dnp3_cold_restart.pcap",
            "dnp3",
            "cold_restart",
            "state",
            "critical",
        ),
        (
            "enip_cip/iti_cip_stop_plc.pcap",
            "enip",
            "stop",
            "state",
            "critical",
        ),
        (
            "profinet/iti_profinet_dcp_set_ip.pcap",
            "profinet",
            "set",
            "config",
            "warning",
        ),
        (
            "dnp3/iti_dnp3_direct_operate.pcap",
            "dnp3",
            "direct_operate",
            "control",
            "warning",
        ),
    ];
    for (rel, proto, cmd, class, severity) in cases {
        let r = replay(rel, &[]);
        let hits: Vec<Value> = of_kind(&r, "ics_command")
            .into_iter()
            .filter(|a| a["command"] == cmd && a["protocol"] == proto)
            .collect();
        assert_eq!(hits.len(), 1, "{rel}: one {proto}/{cmd} event: {hits:?}");
        assert_eq!(hits[0]["class"], class, "{rel}");
        assert_eq!(hits[0]["severity"], severity, "{rel}");
        assert!(hits[0]["id"].as_str().unwrap().contains(':'), "{rel}: id");
        assert_eq!(hits[0]["policy_sha256"], "", "{rel}: no policy in force");
    }
}

/// Writes are reported at `info` without a policy; reads never are.
#[test]
fn no_policy_writes_are_info_and_reads_are_silent() {
    let r = replay("modbus/iti_modbus_test_data_part2_fc_sweep.pcap", &[]);
    let cmds = of_kind(&r, "ics_command");
    assert!(!cmds.is_empty());
    for a in &cmds {
        let expected = match a["class"].as_str().unwrap() {
            "write" => "info",
            "state" | "program" => "critical",
            "control" | "config" => "warning",
            other => panic!("class {other} must not be reported: {a}"),
        };
        assert_eq!(a["severity"], expected, "{a}");
    }
    assert!(cmds.iter().any(|a| a["command"] == "write_single_register"));
}

/// `--no-detect` classifies only.
#[test]
fn no_detect_runs_no_detector() {
    let r = replay("s7comm/iti_snap7_s300_plc_stop.pcap", &["--no-detect"]);
    assert!(frames::anomalies(&r).is_empty(), "{r}");
    assert_eq!(r["ics_commands"]["s7comm/plc_stop"], 1);
}

/// Captures of ordinary traffic raise no scan, flood or spoofing event.
#[test]
fn ordinary_captures_raise_no_scan_flood_or_spoof() {
    let dirs = [
        "dns",
        "http",
        "tls",
        "ssh",
        "ntp",
        "snmp",
        "dhcp",
        "icmp",
        "mixed_it",
        "arp",
        "modbus",
        "dnp3",
        "iec104",
        "bacnet",
        "mqtt",
        "opcua",
        "iec61850_mms",
        "iec61850_goose",
        "s7comm",
        "enip_cip",
        "profinet",
    ];
    for dir in dirs {
        for entry in std::fs::read_dir(frames::shared(dir)).unwrap() {
            let path = entry.unwrap().path();
            let r = frames::replay_json(&[], &[path.as_path()]);
            for a in frames::anomalies(&r) {
                let k = a["kind"].as_str().unwrap();
                assert!(
                    !matches!(k, "port_scan" | "syn_flood" | "arp_spoof"),
                    "{}: unexpected {k}: {a}",
                    path.display()
                );
            }
        }
    }
}

const HMI: ([u8; 6], [u8; 4], u16) = (
    [0x00, 0x0c, 0x29, 0x01, 0x02, 0x03],
    [198, 18, 0, 10],
    50200,
);
const PLC: ([u8; 6], [u8; 4], u16) = ([0x00, 0x1d, 0x9c, 0xaa, 0xbb, 0xcc], [198, 18, 0, 5], 502);
/// 2026-11-26T00:00:00Z.
const T0: u64 = 1_795_651_200 * 1_000_000_000;
const SEC: u64 = 1_000_000_000;

/// The request and answer of a real Modbus read (fc 3) from the shared captures.
fn real_read() -> (Vec<u8>, Vec<u8>) {
    // read_holding_registers of 10 registers from 0, and a 10-register answer.
    let req = vec![0x03, 0x00, 0x00, 0x00, 0x0a];
    let mut rsp = vec![0x03, 20];
    rsp.extend_from_slice(&[0u8; 20]);
    (req, rsp)
}

/// A Modbus poll whose rate triples after a steady period raises `rate_anomaly`; the
/// steady period alone does not.
#[test]
fn a_tripled_modbus_rate_raises_rate_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let (req, rsp) = real_read();
    let mut steady = Vec::new();
    let mut p = ModbusPoller::new(HMI, PLC);
    p.connect(T0, &mut steady);
    // 45 minutes of one poll per second, with a little jitter.
    let mut t = T0 + SEC;
    for i in 0..45 * 60u64 {
        p.poll(t + (i % 7) * 3_000_000, 1, &req, &rsp, &mut steady);
        t += SEC;
    }
    let steady_path = dir.path().join("steady.pcap");
    frames::write(&steady_path, &steady);
    let r = frames::replay_json(&[], &[steady_path.as_path()]);
    assert!(
        of_kind(&r, "rate_anomaly").is_empty(),
        "steady polling: {r}"
    );

    let mut tripled = steady.clone();
    for _ in 0..5 * 60u64 {
        for k in 0..3 {
            p.poll(t + k * 330_000_000, 1, &req, &rsp, &mut tripled);
        }
        t += SEC;
    }
    let path = dir.path().join("tripled.pcap");
    frames::write(&path, &tripled);
    let r = frames::replay_json(&[], &[path.as_path()]);
    let hits = of_kind(&r, "rate_anomaly");
    assert!(!hits.is_empty(), "tripled rate: {r}");
    assert!(hits.iter().any(|a| a["protocol"] == "modbus"), "{hits:?}");
}

/// A GOOSE message replayed (an old sqNum while stNum stays) raises `goose`; the
/// original stream does not.
#[test]
fn a_replayed_goose_message_raises_goose() {
    let orig = frames::read("iec61850_goose/iti_goose.pcap");
    let goose: Vec<Frame> = orig
        .iter()
        .filter(|f| f.data.get(12..14) == Some(&[0x88, 0xb8][..]))
        .cloned()
        .collect();
    assert!(goose.len() >= 4, "need GOOSE frames");
    let r = replay("iec61850_goose/iti_goose.pcap", &[]);
    let before = of_kind(&r, "goose")
        .into_iter()
        .filter(|a| a["detail"].as_str().unwrap_or("").contains("sqNum"))
        .count();
    // Replay the first frame again after the later ones, a millisecond after the last.
    let mut forged = orig.clone();
    let last = forged.last().unwrap().ts_ns;
    let mut again = goose[1].clone();
    again.ts_ns = last + 1_000_000;
    forged.push(again);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("goose_replay.pcap");
    frames::write(&path, &forged);
    let r2 = frames::replay_json(&[], &[path.as_path()]);
    let after = of_kind(&r2, "goose")
        .into_iter()
        .filter(|a| a["detail"].as_str().unwrap_or("").contains("sqNum"))
        .count();
    assert!(after > before, "replayed frame raised nothing: {r2}");
}

#[allow(dead_code)]
fn unused(_: &Path) {}
