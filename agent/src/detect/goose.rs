//! `goose`: what the GOOSE publisher table ([`crate::dissect::goose::Publishers`]) saw
//! change, per publisher (source MAC + APPID + gocbRef) and anomaly type: stNum going
//! back or jumping, sqNum reset or going back while stNum stayed (injection or replay),
//! the test/simulation flag, a message after the previous one's time-allowed-to-live
//! ran out. Each (publisher, anomaly) is one event: the first at once, then at most one
//! finding every 10 s with the messages since. A publisher falling silent past its
//! time-allowed-to-live is one finding per silence (its own key).
//!
//! Bounds: [`GOOSE_TABLE`] (publisher, anomaly) keys, LRU-evicted and counted.

use super::table::{Episode, Table};
use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::decode::{Mac, fmt_mac};
use crate::dissect::goose::{Expired, MAX_REF, Observation};
use crate::proto::Proto;
use infrawatch_config::policy::Basic;

/// (publisher, anomaly) keys tracked at once.
pub(crate) const GOOSE_TABLE: usize = 1024;

/// Slots looked at per tick.
const SWEEP: usize = 256;

/// The anomalies, in the order of [`anomalies`].
const NAMES: [&str; 6] = [
    "st_num_back",
    "st_num_jump",
    "sq_num_reset",
    "sq_num_back",
    "test",
    "tal_expired",
];

fn anomalies(o: &Observation) -> [bool; 6] {
    [
        o.st_num_back,
        o.st_num_jump,
        o.sq_num_reset,
        o.sq_num_back,
        o.test,
        o.tal_expired,
    ]
}

fn describe(anomaly: usize, o: &Observation) -> String {
    let (ps, pq, s, q) = (o.prev_st_num, o.prev_sq_num, o.st_num, o.sq_num);
    match anomaly {
        0 => format!("stNum went back from {ps} to {s} (replay or publisher restart)"),
        1 => format!("stNum jumped from {ps} to {s} (states missed or injected)"),
        2 => format!("sqNum reset from {pq} to {q} while stNum stayed {s} (injected stream)"),
        3 => format!("sqNum went back from {pq} to {q} while stNum stayed {s} (replay)"),
        4 => format!("test/simulation flag set (stNum {s}, sqNum {q})"),
        _ => format!(
            "message after the time allowed to live ran out (stNum {ps}/sqNum {pq} then \
             {s}/{q})"
        ),
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: Mac,
    appid: u16,
    anomaly: u8,
    gocb_len: u8,
    gocb: [u8; MAX_REF],
    last: Observation,
    ep: Episode,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            mac: [0; 6],
            appid: 0,
            anomaly: 0,
            gocb_len: 0,
            gocb: [0; MAX_REF],
            last: Observation::default(),
            ep: Episode::default(),
        }
    }
}

fn publisher(mac: &Mac, appid: u16, gocb: &[u8]) -> String {
    format!(
        "GOOSE {} APPID 0x{appid:04x} {}",
        fmt_mac(mac),
        String::from_utf8_lossy(gocb)
    )
}

impl Entry {
    fn gocb(&self) -> &[u8] {
        self.gocb.get(..usize::from(self.gocb_len)).unwrap_or(&[])
    }

    fn finding(&self, cfg: &Basic, key: u64, now: Ts, n: u64, first: bool) -> Finding {
        let mut f = Finding::new(Kind::Goose, key, now);
        f.severity = cfg.severity;
        f.src_mac = Some(self.mac);
        f.proto = Some(Proto::Goose);
        let what = describe(usize::from(self.anomaly), &self.last);
        let who = publisher(&self.mac, self.appid, self.gocb());
        let name = NAMES.get(usize::from(self.anomaly)).copied().unwrap_or("?");
        f.detail = if first {
            format!("{who}: {name}: {what}")
        } else {
            format!("{who}: {name}: {n} more since the last report, latest: {what}")
        };
        f.count = n;
        f
    }
}

#[derive(Debug)]
pub(crate) struct Goose {
    map: Table<u64, Entry>,
    cursor: u32,
}

impl Goose {
    pub fn new() -> Self {
        Goose {
            map: Table::new(GOOSE_TABLE),
            cursor: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        cfg: &Basic,
        now: Ts,
        mac: Mac,
        appid: u16,
        gocb: &[u8],
        o: &Observation,
        out: &mut Vec<Finding>,
    ) {
        if !cfg.enabled || !o.is_anomalous() {
            return;
        }
        for (i, _) in anomalies(o).iter().enumerate().filter(|(_, a)| **a) {
            let name = NAMES.get(i).copied().unwrap_or("?");
            let key = key_of(&[b"goose", &mac, &appid.to_be_bytes(), gocb, name.as_bytes()]);
            let (s, _) = self.map.upsert(key);
            let Some(e) = self.map.get_mut(s) else {
                continue;
            };
            if e.ep.ongoing(now) {
                e.last = *o;
                if let Some(n) = e.ep.add(now, 1) {
                    out.push(e.finding(cfg, key, now, n, false));
                }
                continue;
            }
            if let Some(n) = e.ep.end() {
                out.push(e.finding(cfg, key, now, n, false));
            }
            let n = gocb.len().min(MAX_REF);
            *e = Entry {
                mac,
                appid,
                anomaly: i as u8,
                gocb_len: n as u8,
                last: *o,
                ..Entry::default()
            };
            if let (Some(d), Some(s)) = (e.gocb.get_mut(..n), gocb.get(..n)) {
                d.copy_from_slice(s);
            }
            e.ep.start(now);
            out.push(e.finding(cfg, key, now, 1, true));
        }
    }

    pub fn expired(&mut self, cfg: &Basic, now: Ts, e: &Expired<'_>, out: &mut Vec<Finding>) {
        if !cfg.enabled {
            return;
        }
        let key = key_of(&[
            b"goose_silent",
            &e.src,
            &e.appid.to_be_bytes(),
            e.gocb_ref,
            &e.last_seen.0.to_be_bytes(),
        ]);
        let mut f = Finding::new(Kind::Goose, key, now);
        f.severity = cfg.severity;
        f.src_mac = Some(e.src);
        f.proto = Some(Proto::Goose);
        f.detail = format!(
            "{}: silent, no message for {} ms after the last (time allowed to live {} ms, \
             stNum {}, sqNum {})",
            publisher(&e.src, e.appid, e.gocb_ref),
            now.saturating_sub(e.last_seen) / 1_000_000,
            e.time_allowed_to_live_ms,
            e.st_num,
            e.sq_num
        );
        out.push(f);
    }

    pub fn tick(&mut self, cfg: &Basic, now: Ts, out: &mut Vec<Finding>) {
        for slot in self.map.sweep_slots(&mut self.cursor, SWEEP) {
            let Some((key, e)) = self.map.entry_mut(slot) else {
                continue;
            };
            let key = *key;
            if let Some(n) = e.ep.tick(now)
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
        v.push(("goose", self.map.stats()));
    }

    pub fn memory_bytes(&self) -> usize {
        self.map.memory_bytes()
    }
}
