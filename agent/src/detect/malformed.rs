//! `malformed`: protocol violations (the dissectors' bounded [`Violation`] names), one
//! event per (source, destination, violation): the first violation is reported at once,
//! then at most one finding every 10 s carrying the violations since (flushed by the
//! tick when they stop).
//!
//! Bounds: [`MALFORMED_TABLE`] keys, LRU-evicted and counted.

use super::table::{Episode, Table};
use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::decode::{Addr, Mac, fmt_mac};
use crate::dissect::Violation;
use crate::proto::Proto;
use infrawatch_config::policy::Basic;

/// (source, destination, violation) keys tracked at once.
pub(crate) const MALFORMED_TABLE: usize = 4096;

/// Slots looked at per tick.
const SWEEP: usize = 512;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    src: Option<Addr>,
    dst: Option<Addr>,
    mac: Option<Mac>,
    proto: Option<Proto>,
    v: Option<Violation>,
    ep: Episode,
}

impl Entry {
    fn finding(&self, cfg: &Basic, key: u64, now: Ts, n: u64, first: bool) -> Finding {
        let mut f = Finding::new(Kind::Malformed, key, now);
        f.severity = cfg.severity;
        f.src = self.src;
        f.dst = self.dst;
        f.src_mac = self.mac;
        f.proto = self.proto;
        f.violation = self.v;
        let from = match (self.src, self.mac) {
            (Some(a), _) => a.to_string(),
            (None, Some(m)) => fmt_mac(&m),
            (None, None) => "?".to_string(),
        };
        let to = self.dst.map(|d| format!(" to {d}")).unwrap_or_default();
        let proto = self.proto.map_or("?", Proto::name);
        let v = self.v.map_or("?", Violation::name);
        f.detail = if first {
            format!("{proto} protocol violation {v} from {from}{to}")
        } else {
            format!("{proto} protocol violation {v} from {from}{to}: {n} since the last report")
        };
        f.count = n;
        f
    }
}

#[derive(Debug)]
pub(crate) struct Malformed {
    map: Table<u64, Entry>,
    cursor: u32,
}

impl Malformed {
    pub fn new() -> Self {
        Malformed {
            map: Table::new(MALFORMED_TABLE),
            cursor: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn violation(
        &mut self,
        cfg: &Basic,
        now: Ts,
        src: Option<Addr>,
        dst: Option<Addr>,
        mac: Option<Mac>,
        proto: Proto,
        v: Violation,
        out: &mut Vec<Finding>,
    ) {
        if !cfg.enabled {
            return;
        }
        // Without an IP source (link-layer protocols), the source MAC tells senders apart.
        let who: &[u8] = match (&src, &mac) {
            (Some(a), _) => &a.0,
            (None, Some(m)) => m,
            (None, None) => &[],
        };
        let none = [0u8; 16];
        let to = dst.as_ref().map_or(&none, |d| &d.0);
        let key = key_of(&[b"malformed", who, to, v.name().as_bytes()]);
        let (s, _) = self.map.upsert(key);
        let Some(e) = self.map.get_mut(s) else {
            return;
        };
        if e.ep.ongoing(now) {
            if let Some(n) = e.ep.add(now, 1) {
                out.push(e.finding(cfg, key, now, n, false));
            }
            return;
        }
        if let Some(n) = e.ep.end() {
            out.push(e.finding(cfg, key, now, n, false));
        }
        *e = Entry {
            src,
            dst,
            mac,
            proto: Some(proto),
            v: Some(v),
            ep: Episode::default(),
        };
        e.ep.start(now);
        out.push(e.finding(cfg, key, now, 1, true));
    }

    pub fn tick(&mut self, cfg: &Basic, now: Ts, out: &mut Vec<Finding>) {
        for slot in self.map.sweep_slots(&mut self.cursor, SWEEP) {
            let Some((key, e)) = self.map.entry_mut(slot) else {
                continue;
            };
            let key = *key;
            let due = e.ep.tick(now);
            if let Some(n) = due
                && cfg.enabled
            {
                out.push(e.finding(cfg, key, now, n, false));
            }
            if !e.ep.active {
                self.map.remove(slot);
            }
        }
    }

    pub fn tables(&self, v: &mut Vec<(&'static str, super::independent::TableStats)>) {
        v.push(("malformed", self.map.stats()));
    }

    pub fn memory_bytes(&self) -> usize {
        self.map.memory_bytes()
    }
}
