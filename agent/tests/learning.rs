//! Learning (DESIGN.md, "Command line": `learn`): a policy learnt from the first 70 % of a
//! capture judges the last 30 % without a violation; a new host and a new command added
//! to that 30 % are exactly what is reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::frames::{self, Frame};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn learn(files: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"));
    cmd.arg("learn").arg("--pcap");
    for f in files {
        cmd.arg(f);
    }
    cmd.arg("--output").arg(out).args(extra);
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "learn failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn judged(r: &Value) -> Vec<Value> {
    frames::anomalies(r)
        .into_iter()
        .filter(|a| {
            matches!(
                a["kind"].as_str().unwrap(),
                "policy_violation" | "ics_command" | "new_asset"
            )
        })
        .collect()
}

fn split(
    rel: &str,
    dir: &Path,
) -> (
    Vec<Frame>,
    Vec<Frame>,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let all = frames::read(rel);
    let cut = all.len() * 7 / 10;
    let (head, tail) = all.split_at(cut);
    let h = dir.join("head.pcap");
    let t = dir.join("tail.pcap");
    frames::write(&h, head);
    frames::write(&t, tail);
    (head.to_vec(), tail.to_vec(), h, t)
}

#[test]
fn a_learnt_policy_judges_the_rest_of_the_capture_without_violation() {
    // Captures whose last 30 % holds no conversation the first 70 % lacks. Others are
    // rightly reported and do not fit this test: in
    // modbus/iti_modbus_test_data_part1.pcap a new connection starts late, in
    // iec104/iti_iec104_diverse_commands.pcap a NetBIOS browser announcement appears.
    for rel in [
        "dnp3/icsnpp_dnp3_example.pcap",
        "iec104/ndpi_iec104_monitoring.pcap",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, head, tail) = split(rel, dir.path());
        let policy = dir.path().join("learnt.toml");
        learn(&[head.as_path()], &policy, &[]);
        // The learnt file is valid for `check`.
        let st = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"))
            .args(["check", "--policy"])
            .arg(&policy)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let r = frames::replay_json(&["--policy", policy.to_str().unwrap()], &[tail.as_path()]);
        assert_eq!(
            judged(&r),
            Vec::<Value>::new(),
            "{rel}: the last 30 % under the policy learnt from the first 70 %:\n{}",
            std::fs::read_to_string(&policy).unwrap()
        );
    }
}

#[test]
fn a_new_host_is_exactly_what_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tail, head, _) = split("dnp3/icsnpp_dnp3_example.pcap", dir.path());
    let policy = dir.path().join("learnt.toml");
    learn(&[head.as_path()], &policy, &[]);

    // A new host: the master's frames again, from another address and MAC in the same
    // network, an hour later.
    let master = [10, 10, 20, 5];
    let stranger_ip = [10, 10, 20, 77];
    let stranger_mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x77];
    let hour = 3_600_000_000_000u64;
    let mut forged: Vec<Frame> = tail.clone();
    let last = tail.last().unwrap().ts_ns;
    for f in &tail {
        let d = &f.data;
        // Ethernet + IPv4 + TCP from the master.
        if d.len() > 54 && d[12..14] == [0x08, 0x00] && d[26..30] == master && d[23] == 6 {
            let mut g = d.clone();
            g[6..12].copy_from_slice(&stranger_mac);
            g[26..30].copy_from_slice(&stranger_ip);
            fix_ipv4_checksum(&mut g);
            forged.push(Frame {
                ts_ns: f.ts_ns - tail[0].ts_ns + last + hour,
                data: g,
            });
        }
    }
    let cap = dir.path().join("stranger.pcap");
    frames::write(&cap, &forged);
    let r = frames::replay_json(&["--policy", policy.to_str().unwrap()], &[cap.as_path()]);
    let found = judged(&r);
    assert!(!found.is_empty(), "the new host went unnoticed: {r}");
    for a in &found {
        let about_stranger = a["src"] == "10.10.20.77"
            || a["dst"] == "10.10.20.77"
            || a["src_mac"] == "02:00:00:00:00:77";
        assert!(about_stranger, "only the new host is reported: {a}");
    }
    assert!(found.iter().any(|a| a["kind"] == "new_asset"), "{found:?}");
}

/// Sets the IPv4 header checksum of an Ethernet frame.
fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[24] = 0;
    frame[25] = 0;
    let mut sum: u32 = 0;
    for i in (14..14 + ihl).step_by(2) {
        sum += u32::from(u16::from_be_bytes([frame[i], frame[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// A command never seen while learning — a register write on a read-only poll — is the
/// one thing reported (Modbus poll built from a real read's request and answer).
#[test]
fn a_new_command_is_exactly_what_is_reported() {
    use common::frames::ModbusPoller;
    let dir = tempfile::tempdir().unwrap();
    let hmi = (
        [0x00, 0x0c, 0x29, 0x01, 0x02, 0x03],
        [198, 18, 0, 10],
        50200,
    );
    let plc = ([0x00, 0x1d, 0x9c, 0xaa, 0xbb, 0xcc], [198, 18, 0, 5], 502);
    let t0 = 1_795_651_200_000_000_000u64;
    let mut rsp = vec![0x03, 20];
    rsp.extend_from_slice(&[0u8; 20]);
    let mut p = ModbusPoller::new(hmi, plc);
    let mut all = Vec::new();
    p.connect(t0, &mut all);
    for i in 0..100u64 {
        p.poll(
            t0 + (i + 1) * 1_000_000_000,
            1,
            &[0x03, 0, 0, 0, 10],
            &rsp,
            &mut all,
        );
    }
    let cut = all.len() * 7 / 10;
    let head = dir.path().join("head.pcap");
    frames::write(&head, &all[..cut]);
    let policy = dir.path().join("learnt.toml");
    learn(&[head.as_path()], &policy, &[]);
    let mut tail = all[cut..].to_vec();
    p.poll(
        t0 + 200_000_000_000,
        1,
        &[0x06, 0, 3, 0, 42],
        &[0x06, 0, 3, 0, 42],
        &mut tail,
    );
    let cap = dir.path().join("tail.pcap");
    frames::write(&cap, &tail);
    let r = frames::replay_json(&["--policy", policy.to_str().unwrap()], &[cap.as_path()]);
    let found = judged(&r);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "ics_command");
    assert_eq!(found[0]["command"], "write_single_register");
    // Without the write, nothing.
    let clean = dir.path().join("clean.pcap");
    frames::write(&clean, &all[cut..]);
    let r = frames::replay_json(&["--policy", policy.to_str().unwrap()], &[clean.as_path()]);
    assert!(judged(&r).is_empty(), "{r}");
}
