//! What `deploy/` ships for the agent agrees with the agent: the systemd unit keeps its
//! hardening (DESIGN.md, "Deploy"), runs `check` before start and reload, and its state
//! directory is the default `[agent] state_dir`. When `systemd-analyze` is installed the
//! unit is also verified and its exposure score checked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_config::agent::AgentSection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/infrawatch-agent.service")
}

/// (section, key, value) of every assignment, in order (comments and blanks left out).
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: keep directives on one line",
            n + 1
        );
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not a key=value: {line}", n + 1));
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    out
}

struct Unit(Vec<(String, String, String)>);

impl Unit {
    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }
    fn one(&self, key: &str) -> &str {
        let v = self.all(key);
        assert_eq!(
            v.len(),
            1,
            "[Service] {key}= must be set exactly once: {v:?}"
        );
        v[0]
    }
    fn words(&self, key: &str) -> BTreeSet<&str> {
        self.one(key).split_whitespace().collect()
    }
}

fn unit() -> Unit {
    Unit(parse_unit(&std::fs::read_to_string(unit_path()).unwrap()))
}

#[test]
fn agent_unit_runs_check_before_start_and_reload() {
    let u = unit();
    let config = "--config /etc/infrawatch/agent.toml";
    assert_eq!(
        u.one("ExecStartPre"),
        format!("/usr/bin/infrawatch-agent check {config}")
    );
    assert_eq!(
        u.one("ExecStart"),
        format!("/usr/bin/infrawatch-agent run {config}")
    );
    assert_eq!(
        u.all("ExecReload"),
        vec![
            format!("/usr/bin/infrawatch-agent check {config}").as_str(),
            "/bin/kill -HUP $MAINPID"
        ]
    );
}

/// systemd integration (issue 6): readiness and reload over sd_notify from the main
/// process, a watchdog, and the TLS key as a credential.
#[test]
fn agent_unit_is_type_notify_with_a_watchdog() {
    let u = unit();
    assert_eq!(u.one("Type"), "notify");
    assert_eq!(u.one("NotifyAccess"), "main");
    assert_eq!(u.one("WatchdogSec"), "30s");
    assert_eq!(u.one("Restart"), "on-failure");
    assert_eq!(
        u.one("LoadCredential"),
        "agent.key:/etc/infrawatch/agent.key"
    );
}

#[test]
fn agent_unit_keeps_its_hardening() {
    let u = unit();
    for (key, want) in [
        ("User", "infrawatch"),
        ("DynamicUser", "no"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectory", "infrawatch"),
        ("StateDirectoryMode", "0700"),
        ("ConfigurationDirectory", "infrawatch"),
    ] {
        assert_eq!(u.one(key), want, "{key}");
    }
    let caps: BTreeSet<&str> = ["CAP_NET_RAW", "CAP_NET_ADMIN"].into();
    assert_eq!(u.words("AmbientCapabilities"), caps);
    assert_eq!(u.words("CapabilityBoundingSet"), caps);
    assert_eq!(
        u.words("RestrictAddressFamilies"),
        ["AF_PACKET", "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"].into()
    );
    assert!(
        u.all("SystemCallFilter")
            .first()
            .is_some_and(|f| f.split_whitespace().any(|g| g == "@system-service")),
        "the first SystemCallFilter= must allow @system-service"
    );
    // Never starve the host it runs on: a memory ceiling, lower CPU and I/O priority.
    assert!(u.one("MemoryMax").ends_with(['K', 'M', 'G']), "MemoryMax");
    assert!(u.one("Nice").parse::<i32>().unwrap() > 0, "Nice");
    for key in ["CPUWeight", "IOWeight"] {
        let w: u32 = u.one(key).parse().unwrap();
        assert!(w < 100, "{key}={w} must be below the default 100");
    }
}

#[test]
fn agent_unit_directories_match_the_config_defaults() {
    let u = unit();
    assert_eq!(
        Path::new("/var/lib").join(u.one("StateDirectory")),
        AgentSection::default().state_dir,
        "StateDirectory= must be the default [agent] state_dir"
    );
    let exec = u.one("ExecStart");
    let config = Path::new(exec.rsplit(' ').next().unwrap());
    assert_eq!(
        config.parent().unwrap(),
        Path::new("/etc").join(u.one("ConfigurationDirectory"))
    );
}

#[test]
fn agent_unit_passes_systemd_analyze() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: systemd-analyze is not installed");
        return;
    }
    // `verify` checks that the binaries exist: point them at one that does.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit_path())
        .unwrap()
        .replace("/usr/bin/infrawatch-agent", "/bin/true");
    let copy = dir.path().join("infrawatch-agent.service");
    std::fs::write(&copy, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(level) = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|l| l.parse::<f64>().ok())
    else {
        println!(
            "SKIP exposure check: this systemd-analyze has no offline security mode ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    };
    // The unit's comment records 1.8; a change that weakens it must say why.
    assert!(level <= 2.0, "exposure level {level} (was 1.8)\n{text}");
}
