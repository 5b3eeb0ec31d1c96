#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code
//! Every example config shipped in `deploy/examples/` loads with its real loader, without
//! an error or a warning; and `check --policy` reports broken policies as operators see
//! them (GNU-style positions, the help, exit status 1).

use infrawatch_agent::vocab::vocabulary;
use infrawatch_config::{Environment, load_agent_file, load_collector_file, load_policy_file};
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// A host where every file the examples name exists and every interface is up.
struct ExampleHost;
impl Environment for ExampleHost {
    fn readable(&self, _: &Path) -> Result<(), String> {
        Ok(())
    }
    fn interface_exists(&self, _: &str) -> bool {
        true
    }
}

#[test]
fn every_example_config_loads_without_errors_or_warnings() {
    let files = example_files();
    assert!(files.len() >= 3, "{files:?}");
    let vocab = vocabulary();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let (rendered, diagnostics, valid) = if name.starts_with("policy") {
            let l = load_policy_file(f, &vocab);
            (l.render(), l.diagnostics.len(), l.config.is_some())
        } else if name.starts_with("agent") {
            let l = load_agent_file(f, &ExampleHost);
            (l.render(), l.diagnostics.len(), l.config.is_some())
        } else if name.starts_with("collector") {
            let l = load_collector_file(f, &ExampleHost);
            (l.render(), l.diagnostics.len(), l.config.is_some())
        } else {
            panic!(
                "{name}: no loader for this example; name it agent*.toml, collector*.toml or policy*.toml"
            );
        };
        assert!(valid, "{name} is invalid:\n{rendered}");
        assert_eq!(diagnostics, 0, "{name}:\n{rendered}");
    }
}

#[test]
fn the_example_policy_uses_every_section_and_detector() {
    let p = load_policy_file(&examples_dir().join("policy.toml"), &vocabulary())
        .config
        .unwrap();
    assert!(p.zones.len() >= 4);
    assert!(!p.assets.is_empty() && !p.allow.is_empty() && !p.maintenance.is_empty());
    let text = std::fs::read_to_string(examples_dir().join("policy.toml")).unwrap();
    for kind in infrawatch_config::policy::DETECTOR_KINDS {
        assert!(
            text.contains(&format!("[detectors.{kind}]")),
            "policy.toml has no [detectors.{kind}]"
        );
    }
    // Every key of the rule schema is shown at least once.
    for key in [
        "from",
        "to",
        "protocol",
        "ports",
        "functions",
        "unit_ids",
        "registers",
        "coils",
        "severity",
        "silence_after",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "no `{key}` in policy.toml"
        );
    }
    assert_eq!(p.detectors, infrawatch_config::policy::Detectors::default());
}

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
}

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// Runs `check --policy` on `text` written to a file; (exit code, stdout, stderr, path).
fn check_policy(text: &str) -> (Option<i32>, String, String, String) {
    let dir = tmp();
    let f = dir.path().join("policy.toml");
    std::fs::write(&f, text).unwrap();
    let out = agent()
        .arg("check")
        .arg("--policy")
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        f.display().to_string(),
    )
}

#[test]
fn check_policy_accepts_the_example() {
    let out = agent()
        .arg("check")
        .arg("--policy")
        .arg(examples_dir().join("policy.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("policy.toml: ok (5 zones, 16 assets, 12 rules, 2 maintenance windows)"),
        "{stdout}"
    );
}

#[test]
fn check_policy_reports_every_error_gnu_style_and_exits_1() {
    let text = "[policy]\nname = \"site\"\n\n[zones]\ncontrol = [\"10.10.0.5/24\"]\nscada = [\"10.20.0.0/24\"]\n\n\
                [[allow]]\nname = \"hmi polls plcs\"\nfrom = \"zone:scda\"\nto = \"zone:control\"\n\
                protocol = \"modbus\"\nfunctions = [\"read_holding_register\"]\nsilence_afer = \"30s\"\n";
    let (code, _, err, p) = check_policy(text);
    assert_eq!(code, Some(1), "{err}");
    for (line, help) in [
        (
            format!("{p}:5:12: error: `10.10.0.5/24` has host bits set"),
            "help: did you mean `10.10.0.0/24`?",
        ),
        (
            format!("{p}:10:8: error: no zone named `scda`"),
            "help: did you mean `zone:scada`?",
        ),
        (
            format!("{p}:13:14: error: `modbus` has no command `read_holding_register`"),
            "help: did you mean `read_holding_registers`?",
        ),
        (
            format!("{p}:14:1: error: unknown key `silence_afer` in [[allow]] `hmi polls plcs`"),
            "help: did you mean `silence_after`?",
        ),
    ] {
        assert!(err.lines().any(|l| l == line), "no `{line}` in:\n{err}");
        assert!(err.contains(help), "no `{help}` in:\n{err}");
    }
    // The offending line is quoted under each message.
    assert!(err.contains("5 | control = [\"10.10.0.5/24\"]"), "{err}");
    assert!(err.contains(&format!("{p}: 4 error(s)")), "{err}");
}

#[test]
fn check_policy_names_the_protocol_and_the_duplicate() {
    let text = "[[assets]]\nname = \"plc-1\"\nip = \"10.10.0.5\"\n[[assets]]\nname = \"plc-1\"\nip = \"10.10.0.6\"\n\
                [[allow]]\nname = \"r\"\nfrom = \"any\"\nto = \"asset:plc-1\"\nprotocol = \"modbsu\"\n";
    let (code, _, err, p) = check_policy(text);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{p}:5:8: error: duplicate asset name `plc-1`")),
        "{err}"
    );
    assert!(
        err.contains("help: the first asset named `plc-1` is on line 2"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:11:12: error: unknown protocol `modbsu`")),
        "{err}"
    );
    assert!(err.contains("help: did you mean `modbus`?"), "{err}");
}

#[test]
fn check_policy_warnings_do_not_fail() {
    let text = "[[allow]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nprotocol = \"modbus\"\nregisters = [\"40001-40010\"]\n";
    let (code, out, err, p) = check_policy(text);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{p}:6:14: warning: `40001-40010` looks like a Modicon register number"
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "help: wire addresses are 0-based: 40001 is holding register 0 (write \"0-9\")"
        ),
        "{err}"
    );
    assert!(
        out.contains(": ok (0 zones, 0 assets, 1 rule, 0 maintenance windows)"),
        "{out}"
    );
}

#[test]
fn check_with_both_files_fails_if_either_does() {
    let dir = tmp();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[policy]\nmode = \"enforce\"\n").unwrap();
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "[agent]\nid = \"a\"\npolicy = \"{}\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\n",
            policy.display(),
            dir.path().join("state").display(),
            policy.display()
        ),
    )
    .unwrap();
    let out = agent()
        .arg("check")
        .arg("--config")
        .arg(&agent_toml)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        stdout.contains(&format!("{}: ok", agent_toml.display())),
        "{stdout}"
    );
    assert!(
        err.contains(&format!(
            "{}:2:8: error: unknown mode `enforce`",
            policy.display()
        )),
        "{err}"
    );
    assert!(err.contains("help: valid: `monitor`, `learn`"), "{err}");

    // Both good: exit 0.
    std::fs::write(&policy, "[policy]\nmode = \"monitor\"\n").unwrap();
    let out = agent()
        .arg("check")
        .arg("--config")
        .arg(&agent_toml)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_policy_on_a_missing_file_exits_1() {
    let out = agent()
        .args(["check", "--policy", "/nonexistent/policy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/policy.toml: error: cannot read the file"),
        "{err}"
    );
}
