//! The agent as it runs on a host: the real binary (`run`) captures live in a network
//! namespace while two namespaces joined by a veth pair (198.18.0.0/15, IPv6 off) play
//! HMI and PLC with a real Modbus/TCP exchange and ICMP echo. The agent must count
//! exactly those frames per protocol — checked against tcpdump's capture of the same
//! interface replayed through the same classifier — and exactly the commands sent. On
//! `lo` nothing may be counted twice.
//!
//! Needs root (namespaces, AF_PACKET), iproute2, ping and tcpdump (`scripts/
//! setup-test-deps.sh` installs them); prints SKIP and passes otherwise. Traffic goes only
//! to the namespaces' own addresses and loopback; every loop is bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

mod common;

use common::{Netns, enter, ip, on_thread, skip, veth_pair};
use infrawatch_agent::engine::EngineConfig;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const READS: u16 = 10;
const WRITES: u16 = 2;
const PINGS: u32 = 3;

fn tools_present() -> bool {
    for tool in ["ping", "tcpdump"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            println!(
                "SKIP: the live agent test needs `{tool}` (scripts/setup-test-deps.sh installs it)"
            );
            return false;
        }
    }
    true
}

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// A process started inside a namespace, whose stderr lines arrive on a channel.
struct InNs {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl InNs {
    fn spawn(ns: &Netns, program: &str, args: &[&str]) -> InNs {
        let f = std::fs::File::open(ns.path()).unwrap();
        let fd = f.as_raw_fd();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("INFRAWATCH_LOG", "info");
        // SAFETY: only setns(2), an async-signal-safe syscall, runs between fork and exec;
        // `f` stays open in the parent until the spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        drop(f);
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        InNs { child, lines: rx }
    }

    /// Waits for a stderr line containing `needle` (bounded).
    fn wait_for(&self, needle: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains(needle) => return,
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "{what}: no `{needle}` on stderr; it said:\n{}",
            seen.join("\n")
        );
    }

    /// SIGTERM to this process (by its PID) and a bounded wait for its exit.
    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn start_agent(ns: &Netns, iface: &str, dir: &Path) -> (InNs, PathBuf) {
    let cfg = dir.join("agent.toml");
    let summary = dir.join("summary.json");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"live-test\"\nstate_dir = \"{}\"\n[capture]\ninterfaces = [\"{iface}\"]\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let agent = InNs::spawn(
        ns,
        env!("CARGO_BIN_EXE_infrawatch-agent"),
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ],
    );
    agent.wait_for(&format!("capturing on {iface}"), "agent");
    (agent, summary)
}

fn start_tcpdump(ns: &Netns, iface: &str, out: &Path) -> InNs {
    let t = InNs::spawn(
        ns,
        "tcpdump",
        &["-i", iface, "-n", "-U", "-w", out.to_str().unwrap()],
    );
    t.wait_for("listening on", "tcpdump");
    t
}

/// A Modbus/TCP server for one connection: answers read holding registers (fc 3) and
/// write single register (fc 6) as a PLC does.
fn modbus_server(listener: TcpListener) {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..(READS + WRITES) {
        let mut hdr = [0u8; 7];
        s.read_exact(&mut hdr).unwrap();
        let len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
        let mut pdu = vec![0u8; len - 1];
        s.read_exact(&mut pdu).unwrap();
        let reply_pdu = match pdu[0] {
            3 => {
                let qty = u16::from_be_bytes([pdu[3], pdu[4]]);
                let mut r = vec![3, (qty * 2) as u8];
                r.extend((0..qty).flat_map(|i| (i + 100).to_be_bytes()));
                r
            }
            _ => pdu.clone(),
        };
        let mut reply = hdr[..4].to_vec();
        reply.extend(((reply_pdu.len() + 1) as u16).to_be_bytes());
        reply.push(hdr[6]);
        reply.extend(reply_pdu);
        s.write_all(&reply).unwrap();
    }
}

