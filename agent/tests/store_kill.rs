//! The event store under faults a host really has: the agent killed at any moment
//! (SIGKILL, then the file's tail cut as a power loss would), a full disk, a file system
//! gone read-only. Whatever happens, every record whose append (and sync) returned is
//! there after a reopen, at most one torn record is dropped and counted, and sequence
//! numbers go on.
//!
//! The writer is this test executable itself, re-run with `--exact <test> --nocapture`
//! and `INFRAWATCH_STORE_KILL_WRITER=<dir>`: it appends, syncs and prints `W <seq>` for
//! each record, until the parent kills it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_agent::capture::Ts;
use infrawatch_agent::store::{RECORD_HEADER, Store, StoreConfig};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WRITER_ENV: &str = "INFRAWATCH_STORE_KILL_WRITER";
const KILL_TEST: &str = "writer_killed_at_random_moments_loses_nothing_it_reported";
const ROUNDS: usize = 20;
/// A round (the writer reaching its kill point) must finish within this.
const ROUND_LIMIT: Duration = Duration::from_secs(60);
/// The writer stops by itself after this many records, should nobody kill it.
const WRITER_LIMIT: u64 = 100_000;

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        max_bytes: 256 << 20,
        max_age: Duration::from_secs(86_400),
        segment_bytes: 4096,
    }
}

/// SplitMix64: seeded, so a failing run reproduces with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The payload of record `seq`: its length varies (0..400 bytes) so that records
/// straddle segment boundaries differently each round.
fn payload(seq: u64) -> Vec<u8> {
    let len = Rng(seq).below(400) as usize;
    (0..len).map(|i| (seq as usize + i) as u8).collect()
}

/// The writer side, in the child process.
fn writer(dir: &Path) {
    let (mut store, _) = Store::open(config(dir)).unwrap();
    let mut out = std::io::stdout().lock();
    for _ in 0..WRITER_LIMIT {
        let next = store.next_seq();
        let seq = store.append(Ts(next * 1000), &payload(next)).unwrap();
        assert_eq!(seq, next);
        store.sync().unwrap();
        if writeln!(out, "W {seq}").and_then(|()| out.flush()).is_err() {
            return; // the parent is gone
        }
    }
}

/// The last segment file and the offset at which its last record starts.
fn last_record(dir: &Path) -> Option<(PathBuf, u64, u64, u64)> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let last = segs.pop()?;
    let bytes = std::fs::read(&last).unwrap();
    let mut at = 8usize;
    let mut found = None;
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + RECORD_HEADER + len > bytes.len() {
            break;
        }
        let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        found = Some((at as u64, seq));
        at += RECORD_HEADER + len;
    }
    let (start, seq) = found?;
    Some((last, start, bytes.len() as u64, seq))
}

