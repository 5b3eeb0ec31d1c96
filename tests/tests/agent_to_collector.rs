//! End to end, real binaries on loopback: certificates from `deploy/pki.sh`, a collector
//! with mutual TLS, two agents replaying shared captures and reporting to it, and a real
//! Prometheus scraping the collector every second. The values Prometheus holds are the
//! exact counts of the captures (compared with the agent's own `replay`), the known
//! anomaly is counted, the event is in the collector's API, and `promtool check metrics`
//! accepts the exposition. Staleness: an agent that stops reporting goes down after
//! `stale_after` and comes back when it reports; an expected agent that never reported
//! is down from the start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use infrawatch_tests::harness::{
    Collector, Pki, Prometheus, agent, bin, have, sample, shared, wait_for,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MODBUS: &str = "modbus/iti_modbus_test_data_part2_fc_sweep.pcap";
const COLD_RESTART: &str = "dnp3/iti_dnp3_cold_restart.pcap";

fn collector_toml(dir: &Path, pki: &Pki, agents: &str) -> std::path::PathBuf {
    let cfg = dir.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\n{}[metrics]\nlisten = \"127.0.0.1:0\"\n[agents]\n{agents}\n[storage]\nstate_dir = \"{}\"\n",
            pki.ingest_toml(),
            dir.join("collector-state").display()
        ),
    )
    .unwrap();
    cfg
}

fn agent_toml(
    dir: &Path,
    pki: &Pki,
    id: &str,
    port: &str,
    pcap: &str,
    at_end: &str,
) -> std::path::PathBuf {
    let cfg = dir.join(format!("{id}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"{id}\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"{at_end}\"\n[report]\ncollectors = [\"https://127.0.0.1:{port}\"]\ninterval = \"1s\"\n{}",
            dir.join(format!("{id}-state")).display(),
            shared(pcap).display(),
            pki.report_toml(id),
        ),
    )
    .unwrap();
    cfg
}

/// The agent's own account of `pcap` (`replay --format json`, no collector).
fn replay(pcap: &str) -> serde_json::Value {
    let out = Command::new(bin("infrawatch-agent"))
        .args(["replay", "--format", "json"])
        .arg(shared(pcap))
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `infrawatch_anomalies_total` counts detections (findings); an event's `count` sums the
/// occurrences its findings stand for. For `ics_command` a finding is one request, so
/// the two agree and the replay's events give the exact expected value.
fn detections(replay: &serde_json::Value, kind: &str, severity: &str) -> f64 {
    replay["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["severity"] == severity)
        .map(|e| e["count"].as_f64().unwrap())
        .sum()
}

#[test]
fn two_agents_over_mutual_tls_are_scraped_by_prometheus_with_exact_values() {
    if !have("openssl", "deploy/pki.sh makes the certificates")
        || !have("prometheus", "the test's Prometheus scrapes the collector")
        || !have("promtool", "promtool check metrics")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::make(&d.join("pki"), &["site-a", "site-b"]);
    let collector = Collector::start(&collector_toml(d, &pki, ""));
    let prom = Prometheus::start(&d.join("prometheus"), &[&collector.metrics], &[]);

    let port = collector.ingest_port().to_string();
    let mut a = agent(&agent_toml(d, &pki, "site-a", &port, MODBUS, "exit"));
    let mut b = agent(&agent_toml(d, &pki, "site-b", &port, COLD_RESTART, "exit"));
    for (name, p) in [("site-a", &mut a), ("site-b", &mut b)] {
        let st = p.wait_exit(Duration::from_secs(60)).expect("agent ends");
        assert!(st.success(), "{name}: {}", p.log().join("\n"));
    }

    // Exact values, through the collector and Prometheus's storage and query engine.
    for (id, pcap, protocol) in [
        ("site-a", MODBUS, "modbus"),
        ("site-b", COLD_RESTART, "dnp3"),
    ] {
        let truth = replay(pcap);
        let packets = truth["protocols"][protocol]["packets"].as_f64().unwrap();
        assert!(packets >= 10.0, "{id}: {packets}");
        let q = format!("infrawatch_packets_total{{agent=\"{id}\",protocol=\"{protocol}\"}}");
        prom.expect_value(&q, packets, Duration::from_secs(30));
        // Every kind × severity exists (at 0 when nothing was seen), with the exact
        // number of detections.
        for kind in ["ics_command"] {
            for severity in ["info", "warning", "critical"] {
                let want = detections(&truth, kind, severity);
                let q = format!(
                    "infrawatch_anomalies_total{{agent=\"{id}\",kind=\"{kind}\",severity=\"{severity}\"}}"
                );
                prom.expect_value(&q, want, Duration::from_secs(30));
            }
        }
        let q = format!("infrawatch_agent_up{{agent=\"{id}\"}}");
        prom.expect_value(&q, 1.0, Duration::from_secs(30));
    }
    // The capture with the known anomaly (a DNP3 cold restart) has it.
    let q = r#"infrawatch_anomalies_total{agent="site-b",kind="ics_command",severity="critical"}"#;
    assert_eq!(prom.value(q), Some(1.0));

    // The event itself, in the collector's API.
    let events = collector.events("site-b");
    assert!(
        events
            .iter()
            .any(|e| e.to_string().contains("cold_restart")),
        "{events:?}"
    );

    // The exposition passes Prometheus's own linter.
    let text = collector.scrape();
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_silent_agent_goes_down_after_stale_after_and_comes_back_when_it_reports() {
    if !have("openssl", "deploy/pki.sh makes the certificates") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::make(&d.join("pki"), &["site-a"]);
    let collector = Collector::start(&collector_toml(
        d,
        &pki,
        "stale_after = \"3s\"\nexpected = [\"site-c\"]\n",
    ));
    // Expected, never reported: down from the start.
    let up = |id: &str| {
        sample(
            &collector.scrape(),
            &format!("infrawatch_agent_up{{agent=\"{id}\"}}"),
        )
    };
    assert_eq!(up("site-c"), Some(0.0));

    let port = collector.ingest_port().to_string();
    let cfg = agent_toml(d, &pki, "site-a", &port, MODBUS, "stay");
    let a = agent(&cfg);
    wait_for(Duration::from_secs(30), "site-a up", || {
        (up("site-a") == Some(1.0)).then_some(())
    });
    // Killed: no last report; down once stale_after has passed, not before.
    drop(a);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(up("site-a"), Some(1.0), "down before stale_after");
    wait_for(Duration::from_secs(15), "site-a down", || {
        (up("site-a") == Some(0.0)).then_some(())
    });
    // Back when it reports again.
    let _a = agent(&cfg);
    wait_for(Duration::from_secs(30), "site-a up again", || {
        (up("site-a") == Some(1.0)).then_some(())
    });
    assert_eq!(up("site-c"), Some(0.0));
}
