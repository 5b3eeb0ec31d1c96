//! The operator test (issue 6): a plant in two network namespaces on a bridge — an HMI
//! and a PLC with a real Modbus/TCP exchange — with the agent capturing on the PLC's
//! switch port under the shipped example policy (its 10.X.0.Y addresses moved to
//! 198.18.X.Y), reporting to the collector over mutual TLS, and a real Prometheus
//! (1 s scrape and rule evaluation) loaded with the shipped alert rules. Then an
//! `nmap -sS` from the HMI to the PLC and a Modbus write the policy forbids: the
//! port-scan and ICS-command alerts fire within 15 s, and both events are in the
//! collector's events API. And every metric the shipped rules and dashboard name is
//! exposed, and every dashboard query returns data.
//!
//! Needs root (namespaces, a bridge, AF_PACKET), iproute2, nmap, openssl and
//! prometheus; SKIPs with the reason otherwise. Traffic stays between the test's own
//! namespaces (198.18.0.0/15); the host side of the bridge has no address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use common::{Netns, enter, ip};
use infrawatch_tests::harness::{Collector, Pki, Prometheus, agent, have, root, wait_for};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PLC: &str = "198.18.10.13"; // plc-dosing (10.10.0.13 in the example)
const PLC_MAC: &str = "00:80:f4:10:00:13";
const HMI: &str = "198.18.20.10"; // hmi-1 (10.20.0.10)

/// The example policy with its 10.X.0.Y addresses moved into the test range.
fn plant_policy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("deploy/examples/policy.toml")).unwrap();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("10.") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.');
        if boundary && !digits.is_empty() && after[digits.len()..].starts_with(".0.") {
            out.push_str(&format!("198.18.{digits}."));
            rest = &after[digits.len() + 3..];
        } else {
            out.push_str("10.");
            rest = after;
        }
    }
    out.push_str(rest);
    assert!(out.contains("198.18.10.0/24") && out.contains("198.18.20.10/31"));
    let path = dir.join("policy.toml");
    std::fs::write(&path, out).unwrap();
    path
}

/// The host side: a bridge (no address) with one port per namespace.
struct Switch {
    bridge: String,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn no_ipv6(dev: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1");
}

/// Plugs namespace `ns` into the switch: `inside` (in `ns`, with `addr`) and `port`
/// (a bridge port on the host).
fn plug(sw: &Switch, ns: &Netns, inside: &str, port: &str, addr: &str, mac: Option<&str>) {
    ip(&["link", "add", inside, "type", "veth", "peer", "name", port]);
    no_ipv6(port);
    ip(&["link", "set", inside, "netns", &ns.name]);
    if let Some(mac) = mac {
        ip(&["-n", &ns.name, "link", "set", "dev", inside, "address", mac]);
    }
    ip(&[
        "-n",
        &ns.name,
        "addr",
        "add",
        &format!("{addr}/15"),
        "dev",
        inside,
    ]);
    ip(&["-n", &ns.name, "link", "set", inside, "up"]);
    ip(&["link", "set", port, "master", &sw.bridge]);
    ip(&["link", "set", port, "up"]);
}

/// A Modbus/TCP server (the PLC): holding registers read as zeros, writes echoed
/// (Modbus Application Protocol v1.1b3, 6.3, 6.6, 6.12), anything else an exception 01.
fn serve_modbus(listener: TcpListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let stop = stop.clone();
                std::thread::spawn(move || modbus_session(s, &stop));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return,
        }
    }
}

fn modbus_session(mut s: TcpStream, stop: &AtomicBool) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut head = [0u8; 7];
    while !stop.load(Ordering::Relaxed) {
        match s.read_exact(&mut head) {
            Ok(()) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue;
            }
            Err(_) => return,
        }
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        if !(2..=254).contains(&len) {
            return;
        }
        let mut pdu = vec![0u8; len - 1];
        if s.read_exact(&mut pdu).is_err() {
            return;
        }
        let answer = match pdu[0] {
            3 | 4 if pdu.len() == 5 => {
                let n = u16::from_be_bytes([pdu[3], pdu[4]]).min(125) as usize;
                let mut a = vec![pdu[0], (2 * n) as u8];
                a.resize(2 + 2 * n, 0);
                a
            }
            5 | 6 if pdu.len() == 5 => pdu.clone(),
            15 | 16 if pdu.len() >= 5 => pdu[..5].to_vec(),
            f => vec![f | 0x80, 1],
        };
        let mut out = head[..4].to_vec();
        out.extend_from_slice(&((answer.len() + 1) as u16).to_be_bytes());
        out.push(head[6]);
        out.extend_from_slice(&answer);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// One request/response on a Modbus/TCP connection.
