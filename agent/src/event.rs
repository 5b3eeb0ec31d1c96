//! Events: what an operator is told (DESIGN.md, "Detection": an anomaly is a counter
//! increment and an event).
//!
//! [`Events`] folds the detectors' [`Finding`]s into events. An event has an id (agent,
//! boot id, sequence) and a version: a finding whose (kind, key) matches an open event
//! updates its count and last time instead of opening another, so a long scan is one
//! event with growing versions, not one event per packet. A new event's first version
//! is emitted at once; updates are emitted at most every [`UPDATE_EVERY_NS`] of packet
//! time (and when the event closes), so a flood costs a handful of writes. Open events
//! close after [`CLOSE_AFTER_NS`] without findings. The table of open events is bounded
//! ([`MAX_OPEN`]); the least recently updated is closed to make room (counted).
//!
//! Emitted versions wait in [`Events::outbox`]; the driver (replay, run) writes them to
//! the on-disk store before logging or reporting them.

use crate::capture::Ts;
use crate::detect::{Finding, Kind, class_severity};
use crate::lru::LruMap;
use infrawatch_config::policy::{Level, Policy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Open events, at most.
pub const MAX_OPEN: usize = 4096;
/// An open event's update is emitted at most this often (packet time).
pub const UPDATE_EVERY_NS: u64 = 10_000_000_000;
/// An event with no finding for this long is closed.
pub const CLOSE_AFTER_NS: u64 = 300_000_000_000;

/// One version of an event, as stored, logged and reported (field names are the
/// contract of DESIGN.md's replay JSON and the collector's events API).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `agent:boot:sequence`.
    pub id: String,
    pub version: u32,
    pub kind: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    pub detail: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Packet times in nanoseconds since 1970 (for ordering and retention).
    pub first_ns: u64,
    pub last_ns: u64,
    /// sha256 of the policy in force ("" without a policy).
    pub policy_sha256: String,
    /// The event is closed: this is its last version.
    #[serde(default)]
    pub closed: bool,
}

/// Where event ids come from: shared by the engines of one agent.
#[derive(Debug)]
pub struct IdSource {
    pub agent: String,
    pub boot: String,
    next: AtomicU64,
}

impl IdSource {
    pub fn new(agent: &str, boot: &str) -> Arc<IdSource> {
        Arc::new(IdSource {
            agent: agent.to_string(),
            boot: boot.to_string(),
            next: AtomicU64::new(1),
        })
    }
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}:{}:{}", self.agent, self.boot, n)
    }
}

/// What the event layer needs of the policy in force to name things.
pub trait Namer {
    /// Name of `[[allow]]` rule `i`.
    fn rule_name(&self, i: u16) -> Option<&str>;
    /// Severity the rule sets for its anomalies.
    fn rule_severity(&self, i: u16) -> Option<Level>;
    /// Zone of an address.
    fn zone_name(&self, ip: crate::decode::Addr) -> Option<&str>;
    /// The policy's severity override of a kind.
    fn kind_severity(&self, kind: Kind) -> Option<Level>;
    fn sha256(&self) -> &str;
}

/// Without a policy: nothing to name, no overrides.
pub struct NoPolicy;

impl Namer for NoPolicy {
    fn rule_name(&self, _: u16) -> Option<&str> {
        None
    }
    fn rule_severity(&self, _: u16) -> Option<Level> {
        None
    }
    fn zone_name(&self, _: crate::decode::Addr) -> Option<&str> {
        None
    }
    fn kind_severity(&self, _: Kind) -> Option<Level> {
        None
    }
    fn sha256(&self) -> &str {
        ""
    }
}

/// The severity overrides of a policy's `[detectors.*]` sections.
pub fn policy_kind_severity(p: &Policy, kind: Kind) -> Option<Level> {
    let d = &p.detectors;
    match kind {
        Kind::PolicyViolation => d.policy_violation.severity,
        Kind::IcsCommand => d.ics_command.severity,
        Kind::NewAsset => d.new_asset.severity,
        Kind::NewConversation => d.new_conversation.severity,
        Kind::PortScan => d.port_scan.severity,
        Kind::SynFlood => d.syn_flood.severity,
        Kind::ArpSpoof => d.arp_spoof.severity,
        Kind::RateAnomaly => d.rate_anomaly.severity,
        Kind::Malformed => d.malformed.severity,
        Kind::Goose => d.goose.severity,
        Kind::Silence => d.silence.severity,
        Kind::Capture => d.capture.severity,
    }
}

