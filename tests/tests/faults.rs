//! Faults between agents and the collector, with the real binaries on loopback over
//! mutual TLS:
//! - the collector is SIGKILLed at random (seeded) moments while two agents report a
//!   capture full of events, and restarted on the same port: afterwards every event
//!   version the agents logged is in the collector exactly once — no (id, version)
//!   twice in its store file, none missing — and the counters continue to the exact
//!   totals;
//! - an agent is SIGKILLed while its collector is down: the events in its store arrive
//!   once it runs again and a collector answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../agent/tests/common/frames.rs"]
mod frames;

use frames::{Frame, ModbusPoller};
use infrawatch_tests::harness::{
    Collector, Pki, Proc, agent, free_port, have, logged_events, sample, wait_for,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PLC: ([u8; 6], [u8; 4], u16) = ([2, 0, 0, 0, 1, 1], [10, 0, 1, 1], 502);
const T0: u64 = 1_700_000_000_000_000_000;

/// `clients` HMIs, one every `step_ms` of capture time, each connecting to the PLC,
/// reading (allowed) and writing a register (not allowed): a new asset, a new
/// conversation and a denied write per client, spread over the capture.
fn capture(path: &Path, clients: u8, step_ms: u64) -> usize {
    let mut out: Vec<Frame> = Vec::new();
    for i in 0..clients {
        let t = T0 + u64::from(i) * step_ms * 1_000_000;
        let mut p = ModbusPoller::new(
            (
                [2, 0, 0, 0, 0, 10 + i],
                [10, 0, 0, 10 + i],
                40_000 + u16::from(i),
            ),
            PLC,
        );
        p.connect(t, &mut out);
        p.poll(
            t + 10_000_000,
            1,
            &[3, 0, 0, 0, 2],
            &[3, 4, 0, 1, 0, 2],
            &mut out,
        );
        p.poll(
            t + 20_000_000,
            1,
            &[6, 0, 7, 0, 9],
            &[6, 0, 7, 0, 9],
            &mut out,
        );
    }
    out.sort_by_key(|f| f.ts_ns);
    frames::write(path, &out);
    out.len()
}

const POLICY: &str = r#"[policy]
name = "faults"
[zones]
hmi = ["10.0.0.0/24"]
control = ["10.0.1.0/24"]
[[allow]]
name = "hmi reads the plc"
from = "zone:hmi"
to = "zone:control"
protocol = "modbus"
functions = ["read_holding_registers"]
"#;

fn collector_toml(dir: &Path, pki: &Pki, port: u16) -> PathBuf {
    let cfg = dir.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:{port}\"\n{}[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\nstate_dir = \"{}\"\n",
            pki.ingest_toml(),
            dir.join("collector-state").display()
        ),
    )
    .unwrap();
    cfg
}

fn agent_toml(dir: &Path, pki: &Pki, id: &str, port: u16, pcap: &Path, pace: &str) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let cfg = dir.join(format!("{id}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"{id}\"\nstate_dir = \"{}\"\npolicy = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"{pace}\"\nat_end = \"stay\"\n[report]\ncollectors = [\"https://127.0.0.1:{port}\"]\ninterval = \"1s\"\n{}",
            dir.join(format!("{id}-state")).display(),
            policy.display(),
            pcap.display(),
            pki.report_toml(id),
        ),
    )
    .unwrap();
    cfg
}

/// The newest version of each event id.
fn newest(versions: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (id, v) in versions {
        let e = m.entry(id.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
    m
}

/// Every (id, version) line of the collector's event store file, in order.
fn stored_versions(state: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(state).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().contains("events") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let (Some(id), Some(ver)) = (v["id"].as_str(), v["version"].as_u64())
            {
                out.push((id.to_string(), ver));
            }
        }
    }
    out
}

