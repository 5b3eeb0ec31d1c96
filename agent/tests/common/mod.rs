//! Helpers of the tests that need real network namespaces (root): namespaces deleted on
//! drop, veth pairs addressed from 198.18.0.0/15, threads that join a namespace.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

pub fn skip() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: live capture tests need root (network namespaces, AF_PACKET)");
        return true;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!(
            "SKIP: live capture tests need root (network namespaces) and iproute2's `ip`, which is missing"
        );
        return true;
    }
    false
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop (also when the test fails).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        // A leftover of a crashed run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        // IPv6 off: no router solicitations or MLD reports in the captures. Set before any
        // interface is moved in, so that `default` applies to it.
        let path = ns.path();
        std::thread::spawn(move || {
            enter(&path);
            for key in ["all", "default"] {
                let file = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
                // Missing when the host has no IPv6 at all: nothing to disable.
                let _ = std::fs::write(file, "1");
            }
        })
        .join()
        .unwrap();
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Moves the calling thread into a network namespace.
pub fn enter(path: &str) {
    let f = File::open(path).unwrap();
    // SAFETY: `f` is an open namespace file for the whole call; setns only affects the
    // calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Two namespaces `a` and `b` joined by a veth pair, on 198.18.`third_octet`.0/24 (inside
/// 198.18.0.0/15): `.1` in A, `.2` in B.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
    pub va: String,
    pub vb: String,
    pub addr_a: String,
    pub addr_b: String,
}

pub fn veth_pair(tag: char, third_octet: u8) -> Pair {
    let pid = std::process::id();
    let a = Netns::new(format!("iw-live-{pid}-{tag}a"));
    let b = Netns::new(format!("iw-live-{pid}-{tag}b"));
    let va = format!("iw{pid}{tag}a");
    let vb = format!("iw{pid}{tag}b");
    ip(&[
        "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]);
    let addr_a = format!("198.18.{third_octet}.1");
    let addr_b = format!("198.18.{third_octet}.2");
    ip(&[
        "-n",
        &a.name,
        "addr",
        "add",
        &format!("{addr_a}/24"),
        "dev",
        &va,
    ]);
    ip(&[
        "-n",
        &b.name,
        "addr",
        "add",
        &format!("{addr_b}/24"),
        "dev",
        &vb,
    ]);
    ip(&["-n", &a.name, "link", "set", &va, "up"]);
    ip(&["-n", &b.name, "link", "set", &vb, "up"]);
    Pair {
        a,
        b,
        va,
        vb,
        addr_a,
        addr_b,
    }
}

/// Runs `f` on a fresh thread (it may join namespaces; the test thread stays put).
pub fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}
pub mod frames;
