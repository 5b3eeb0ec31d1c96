//! `syn_flood`: half-open TCP connections (an attempt whose handshake has not completed;
//! an established, refused or ended attempt is no longer half-open) made within `window`
//! (default 1 s):
//!
//! - at least `half_open` (default 100) to one destination, or
//! - from at least `distinct_sources` (default 20) distinct sources to one destination
//!   port (a spoofed multi-source flood): both are one event per destination;
//! - at least `total_half_open` (default 100) over all destinations together (random
//!   spoofed sources and destinations), counted only from attempts whose destination is
//!   not itself flooded, so a one-target flood is not reported twice: one event, key
//!   "total".
//!
//! A busy server that completes every handshake quickly does not fire: an established
//! connection is taken back out of the window it was counted in. Neither does one
//! source trying many ports of a host ([`SCAN_PORTS`] or more within the window, e.g. a
//! SYN scan of a filtered host): `port_scan` reports that, unless it is switched off. Thresholds are
//! reached-or-exceeded. Findings come when a threshold is crossed, then at most every
//! 10 s with the half-open attempts counted since, while the flood goes on.
//!
//! Bounds: [`FLOOD_TABLE`] destinations (a ten-slot sliding counter each) and
//! [`FLOOD_TABLE`] destination ports (a set of up to 64 recent half-open sources each:
//! `distinct_sources` above 64 acts as 64), LRU-evicted and counted; the total is one
//! counter.

use super::attempts::{Closed, Conn};
use super::scan::{addr32, fmt_ns, window_ns};
use super::table::{DISTINCT_CAP, Distinct, Episode, Ring, Table};
use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::decode::Addr;
use infrawatch_config::policy::SynFlood;

/// Entries of the per-destination and per-destination-port tables.
pub(crate) const FLOOD_TABLE: usize = 4096;

/// Destinations looked at per tick (their periodic findings).
const SWEEP: usize = 512;

#[derive(Clone, Copy, Debug, Default)]
struct Dest {
    ring: Ring,
    ep: Episode,
    /// Who the attempts of the current and the previous (fixed) window came from and
    /// went to: one source on many ports is a port scan, not a flood.
    win: Ts,
    cur: Senders,
    prev: Senders,
}

#[derive(Clone, Copy, Debug, Default)]
struct Senders {
    src: u32,
    many: bool,
    /// Ports seen, one bit per port modulo 64.
    ports: u64,
}

/// A single source on at least this many ports (of the 64-bit port sketch) of a
/// destination within the window is scanning it; `port_scan` reports that.
pub(crate) const SCAN_PORTS: u32 = 16;

impl Dest {
    /// Records the attempt's source and port; whether the window's attempts look like
    /// one source scanning ports.
    fn scanned(&mut self, now: Ts, w: u64, src: u32, port: u16) -> bool {
        let age = now.saturating_sub(self.win);
        if age > w || self.cur.ports == 0 {
            self.prev = if age <= w.saturating_mul(2) {
                self.cur
            } else {
                Senders::default()
            };
            self.win = now;
            self.cur = Senders {
                src,
                many: false,
                ports: 0,
            };
        }
        let (cur, prev) = (&mut self.cur, &self.prev);
        cur.many |= src != cur.src;
        cur.ports |= 1 << (port % 64);
        let prev_same = prev.ports == 0 || (!prev.many && prev.src == cur.src);
        !cur.many && prev_same && (cur.ports | prev.ports).count_ones() >= SCAN_PORTS
    }
}

#[derive(Debug)]
pub(crate) struct Flood {
    dests: Table<Addr, Dest>,
    ports: Table<(Addr, u16), Distinct>,
    total: Ring,
    total_ep: Episode,
    cursor: u32,
}

fn dest_key(dst: &Addr) -> u64 {
    key_of(&[b"syn_flood", &dst.0])
}

fn total_key() -> u64 {
    key_of(&[b"syn_flood", b"total"])
}

impl Flood {
    pub fn new() -> Self {
        Flood {
            dests: Table::new(FLOOD_TABLE),
            ports: Table::new(FLOOD_TABLE),
            total: Ring::default(),
            total_ep: Episode::default(),
            cursor: 0,
        }
    }

    fn finding(cfg: &SynFlood, now: Ts, dst: Option<Addr>, detail: String, n: u64) -> Finding {
        let key = dst.as_ref().map_or_else(total_key, dest_key);
        let mut f = Finding::new(Kind::SynFlood, key, now);
        f.severity = cfg.severity;
        f.dst = dst;
        f.detail = detail;
        f.count = n;
        f
    }

    fn continuing(cfg: &SynFlood, now: Ts, dst: Option<Addr>, n: u64) -> Finding {
        let what = dst.map_or_else(|| "all destinations".to_string(), |d| d.to_string());
        Flood::finding(
            cfg,
            now,
            dst,
            format!("SYN flood to {what} goes on: {n} more half-open connections"),
            n,
        )
    }