/// A small seeded generator (xorshift64*): the kill moments are the same on every run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn the_collector_killed_at_random_loses_and_duplicates_no_event() {
    if !have("openssl", "deploy/pki.sh makes the certificates") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::make(&d.join("pki"), &["site-a", "site-b"]);
    // 40 clients, one every 300 ms: events over 12 s of recorded pace.
    let pcap = d.join("hmis.pcap");
    let frames = capture(&pcap, 40, 300);
    let port = free_port();
    let cfg = collector_toml(d, &pki, port);
    let mut collector = Collector::start(&cfg);
    let agents: Vec<(&str, Proc)> = ["site-a", "site-b"]
        .into_iter()
        .map(|id| (id, agent(&agent_toml(d, &pki, id, port, &pcap, "recorded"))))
        .collect();

    // Kill and restart the collector at seeded random moments during the replay.
    let mut rng = Rng(0x1f2e_3d4c_5b6a_7988);
    let start = Instant::now();
    let mut kills = 0;
    while start.elapsed() < Duration::from_secs(14) && kills < 8 {
        std::thread::sleep(Duration::from_millis(300 + rng.below(1500)));
        let down = Duration::from_millis(rng.below(400));
        collector.proc.signal(libc::SIGKILL);
        let _ = collector.proc.wait_exit(Duration::from_secs(5));
        std::thread::sleep(down);
        collector = collector.kill_and_restart();
        kills += 1;
    }
    assert!(kills >= 5, "{kills}");

    // Every event version each agent logged reaches the collector (at-least-once,
    // with backoff capped at a minute; the replay ended long ago).
    let logged = |p: &Proc| newest(&logged_events(&p.log()));
    wait_for(Duration::from_secs(120), "every event stored", || {
        agents
            .iter()
            .all(|(id, p)| {
                let want = logged(p);
                let have: BTreeMap<String, u64> = collector
                    .events(id)
                    .iter()
                    .map(|e| {
                        (
                            e["id"].as_str().unwrap().to_string(),
                            e["version"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                !want.is_empty() && have == want
            })
            .then_some(())
    });
    for (id, p) in &agents {
        let n = logged(p).len();
        // Per client: a new asset, a new conversation, a denied write (at least).
        assert!(n >= 40, "{id}: only {n} events: {:?}", p.log());
    }
    // Exactly once in the store file: no (id, version) written twice, whatever was
    // retried across the kills.
    let stored = stored_versions(&d.join("collector-state"));
    let unique: BTreeSet<&(String, u64)> = stored.iter().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "an event version was stored twice"
    );
    // And the store read back by a fresh collector is the same.
    collector = collector.kill_and_restart();
    for (id, p) in &agents {
        assert_eq!(collector.events(id).len(), logged(p).len(), "{id}");
    }
    // Counters continue: the agents' next reports carry their exact cumulative totals.
    for (id, _) in &agents {
        let series = format!(
            "infrawatch_packets_total{{agent=\"{id}\",interface=\"pcap\",protocol=\"modbus\"}}"
        );
        wait_for(Duration::from_secs(30), &series, || {
            (sample(&collector.scrape(), &series) == Some(frames as f64)).then_some(())
        });
    }
}

#[test]
fn an_agent_killed_while_its_collector_is_down_delivers_its_stored_events_later() {
    if !have("openssl", "deploy/pki.sh makes the certificates") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::make(&d.join("pki"), &["site-a"]);
    let pcap = d.join("hmis.pcap");
    capture(&pcap, 10, 100);
    let port = free_port();
    // No collector yet: the agent stores its events, fails to report, and is killed.
    let cfg = agent_toml(d, &pki, "site-a", port, &pcap, "max");
    let first = agent(&cfg);
    let before = wait_for(Duration::from_secs(30), "events logged", || {
        let n = newest(&logged_events(&first.log()));
        (n.len() >= 10).then_some(n)
    });
    std::thread::sleep(Duration::from_millis(500));
    let before_all = newest(&logged_events(&first.log()));
    assert!(before_all.len() >= before.len());
    drop(first); // SIGKILL: no last report, nothing flushed beyond the store.

    let collector = Collector::start(&collector_toml(d, &pki, port));
    let second = agent(&cfg);
    wait_for(
        Duration::from_secs(60),
        "the first boot's events arrive",
        || {
            let have: BTreeMap<String, u64> = collector
                .events("site-a")
                .iter()
                .map(|e| {
                    (
                        e["id"].as_str().unwrap().to_string(),
                        e["version"].as_u64().unwrap(),
                    )
                })
                .collect();
            before_all
                .iter()
                .all(|(id, v)| have.get(id).is_some_and(|h| h >= v))
                .then_some(())
        },
    );
    drop(second);
}
