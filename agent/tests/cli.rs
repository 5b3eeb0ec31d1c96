//! The command line as operators and scripts use it: the real binary, its exit codes
//! and output formats (DESIGN.md, "Command line").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
}

fn pcap(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/pcaps")
        .join(rel)
}

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

#[test]
fn replay_json_has_the_design_fields() {
    let out = agent()
        .args(["replay", "--no-detect", "--format", "json"])
        .arg(pcap("modbus/icsnpp_modbus_example.pcap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "files",
        "packets",
        "bytes",
        "decode_errors",
        "protocols",
        "flows",
        "assets",
        "ics_commands",
        "ics_responses",
        "anomalies",
        "elapsed_s",
        "packets_per_second",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["files"], 1);
    assert_eq!(v["packets"], 100);
    assert_eq!(v["protocols"]["modbus"]["packets"], 100);
    assert_eq!(v["protocols"]["modbus"]["flows"], 2);
    assert_eq!(v["ics_commands"]["modbus/write_single_register"], 1);
    assert_eq!(v["ics_responses"]["modbus/exception"], 1);
    assert!(v["anomalies"].as_array().is_some());
}

#[test]
fn replay_several_files_as_one_capture_and_table_output() {
    let out = agent()
        .arg("replay")
        .arg(pcap("s7comm/iti_snap7_s300_plc_stop.pcap"))
        .arg(pcap("modbus/zeek_4sics_fc23_read_write_registers.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("2 file(s), 4 packets"), "{text}");
    assert!(text.contains("Protocols"));
    assert!(
        text.contains("modbus/read_write_multiple_registers"),
        "{text}"
    );
}

#[test]
fn replay_of_a_damaged_file_ends_cleanly_with_a_warning() {
    let out = agent()
        .args(["replay", "--format", "json"])
        .arg(pcap("malformed/ndpi_fuzz_truncated_file.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["file_errors"].as_array().map(Vec::len), Some(1));
}

#[test]
fn replay_of_a_file_that_is_not_a_capture_fails() {
    let dir = tmp();
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, "this is not a pcap file at all\n").unwrap();
    let out = agent()
        .args(["replay", "--format", "json"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng file"));
}

#[test]
fn check_reports_every_error_gnu_style_and_exits_1() {
    let dir = tmp();
    let f = dir.path().join("agent.toml");
    std::fs::write(
        &f,
        "[agent]\nid = \"plant 1\"\n[capture]\nintefaces = [\"eth1\"]\npcap = [\"/nonexistent.pcap\"]\n[flows]\nidle_timeout = 30\n",
    )
    .unwrap();
    let out = agent()
        .arg("check")
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let p = f.display();
    assert!(
        err.contains(&format!("{p}:2:6: error: agent id `plant 1` is not usable")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:4:1: error: unknown key `intefaces` in [capture]"
        )),
        "{err}"
    );
    assert!(err.contains("help: did you mean `interfaces`?"), "{err}");
    assert!(
        err.contains(&format!("{p}:5:9: error: cannot read /nonexistent.pcap")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:7:16: error: [flows]: a duration needs a unit"
        )),
        "{err}"
    );
}

#[test]
fn check_accepts_a_valid_config() {
    let dir = tmp();
    let f = dir.path().join("agent.toml");
    let capture = pcap("modbus/icsnpp_modbus_example.pcap");
    std::fs::write(
        &f,
        format!(
            "[agent]\nid = \"plant-1\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\nexclude = [\"port 9700\"]\n",
            dir.path().join("state").display(),
            capture.display()
        ),
    )
    .unwrap();
    let out = agent()
        .arg("check")
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

/// A capture interface with an address (here `lo`, which always has 127.0.0.1) is a
/// warning with the NIC guidance, not an error: exit 0.
#[test]
fn check_warns_when_a_capture_interface_has_an_address() {
    let dir = tmp();
    let f = dir.path().join("agent.toml");
    std::fs::write(
        &f,
        format!(
            "[agent]\nid = \"plant-1\"\nstate_dir = \"{}\"\n[capture]\ninterfaces = [\"lo\"]\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = agent()
        .arg("check")
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{}: warning: capture interface `lo` has an IP address (127.0.0.1",
            f.display()
        )),
        "{err}"
    );
    assert!(err.contains("receive-only with no address"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

/// `${CREDENTIALS_DIRECTORY}/NAME` in a TLS file key resolves against the variable
/// systemd sets with `LoadCredential=`; without it `check` says what to write instead.
#[test]
fn check_resolves_tls_files_in_the_credentials_directory() {
    let dir = tmp();
    let creds = dir.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    for f in ["ca.pem", "agent.pem", "agent.key"] {
        std::fs::write(creds.join(f), "-----BEGIN NOTHING-----\n").unwrap();
    }
    let f = dir.path().join("agent.toml");
    std::fs::write(
        &f,
        format!(
            "[agent]\nid = \"plant-1\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\n[report]\ncollectors = [\"https://collector.site:9700\"]\nca = \"${{CREDENTIALS_DIRECTORY}}/ca.pem\"\ncert = \"${{CREDENTIALS_DIRECTORY}}/agent.pem\"\nkey = \"${{CREDENTIALS_DIRECTORY}}/agent.key\"\n",
            dir.path().join("state").display(),
            pcap("modbus/icsnpp_modbus_example.pcap").display()
        ),
    )
    .unwrap();
    let out = agent()
        .args(["check", "--config"])
        .arg(&f)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent()
        .args(["check", "--config"])
        .arg(&f)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`${CREDENTIALS_DIRECTORY}/agent.key`: $CREDENTIALS_DIRECTORY is not set"),
        "{err}"
    );
}

#[test]
fn run_replays_configured_files_and_exits_at_end() {
    let dir = tmp();
    let f = dir.path().join("agent.toml");
    let summary = dir.path().join("summary.json");
    std::fs::write(
        &f,
        format!(
            "[agent]\nid = \"plant-1\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\", \"{}\"]\npace = \"max\"\nat_end = \"exit\"\n",
            dir.path().join("state").display(),
            pcap("dnp3/iti_dnp3_cold_restart.pcap").display(),
            pcap("modbus/icsnpp_modbus_example.pcap").display(),
        ),
    )
    .unwrap();
    let out = agent()
        .arg("run")
        .arg("--config")
        .arg(&f)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(v["packets"], 110);
    assert_eq!(v["protocols"]["modbus"]["packets"], 100);
    assert!(dir.path().join("state").is_dir(), "state_dir is created");
}
