//! What `deploy/` ships for the collector agrees with the collector: a Type=notify unit
//! with a watchdog, `check` before start and reload, SIGHUP reload, no capabilities at
//! all, the hardening of DESIGN.md ("Deploy"), and its state directory the default
//! `[storage] state_dir`. When `systemd-analyze` is installed the unit is verified and
//! its exposure score checked (at most 2.0).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_config::collector::StorageSection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/infrawatch-collector.service")
}

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
fn collector_unit_is_type_notify_and_reloads_after_check() {
    let u = unit();
    let config = "--config /etc/infrawatch/collector.toml";
    assert_eq!(u.one("Type"), "notify");
    assert_eq!(u.one("NotifyAccess"), "main");
    assert_eq!(u.one("WatchdogSec"), "30s");
    assert_eq!(
        u.one("ExecStartPre"),
        format!("/usr/bin/infrawatch-collector check {config}")
    );
    assert_eq!(
        u.one("ExecStart"),
        format!("/usr/bin/infrawatch-collector run {config}")
    );
    assert_eq!(
        u.all("ExecReload"),
        vec![
            format!("/usr/bin/infrawatch-collector check {config}").as_str(),
            "/bin/kill -HUP $MAINPID"
        ]
    );
    assert_eq!(
        u.one("LoadCredential"),
        "collector.key:/etc/infrawatch/collector.key"
    );
}

#[test]
fn collector_unit_has_no_capabilities_and_keeps_its_hardening() {
    let u = unit();
    assert_eq!(u.one("CapabilityBoundingSet"), "");
    assert_eq!(u.one("AmbientCapabilities"), "");
    for (key, want) in [
        ("User", "infrawatch-collector"),
        ("DynamicUser", "no"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectoryMode", "0700"),
        ("ConfigurationDirectory", "infrawatch"),
    ] {
        assert_eq!(u.one(key), want, "{key}");
    }
    assert_eq!(
        u.words("RestrictAddressFamilies"),
        ["AF_UNIX", "AF_INET", "AF_INET6"].into()
    );
    assert!(
        u.all("SystemCallFilter")
            .first()
            .is_some_and(|f| f.split_whitespace().any(|g| g == "@system-service")),
        "the first SystemCallFilter= must allow @system-service"
    );
    assert!(u.one("MemoryMax").ends_with(['K', 'M', 'G']), "MemoryMax");
    assert_eq!(
        Path::new("/var/lib").join(u.one("StateDirectory")),
        StorageSection::default().state_dir,
        "StateDirectory= must be the default [storage] state_dir"
    );
}

#[test]
fn collector_unit_passes_systemd_analyze() {
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
        .replace("/usr/bin/infrawatch-collector", "/bin/true");
    let copy = dir.path().join("infrawatch-collector.service");
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
    // The unit's comment records 1.1; a change that weakens it must say why.
    assert!(level <= 2.0, "exposure level {level} (was 1.1)\n{text}");
}
