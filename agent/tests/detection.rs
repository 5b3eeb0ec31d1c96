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

    // Under a policy, the rule the poll matches has its own band too.
    let pol = write_policy(
        dir.path(),
        "poll.toml",
        r#"
[policy]
name = "poll"
[[allow]]
name = "hmi polls plc"
from = "198.18.0.10"
to = "198.18.0.5"
protocol = "modbus"
functions = ["read_holding_registers"]
severity = "critical"
[detectors.rate_anomaly]
severity = "warning"
"#,
    );
    let r = replay_with_policy(&pol, &[steady_path.as_path()]);
    assert!(
        of_kind(&r, "rate_anomaly").is_empty(),
        "steady, with a policy: {r}"
    );
    let r = replay_with_policy(&pol, &[path.as_path()]);
    let hits = of_kind(&r, "rate_anomaly");
    assert!(
        hits.iter().any(|a| a["rule"] == "hmi polls plc"),
        "the rule's rate: {hits:?}"
    );
    // The severity of a finding of a rule is the rule's; the kind's own setting is for
    // the rest (the per-protocol band).
    for a in &hits {
        let want = if a["rule"] == "hmi polls plc" {
            "critical"
        } else {
            "warning"
        };
        assert_eq!(a["severity"], want, "{a}");
    }
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
    // Findings of one publisher and anomaly update one event: compare the counts.
    let sq_count = |r: &Value| -> u64 {
        of_kind(r, "goose")
            .into_iter()
            .filter(|a| a["detail"].as_str().unwrap_or("").contains("sqNum"))
            .map(|a| a["count"].as_u64().unwrap())
            .sum()
    };
    let before = sq_count(&r);
    // Replay an earlier message (stNum 1, sqNum 2) after the last one (stNum 1, sqNum 5),
    // a millisecond later: sqNum goes back while stNum stays.
    let mut forged = orig.clone();
    let last = forged.last().unwrap().ts_ns;
    let mut again = goose[4].clone();
    again.ts_ns = last + 1_000_000;
    forged.push(again);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("goose_replay.pcap");
    frames::write(&path, &forged);
    let r2 = frames::replay_json(&[], &[path.as_path()]);
    let after = sq_count(&r2);
    assert!(after > before, "replayed frame raised nothing: {r2}");
}

#[allow(dead_code)]
fn unused(_: &Path) {}