#[derive(Clone, Debug, Default)]
struct Open {
    event: Event,
    /// `event.severity` as a level (the highest a finding of the event had).
    level: Option<Level>,
    /// Packet time of the last emitted version.
    emitted_ns: u64,
    dirty: bool,
}

/// Anomaly counters: `infrawatch_anomalies_total{kind, severity}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnomalyCounts(pub [[u64; 3]; Kind::COUNT]);

impl AnomalyCounts {
    pub fn bump(&mut self, kind: Kind, level: Level) {
        if let Some(row) = self.0.get_mut(kind.index())
            && let Some(c) = row.get_mut(level_index(level))
        {
            *c += 1;
        }
    }
    pub fn get(&self, kind: Kind, level: Level) -> u64 {
        self.0
            .get(kind.index())
            .and_then(|r| r.get(level_index(level)))
            .copied()
            .unwrap_or(0)
    }
    pub fn add(&mut self, o: &AnomalyCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            for (x, y) in a.iter_mut().zip(b.iter()) {
                *x += y;
            }
        }
    }
}

fn level_index(l: Level) -> usize {
    match l {
        Level::Critical => 0,
        Level::Warning => 1,
        Level::Info => 2,
    }
}

/// The event layer of one engine.
#[derive(Debug)]
pub struct Events {
    ids: Arc<IdSource>,
    open: LruMap<(u8, u64), Open>,
    /// Versions to store, in order.
    pub outbox: Vec<Event>,
    pub counts: AnomalyCounts,
    /// Open events closed early to make room.
    pub evictions: u64,
    last_sweep_sec: u64,
    /// Open events with an update not emitted yet (the tick's sweep is skipped at 0).
    dirty: usize,
}

impl Events {
    pub fn new(ids: Arc<IdSource>) -> Self {
        Events {
            ids,
            open: LruMap::with_capacity(MAX_OPEN),
            outbox: Vec::new(),
            counts: AnomalyCounts::default(),
            evictions: 0,
            last_sweep_sec: 0,
            dirty: 0,
        }
    }

    /// The severity a finding gets: its own, its rule's, the policy's for the kind,
    /// then DESIGN.md's default (by class for commands).
    pub fn severity(f: &Finding, namer: &dyn Namer) -> Level {
        if let Some(s) = f.severity {
            return s;
        }
        if let Some(s) = f.rule.and_then(|r| namer.rule_severity(r)) {
            return s;
        }
        if let Some(s) = namer.kind_severity(f.kind) {
            return s;
        }
        match (f.kind, f.cmd) {
            (Kind::IcsCommand, Some(c)) => class_severity(c.class()),
            (k, _) => k.default_severity(),
        }
    }