#[test]
fn writer_killed_at_random_moments_loses_nothing_it_reported() {
    if let Some(dir) = std::env::var_os(WRITER_ENV) {
        writer(Path::new(&dir));
        return;
    }
    let seed = std::env::var("INFRAWATCH_STORE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_126u64);
    println!("seed {seed} (set INFRAWATCH_STORE_KILL_SEED to change it)");
    let mut rng = Rng(seed);
    let base = tmp();
    let dir = base.path().join("events");
    let exe = std::env::current_exe().unwrap();
    // Records whose append and sync returned in a writer, and not cut off since.
    let mut reported = BTreeSet::new();
    let mut torn_total = 0;

    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut child = Command::new(&exe)
            .args(["--exact", KILL_TEST, "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("W ")
                    && tx.send(seq.parse::<u64>().unwrap()).is_err()
                {
                    break;
                }
            }
        });
        // Kill after a random number of records; the writer keeps going meanwhile, so
        // the signal lands at any point of its loop.
        let kill_after = 1 + rng.below(150);
        let mut first_seq = None;
        for _ in 0..kill_after {
            let left = ROUND_LIMIT.saturating_sub(started.elapsed());
            let seq = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("round {round}: no record from the writer: {e}"));
            first_seq.get_or_insert(seq);
            reported.insert(seq);
        }
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on the PID of our own child, which has not been waited for, so
        // the PID cannot have been reused.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the writer was not killed"
        );
        reader.join().unwrap();
        // Lines already in the pipe were written after their sync returned: they count.
        reported.extend(rx.try_iter());

        // Then a power loss: the tail cut at a random offset of the last record (or not
        // at all, when the cut falls at its end).
        let mut cut_seq = None;
        let mut expect_torn = 0;
        if let Some((file, start, len, seq)) = last_record(&dir) {
            let cut = start + rng.below(len - start + 1);
            if cut < len {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                cut_seq = Some(seq);
                expect_torn = u64::from(cut > start);
            }
        }

        let (mut store, rec) = Store::open(config(&dir)).unwrap();
        assert_eq!(rec.torn_records, expect_torn, "round {round}: {rec:?}");
        assert!(rec.torn_records <= 1);
        assert_eq!((rec.corrupt_records, rec.corrupt_bytes), (0, 0));
        assert_eq!(store.stats().recovered_torn_total, expect_torn);
        torn_total += expect_torn;
        if let Some(seq) = cut_seq {
            reported.remove(&seq);
        }
        let records = store.read_from(0, usize::MAX, usize::MAX).unwrap();
        let present: Vec<u64> = records.iter().map(|r| r.seq).collect();
        // No gap: exactly 1..next_seq, with every reported record among them, intact.
        assert_eq!(
            present,
            (1..rec.next_seq).collect::<Vec<_>>(),
            "round {round}"
        );
        for r in &records {
            assert_eq!(r.payload, payload(r.seq), "round {round}: seq {}", r.seq);
            assert_eq!(r.ts, Ts(r.seq * 1000));
        }
        if let Some(missing) = reported.iter().find(|s| **s >= rec.next_seq) {
            panic!("round {round}: record {missing} was reported written but is gone");
        }
        // The sequence goes on where the kept records end.
        let last_kept = present.last().copied().unwrap_or(0);
        assert_eq!(rec.next_seq, last_kept + 1);
        if let Some(first) = first_seq {
            assert!(first <= rec.next_seq, "round {round}");
        }
        assert!(
            started.elapsed() < ROUND_LIMIT,
            "round {round} took too long"
        );
        drop(store);
    }
    println!(
        "{ROUNDS} rounds, {} records reported, {torn_total} torn tails recovered",
        reported.len()
    );
    assert!(reported.len() >= ROUNDS);
}

#[path = "../../tests/src/tmpfs.rs"]
mod tmpfs;
use tmpfs::Tmpfs;

#[test]
fn full_disk_and_read_only_fs_are_errors_and_the_store_recovers() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: the full-disk test mounts a tiny tmpfs, which needs root");
        return;
    }
    let base = tmp();
    let mnt = base.path().join("fs");
    std::fs::create_dir(&mnt).unwrap();
    let fs = match Tmpfs::mount(&mnt, "size=64k,mode=0700") {
        Ok(fs) => fs,
        Err(e) => {
            println!("SKIP: cannot mount a tmpfs for the full-disk test ({e})");
            return;
        }
    };
    let cfg = StoreConfig {
        dir: mnt.join("events"),
        max_bytes: 16 << 20,
        max_age: Duration::from_secs(86_400),
        segment_bytes: 8192,
    };
    let (mut store, _) = Store::open(cfg.clone()).unwrap();
    let body = |seq: u64| vec![seq as u8; 200];
    let mut written = Vec::new();
    let err = loop {
        assert!(written.len() < 10_000, "the 64 KiB tmpfs never filled up");
        let next = store.next_seq();
        match store.append(Ts(next), &body(next)) {
            Ok(seq) => written.push(seq),
            Err(e) => break e,
        }
    };
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("the disk is full"), "{err}");
    assert!(written.len() > 100);
    // Still full: still an error, counted each time, and nothing half-written.
    assert!(store.append(Ts(0), &body(0)).is_err());
    assert_eq!(store.stats().write_errors_total, 2);
    let n = written.len() as u64;
    assert_eq!(store.next_seq(), n + 1);

    // Space comes back.
    fs.remount("size=1m");
    for i in 1..=20 {
        assert_eq!(store.append(Ts(n + i), &body(n + i)).unwrap(), n + i);
    }
    store.sync().unwrap();

    assert_eq!(store.append(Ts(n + 21), &body(n + 21)).unwrap(), n + 21);
    drop(store);

    // A read-only file system (an unwritable directory): opening is an error that says
    // so; once writable again the store opens as it was.
    fs.remount("ro");
    let e = Store::open(cfg.clone()).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    fs.remount("rw");

    let (mut store, rec) = Store::open(cfg).unwrap();
    assert_eq!((rec.torn_records, rec.corrupt_records), (0, 0), "{rec:?}");
    assert_eq!(rec.next_seq, n + 22);
    let records = store.read_from(0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=n + 21).collect::<Vec<_>>()
    );
    assert!(records.iter().all(|r| r.payload == body(r.seq)));
    drop(store);
    drop(fs);
}