    /// A new half-open attempt.
    /// `scan_on`: `port_scan` is enabled (and reports one source scanning many ports).
    pub fn added(
        &mut self,
        cfg: &SynFlood,
        scan_on: bool,
        now: Ts,
        c: Conn,
        out: &mut Vec<Finding>,
    ) {
        if !cfg.enabled {
            return;
        }
        let w = window_ns(cfg.window);
        let (ds, _) = self.dests.upsert(c.server);
        let client = addr32(&c.client);
        let (to_dst, scanned) = self.dests.get_mut(ds).map_or((0, false), |d| {
            (d.ring.add(now, w, 1), d.scanned(now, w, client, c.port))
        });
        let (ps, _) = self.ports.upsert_with((c.server, c.port), Distinct::clear);
        let sources = self
            .ports
            .get_mut(ps)
            .map_or(0, |d| d.insert(client, now, w));
        let total = self.total.add(now, w, 1);
        let half_open_at = cfg.half_open.max(1);
        let sources_at = cfg.distinct_sources.clamp(1, DISTINCT_CAP as u32);
        let (over_dst, over_src) = (to_dst >= half_open_at, sources >= sources_at);
        if over_dst && scanned && scan_on {
            // One source on many ports: a port scan.
            return;
        }
        if over_dst || over_src {
            let Some(d) = self.dests.get_mut(ds) else {
                return;
            };
            if d.ep.ongoing(now) {
                if let Some(n) = d.ep.add(now, 1) {
                    out.push(Flood::continuing(cfg, now, Some(c.server), n));
                }
                return;
            }
            if let Some(n) = d.ep.end() {
                out.push(Flood::continuing(cfg, now, Some(c.server), n));
            }
            d.ep.start(now);
            let (dst, port, win) = (c.server, c.port, fmt_ns(w));
            let detail = if over_dst {
                format!(
                    "{to_dst} half-open TCP connections to {dst} within {win} \
                     (threshold {half_open_at}), latest to port {port}"
                )
            } else {
                format!(
                    "half-open TCP connections from {sources} distinct sources to \
                     {dst} port {port} within {win} (threshold {sources_at})"
                )
            };
            let mut f = Flood::finding(cfg, now, Some(dst), detail, u64::from(to_dst));
            if sources == 1 {
                f.src = Some(c.client);
            }
            out.push(f);
            return;
        }
        let total_at = cfg.total_half_open.max(1);
        if total < total_at {
            return;
        }
        if self.total_ep.ongoing(now) {
            if let Some(n) = self.total_ep.add(now, 1) {
                out.push(Flood::continuing(cfg, now, None, n));
            }
            return;
        }
        if let Some(n) = self.total_ep.end() {
            out.push(Flood::continuing(cfg, now, None, n));
        }
        self.total_ep.start(now);
        out.push(Flood::finding(
            cfg,
            now,
            None,
            format!(
                "{total} half-open TCP connections to all destinations together within {} \
                 (threshold {total_at}): a flood from spoofed sources",
                fmt_ns(w)
            ),
            u64::from(total),
        ));
    }

    /// A half-open attempt completed, was refused or ended.
    pub fn closed(&mut self, cfg: &SynFlood, c: Conn, closed: Closed) {
        let w = window_ns(cfg.window);
        if let Some(d) = self
            .dests
            .find(&c.server)
            .and_then(|s| self.dests.get_mut(s))
        {
            d.ring.sub(closed.ts, w, 1);
        }
        self.total.sub(closed.ts, w, 1);
        if closed.last
            && let Some(p) = self
                .ports
                .find(&(c.server, c.port))
                .and_then(|s| self.ports.get_mut(s))
        {
            p.remove(addr32(&c.client));
        }
    }

    /// Periodic findings of ongoing floods, and the end of quiet ones.
    pub fn tick(&mut self, cfg: &SynFlood, now: Ts, out: &mut Vec<Finding>) {
        if let Some(n) = self.total_ep.tick(now)
            && cfg.enabled
        {
            out.push(Flood::continuing(cfg, now, None, n));
        }
        for slot in self.dests.sweep_slots(&mut self.cursor, SWEEP) {
            let Some((dst, d)) = self.dests.entry_mut(slot) else {
                continue;
            };
            if let Some(n) = d.ep.tick(now)
                && cfg.enabled
            {
                out.push(Flood::continuing(cfg, now, Some(*dst), n));
            }
        }
    }

    pub fn tables(&self, v: &mut Vec<(&'static str, super::independent::TableStats)>) {
        v.push(("syn_flood_destinations", self.dests.stats()));
        v.push(("syn_flood_ports", self.ports.stats()));
    }

    pub fn memory_bytes(&self) -> usize {
        self.dests.memory_bytes() + self.ports.memory_bytes()
    }
}
