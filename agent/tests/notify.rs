//! systemd integration of `run` without systemd (DESIGN.md, "Deploy"; issue 6): the test
//! owns the `NOTIFY_SOCKET` (a datagram socket in its temporary directory) and sets
//! `WATCHDOG_USEC`, starts the real agent replaying a capture with `pace = "recorded"`
//! and `at_end = "stay"`, and asserts what the agent tells the service manager:
//!
//! - `READY=1` arrives once capture is open (the capture file is open at that moment);
//! - `WATCHDOG=1` keeps arriving while no packet flows (a recording with a long gap, a
//!   finished replay), and stops while a capture loop is stuck (the debug-build fault
//!   hook `INFRAWATCH_TEST_STALL_CAPTURE`), the process staying alive; it resumes when
//!   the loop is released;
//! - SIGHUP gives `RELOADING=1` (with `MONOTONIC_USEC=`) then `READY=1`; SIGTERM gives
//!   `STOPPING=1`;
//! - as root, once ready every thread of the agent holds only `CAP_NET_RAW` (effective,
//!   permitted, bounding) with `no_new_privs` set;
//! - as root, live on a quiet veth in a namespace the test makes (198.18.0.0/15, IPv6
//!   off, nothing sent): READY once the interface is open, and pings all along.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
#[path = "../../tests/src/notify_socket.rs"]
mod notify_socket;
use notify_socket::{Msg, collect, listen, pings, wait_for};

use common::frames::{self, ModbusPoller};
use common::{skip, veth_pair};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const T0: u64 = 1_795_651_200 * 1_000_000_000;
const WATCHDOG_USEC: &str = "400000";

