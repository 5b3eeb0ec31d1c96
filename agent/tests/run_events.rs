//! `run` keeps what it finds (DESIGN.md, "Detection"): each event version in the on-disk
//! store under `state_dir`, evidence pcaps when asked, and a baseline that spares a
//! restart a storm of `new_asset`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::frames;
use infrawatch_agent::capture::pcap::PcapFile;
use infrawatch_agent::capture::{Next, PacketSource};
use infrawatch_agent::store::{Store, StoreConfig};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn run(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
        .args(["run", "--config"])
        .arg(config)
        .env("INFRAWATCH_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

fn stored_events(state: &Path) -> Vec<serde_json::Value> {
    let (mut store, _) = Store::open(StoreConfig::new(
        state.join("events"),
        1 << 30,
        Duration::from_secs(86_400 * 90),
    ))
    .unwrap();
    store
        .read_from(0, 100_000, 1 << 30)
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect()
}

#[test]
fn events_are_stored_with_evidence_and_the_baseline_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[policy]\nname = \"lab\"\n[zones]\nlab = [\"192.168.60.0/24\"]\n[[allow]]\nname = \"dnp3 reads\"\nfrom = \"zone:lab\"\nto = \"zone:lab\"\nprotocol = \"dnp3\"\nfunctions = [\"read\"]\n",
    )
    .unwrap();
    let cap = frames::shared("dnp3/iti_dnp3_cold_restart.pcap");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nid = \"store-test\"\npolicy = \"{}\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"exit\"\n[events]\nevidence = true\n",
            policy.display(),
            state.display(),
            cap.display()
        ),
    )
    .unwrap();
    let log = run(&config);

    // Every version that was logged is in the store, in order, and parses.
    let events = stored_events(&state);
    let cold: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "ics_command" && e["command"] == "cold_restart")
        .collect();
    assert!(!cold.is_empty(), "stored: {events:?}");
    assert_eq!(cold[0]["version"], 1);
    assert_eq!(cold[0]["severity"], "critical");
    assert!(cold[0]["id"].as_str().unwrap().starts_with("store-test:"));
    let logged = log.matches("\"kind\":\"").count();
    assert_eq!(
        logged,
        events.len(),
        "each logged version is stored:\n{log}"
    );
    let new_assets = events.iter().filter(|e| e["kind"] == "new_asset").count();
    assert!(new_assets >= 2, "{events:?}");

    // Evidence: the packet that raised the command, readable as a capture.
    let id = cold[0]["id"].as_str().unwrap();
    let evidence: Vec<_> = std::fs::read_dir(state.join("evidence"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!evidence.is_empty(), "no evidence written");
    let mut found = false;
    for p in &evidence {
        let mut src = PcapFile::open(p).unwrap();
        let mut n = 0;
        while let Next::Packet(_) = src.next().unwrap() {
            n += 1;
        }
        assert!(n >= 1, "{} holds no packet", p.display());
        found |= *p
            == state
                .join("evidence")
                .join(infrawatch_agent::evidence::file_name(id));
    }
    assert!(found, "evidence of {id}: {evidence:?}");

    // The devices are saved with the baseline.
    let baseline: String = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("baseline-")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(baseline.contains("00:0c:29:24:3a:0a"), "{baseline}");

    // A restart: the baseline knows the devices and the conversation now, and the asset
    // table starts with the devices of the first run (their first sighting kept).
    let summary = dir.path().join("second.json");
    let out = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let inv = s["asset_inventory"].as_array().unwrap();
    assert!(
        inv.iter().any(|a| a["mac"] == "00:0c:29:24:3a:0a"
            && a["roles"].as_array().is_some_and(|r| !r.is_empty())),
        "{inv:?}"
    );
    let again = stored_events(&state);
    let second: Vec<_> = again[events.len()..].to_vec();
    assert!(
        second
            .iter()
            .all(|e| e["kind"] != "new_asset" && e["kind"] != "new_conversation"),
        "second run: {second:?}"
    );
    assert!(
        second.iter().any(|e| e["command"] == "cold_restart"),
        "the command is still reported: {second:?}"
    );
    // Event ids of the two runs differ (another boot id).
    assert_ne!(second[0]["id"], events[0]["id"]);
}

/// `mode = "learn"`: `run` learns for `[learning] duration` of packet time, writes the
/// learnt policy into the state directory, then judges the rest of the traffic against
/// it; a restart monitors with it at once.
#[test]
fn learn_mode_learns_then_monitors_with_the_learnt_policy() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[policy]\nname = \"dnp3-site\"\nmode = \"learn\"\n[learning]\nduration = \"100s\"\nthen = \"monitor\"\n",
    )
    .unwrap();
    // 122 s of a DNP3 master polling an outstation.
    let cap = frames::shared("dnp3/icsnpp_dnp3_example.pcap");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nid = \"learner\"\npolicy = \"{}\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"exit\"\n",
            policy.display(),
            state.display(),
            cap.display()
        ),
    )
    .unwrap();
    let log = run(&config);
    assert!(log.contains("mode = learn: learning"), "{log}");
    assert!(
        log.contains("learning period over: learnt policy written"),
        "{log}"
    );
    assert!(log.contains("monitoring with the learnt policy"), "{log}");
    let learnt = std::fs::read_to_string(state.join("learnt-policy.toml")).unwrap();
    assert!(learnt.contains("protocol = \"dnp3\""), "{learnt}");
    // It is a valid policy for `check`.
    let out = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
        .args(["check", "--policy"])
        .arg(state.join("learnt-policy.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The rest of the capture is what was learnt: nothing opened after the switch
    // (while learning, the no-policy rule reported the master's control commands; the
    // first 100 s hold its selects and operates, so they are learnt).
    let start = frames::read("dnp3/icsnpp_dnp3_example.pcap")[0].ts_ns;
    let events = stored_events(&state);
    let after: Vec<_> = events
        .iter()
        .filter(|e| e["first_ns"].as_u64().unwrap() > start + 101_000_000_000)
        .collect();
    assert!(
        after
            .iter()
            .all(|e| e["kind"] != "policy_violation" && e["kind"] != "ics_command"),
        "{after:?}"
    );
    // A restart: learning is over, the learnt policy is in force at once.
    let log = run(&config);
    assert!(log.contains("learning finished in an earlier run"), "{log}");
}
