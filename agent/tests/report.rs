//! `run` reports to its collector (DESIGN.md, "Agent → collector"): a fake collector in
//! the test (127.0.0.1, one HTTP/1.1 request per connection parsed by hand, gunzipped,
//! answered with an `Ack`) receives the cold-restart event of a replayed DNP3 capture
//! and the command counter; the ack moves the store's cursor; a collector that is down
//! at first and comes up later still gets every event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::frames;
use infrawatch_agent::store::{Store, StoreConfig};
use infrawatch_config::report::{Ack, REPORT_PATH, Report};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// Reads one request; answers 200 with an ack of every event record it carried.
fn serve(mut s: TcpStream, tx: &Sender<Report>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "request ended early");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        format!("POST {REPORT_PATH} HTTP/1.1")
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("content-encoding").as_deref(), Some("gzip"));
    let len: usize = header("content-length").unwrap().parse().unwrap();
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "body ended early");
        body.extend_from_slice(&chunk[..n]);
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..len])
        .read_to_end(&mut json)
        .unwrap();
    let report: Report = serde_json::from_slice(&json).unwrap();
    let ack = Ack {
        seq: report.seq,
        events_upto: report.events.iter().map(|e| e.store_seq).max().unwrap_or(0),
    };
    let answer = serde_json::to_string(&ack).unwrap();
    // Before answering: once the agent has its ack, the test sees the report.
    let _ = tx.send(report);
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )
    .unwrap();
}

/// A fake collector on `listener`: every report it acknowledged comes out of the channel.
fn collector(listener: TcpListener) -> Receiver<Report> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            serve(s.unwrap(), &tx);
        }
    });
    rx
}

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let cap = frames::shared("dnp3/iti_dnp3_cold_restart.pcap");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nid = \"report-test\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"exit\"\n[report]\ncollectors = [\"http://127.0.0.1:{port}\"]\ninterval = \"1s\"\ninsecure = true\n",
            dir.join("state").display(),
            cap.display()
        ),
    )
    .unwrap();
    config
}

fn agent(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"));
    c.args(["run", "--config"])
        .arg(config)
        .env("INFRAWATCH_LOG", "info")
        .env("NO_COLOR", "1");
    c
}

fn store(dir: &Path) -> Store {
    Store::open(StoreConfig::new(
        dir.join("state/events"),
        1 << 30,
        Duration::from_secs(86_400 * 90),
    ))
    .unwrap()
    .0
}

fn counter(r: &Report, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Vec<(String, String)> = labels
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    r.counters
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// What every run must have delivered: the cold restart, the command counter, every
/// stored record, the store fully acknowledged.
fn check_delivery(dir: &Path, reports: &[Report]) {
    assert!(!reports.is_empty());
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.agent, "report-test");
        if i > 0 {
            assert!(r.seq > reports[i - 1].seq, "sequence in order");
        }
        assert_eq!(r.boot, reports[0].boot);
    }
    let events: Vec<_> = reports.iter().flat_map(|r| &r.events).collect();
    assert!(
        events.iter().any(|e| e.event["kind"] == "ics_command"
            && e.event["command"] == "cold_restart"
            && e.event["protocol"] == "dnp3"),
        "events: {events:?}"
    );
    let last = reports.last().unwrap();
    assert_eq!(
        counter(
            last,
            "infrawatch_ics_commands_total",
            &[
                ("class", "state"),
                ("command", "cold_restart"),
                ("protocol", "dnp3")
            ]
        ),
        Some(1.0)
    );
    let store = store(dir);
    assert!(store.next_seq() > 1, "events were stored");
    assert_eq!(
        store.first_unacked(),
        store.next_seq(),
        "every record acknowledged"
    );
    let mut seqs: Vec<u64> = events.iter().map(|e| e.store_seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs,
        (1..store.next_seq()).collect::<Vec<_>>(),
        "nothing lost"
    );
}

#[test]
fn the_collector_gets_events_and_counters_and_the_ack_moves_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let rx = collector(listener);
    let out = agent(&config(dir.path(), port)).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let reports: Vec<Report> = rx.try_iter().collect();
    check_delivery(dir.path(), &reports);
    assert_eq!(reports[0].seq, 1, "sequence from 1");
    assert!(
        reports.iter().any(|r| !r.assets.is_empty()),
        "devices are reported"
    );
    assert!(log.contains("last report acknowledged"), "{log}");
}

#[test]
fn a_collector_down_at_first_still_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on (yet).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = agent(&config(dir.path(), port))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ltx, lrx) = channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = ltx.send(line);
        }
        all
    });
    // Synchronise on the agent's log: its first attempt failed.
    loop {
        let line = lrx
            .recv_timeout(Duration::from_secs(60))
            .expect("no failed report logged");
        if line.contains("report failed") {
            break;
        }
    }
    let rx = collector(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log}");
    let reports: Vec<Report> = rx.try_iter().collect();
    check_delivery(dir.path(), &reports);
    // The failures are counted in what finally went through.
    let failures = counter(
        reports.last().unwrap(),
        "infrawatch_agent_report_failures_total",
        &[],
    )
    .unwrap();
    assert!(failures >= 1.0, "{failures}");
}