fn write_policy(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn replay_with_policy(policy: &Path, files: &[&Path]) -> Value {
    frames::replay_json(&["--policy", policy.to_str().unwrap()], files)
}

/// PLC stop under a policy: raised (critical, naming the rule) when the rule that
/// matches the flow does not list it; nothing when it does, or inside a maintenance
/// window.
#[test]
fn plc_stop_under_a_policy_is_judged_by_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let cap = frames::shared("s7comm/iti_snap7_s300_plc_stop.pcap");
    let header = r#"
[policy]
name = "s7-lab"
[zones]
eng = ["134.249.62.0/24"]
plcs = ["134.249.61.0/24"]
[[assets]]
name = "plc"
ip = "134.249.61.163"
[[assets]]
name = "eng-ws"
ip = "134.249.62.206"
"#;
    let reads_only = write_policy(
        dir.path(),
        "reads.toml",
        &format!(
            "{header}
[[allow]]
name = \"eng reads plc\"
from = \"zone:eng\"
to = \"asset:plc\"
protocol = \"s7comm\"
functions = [\"read_var\", \"read_szl\", \"setup_communication\"]
"
        ),
    );
    let r = replay_with_policy(&reads_only, &[cap.as_path()]);
    let hits = of_kind(&r, "ics_command");
    assert_eq!(hits.len(), 1, "{r}");
    assert_eq!(hits[0]["command"], "plc_stop");
    assert_eq!(hits[0]["severity"], "critical");
    assert_eq!(hits[0]["rule"], "eng reads plc");
    assert_eq!(hits[0]["src_zone"], "eng");
    assert_eq!(hits[0]["dst_zone"], "plcs");
    assert_eq!(hits[0]["policy_sha256"].as_str().unwrap().len(), 64);
    assert!(
        of_kind(&r, "policy_violation").is_empty(),
        "the flow is allowed: {r}"
    );

    let allowed = write_policy(
        dir.path(),
        "stop.toml",
        &format!(
            "{header}
[[allow]]
name = \"eng may stop the plc\"
from = \"asset:eng-ws\"
to = \"asset:plc\"
protocol = \"s7comm\"
functions = [\"read_var\", \"setup_communication\", \"plc_stop\"]
"
        ),
    );
    let r = replay_with_policy(&allowed, &[cap.as_path()]);
    assert!(of_kind(&r, "ics_command").is_empty(), "{r}");
    assert!(of_kind(&r, "policy_violation").is_empty(), "{r}");

    let window = write_policy(
        dir.path(),
        "window.toml",
        &format!(
            "{header}
[[allow]]
name = \"eng reads plc\"
from = \"zone:eng\"
to = \"asset:plc\"
protocol = \"s7comm\"
functions = [\"read_var\", \"setup_communication\"]
[[maintenance]]
name = \"shutdown for service\"
from = \"asset:eng-ws\"
start = \"2014-04-16T08:00:00Z\"
end = \"2014-04-16T10:00:00Z\"
"
        ),
    );
    let r = replay_with_policy(&window, &[cap.as_path()]);
    assert!(
        of_kind(&r, "ics_command").is_empty(),
        "maintenance window: {r}"
    );
}

/// A flow no rule allows is a `policy_violation` (one event per conversation, its count
/// the flows); its commands of changing classes are still reported.
#[test]
fn a_flow_no_rule_allows_is_a_policy_violation() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_policy(
        dir.path(),
        "dns-only.toml",
        r#"
[policy]
name = "nothing but dns"
[[allow]]
name = "dns"
from = "any"
to = "any"
protocol = "dns"
"#,
    );
    let cap = frames::shared("dnp3/iti_dnp3_cold_restart.pcap");
    let r = replay_with_policy(&p, &[cap.as_path()]);
    let v = of_kind(&r, "policy_violation");
    assert_eq!(v.len(), 1, "{r}");
    assert_eq!(v[0]["protocol"], "dnp3");
    assert_eq!(v[0]["src"], "192.168.60.1");
    let c = of_kind(&r, "ics_command");
    assert_eq!(c.len(), 1, "{r}");
    assert_eq!(c[0]["command"], "cold_restart");
    assert!(c[0].get("rule").is_none(), "no rule matched: {c:?}");
}

/// Modbus registers and unit ids: a write outside the rule's registers is an
/// `ics_command`, a read outside them a `policy_violation`; inside, nothing.
#[test]
fn modbus_registers_and_units_are_judged() {
    let dir = tempfile::tempdir().unwrap();
    let (req, rsp) = real_read();
    let mut fr = Vec::new();
    let mut p = ModbusPoller::new(HMI, PLC);
    p.connect(T0, &mut fr);
    // Reads of 0-9 on unit 1; then one read of 100-109, one write of register 5 and one
    // write of register 500, and a read on unit 7.
    for i in 0..10 {
        p.poll(T0 + (i + 1) * SEC, 1, &req, &rsp, &mut fr);
    }
    let mut rsp_far = vec![0x03, 20];
    rsp_far.extend_from_slice(&[0u8; 20]);
    p.poll(
        T0 + 20 * SEC,
        1,
        &[0x03, 0x00, 100, 0x00, 10],
        &rsp_far,
        &mut fr,
    );
    p.poll(
        T0 + 21 * SEC,
        1,
        &[0x06, 0x00, 5, 0x00, 1],
        &[0x06, 0x00, 5, 0x00, 1],
        &mut fr,
    );
    p.poll(
        T0 + 22 * SEC,
        1,
        &[0x06, 0x01, 0xf4, 0x00, 1],
        &[0x06, 0x01, 0xf4, 0x00, 1],
        &mut fr,
    );
    p.poll(T0 + 23 * SEC, 7, &req, &rsp, &mut fr);
    let cap = dir.path().join("modbus.pcap");
    frames::write(&cap, &fr);
    let pol = write_policy(
        dir.path(),
        "modbus.toml",
        r#"
[policy]
name = "registers"
[zones]
scada = ["198.18.0.0/28"]
[[assets]]
name = "plc-1"
ip = "198.18.0.5"
mac = "00:1d:9c:aa:bb:cc"
[[assets]]
name = "hmi-1"
ip = "198.18.0.10"
mac = "00:0c:29:01:02:03"
[[allow]]
name = "hmi polls plc"
from = "asset:hmi-1"
to = "asset:plc-1"
protocol = "modbus"
functions = ["read_holding_registers", "write_single_register"]
unit_ids = [1]
registers = ["0-99"]
"#,
    );
    let r = replay_with_policy(&pol, &[cap.as_path()]);
    let cmds = of_kind(&r, "ics_command");
    assert_eq!(cmds.len(), 1, "only the write of 500: {r}");
    assert_eq!(cmds[0]["command"], "write_single_register");
    assert!(
        cmds[0]["detail"].as_str().unwrap().contains("500"),
        "{cmds:?}"
    );
    // The far read and the read on unit 7: one conversation and command, so one event
    // whose count is 2.
    let v = of_kind(&r, "policy_violation");
    assert_eq!(v.len(), 1, "{r}");
    assert_eq!(v[0]["command"], "read_holding_registers");
    assert_eq!(v[0]["count"], 2, "{v:?}");
    assert!(
        of_kind(&r, "new_asset").is_empty(),
        "both are in the inventory: {r}"
    );
    assert!(
        of_kind(&r, "new_conversation").is_empty(),
        "a host rule names it: {r}"
    );
}

/// A poll with `silence_after` that stops while other traffic goes on raises `silence`.
#[test]
fn a_poll_that_stops_raises_silence() {
    let dir = tempfile::tempdir().unwrap();
    let (req, rsp) = real_read();
    let mut fr = Vec::new();
    let mut p = ModbusPoller::new(HMI, PLC);
    p.connect(T0, &mut fr);
    for i in 0..60 {
        p.poll(T0 + (i + 1) * SEC, 1, &req, &rsp, &mut fr);
    }
    // The poll stops; another HMI keeps polling another PLC for two more minutes.
    let hmi2 = (
        [0x00, 0x0c, 0x29, 0x01, 0x02, 0x04],
        [198, 18, 0, 11],
        50201,
    );
    let plc2 = ([0x00, 0x1d, 0x9c, 0xaa, 0xbb, 0xcd], [198, 18, 0, 6], 502);
    let mut q = ModbusPoller::new(hmi2, plc2);
    q.connect(T0, &mut fr);
    for i in 0..180 {
        q.poll(T0 + (i + 1) * SEC + 500_000_000, 1, &req, &rsp, &mut fr);
    }
    fr.sort_by_key(|f| f.ts_ns);
    let cap = dir.path().join("silence.pcap");
    frames::write(&cap, &fr);
    let pol = write_policy(
        dir.path(),
        "silence.toml",
        r#"
[policy]
name = "polls"
[zones]
scada = ["198.18.0.0/24"]
[[allow]]
name = "hmis poll plcs"
from = "zone:scada"
to = "zone:scada"
protocol = "modbus"
functions = ["read_holding_registers"]
silence_after = "10s"
"#,
    );
    let r = replay_with_policy(&pol, &[cap.as_path()]);
    let s = of_kind(&r, "silence");
    assert_eq!(s.len(), 1, "one poll stopped: {r}");
    assert_eq!(s[0]["src"], "198.18.0.10");
    assert_eq!(s[0]["dst"], "198.18.0.5");
    assert_eq!(s[0]["rule"], "hmis poll plcs");
    assert_eq!(s[0]["severity"], "warning");
}

/// The scan captures raise `port_scan` (default thresholds; the small nmap capture with
/// the threshold policy kept beside this test, which says why).
#[test]
fn scans_raise_port_scan() {
    let r = replay("scans/ppa_synscan.pcapng", &[]);
    let s = of_kind(&r, "port_scan");
    assert_eq!(s.len(), 1, "one scan, one event: {r}");
    assert_eq!(s[0]["src"], "172.16.0.8");
    assert!(s[0]["count"].as_u64().unwrap() >= 900, "{s:?}");
    assert_eq!(s[0]["severity"], "warning");

    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies/small_scan.toml");
    let cap = frames::shared("scans/ndpi_tcp_scan.pcap");
    let r = replay_with_policy(&policy, &[cap.as_path()]);
    let s = of_kind(&r, "port_scan");
    assert_eq!(s.len(), 1, "{r}");
    assert_eq!(s[0]["src"], "192.168.1.178");
    // Connect, SYN, FIN, NULL and XMAS probes all count.
    assert_eq!(s[0]["count"], 7, "{s:?}");
}

/// The flood captures raise `syn_flood`: to one destination, and in total from spoofed
/// sources to random destinations.
#[test]
fn floods_raise_syn_flood() {
    let r = replay("floods/suricata_syn_flood_443.pcap", &[]);
    let f = of_kind(&r, "syn_flood");
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["dst"], "198.51.100.5");
    let r = replay("floods/ppa_dosattack_syn.pcap", &[]);
    let f = of_kind(&r, "syn_flood");
    assert_eq!(f.len(), 1, "{r}");
    assert!(
        f[0]["detail"]
            .as_str()
            .unwrap()
            .contains("all destinations"),
        "{f:?}"
    );
}

/// The ARP poisoning capture raises `arp_spoof` (critical) naming the gateway's address.
#[test]
fn arp_poisoning_raises_arp_spoof() {
    let r = replay("arp_spoofing/ppa_arppoison.pcapng", &[]);
    let a = of_kind(&r, "arp_spoof");
    assert!(!a.is_empty(), "{r}");
    assert!(a.iter().all(|e| e["severity"] == "critical"));
    assert!(
        a.iter()
            .any(|e| e["detail"].as_str().unwrap().contains("172.16.0.1")),
        "{a:?}"
    );
}

/// An S7 block download (request_download, download_block, download_ended) from an
/// engineering station, built around the S7 job header of the shared PLC-stop capture:
/// `program` commands, critical, without a policy; nothing under one that allows them.
#[test]
fn s7_block_download_raises_a_program_command() {
    let cl = (
        [0x00, 0x1b, 0x1b, 0x01, 0x02, 0x03],
        [198, 18, 3, 20],
        49500,
    );
    let plc = ([0x00, 0x1b, 0x1b, 0xaa, 0xbb, 0xcc], [198, 18, 3, 5], 102);
    let s7_job = |param: &[u8]| {
        let mut s7 = vec![0x32, 0x01, 0, 0, 0, 1];
        s7.extend_from_slice(&(param.len() as u16).to_be_bytes());
        s7.extend_from_slice(&[0, 0]);
        s7.extend_from_slice(param);
        let mut v = vec![0x03, 0x00];
        v.extend_from_slice(&((s7.len() + 7) as u16).to_be_bytes());
        v.extend_from_slice(&[0x02, 0xf0, 0x80]);
        v.extend_from_slice(&s7);
        v
    };
    // Function codes 0x1a, 0x1b, 0x1c with a block name ("_0A00001P": OB 1).
    let name = b"_0A00001P";
    let mut fr = Vec::new();
    let mut seq = 7000u32;
    for (i, func) in [0x1au8, 0x1b, 0x1c].into_iter().enumerate() {
        let mut param = vec![func, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, name.len() as u8];
        param.extend_from_slice(name);
        let payload = s7_job(&param);
        fr.push(Frame {
            ts_ns: T0 + i as u64 * SEC,
            data: frames::tcp(cl, plc, seq, 1, 0x18, &payload),
        });
        seq += payload.len() as u32;
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("s7_download.pcap");
    frames::write(&cap, &fr);
    let r = frames::replay_json(&[], &[cap.as_path()]);
    let hits = of_kind(&r, "ics_command");
    let names: Vec<&str> = hits
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"download_block"), "{r}");
    assert!(
        hits.iter()
            .all(|a| a["class"] == "program" && a["severity"] == "critical"),
        "{hits:?}"
    );
    let pol = write_policy(
        dir.path(),
        "eng.toml",
        r#"
[policy]
name = "engineering may download"
[[assets]]
name = "eng-ws"
ip = "198.18.3.20"
[[allow]]
name = "eng programs the plc"
from = "asset:eng-ws"
to = "198.18.3.5"
protocol = "s7comm"
"#,
    );
    let r = replay_with_policy(&pol, &[cap.as_path()]);
    assert!(of_kind(&r, "ics_command").is_empty(), "{r}");
}

