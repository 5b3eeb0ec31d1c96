//! Hot reload of the policy (DESIGN.md, "Policy file"): 100 reloads, valid and invalid
//! alternating, while `run` replays a capture at full speed. The counts equal those of a
//! run without reloads (no packet lost, no flow state lost), the log says what each
//! reload did, and the summary's policy status says the last one failed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::frames::{self, ModbusPoller};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const T0: u64 = 1_795_651_200 * 1_000_000_000;
/// The capture is replayed this many times in a row: long enough for 100 reloads.
const PASSES: usize = 6;

const GOOD: &str = r#"
[policy]
name = "reload-test"
[zones]
lab = ["198.18.0.0/16"]
[[allow]]
name = "hmis poll plcs"
from = "zone:lab"
to = "zone:lab"
protocol = "modbus"
functions = ["read_holding_registers"]
"#;

/// A misspelt key: refused, the last good policy stays.
const BAD: &str = r#"
[policy]
name = "reload-test"
[[allow]]
name = "hmis poll plcs"
form = "zone:lab"
"#;

fn capture(path: &Path) {
    let mut fr = Vec::new();
    // 40 HMI→PLC polls of 2 000 messages each: 160 000 frames.
    for c in 0..40u8 {
        let mut p = ModbusPoller::new(
            (
                [0, 0x0c, 0x29, 0, 0, c],
                [198, 18, 1, c],
                40000 + u16::from(c),
            ),
            ([0, 0x1d, 0x9c, 0, 0, c], [198, 18, 2, c], 502),
        );
        let t = T0 + u64::from(c) * 1_000;
        p.connect(t, &mut fr);
        let mut rsp = vec![0x03, 20];
        rsp.extend_from_slice(&[0u8; 20]);
        for i in 0..2000u64 {
            p.poll(
                t + (i + 1) * 10_000_000,
                1,
                &[0x03, 0, 0, 0, 10],
                &rsp,
                &mut fr,
            );
        }
    }
    fr.sort_by_key(|f| f.ts_ns);
    frames::write(path, &fr);
}

fn agent_toml(dir: &Path, cap: &Path, policy: &Path, state: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{state}.toml"));
    std::fs::write(
        &p,
        format!(
            "[agent]\nid = \"reload-test\"\npolicy = \"{}\"\nstate_dir = \"{}\"\n[capture]\npcap = [{}]\npace = \"max\"\nat_end = \"exit\"\n",
            policy.display(),
            dir.join(state).display(),
            vec![format!("\"{}\"", cap.display()); PASSES].join(", "),
        ),
    )
    .unwrap();
    p
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn reloads_during_a_full_speed_replay_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("polls.pcap");
    capture(&cap);
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, GOOD).unwrap();
    let bin = env!("CARGO_BIN_EXE_infrawatch-agent");

    // Without reloads.
    let plain = agent_toml(dir.path(), &cap, &policy, "plain");
    let plain_json = dir.path().join("plain.json");
    let st = Command::new(bin)
        .args(["run", "--config"])
        .arg(&plain)
        .arg("--summary-json")
        .arg(&plain_json)
        .env("INFRAWATCH_LOG", "warn")
        .status()
        .unwrap();
    assert!(st.success());

    // With 100 reloads, each waited for in the log before the next.
    let with = agent_toml(dir.path(), &cap, &policy, "with");
    let with_json = dir.path().join("with.json");
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&with)
        .arg("--summary-json")
        .arg(&with_json)
        .env("INFRAWATCH_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let mut next_line = |log: &mut Vec<String>| -> Option<String> {
        let l = lines.next()?.ok()?;
        log.push(l.clone());
        Some(l)
    };
    // Wait until it runs.
    while let Some(l) = next_line(&mut log) {
        if l.contains("infrawatch-agent running") {
            break;
        }
    }
    // The agent reloads on SIGHUP and when it notices the file changed on disk, so one
    // edit may be reloaded twice (the second time "unchanged", or refused again): each
    // round waits for its own outcome — a good edit for the log line with its sha256,
    // a bad one for a refusal — skipping the echoes of the previous round.
    let (mut swapped, mut refused) = (0, 0);
    let mut ended_early = false;
    for i in 0..100 {
        // Valid and invalid alternating, the last one invalid.
        let (text, good) = if i % 2 == 1 {
            (BAD.to_string(), false)
        } else {
            // A valid edit: a different comment, so a new sha256.
            (format!("# edit {i}\n{GOOD}"), true)
        };
        let sha = infrawatch_config::policy::sha256_hex(text.as_bytes());
        std::fs::write(&policy, &text).unwrap();
        // SAFETY: kill(2) on the PID of the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        loop {
            let Some(l) = next_line(&mut log) else {
                panic!("agent ended during the reloads:\n{}", log.join("\n"));
            };
            if l.contains("replayed files ended") {
                ended_early = true;
            }
            if !good && l.contains("reload refused, the last good policy stays") {
                refused += 1;
                break;
            }
            if good && l.contains("reload: new policy in force") && l.contains(&sha) {
                swapped += 1;
                break;
            }
        }
    }
    // The rest of the log.
    for l in lines.map_while(Result::ok) {
        if l.contains("replayed files ended") {
            assert!(!ended_early);
        }
        log.push(l);
    }
    assert!(child.wait().unwrap().success(), "{}", log.join("\n"));
    assert!(
        !ended_early,
        "the replay ended before the 100 reloads were done: make the capture longer"
    );
    assert_eq!((swapped, refused), (50, 50), "{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("form")),
        "errors logged with the key"
    );

    let a = summary(&plain_json);
    let b = summary(&with_json);
    for key in [
        "packets",
        "bytes",
        "flows",
        "protocols",
        "ics_commands",
        "ics_responses",
    ] {
        assert_eq!(a[key], b[key], "{key} differs with reloads");
    }
    assert_eq!(
        a["packets"],
        PASSES as u64 * 160_120,
        "every frame of every pass"
    );
    assert_eq!(
        b["policy"]["last_reload_successful"], false,
        "{}",
        b["policy"]
    );
    assert!(b["policy"]["reload_failures"].as_u64().unwrap() >= 50);
    assert!(b["policy"]["reloads"].as_u64().unwrap() >= 50);
    assert_eq!(a["policy"]["last_reload_successful"], true);
}