/// The agent, killed (by its pid) if the test ends early.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// A Modbus poll: a handshake and three polls, then one more an hour later (in packet
/// time), so a paced replay stays in its loop with no traffic.
fn capture(path: &Path, gap_s: u64) {
    let mut fr = Vec::new();
    let mut p = ModbusPoller::new(
        ([0, 0x0c, 0x29, 0, 0, 1], [198, 18, 1, 1], 40001),
        ([0, 0x1d, 0x9c, 0, 0, 1], [198, 18, 2, 1], 502),
    );
    p.connect(T0, &mut fr);
    let mut rsp = vec![0x03, 20];
    rsp.extend_from_slice(&[0u8; 20]);
    for i in 0..3u64 {
        p.poll(
            T0 + (i + 1) * 10_000_000,
            1,
            &[0x03, 0, 0, 0, 10],
            &rsp,
            &mut fr,
        );
    }
    if gap_s > 0 {
        p.poll(
            T0 + gap_s * 1_000_000_000,
            1,
            &[0x03, 0, 0, 0, 10],
            &rsp,
            &mut fr,
        );
    }
    frames::write(path, &fr);
}

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn start(dir: &Path, pcap: &Path, notify: &Path) -> Agent {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"notify-test\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"recorded\"\nat_end = \"stay\"\n",
            dir.join("state").display(),
            pcap.display()
        ),
    )
    .unwrap();
    let log = dir.join("agent.log");
    let child = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .env("INFRAWATCH_TEST_STALL_CAPTURE", dir.join("stall"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Agent { child, log }
}

/// The targets of the agent's open file descriptors.
fn open_files(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ready_after_capture_opens_watchdog_proves_the_loop_not_the_traffic() {
    let dir = tmp();
    let d = dir.path();
    let pcap = d.join("gap.pcap");
    capture(&pcap, 3600);
    let (sock, rx) = listen(d);
    let mut agent = start(d, &pcap, &sock);

    // READY once capture is open: the capture file is open when it arrives.
    let (ready, _) = wait_for(&rx, Duration::from_secs(30), |t| {
        t.lines().any(|l| l == "READY=1")
    })
    .unwrap_or_else(|| panic!("no READY=1; log:\n{}", agent.log()));
    let pcap_abs = pcap.canonicalize().unwrap();
    assert!(
        open_files(agent.child.id()).contains(&pcap_abs),
        "READY=1 before the capture file is open"
    );
    assert!(
        ready.text.contains("STATUS=capturing on pcap"),
        "{}",
        ready.text
    );

    // No traffic (the next packet is an hour away in the recording): the pings go on,
    // one every WATCHDOG_USEC/2 = 200 ms.
    let quiet = collect(&rx, Duration::from_secs(2));
    assert!(
        pings(&quiet) >= 6,
        "{} pings in 2 s of quiet; log:\n{}",
        pings(&quiet),
        agent.log()
    );

    // A stuck capture loop: the pings stop (within the 3 s a loop may stand still),
    // the process stays alive. The hook exists in debug builds only.
    if cfg!(debug_assertions) {
        stuck_loop_stops_the_pings(&mut agent, &rx, d);
    } else {
        println!("SKIP stuck loop: release build, the fault hook is compiled out");
    }

    // SIGHUP: RELOADING=1 (with the monotonic time systemd >= 253 wants), then READY=1.
    agent.signal(libc::SIGHUP);
    let (reloading, _) = wait_for(&rx, Duration::from_secs(10), |t| {
        t.lines().any(|l| l == "RELOADING=1")
    })
    .unwrap_or_else(|| panic!("no RELOADING=1; log:\n{}", agent.log()));
    assert!(
        reloading.text.lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "{}",
        reloading.text
    );
    assert!(
        wait_for(&rx, Duration::from_secs(10), |t| t
            .lines()
            .any(|l| l == "READY=1"))
        .is_some(),
        "no READY=1 after the reload; log:\n{}",
        agent.log()
    );

    // SIGTERM: STOPPING=1, and a clean exit.
    agent.signal(libc::SIGTERM);
    assert!(
        wait_for(&rx, Duration::from_secs(10), |t| t
            .lines()
            .any(|l| l == "STOPPING=1"))
        .is_some(),
        "no STOPPING=1; log:\n{}",
        agent.log()
    );
    let until = Instant::now() + Duration::from_secs(20);
    while agent.alive() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.child.try_wait().unwrap().unwrap().success());
}

/// CapEff, CapPrm, CapBnd and NoNewPrivs of every thread of `pid`.
fn thread_caps(pid: u32) -> Vec<(String, u64, u64, u64, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = t.unwrap().path();
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        let hex = |k: &str| u64::from_str_radix(&field(k), 16).unwrap();
        out.push((
            field("Name:"),
            hex("CapEff:"),
            hex("CapPrm:"),
            hex("CapBnd:"),
            field("NoNewPrivs:"),
        ));
    }
    out
}

#[test]
fn a_finished_replay_keeps_the_pings_and_root_keeps_only_cap_net_raw() {
    let dir = tmp();
    let d = dir.path();
    let pcap = d.join("short.pcap");
    capture(&pcap, 0);
    let (sock, rx) = listen(d);
    let mut agent = start(d, &pcap, &sock);
    wait_for(&rx, Duration::from_secs(30), |t| {
        t.lines().any(|l| l == "READY=1")
    })
    .unwrap_or_else(|| panic!("no READY=1; log:\n{}", agent.log()));

    // As root: every thread holds CAP_NET_RAW (bit 13) and nothing else.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let caps = thread_caps(agent.child.id());
        assert!(caps.len() >= 2, "{caps:?}");
        for (name, eff, prm, bnd, nnp) in &caps {
            assert_eq!(*eff, 1 << 13, "{name}: CapEff {eff:#x}");
            assert_eq!(*prm, 1 << 13, "{name}: CapPrm {prm:#x}");
            assert_eq!(*bnd, 1 << 13, "{name}: CapBnd {bnd:#x}");
            assert_eq!(nnp, "1", "{name}: NoNewPrivs");
        }
    } else {
        println!("SKIP: the capability check needs root (an unprivileged agent has none to drop)");
    }

    // The replay ends within milliseconds (three polls); past the 3 s a loop may stand
    // still, a finished source does not stop the pings: nothing is stuck.
    let _ = collect(&rx, Duration::from_secs(4));
    let after = collect(&rx, Duration::from_secs(2));
    assert!(
        pings(&after) >= 6,
        "{} pings after the replay ended; log:\n{}",
        pings(&after),
        agent.log()
    );
    assert!(agent.alive());
}

