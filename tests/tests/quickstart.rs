//! The quick start, run as a new user would: a fresh clone of this repository beside the
//! shared captures, the README's command (`deploy/quickstart.sh`, here with ports of its
//! own), and the URL it prints serves the agent's metrics. Then Ctrl-C (SIGINT) stops
//! everything it started.
//!
//! The clone builds with this workspace's target directory (`CARGO_TARGET_DIR`), so
//! dependencies are not compiled again; the workspace's own crates are, in release, as
//! for a new user. Needs git, openssl, curl and prometheus (installed by
//! scripts/setup-test-deps.sh; the quick start would install them itself as root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use infrawatch_tests::harness::{Proc, free_port, get, have, root};
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[ignore = "a release build of a fresh clone (minutes), sharing target/: scripts/test.sh runs it last, so it does not displace the gate's own release binaries"]
fn the_readme_quick_start_serves_metrics_at_the_printed_url() {
    for (tool, why) in [
        ("git", "the fresh clone"),
        ("openssl", "the throwaway CA"),
        ("curl", "the quick start's readiness check"),
        ("prometheus", "the quick start's Prometheus"),
    ] {
        if !have(tool, why) {
            return;
        }
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("\ndeploy/quickstart.sh "),
        "the README's quick start command is deploy/quickstart.sh"
    );
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("infrawatch");
    let st = Command::new("git")
        .args(["clone", "--quiet", "--local"])
        .arg(root())
        .arg(&clone)
        .status()
        .unwrap();
    assert!(st.success());
    // The sample captures sit beside the checkout, as in the README.
    std::os::unix::fs::symlink(root().join("../shared"), tmp.path().join("shared")).unwrap();

    let ports = format!("{},{},{}", free_port(), free_port(), free_port());
    let mut cmd = Command::new(clone.join("deploy/quickstart.sh"));
    cmd.args(["--ports", &ports])
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", root().join("target"));
    // stdout carries the URLs; stderr (progress, the build) is kept.
    let (mut p, stdout) = Proc::spawn_with_stdout(cmd);
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.trim().strip_prefix("metrics:") {
            url = Some(u.trim().to_string());
            break;
        }
        assert!(Instant::now() < deadline, "no URL printed in time");
    }
    let url = url.unwrap_or_else(|| panic!("the quick start printed no URL: {:?}", p.log()));
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let a = get(addr, path).unwrap();
    assert_eq!(a.status, 200);
    assert!(
        a.body
            .contains("infrawatch_agent_up{agent=\"quickstart\"} 1"),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("infrawatch_packets_total{agent=\"quickstart\""),
        "{}",
        a.body
    );
    // Ctrl-C: everything stops, and says so.
    p.signal(libc::SIGINT);
    let st = p
        .wait_exit(Duration::from_secs(30))
        .expect("the quick start stops on Ctrl-C");
    assert!(st.success(), "{st}: {:?}", p.log());
    assert!(
        get(addr, path).is_none(),
        "the collector still answers after Ctrl-C"
    );
}
