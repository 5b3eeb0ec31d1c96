//! Where `run` puts what the detectors found, and what it keeps across restarts.
//!
//! [`EventSink`]: each event version goes to the on-disk store ([`crate::store`]) first
//! — before anything else sees it — then to the log as one JSON line (journald fields
//! `EVENT_ID`, `EVENT_KIND`, … under systemd), then, with `[events] evidence = true`, the
//! packet that raised it to the event's evidence pcap. A store that cannot write (full
//! disk, unwritable directory) does not stop the agent: the event is still logged, the
//! failure counted (`store_errors`) and reported once per minute at most.
//!
//! [`Baseline`]: the site detectors' known conversations and assets, and the learnt
//! IP↔MAC bindings, saved atomically under `state_dir` every minute and at stop, loaded
//! at start, so a restart or an upgrade raises no `new_asset` storm.

use crate::capture::{Packet, Ts};
use crate::decode::Addr;
use crate::detect::Detection;
use crate::event::Event;
use crate::store::{Store, StoreConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Counters of the sink (metrics of the reporting issue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub events: u64,
    pub stored: u64,
    pub store_errors: u64,
    pub evidence_packets: u64,
    pub evidence_errors: u64,
}

/// The events' way out of the agent.
pub struct EventSink {
    store: Option<Store>,
    evidence: Option<crate::evidence::Evidence>,
    pub stats: SinkStats,
    last_error_log: Option<Instant>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("store", &self.store.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

/// First packets kept per event with `evidence = true`.
pub const EVIDENCE_PACKETS: usize = 16;

impl EventSink {
    /// Opens the store under `state_dir/events` (and the evidence directory when
    /// asked). A store that cannot be opened is logged and the agent runs on, logging
    /// events only.
    pub fn open(state_dir: &Path, events: &infrawatch_config::agent::EventsSection) -> EventSink {
        let cfg = StoreConfig::new(
            state_dir.join("events"),
            events.max_bytes.0.max(1 << 20),
            events.retention.0,
        );
        let store = match Store::open(cfg) {
            Ok((s, r)) => {
                if r.torn_records > 0 || r.corrupt_records > 0 {
                    tracing::warn!(
                        torn_records = r.torn_records,
                        torn_bytes = r.torn_bytes,
                        corrupt_records = r.corrupt_records,
                        "event store: a damaged tail was cut off (an interrupted write); every whole record was kept"
                    );
                }
                tracing::info!(
                    records = r.records,
                    next_seq = r.next_seq,
                    "event store opened"
                );
                Some(s)
            }
            Err(e) => {
                tracing::error!("event store unavailable, events are only logged: {e}");
                None
            }
        };
        let evidence = if events.evidence {
            // A tenth of the event store's bound, at most 256 MiB.
            let bound = (events.max_bytes.0 / 10).clamp(1 << 20, 256 << 20);
            match crate::evidence::Evidence::open(
                &state_dir.join("evidence"),
                bound,
                EVIDENCE_PACKETS,
            ) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!("evidence directory unavailable, no evidence kept: {e}");
                    None
                }
            }
        } else {
            None
        };
        EventSink {
            store,
            evidence,
            stats: SinkStats::default(),
            last_error_log: None,
        }
    }

    /// Stores, logs and (optionally) keeps evidence of `events`, emptying it. `pkt` is
    /// the packet that produced them (None for ticks).
    pub fn deliver(&mut self, events: &mut Vec<Event>, pkt: Option<&Packet<'_>>) {
        for e in events.drain(..) {
            self.stats.events += 1;
            let json = serde_json::to_string(&e).unwrap_or_default();
            if let Some(store) = self.store.as_mut() {
                // Stamped with the time it is written: retention counts from then (a
                // replayed capture's events carry old packet times).
                match store.append(crate::run::wall_now(), json.as_bytes()) {
                    Ok(_) => self.stats.stored += 1,
                    Err(err) => {
                        self.stats.store_errors += 1;
                        let due = self
                            .last_error_log
                            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
                        if due {
                            self.last_error_log = Some(Instant::now());
                            tracing::error!(
                                failures = self.stats.store_errors,
                                "event store write failed, the event is only logged: {err}"
                            );
                        }
                    }
                }
            }
            log_event(&e, &json);
            if let (Some(ev), Some(p)) = (self.evidence.as_mut(), pkt) {
                match ev.record(&e.id, p.ts, p.link, p.data, p.orig_len) {
                    Ok(true) => self.stats.evidence_packets += 1,
                    Ok(false) => {}
                    Err(_) => self.stats.evidence_errors += 1,
                }
            }
        }
    }

    /// Syncs the store (once a second from the supervisor) and applies its age bound.
    pub fn sync(&mut self, now: Ts) {
        if let Some(s) = self.store.as_mut() {
            if s.sync().is_err() {
                self.stats.store_errors += 1;
            }
            let _ = s.enforce_age(now);
        }
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The store's statistics (None without a store).
    pub fn store_stats(&self) -> Option<crate::store::StoreStats> {
        self.store.as_ref().map(Store::stats)
    }

    /// Unacknowledged records, oldest first, bounded (for the reporter). A read error
    /// is counted and logged at most once a minute; the reporter then sends none.
    pub fn unacked(&mut self, max_records: usize, max_bytes: usize) -> Vec<crate::store::Record> {
        let Some(store) = self.store.as_mut() else {
            return Vec::new();
        };
        let from = store.first_unacked();
        match store.read_from(from, max_records, max_bytes) {
            Ok(r) => r,
            Err(err) => {
                self.stats.store_errors += 1;
                self.log_error(&format!("reading unacknowledged events: {err}"));
                Vec::new()
            }
        }
    }

    /// Marks every record up to `upto` acknowledged by a collector.
    pub fn ack(&mut self, upto: u64) {
        if let Some(store) = self.store.as_mut()
            && let Err(err) = store.ack(upto)
        {
            self.stats.store_errors += 1;
            self.log_error(&format!("saving the acknowledgement: {err}"));
        }
    }

    fn log_error(&mut self, what: &str) {
        let due = self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if due {
            self.last_error_log = Some(Instant::now());
            tracing::error!(failures = self.stats.store_errors, "event store: {what}");
        }
    }
}

/// One event version in the log: a JSON line, with the main fields as structured fields
/// (journald: `EVENT_ID`, `EVENT_KIND`, `EVENT_SEVERITY`, `EVENT_VERSION`).
fn log_event(e: &Event, json: &str) {
    // Two arms because tracing's level must be a constant at each call site.
    match e.severity.as_str() {
        "critical" | "warning" => tracing::warn!(
            target: "infrawatch::event",
            event_id = %e.id,
            event_kind = %e.kind,
            event_severity = %e.severity,
            event_version = e.version,
            "{json}"
        ),
        _ => tracing::info!(
            target: "infrawatch::event",
            event_id = %e.id,
            event_kind = %e.kind,
            event_severity = %e.severity,
            event_version = e.version,
            "{json}"
        ),
    }
}

/// What is kept of the site detectors across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub conversations: Vec<u64>,
    pub assets: Vec<u64>,
    /// Learnt IP↔MAC bindings (`arp_spoof`).
    pub bindings: Vec<(String, String)>,
    /// The devices seen, restored into the asset table at start.
    #[serde(default)]
    pub devices: Vec<crate::asset::SavedAsset>,
}

/// The baseline file of a capture source.
pub fn baseline_path(state_dir: &Path, source: &str) -> PathBuf {
    let safe: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join(format!("baseline-{safe}.json"))
}

impl Baseline {
    /// What an engine knows now.
    pub fn of(d: &Detection, assets: &crate::asset::Assets) -> Baseline {
        let (conversations, asset_keys) = d.site.baseline();
        let bindings = d
            .independent
            .bindings()
            .into_iter()
            .map(|(ip, mac)| (ip.to_ip().to_string(), crate::decode::fmt_mac(&mac)))
            .collect();
        Baseline {
            conversations,
            assets: asset_keys,
            bindings,
            devices: assets.save(),
        }
    }

    /// Seeds an engine's detectors and asset table.
    pub fn seed(&self, d: &mut Detection, assets: &mut crate::asset::Assets) {
        assets.restore(&self.devices);
        d.site.seed_baseline(&self.conversations, &self.assets);
        for (ip, mac) in &self.bindings {
            if let (Ok(ip), Some(mac)) = (
                ip.parse::<std::net::IpAddr>(),
                infrawatch_config::filter::parse_mac(mac),
            ) {
                d.independent.seed_binding(Addr::from_ip(ip), mac, false);
            }
        }
    }

    pub fn load(path: &Path) -> Option<Baseline> {
        match crate::statefile::read_json::<Baseline>(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("{e}; starting with an empty baseline");
                None
            }
        }
    }

    pub fn save(&self, path: &Path) {
        if let Err(e) = crate::statefile::write_json(path, self) {
            tracing::warn!("saving the baseline: {e}");
        }
    }
}
