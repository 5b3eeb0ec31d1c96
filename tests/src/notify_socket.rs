//! The service manager's side of sd_notify for tests: a datagram socket the test owns
//! (`NOTIFY_SOCKET`), every message in order with its arrival time, and ways to wait.
//! Used by the agent's and the collector's `tests/notify.rs` (included there with
//! `#[path]`, so it needs nothing but std) and by this crate.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)] // test code

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// One datagram and when it arrived.
pub struct Msg {
    pub at: Instant,
    pub text: String,
}

/// Binds `dir/notify.sock` and reads every datagram on a thread (bounded: it ends when
/// the test drops the receiver, or after 5 minutes).
pub fn listen(dir: &Path) -> (PathBuf, Receiver<Msg>) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let until = Instant::now() + Duration::from_secs(300);
        while Instant::now() < until {
            if let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx
                    .send(Msg {
                        at: Instant::now(),
                        text,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    (path, rx)
}

/// The next message for which `pred` holds, within `limit`, with the messages before it.
pub fn wait_for(
    rx: &Receiver<Msg>,
    limit: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<(Msg, Vec<Msg>)> {
    let until = Instant::now() + limit;
    let mut before = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(m) if pred(&m.text) => return Some((m, before)),
            Ok(m) => before.push(m),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Every message received during `d`.
pub fn collect(rx: &Receiver<Msg>, d: Duration) -> Vec<Msg> {
    let until = Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(m) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        out.push(m);
    }
    out
}

/// How many of `msgs` are watchdog pings.
pub fn pings(msgs: &[Msg]) -> usize {
    msgs.iter()
        .filter(|m| m.text.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

/// A predicate: the message has the line `line`.
pub fn has(line: &'static str) -> impl Fn(&str) -> bool {
    move |t: &str| t.lines().any(|l| l == line)
}
