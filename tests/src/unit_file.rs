//! Reading and checking the systemd units of `deploy/systemd/`: the assignments of a
//! unit file, and `systemd-analyze verify` plus `security --offline=yes`. Used by the
//! agent's and the collector's `tests/deploy.rs` (included there with `#[path]`, so it
//! needs nothing but std) and by this crate.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code: a broken unit is a failed test

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// (section, key, value) of every assignment, in order (comments and blanks left out).
pub fn parse_unit(text: &str) -> Vec<(String, String, String)> {
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

/// A unit's assignments.
pub struct Unit(pub Vec<(String, String, String)>);

impl Unit {
    pub fn load(path: &Path) -> Unit {
        Unit(parse_unit(&std::fs::read_to_string(path).unwrap()))
    }

    /// Every value of `[Service] key=`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The one value of `[Service] key=`.
    pub fn one(&self, key: &str) -> &str {
        let v = self.all(key);
        assert_eq!(
            v.len(),
            1,
            "[Service] {key}= must be set exactly once: {v:?}"
        );
        v[0]
    }

    pub fn words(&self, key: &str) -> BTreeSet<&str> {
        self.one(key).split_whitespace().collect()
    }
}

/// `systemd-analyze verify` (clean: no output) and the exposure level of `security
/// --offline=yes` of the unit at `path`, with `binary` pointed at one that exists
/// (`verify` checks that). `None` when systemd-analyze is missing, or the exposure when
/// this systemd has no offline security mode (`Some(None)`); each case says SKIP.
pub fn analyze(path: &Path, binary: &str) -> Option<Option<f64>> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: systemd-analyze is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(binary, "/bin/true");
    let copy = dir.path().join(path.file_name().unwrap());
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
    let level = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|l| l.parse::<f64>().ok());
    if level.is_none() {
        println!(
            "SKIP exposure check: this systemd-analyze has no offline security mode ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Some(level)
}
