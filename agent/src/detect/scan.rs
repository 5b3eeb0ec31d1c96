//! `port_scan`: one source reaching `distinct_ports` (default 20) distinct ports of one
//! host, or `distinct_hosts` (default 20) hosts on one port, or ARP requests for
//! `distinct_hosts` distinct addresses (an ARP sweep), within `window` (default 60 s).
//!
//! Only *probes* count, as in Zeek's scan detection, so a busy IT network is not a scan:
//! an attempt refused by RST, a handshake that ended without payload (a SYN scan or a
//! connect scan of an open port), an attempt not answered within 3 s, and every
//! FIN/NULL/XMAS segment outside a flow. A connection that carried payload never counts.
//! ARP requests count when they are neither probes (sender 0.0.0.0) nor announcements
//! (sender = target); a router re-resolving its neighbours over minutes stays below the
//! threshold within the window.
//!
//! The first finding comes when a threshold is crossed; while the source keeps probing
//! (no gap of 60 s) further findings of the same key (the source) come at most every
//! 10 s with the probes since the last one, so a long scan is one event.
//!
//! Bounds: [`SCAN_TABLE`] (source, host) sets of ports, [`SCAN_TABLE`] (source, port)
//! sets of hosts and [`SCAN_TABLE`] scanning sources, each LRU-evicted and counted. A set
//! holds the distinct values of the window exactly up to [`DISTINCT_CAP`] (64):
//! thresholds above 64 act as 64.

use super::table::{DISTINCT_CAP, Distinct, Episode, Table};
use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::decode::{Addr, Mac, fmt_mac, tcp_flags};
use crate::proto::Proto;
use infrawatch_config::policy::PortScan;

/// Entries of each of the scan tables.
pub(crate) const SCAN_TABLE: usize = 4096;

/// Scanning sources looked at per tick (their periodic findings).
const SWEEP: usize = 512;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct PortKey {
    src: Addr,
    port: u16,
    /// ARP requests (the "port" is unused).
    arp: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Scanner {
    ep: Episode,
    mac: Option<Mac>,
}

/// One probe of a source.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Probe {
    /// A failed or empty TCP connection attempt.
    Tcp { dst: Addr, port: u16 },
    /// A FIN/NULL/XMAS segment outside any flow.
    Stealth { dst: Addr, port: u16, flags: u8 },
    /// An ARP request for `target`.
    Arp { target: [u8; 4] },
}

/// The name of a stealth probe by its flags, `None` when it is not one (SYN, ACK or RST
/// set: those are ordinary segments).
pub(crate) fn stealth_name(flags: u8) -> Option<&'static str> {
    use tcp_flags::*;
    if flags & (SYN | ACK | RST) != 0 {
        return None;
    }
    Some(match flags & (FIN | PSH | URG) {
        0 => "NULL",
        x if x == FIN | PSH | URG => "XMAS",
        FIN => "FIN",
        _ => "stealth",
    })
}

/// A 32-bit identity of an address: the IPv4 address itself, or a mix of an IPv6 one.
pub(crate) fn addr32(a: &Addr) -> u32 {
    if a.is_v4() {
        let [.., a0, a1, a2, a3] = a.0;
        return u32::from_be_bytes([a0, a1, a2, a3]);
    }
    let (lo, hi) = a.words();
    let h = (lo ^ hi.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32 ^ h as u32
}

/// A duration for a detail line: `60 s`, `1.5 s`, `200 ms`.
pub(crate) fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000_000 && ns.is_multiple_of(1_000_000_000) {
        format!("{} s", ns / 1_000_000_000)
    } else if ns >= 1_000_000_000 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else {
        format!("{} ms", ns / 1_000_000)
    }
}

pub(crate) fn window_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Per-source scan state; see the module documentation.
#[derive(Debug)]
pub(crate) struct Scan {
    by_host: Table<(Addr, Addr), Distinct>,
    by_port: Table<PortKey, Distinct>,
    scanners: Table<Addr, Scanner>,
    cursor: u32,
}

impl Scan {
    pub fn new() -> Self {
        Scan {
            by_host: Table::new(SCAN_TABLE),
            by_port: Table::new(SCAN_TABLE),
            scanners: Table::new(SCAN_TABLE),
            cursor: 0,
        }
    }

    fn finding(cfg: &PortScan, now: Ts, src: Addr, mac: Option<Mac>) -> Finding {
        let mut f = Finding::new(Kind::PortScan, key_of(&[b"port_scan", &src.0]), now);
        f.severity = cfg.severity;
        f.src = Some(src);
        f.src_mac = mac;
        f
    }

    fn continuing(cfg: &PortScan, now: Ts, src: Addr, mac: Option<Mac>, n: u64) -> Finding {
        let mut f = Scan::finding(cfg, now, src, mac);
        f.detail = format!("{src} is still scanning: {n} more probes since the last report");
        f.count = n;
        f
    }

