//! remote_write end to end: an agent reports a shared capture to the real collector,
//! whose `[remote_write]` sends the series to a real VictoriaMetrics on loopback — over
//! plain HTTP, and over HTTPS with the endpoint's certificate checked against the site
//! CA. The series arrive with the agent label and the exact value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use infrawatch_tests::harness::{Collector, Pki, Victoria, agent, have, shared, wait_for};
use std::path::Path;
use std::time::Duration;

const COLD_RESTART: &str = "dnp3/iti_dnp3_cold_restart.pcap";

fn run(d: &Path, tls: bool) {
    let pki = Pki::make(&d.join("pki"), &["site-a"]);
    let vm = Victoria::start(
        &d.join("vm"),
        tls.then(|| {
            (
                pki.file("localhost.pem"),
                pki.file("localhost.key"),
                pki.file("ca.pem"),
            )
        }),
    );
    let ca = if tls {
        format!("ca = \"{}\"\n", pki.file("ca.pem"))
    } else {
        String::new()
    };
    let cfg = d.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\n{}[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\nstate_dir = \"{}\"\n[remote_write]\nurl = \"{}\"\ninterval = \"1s\"\n{ca}",
            pki.ingest_toml(),
            d.join("collector-state").display(),
            vm.url("/api/v1/write"),
        ),
    )
    .unwrap();
    let collector = Collector::start(&cfg);
    let acfg = d.join("agent.toml");
    std::fs::write(
        &acfg,
        format!(
            "[agent]\nid = \"site-a\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"exit\"\n[report]\ncollectors = [\"https://127.0.0.1:{}\"]\ninterval = \"1s\"\n{}",
            d.join("agent-state").display(),
            shared(COLD_RESTART).display(),
            collector.ingest_port(),
            pki.report_toml("site-a"),
        ),
    )
    .unwrap();
    let mut a = agent(&acfg);
    assert!(a.wait_exit(Duration::from_secs(60)).unwrap().success());

    // The DNP3 cold restart: 10 packets, one critical ICS command, agent up.
    let latest = |selector: &str| -> Option<f64> {
        let series = vm.export(selector);
        let [s] = series.as_slice() else { return None };
        assert_eq!(s["metric"]["agent"], "site-a", "{s}");
        s["values"].as_array()?.last()?.as_f64()
    };
    for (selector, want) in [
        (
            r#"infrawatch_packets_total{agent="site-a",protocol="dnp3"}"#,
            10.0,
        ),
        (
            r#"infrawatch_ics_commands_total{agent="site-a",command="cold_restart"}"#,
            1.0,
        ),
        (
            r#"infrawatch_anomalies_total{agent="site-a",kind="ics_command",severity="critical"}"#,
            1.0,
        ),
        (r#"infrawatch_agent_up{agent="site-a"}"#, 1.0),
    ] {
        wait_for(Duration::from_secs(30), selector, || {
            (latest(selector) == Some(want)).then_some(())
        });
    }
    let m = collector.scrape();
    assert!(
        m.contains("\ninfrawatch_collector_remote_write_failures_total 0\n"),
        "{m}"
    );
}

#[test]
fn series_reach_victoria_metrics_over_http() {
    if !have("openssl", "deploy/pki.sh makes the certificates")
        || !have("victoria-metrics", "the remote_write receiver")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), false);
}

#[test]
fn series_reach_victoria_metrics_over_https_checked_against_the_site_ca() {
    if !have("openssl", "deploy/pki.sh makes the certificates")
        || !have("victoria-metrics", "the remote_write receiver")
        || !have("curl", "queries the HTTPS VictoriaMetrics")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), true);
}