#[test]
fn a_quiet_live_interface_keeps_the_pings() {
    if skip() {
        return;
    }
    let dir = tmp();
    let d = dir.path();
    let pair = veth_pair('n', 62);
    let (sock, rx) = listen(d);
    let cfg = d.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"notify-live\"\nstate_dir = \"{}\"\n[capture]\ninterfaces = [\"{}\"]\n",
            d.join("state").display(),
            pair.va
        ),
    )
    .unwrap();
    let log = d.join("agent.log");
    let ns = std::fs::File::open(pair.a.path()).unwrap();
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"));
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: only setns(2), async-signal-safe, runs between fork and exec; `ns` stays
    // open in the parent until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut agent = Agent {
        child: cmd.spawn().unwrap(),
        log,
    };
    drop(ns);
    wait_for(&rx, Duration::from_secs(30), |t| {
        t.lines().any(|l| l == "READY=1")
    })
    .unwrap_or_else(|| panic!("no READY=1; log:\n{}", agent.log()));
    // The interface was open before READY (the open is logged first).
    assert!(
        agent.log().contains(&format!("capturing on {}", pair.va)),
        "{}",
        agent.log()
    );
    // Nothing is sent on the link: the loop wakes on its receive timeout (1 s), and
    // past the 3 s a loop may stand still the pings still come every 200 ms.
    let quiet = collect(&rx, Duration::from_secs(5));
    assert!(
        pings(&quiet) >= 15,
        "{} pings in 5 s on a quiet link; log:\n{}",
        pings(&quiet),
        agent.log()
    );
    for (name, eff, prm, bnd, nnp) in thread_caps(agent.child.id()) {
        assert_eq!(eff, 1 << 13, "{name}: CapEff {eff:#x}");
        assert_eq!(prm, 1 << 13, "{name}: CapPrm {prm:#x}");
        assert_eq!(bnd, 1 << 13, "{name}: CapBnd {bnd:#x}");
        assert_eq!(nnp, "1", "{name}: NoNewPrivs");
    }
    assert!(agent.alive());
}

/// Stalls the capture loop with the debug-build hook: no ping while it is stuck, the
/// agent alive; pings again once released.
fn stuck_loop_stops_the_pings(agent: &mut Agent, rx: &Receiver<Msg>, d: &Path) {
    let stall = d.join("stall");
    std::fs::write(&stall, b"").unwrap();
    let stalled_at = Instant::now();
    let (stuck, _) = wait_for(rx, Duration::from_secs(10), |t| {
        t.contains("STATUS=capture loop pcap stuck")
    })
    .unwrap_or_else(|| panic!("no stuck status; log:\n{}", agent.log()));
    assert!(stuck.at.duration_since(stalled_at) >= Duration::from_secs(3));
    let silent = collect(rx, Duration::from_secs(2));
    assert_eq!(
        pings(&silent),
        0,
        "pings while the loop is stuck; log:\n{}",
        agent.log()
    );
    assert!(agent.alive(), "the agent exited; log:\n{}", agent.log());

    // Released: the pings resume.
    std::fs::remove_file(&stall).unwrap();
    assert!(
        wait_for(rx, Duration::from_secs(3), |t| t == "WATCHDOG=1").is_some(),
        "no ping after the loop was released; log:\n{}",
        agent.log()
    );
}