    /// A probe by `src` at `now`.
    pub fn probe(
        &mut self,
        cfg: &PortScan,
        now: Ts,
        src: Addr,
        mac: Option<Mac>,
        p: Probe,
        out: &mut Vec<Finding>,
    ) {
        if !cfg.enabled {
            return;
        }
        // An ongoing scan: count, report periodically.
        if let Some(s) = self.scanners.find(&src) {
            self.scanners.touch(s);
            if let Some(sc) = self.scanners.get_mut(s) {
                if mac.is_some() {
                    sc.mac = mac;
                }
                if sc.ep.ongoing(now) {
                    if let Some(n) = sc.ep.add(now, 1) {
                        out.push(Scan::continuing(cfg, now, src, sc.mac, n));
                    }
                    return;
                }
                if let Some(n) = sc.ep.end() {
                    out.push(Scan::continuing(cfg, now, src, sc.mac, n));
                }
            }
        }
        let w = window_ns(cfg.window);
        let ports_at = cfg.distinct_ports.clamp(1, DISTINCT_CAP as u32);
        let hosts_at = cfg.distinct_hosts.clamp(1, DISTINCT_CAP as u32);
        let detail = match p {
            Probe::Tcp { dst, port } | Probe::Stealth { dst, port, .. } => {
                let how = match p {
                    Probe::Stealth { flags, .. } => stealth_name(flags).unwrap_or("stealth"),
                    _ => "refused, unanswered or empty connection",
                };
                let (s, _) = self.by_host.upsert_with((src, dst), Distinct::clear);
                let ports = self
                    .by_host
                    .get_mut(s)
                    .map_or(0, |d| d.insert(u32::from(port), now, w));
                let (s, _) = self.by_port.upsert_with(
                    PortKey {
                        src,
                        port,
                        arp: false,
                    },
                    Distinct::clear,
                );
                let hosts = self
                    .by_port
                    .get_mut(s)
                    .map_or(0, |d| d.insert(addr32(&dst), now, w));
                if ports >= ports_at {
                    Some((
                        ports,
                        Some(dst),
                        format!(
                            "{src} probed {ports} distinct ports of {dst} within {} \
                             (threshold {ports_at}): {how} probes",
                            fmt_ns(w)
                        ),
                    ))
                } else if hosts >= hosts_at {
                    Some((
                        hosts,
                        None,
                        format!(
                            "{src} probed port {port} on {hosts} hosts within {} \
                             (threshold {hosts_at}): {how} probes",
                            fmt_ns(w)
                        ),
                    ))
                } else {
                    None
                }
            }
            Probe::Arp { target } => {
                let (s, _) = self.by_port.upsert_with(
                    PortKey {
                        src,
                        port: 0,
                        arp: true,
                    },
                    Distinct::clear,
                );
                let hosts = self
                    .by_port
                    .get_mut(s)
                    .map_or(0, |d| d.insert(u32::from_be_bytes(target), now, w));
                (hosts >= hosts_at).then(|| {
                    let m = mac
                        .map(|m| format!(" ({})", fmt_mac(&m)))
                        .unwrap_or_default();
                    (
                        hosts,
                        None,
                        format!(
                            "{src}{m} sent ARP requests for {hosts} distinct addresses \
                             within {} (threshold {hosts_at}): an ARP sweep",
                            fmt_ns(w)
                        ),
                    )
                })
            }
        };
        let Some((count, dst, detail)) = detail else {
            return;
        };
        let (s, _) = self.scanners.upsert(src);
        if let Some(sc) = self.scanners.get_mut(s) {
            sc.ep.start(now);
            sc.mac = mac;
        }
        let mut f = Scan::finding(cfg, now, src, mac);
        f.dst = dst;
        if matches!(p, Probe::Arp { .. }) {
            f.proto = Some(Proto::Arp);
        }
        f.detail = detail;
        f.count = u64::from(count);
        out.push(f);
    }

    /// Periodic findings of ongoing scans, and the end of quiet ones.
    pub fn tick(&mut self, cfg: &PortScan, now: Ts, out: &mut Vec<Finding>) {
        for slot in self.scanners.sweep_slots(&mut self.cursor, SWEEP) {
            let Some((src, sc)) = self.scanners.entry_mut(slot) else {
                continue;
            };
            let src = *src;
            let due = sc.ep.tick(now);
            let (mac, done) = (sc.mac, !sc.ep.active);
            if let Some(n) = due
                && cfg.enabled
            {
                out.push(Scan::continuing(cfg, now, src, mac, n));
            }
            if done {
                self.scanners.remove(slot);
            }
        }
    }

    pub fn tables(&self, v: &mut Vec<(&'static str, super::independent::TableStats)>) {
        v.push(("port_scan_hosts", self.by_host.stats()));
        v.push(("port_scan_ports", self.by_port.stats()));
        v.push(("port_scan_sources", self.scanners.stats()));
    }

    pub fn memory_bytes(&self) -> usize {
        self.by_host.memory_bytes() + self.by_port.memory_bytes() + self.scanners.memory_bytes()
    }
}