/// An HMI: reads and writes, waiting for each answer.
fn modbus_client(addr: &str) {
    let mut s = TcpStream::connect((addr, 502)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tid: u16 = 0;
    let mut ask = |s: &mut TcpStream, pdu: &[u8]| {
        tid += 1;
        let mut req = tid.to_be_bytes().to_vec();
        req.extend([0, 0]);
        req.extend(((pdu.len() + 1) as u16).to_be_bytes());
        req.push(1);
        req.extend(pdu);
        s.write_all(&req).unwrap();
        let mut hdr = [0u8; 7];
        s.read_exact(&mut hdr).unwrap();
        let mut rest = vec![0u8; usize::from(u16::from_be_bytes([hdr[4], hdr[5]])) - 1];
        s.read_exact(&mut rest).unwrap();
    };
    for i in 0..READS {
        ask(&mut s, &[3, 0, (i * 4) as u8, 0, 4]);
    }
    for i in 0..WRITES {
        ask(&mut s, &[6, 0, 10 + i as u8, 0x12, 0x34]);
    }
}

/// Runs the Modbus exchange: server in `server_ns` on `server_addr`, client in `client_ns`.
fn modbus_exchange(server_ns: &Netns, server_addr: &str, client_ns: &Netns) {
    let (spath, cpath) = (server_ns.path(), client_ns.path());
    let addr = server_addr.to_string();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        enter(&spath);
        let l = TcpListener::bind((addr.as_str(), 502)).unwrap();
        ready_tx.send(()).unwrap();
        modbus_server(l);
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let addr = server_addr.to_string();
    on_thread(move || {
        enter(&cpath);
        modbus_client(&addr);
    });
    server.join().unwrap();
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn replay(pcap: &Path) -> Value {
    let out = infrawatch_agent::replay::replay(&[pcap.to_path_buf()], &EngineConfig::default());
    serde_json::to_value(&out.summary).unwrap()
}

fn packets(v: &Value, proto: &str) -> u64 {
    v["protocols"][proto]["packets"].as_u64().unwrap_or(0)
}

fn assert_commands(v: &Value) {
    assert_eq!(
        v["ics_commands"]["modbus/read_holding_registers"], READS,
        "{}",
        v["ics_commands"]
    );
    assert_eq!(
        v["ics_commands"]["modbus/write_single_register"], WRITES,
        "{}",
        v["ics_commands"]
    );
    assert_eq!(v["ics_responses"]["modbus/read_holding_registers"], READS);
    assert_eq!(v["ics_responses"]["modbus/write_single_register"], WRITES);
}

#[test]
fn agent_counts_a_real_modbus_exchange_and_icmp_exactly() {
    if skip() || !tools_present() {
        return;
    }
    let pair = veth_pair('m', 61);
    let dir = tmp();
    let reference = dir.path().join("reference.pcap");
    let tcpdump = start_tcpdump(&pair.b, &pair.vb, &reference);
    let (agent, summary_path) = start_agent(&pair.b, &pair.vb, dir.path());

    modbus_exchange(&pair.b, &pair.addr_b, &pair.a);
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.a.name,
            "ping",
            "-c",
            &PINGS.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            &pair.addr_b,
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stderr)
    );

    let status = agent.stop();
    assert!(status.success(), "agent exit: {status:?}");
    tcpdump.stop();
    let live = summary(&summary_path);
    let offline = replay(&reference);
    println!(
        "live: {} {}\noffline: {} {}",
        live["protocols"], live["ics_commands"], offline["protocols"], offline["ics_commands"]
    );

    assert_commands(&live);
    assert_eq!(
        packets(&live, "icmp"),
        u64::from(2 * PINGS),
        "{}",
        live["protocols"]
    );
    // Exactly the frames tcpdump saw, protocol by protocol.
    for proto in ["modbus", "icmp", "arp"] {
        assert_eq!(
            packets(&live, proto),
            packets(&offline, proto),
            "{proto}: live vs tcpdump"
        );
    }
    assert_eq!(
        live["packets"], offline["packets"],
        "live {} vs tcpdump {}",
        live["protocols"], offline["protocols"]
    );
    // Handshake, 12 requests and answers, teardown: at least 24 frames, all modbus.
    assert!(packets(&live, "modbus") >= u64::from(2 * (READS + WRITES)));
    assert_eq!(live["protocols"]["modbus"]["flows"], 1);
    let iface = &live["interfaces"][0];
    assert_eq!(iface["interface"], pair.vb.as_str());
    assert_eq!(iface["up"], true);
    assert_eq!(iface["kernel_drops"], 0);
    assert!(iface["last_packet"].is_string());
    assert!(
        live["protocols"].get("other-tcp").is_none(),
        "{}",
        live["protocols"]
    );
    drop(pair);
}

#[test]
fn on_loopback_nothing_is_counted_twice() {
    if skip() || !tools_present() {
        return;
    }
    let ns = Netns::new(format!("iw-lo-{}", std::process::id()));
    let dir = tmp();
    let reference = dir.path().join("lo.pcap");
    let tcpdump = start_tcpdump(&ns, "lo", &reference);
    let (agent, summary_path) = start_agent(&ns, "lo", dir.path());
    modbus_exchange(&ns, "127.0.0.1", &ns);
    let status = agent.stop();
    assert!(status.success());
    tcpdump.stop();
    let live = summary(&summary_path);
    let offline = replay(&reference);
    assert_commands(&live);
    assert_eq!(
        packets(&live, "modbus"),
        packets(&offline, "modbus"),
        "live vs tcpdump on lo"
    );
    assert_eq!(live["packets"], offline["packets"]);
    ip(&["netns", "list"]);
}