/// Cold restart, CIP stop and DCP set: raised under a policy whose matching rule lists
/// other commands only, silent under one whose rule allows every command.
#[test]
fn state_and_config_commands_follow_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "dnp3/iti_dnp3_cold_restart.pcap",
            "dnp3",
            "read",
            "cold_restart",
        ),
        (
            "enip_cip/iti_cip_stop_plc.pcap",
            "enip",
            "get_attribute_single",
            "stop",
        ),
        (
            "profinet/iti_profinet_dcp_set_ip.pcap",
            "profinet",
            "identify",
            "set",
        ),
    ];
    for (rel, proto, other, cmd) in cases {
        let cap = frames::shared(rel);
        let narrow = write_policy(
            dir.path(),
            &format!("{proto}-narrow.toml"),
            &format!(
                "[policy]\nname = \"narrow\"\n[[allow]]\nname = \"{proto} reads\"\nfrom = \"any\"\nto = \"any\"\nprotocol = \"{proto}\"\nfunctions = [\"{other}\"]\n"
            ),
        );
        let r = replay_with_policy(&narrow, &[cap.as_path()]);
        let hits: Vec<Value> = of_kind(&r, "ics_command")
            .into_iter()
            .filter(|a| a["command"] == cmd)
            .collect();
        assert_eq!(hits.len(), 1, "{rel}: {r}");
        assert_eq!(hits[0]["rule"], format!("{proto} reads"), "{rel}");
        let wide = write_policy(
            dir.path(),
            &format!("{proto}-wide.toml"),
            &format!(
                "[policy]\nname = \"wide\"\n[[allow]]\nname = \"{proto} anything\"\nfrom = \"any\"\nto = \"any\"\nprotocol = \"{proto}\"\n"
            ),
        );
        let r = replay_with_policy(&wide, &[cap.as_path()]);
        assert!(of_kind(&r, "ics_command").is_empty(), "{rel}: {r}");
    }
}

/// Protocol violations on ICS flows raise `malformed` (info) with the violation's
/// bounded name, one event per (sender, receiver, violation), counting its occurrences.
#[test]
fn protocol_violations_raise_malformed_with_their_names() {
    let r = replay("malformed/zeek_modbus_fuzz-72.pcap", &[]);
    let m = of_kind(&r, "malformed");
    let names: std::collections::BTreeSet<&str> =
        m.iter().map(|a| a["violation"].as_str().unwrap()).collect();
    assert!(names.contains("modbus_bad_length"), "{m:?}");
    assert!(names.contains("modbus_bad_protocol_id"), "{m:?}");
    assert!(
        m.iter()
            .all(|a| a["severity"] == "info" && a["protocol"] == "modbus")
    );
    // Counts add up to the violations the report counts.
    let total: u64 = m.iter().map(|a| a["count"].as_u64().unwrap()).sum();
    let counted: u64 = r["violations"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, counted, "{m:?} vs {}", r["violations"]);

    let r = replay("malformed/iti_openics_dnp3_malformed.pcap", &[]);
    let m = of_kind(&r, "malformed");
    assert!(
        m.iter().any(|a| a["violation"] == "dnp3_object_overrun"),
        "{m:?}"
    );
}