fn modbus_call(s: &mut TcpStream, tid: u16, pdu: &[u8]) -> Vec<u8> {
    let mut req = tid.to_be_bytes().to_vec();
    req.extend_from_slice(&[0, 0]);
    req.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    req.push(1); // unit id 1, as the policy's rules say
    req.extend_from_slice(pdu);
    s.write_all(&req).unwrap();
    let mut head = [0u8; 7];
    s.read_exact(&mut head).unwrap();
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    let mut answer = vec![0u8; len - 1];
    s.read_exact(&mut answer).unwrap();
    answer
}

#[test]
fn a_scan_and_a_forbidden_write_fire_the_shipped_alerts_within_15_s() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: the operator test needs root (network namespaces, a bridge, live capture)");
        return;
    }
    if !have("ip", "namespaces and the bridge")
        || !have("nmap", "the scan from the HMI")
        || !have("openssl", "deploy/pki.sh makes the certificates")
        || !have("prometheus", "Prometheus evaluates the shipped alert rules")
    {
        return;
    }
    let rules: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/prometheus"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with("rules.yml"))
                .collect()
        })
        .unwrap_or_default();
    assert!(!rules.is_empty(), "no alert rules in deploy/prometheus");

    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The plant.
    let pid = std::process::id();
    let hmi_ns = Netns::new(format!("iw-op-{pid}-hmi"));
    let plc_ns = Netns::new(format!("iw-op-{pid}-plc"));
    let sw = Switch {
        bridge: format!("iw{pid}br"),
    };
    ip(&["link", "add", &sw.bridge, "type", "bridge"]);
    no_ipv6(&sw.bridge);
    ip(&["link", "set", &sw.bridge, "up"]);
    let plc_port = format!("iw{pid}pb");
    plug(
        &sw,
        &hmi_ns,
        &format!("iw{pid}h"),
        &format!("iw{pid}hb"),
        HMI,
        None,
    );
    plug(
        &sw,
        &plc_ns,
        &format!("iw{pid}p"),
        &plc_port,
        PLC,
        Some(PLC_MAC),
    );

    // The PLC's Modbus server, in its namespace.
    let stop = Arc::new(AtomicBool::new(false));
    let plc_path = plc_ns.path();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            enter(&plc_path);
            let l = TcpListener::bind((PLC, 502)).unwrap();
            tx.send(()).unwrap();
            serve_modbus(l, stop);
        });
    }
    rx.recv_timeout(Duration::from_secs(10)).unwrap();

    // Collector, Prometheus with the shipped rules, and the agent on the PLC's port.
    let pki = Pki::make(&d.join("pki"), &["plant-a"]);
    let ccfg = d.join("collector.toml");
    std::fs::write(
        &ccfg,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\n{}[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\nstate_dir = \"{}\"\n",
            pki.ingest_toml(),
            d.join("collector-state").display()
        ),
    )
    .unwrap();
    let collector = Collector::start(&ccfg);
    let prom = Prometheus::start(&d.join("prometheus"), &[&collector.metrics], &rules);
    let acfg = d.join("agent.toml");
    std::fs::write(
        &acfg,
        format!(
            "[agent]\nid = \"plant-a\"\nstate_dir = \"{}\"\npolicy = \"{}\"\n[capture]\ninterfaces = [\"{plc_port}\"]\n[report]\ncollectors = [\"https://127.0.0.1:{}\"]\ninterval = \"1s\"\n{}",
            d.join("agent-state").display(),
            plant_policy(d).display(),
            collector.ingest_port(),
            pki.report_toml("plant-a"),
        ),
    )
    .unwrap();
    let agent = agent(&acfg);

    // The HMI polls and writes its setpoints as the policy allows, every 200 ms, until
    // told to send one write the policy forbids (bounded: 120 s at most).
    let forbid = Arc::new(AtomicBool::new(false));
    let hmi_path = hmi_ns.path();
    let hmi = {
        let (stop, forbid) = (stop.clone(), forbid.clone());
        std::thread::spawn(move || {
            enter(&hmi_path);
            let mut s = TcpStream::connect((PLC, 502)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (mut tid, mut forbidden_sent, start) = (0u16, false, Instant::now());
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
                tid = tid.wrapping_add(1);
                let a = modbus_call(&mut s, tid, &[3, 0, 100, 0, 10]); // read 100-109
                assert_eq!(a[0], 3);
                tid = tid.wrapping_add(1);
                let a = modbus_call(&mut s, tid, &[6, 0, 105, 0, 42]); // dose rate: allowed
                assert_eq!(a[0], 6);
                if forbid.load(Ordering::Relaxed) && !forbidden_sent {
                    tid = tid.wrapping_add(1);
                    // Register 300: outside the rule's 100-119 and 200.
                    let a = modbus_call(&mut s, tid, &[6, 1, 44, 0, 1]);
                    assert_eq!(a[0], 6);
                    forbidden_sent = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // Normal operation first: Modbus seen, capture up, and no alert of ours firing.
    let modbus = r#"sum(infrawatch_packets_total{agent="plant-a",protocol="modbus"})"#;
    wait_for(
        Duration::from_secs(60),
        "the agent's Modbus counts in Prometheus",
        || prom.value(modbus).filter(|v| *v > 20.0),
    );
    let firing = |name: &str| {
        prom.alerts()
            .iter()
            .any(|(n, state, _)| n == name && state == "firing")
    };
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !firing(SCAN_ALERT) && !firing(ICS_ALERT),
        "{:?}",
        prom.alerts()
    );

    // The attack: a SYN scan of 200 ports (bounded), then the forbidden write.
    let nmap = Command::new("ip")
        .args([
            "netns",
            "exec",
            &hmi_ns.name,
            "nmap",
            "-sS",
            "-n",
            "-Pn",
            "-p",
            "1-200",
        ])
        .args(["--max-retries", "0", "--host-timeout", "30s", "-T4", PLC])
        .output()
        .unwrap();
    assert!(
        nmap.status.success(),
        "{}",
        String::from_utf8_lossy(&nmap.stderr)
    );
    forbid.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    while !(firing(SCAN_ALERT) && firing(ICS_ALERT)) {
        if t0.elapsed() > Duration::from_secs(15) {
            let kinds: Vec<String> = collector
                .events("plant-a")
                .iter()
                .map(|e| format!("{} {}", e["event"]["kind"], e["event"]["command"]))
                .collect();
            panic!(
                "not firing within 15 s: alerts {:?}\nanomalies {:?}\ndenials {:?}\nevents {kinds:?}",
                prom.alerts(),
                prom.query("infrawatch_anomalies_total > 0"),
                prom.query("infrawatch_ics_command_denials_total > 0"),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("alerts firing {:?} after the write", t0.elapsed());

    let events = collector.events("plant-a");
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"]["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"port_scan"), "{kinds:?}");
    let write = events
        .iter()
        .find(|e| e["event"]["kind"] == "ics_command")
        .unwrap_or_else(|| panic!("no ics_command event: {events:?}"));
    assert_eq!(
        write["event"]["command"], "write_single_register",
        "{write}"
    );
    assert_eq!(write["event"]["src"], HMI, "{write}");
    assert_eq!(write["event"]["dst"], PLC, "{write}");

    // Every metric the shipped rules and dashboard name is in the collector's
    // exposition, and every dashboard query returns data from this Prometheus.
    let exposed: std::collections::BTreeSet<String> = collector
        .scrape()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect();
    let missing: Vec<String> = infrawatch_tests::metric_names_used()
        .into_iter()
        .filter(|m| !exposed.contains(m))
        .collect();
    assert!(
        missing.is_empty(),
        "named by rules or dashboard, not exposed: {missing:?}"
    );
    let queries = infrawatch_tests::dashboard_queries("plant-a");
    assert!(queries.len() >= 7, "{queries:?}");
    for (panel, q) in queries {
        wait_for(Duration::from_secs(10), &format!("{panel}: {q}"), || {
            (!prom.query(&q).is_empty()).then_some(())
        });
    }

    stop.store(true, Ordering::Relaxed);
    hmi.join().unwrap();
    drop(agent);
}

const SCAN_ALERT: &str = "InfrawatchPortScan";
const ICS_ALERT: &str = "InfrawatchIcsWriteCommand";