    /// Folds one finding in: a new event, or an update of the open one.
    pub fn fold(&mut self, f: Finding, namer: &dyn Namer) {
        let level = Self::severity(&f, namer);
        self.counts.bump(f.kind, level);
        let ts = f.ts.0;
        let epoch = f.ts.secs() as u32;
        let key = (f.kind.index() as u8, f.key);
        if let Some(slot) = self.open.find(&key) {
            self.open.touch(slot, epoch);
            if let Some(o) = self.open.get_mut(slot) {
                o.event.count = o.event.count.saturating_add(f.count);
                if ts > o.event.last_ns {
                    o.event.last_ns = ts;
                    o.event.last_seen = f.ts.rfc3339();
                }
                if o.level.is_none_or(|l| level > l) {
                    o.level = Some(level);
                    o.event.severity = level.name().to_string();
                }
                if !f.detail.is_empty() {
                    o.event.detail = f.detail;
                }
                if ts.saturating_sub(o.emitted_ns) >= UPDATE_EVERY_NS {
                    o.event.version += 1;
                    o.emitted_ns = ts;
                    if o.dirty {
                        o.dirty = false;
                        self.dirty = self.dirty.saturating_sub(1);
                    }
                    self.outbox.push(o.event.clone());
                } else if !o.dirty {
                    o.dirty = true;
                    self.dirty += 1;
                }
            }
            return;
        }
        let event = Event {
            id: self.ids.next(),
            version: 1,
            kind: f.kind.name().to_string(),
            severity: level.name().to_string(),
            src: f.src.map(|a| a.to_ip().to_string()),
            dst: f.dst.map(|a| a.to_ip().to_string()),
            src_mac: f.src_mac.as_ref().map(crate::decode::fmt_mac),
            dst_mac: f.dst_mac.as_ref().map(crate::decode::fmt_mac),
            src_zone: f.src.and_then(|a| namer.zone_name(a)).map(str::to_string),
            dst_zone: f.dst.and_then(|a| namer.zone_name(a)).map(str::to_string),
            protocol: f
                .proto
                .or(f.cmd.map(|c| c.proto()))
                .map(|p| p.name().to_string()),
            command: f.cmd.map(|c| c.name().to_string()),
            class: f.cmd.map(|c| c.class().name().to_string()),
            rule: f.rule.and_then(|r| namer.rule_name(r)).map(str::to_string),
            violation: f.violation.map(|v| v.name().to_string()),
            detail: f.detail,
            count: f.count,
            first_seen: f.ts.rfc3339(),
            last_seen: f.ts.rfc3339(),
            first_ns: ts,
            last_ns: ts,
            policy_sha256: namer.sha256().to_string(),
            closed: false,
        };
        self.outbox.push(event.clone());
        let (_, evicted) = self.open.insert(
            key,
            Open {
                event,
                level: Some(level),
                emitted_ns: ts,
                dirty: false,
            },
            epoch,
        );
        if let Some((_, old)) = evicted {
            self.evictions += 1;
            self.close(old);
        }
    }

    fn close(&mut self, mut o: Open) {
        if o.dirty {
            self.dirty = self.dirty.saturating_sub(1);
        }
        o.event.closed = true;
        o.event.version += 1;
        self.outbox.push(o.event);
    }

    /// Once per second of packet time: emits due updates, closes idle events.
    pub fn tick(&mut self, now: Ts) {
        if now.secs() == self.last_sweep_sec {
            return;
        }
        self.last_sweep_sec = now.secs();
        // Idle events are the least recently touched: close from the oldest end.
        while let Some(slot) = self.open.oldest() {
            let idle = self
                .open
                .get(slot)
                .is_some_and(|o| now.0.saturating_sub(o.event.last_ns) >= CLOSE_AFTER_NS);
            if !idle {
                break;
            }
            match self.open.remove(slot) {
                Some((_, o)) => self.close(o),
                None => break,
            }
        }
        // Due updates: bounded by the table size, and only when some event has one.
        if self.dirty == 0 {
            return;
        }
        let slots: Vec<u32> = self.open.iter_slots().collect();
        for slot in slots {
            if let Some(o) = self.open.get_mut(slot)
                && o.dirty
                && now.0.saturating_sub(o.emitted_ns) >= UPDATE_EVERY_NS
            {
                o.event.version += 1;
                o.emitted_ns = now.0;
                o.dirty = false;
                self.dirty = self.dirty.saturating_sub(1);
                self.outbox.push(o.event.clone());
            }
        }
    }

    /// End of a run: every open event's last version (replay end, shutdown).
    pub fn close_all(&mut self) {
        while let Some(slot) = self.open.oldest() {
            match self.open.remove(slot) {
                Some((_, o)) => self.close(o),
                None => break,
            }
        }
    }

    /// Whether findings of (kind, key) would update an open event.
    pub fn is_open(&self, kind: Kind, key: u64) -> bool {
        self.open.find(&(kind.index() as u8, key)).is_some()
    }

    pub fn open_events(&self) -> usize {
        self.open.len()
    }
}
