//! End to end, real binaries on loopback: certificates from `deploy/pki.sh`, a collector
//! with mutual TLS, an agent replaying a shared capture and reporting to it. The
//! collector's `/metrics` has the agent's command counter with its exact value and the
//! anomaly counter; its events API has the event. (The Prometheus-scraping,
//! fault-injection and staleness tests build on this.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin(name: &str) -> PathBuf {
    // The workspace's binaries, built by `cargo test --workspace` (what the gate runs).
    let p = root().join("target/debug").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn an_agent_reports_over_mutual_tls_and_the_collector_serves_it() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("SKIP: needs openssl for deploy/pki.sh (scripts/setup-test-deps.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki_sh = root().join("deploy/pki.sh");
    for args in [
        vec!["ca"],
        vec!["collector", "localhost", "127.0.0.1"],
        vec!["agent", "site-a"],
    ] {
        let o = Command::new(&pki_sh)
            .arg("--dir")
            .arg(&pki)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let p = |f: &str| pki.join(f).display().to_string();

    let ccfg = tmp.path().join("collector.toml");
    std::fs::write(
        &ccfg,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\nstate_dir = \"{}\"\n",
            p("ca.pem"),
            p("localhost.pem"),
            p("localhost.key"),
            tmp.path().join("collector-state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin("infrawatch-collector"))
        .args(["run", "--config"])
        .arg(&ccfg)
        .env("INFRAWATCH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let collector = Running(child);
    let (mut ingest, mut metrics) = (None, None);
    while ingest.is_none() || metrics.is_none() {
        let line = lines
            .next()
            .expect("collector ended before listening")
            .unwrap();
        let addr = line.rsplit(' ').next().unwrap().to_string();
        if line.contains("ingest listening on ") {
            ingest = Some(addr);
        } else if line.contains("metrics listening on ") {
            metrics = Some(addr);
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let (ingest, metrics) = (ingest.unwrap(), metrics.unwrap());
    let port = ingest.rsplit(':').next().unwrap();

    let cap = root().join("../shared/pcaps/dnp3/iti_dnp3_cold_restart.pcap");
    let acfg = tmp.path().join("agent.toml");
    std::fs::write(
        &acfg,
        format!(
            "[agent]\nid = \"site-a\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"exit\"\n[report]\ncollectors = [\"https://127.0.0.1:{port}\"]\ninterval = \"1s\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            tmp.path().join("agent-state").display(),
            cap.display(),
            p("ca.pem"),
            p("site-a.pem"),
            p("site-a.key"),
        ),
    )
    .unwrap();
    let out = Command::new(bin("infrawatch-agent"))
        .args(["run", "--config"])
        .arg(&acfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The agent's last report (at exit) is in: exact values.
    let want = "infrawatch_ics_commands_total{agent=\"site-a\",class=\"state\",command=\"cold_restart\",protocol=\"dnp3\"} 1";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = get(&metrics, "/metrics");
        if text.contains(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text.contains(want), "{text}");
    assert!(
        text.contains("infrawatch_anomalies_total{agent=\"site-a\",kind=\"ics_command\",severity=\"critical\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("infrawatch_agent_up{agent=\"site-a\"} 1"),
        "{text}"
    );
    let events = get(&metrics, "/api/v1/events?agent=site-a");
    assert!(events.contains("cold_restart"), "{events}");
    drop(collector);
}
