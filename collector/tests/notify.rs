#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code
//! systemd integration of the real collector without systemd (issue 6): the test owns
//! the `NOTIFY_SOCKET` (a datagram socket in its temporary directory) and sets
//! `WATCHDOG_USEC`, and asserts that `READY=1` arrives once both listeners answer,
//! `WATCHDOG=1` keeps arriving with no traffic at all, stops while the state lock is held
//! (the debug-build fault hook `INFRAWATCH_TEST_WEDGE_STATE`) with the process alive and
//! resumes after; SIGHUP gives `RELOADING=1` then `READY=1`; SIGTERM gives `STOPPING=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
#[path = "../../tests/src/notify_socket.rs"]
mod notify_socket;
use common::Collector;
use notify_socket::{collect, has, listen, pings, wait_for};

impl Collector {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn start(dir: &Path, notify: &Path) -> Collector {
    let cfg = dir.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\ninsecure = true\n[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\nstate_dir = \"{}\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let mut cmd = common::command(&cfg);
    cmd.env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env("INFRAWATCH_TEST_WEDGE_STATE", dir.join("wedge"));
    common::spawn(cmd)
}

#[test]
fn ready_watchdog_reload_and_stop_are_told_to_the_service_manager() {
    let dir = tmp();
    let d = dir.path();
    let (sock, rx) = listen(d);
    let mut c = start(d, &sock);

    // READY once both listeners are bound and the state is loaded: both answer.
    let (ready, _) = wait_for(&rx, Duration::from_secs(30), has("READY=1")).expect("no READY=1");
    assert!(
        ready.text.contains("STATUS=0 agents (0 up)"),
        "{}",
        ready.text
    );
    assert!(get(&c.ingest, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(get(&c.metrics, "/readyz").starts_with("HTTP/1.1 200"));

    // No traffic at all: one ping every WATCHDOG_USEC/2 = 200 ms.
    let quiet = pings(&collect(&rx, Duration::from_secs(2)));
    assert!(quiet >= 6, "{quiet} pings in 2 s");

    // The state lock held (a wedged ingest): the pings stop, the process lives on. The
    // hook exists in debug builds only.
    if cfg!(debug_assertions) {
        let wedge = d.join("wedge");
        std::fs::write(&wedge, b"").unwrap();
        // The tick takes the lock within 2 s; then no ping for at least 2 s in a row.
        let _ = collect(&rx, Duration::from_secs(3));
        let wedged = pings(&collect(&rx, Duration::from_secs(2)));
        assert_eq!(wedged, 0, "pings while the state lock is held");
        assert!(c.alive());
        std::fs::remove_file(&wedge).unwrap();
        assert!(
            wait_for(&rx, Duration::from_secs(3), |t| t == "WATCHDOG=1").is_some(),
            "no ping once the lock is free"
        );
    } else {
        println!("SKIP wedged state: release build, the fault hook is compiled out");
    }

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1.
    c.signal("HUP");
    let (r, _) =
        wait_for(&rx, Duration::from_secs(10), has("RELOADING=1")).expect("no RELOADING=1");
    assert!(
        r.text.lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "{}",
        r.text
    );
    assert!(wait_for(&rx, Duration::from_secs(10), has("READY=1")).is_some());
    let m = get(&c.metrics, "/metrics");
    assert!(
        m.contains("\ninfrawatch_collector_config_last_reload_successful 1\n"),
        "{m}"
    );
    assert!(
        m.contains("infrawatch_collector_config_reloads_total{result=\"applied\"} 1\n"),
        "{m}"
    );

    // SIGTERM: STOPPING=1 and a clean exit.
    c.signal("TERM");
    assert!(wait_for(&rx, Duration::from_secs(10), has("STOPPING=1")).is_some());
    let until = Instant::now() + Duration::from_secs(20);
    while c.alive() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.child.try_wait().unwrap().unwrap().success());
}
