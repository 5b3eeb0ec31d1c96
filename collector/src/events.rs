//! The collector's event store: every event version it accepted, upserted by (id,
//! version), durable before the agent is told so.
//!
//! On disk, `state_dir/events.jsonl`: one JSON object per line (`received_ms`, `agent`,
//! `id`, `version`, `event`), appended and fsynced once per report before the `Ack`.
//! On start the file is read into an index keeping the highest version per id (a torn
//! last line, from a crash mid-write, is skipped and cut), events older than the
//! retention are dropped, and the file is rewritten compactly (to a temporary file,
//! fsynced, renamed) — again whenever superseded versions make up most of it. A write
//! that fails (a full disk) is cut back to the last whole line and reported, so the
//! report is refused (503) and the agent resends it.

use infrawatch_config::report::EventRecord;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One stored event version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// When the collector received it (ms since 1970): retention is by this.
    pub received_ms: u64,
    pub agent: String,
    pub id: String,
    pub version: u32,
    pub event: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The store: the append-only file and the index of the newest version per id.
#[derive(Debug)]
pub struct EventStore {
    path: PathBuf,
    file: File,
    index: HashMap<String, Stored>,
    retention_ms: u64,
    /// The cap on events held; past it the oldest tenth is dropped.
    max_events: usize,
    /// Lines skipped when opening (torn or unreadable).
    pub skipped_on_open: u64,
    /// Lines in the file (every version appended since the last compaction).
    lines: u64,
}

/// What an upsert did.
#[derive(Debug, Default)]
pub struct Upserted {
    /// Versions written now.
    pub stored: u64,
    /// Versions already held (or older than the one held).
    pub duplicates: u64,
    /// The versions written now (for forwarding).
    pub fresh: Vec<Stored>,
    /// Events dropped from the index because the store was over `max_events`.
    pub evicted: u64,
}

impl EventStore {
    /// Opens (creating the directory and the file) and rebuilds the index, then
    /// compacts the file. A full or read-only disk does not stop the collector here: if
    /// compaction cannot be written the file stays as it was (its torn tail cut), and
    /// the error shows at the first upsert, which the agent retries.
    pub fn open(
        dir: &Path,
        retention_ms: u64,
        max_events: usize,
        now_ms: u64,
    ) -> Result<EventStore, StoreError> {
        let path = dir.join("events.jsonl");
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut index: HashMap<String, Stored> = HashMap::new();
        let mut skipped = 0;
        let mut lines = 0;
        // The length up to the last whole line: a torn tail is cut before appending.
        let mut whole = 0u64;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(io)?;
                whole += line.len() as u64 + 1;
                if line.is_empty() {
                    continue;
                }
                lines += 1;
                match serde_json::from_slice::<Stored>(&line) {
                    Ok(s) => insert_newest(&mut index, s),
                    Err(_) => skipped += 1,
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < whole {
            // The last line had no newline: it was torn (and skipped above).
            whole = whole.saturating_sub(1);
        }
        if len > whole {
            file.set_len(whole).map_err(io)?;
        }
        index.retain(|_, s| now_ms.saturating_sub(s.received_ms) <= retention_ms);
        let mut store = EventStore {
            path,
            file,
            index,
            retention_ms,
            max_events: max_events.max(1),
            skipped_on_open: skipped,
            lines,
        };
        store.evict_over_cap();
        if let Err(e) = store.compact() {
            tracing::warn!("{e}; keeping the event store uncompacted");
        }
        Ok(store)
    }

    /// Rewrites the file with only the newest version of each event held (to a
    /// temporary file, fsynced, renamed over), and appends to the new file from then on.
    /// On failure the old file is kept and the temporary one removed.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("jsonl.tmp");
        let written = (|| -> std::io::Result<File> {
            let mut w = std::io::BufWriter::new(File::create(&tmp)?);
            let mut all: Vec<&Stored> = self.index.values().collect();
            all.sort_by_key(|s| s.received_ms);
            for s in all {
                serde_json::to_writer(&mut w, s)?;
                w.write_all(b"\n")?;
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            OpenOptions::new().append(true).open(&self.path)
        })();
        match written {
            Ok(file) => {
                self.file = file;
                self.lines = self.index.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(io(e))
            }
        }
    }

    /// Stores the versions not held yet, appended in one write and fsynced, so that on
    /// `Ok` every version of `records` (or a newer one) is durable.
    pub fn upsert(
        &mut self,
        agent: &str,
        records: &[EventRecord],
        now_ms: u64,
    ) -> Result<Upserted, StoreError> {
        let mut out = Upserted::default();
        let mut buf = Vec::new();
        let mut fresh = Vec::new();
        for r in records {
            let held = self.index.get(&r.id).map(|s| s.version);
            let dup_in_batch = fresh
                .iter()
                .any(|s: &Stored| s.id == r.id && s.version >= r.version);
            if held.is_some_and(|v| v >= r.version) || dup_in_batch {
                out.duplicates += 1;
                continue;
            }
            let s = Stored {
                received_ms: now_ms,
                agent: agent.to_string(),
                id: r.id.clone(),
                version: r.version,
                event: r.event.clone(),
            };
            if serde_json::to_writer(&mut buf, &s).is_err() {
                continue;
            }
            buf.push(b'\n');
            fresh.push(s);
        }
        if !buf.is_empty() {
            let io = |source| StoreError::Io {
                path: self.path.clone(),
                source,
            };
            let before = self.file.metadata().map_err(io)?.len();
            if let Err(e) = self
                .file
                .write_all(&buf)
                .and_then(|()| self.file.sync_data())
            {
                // A full disk may have taken part of the batch: cut it, so the next
                // append starts on a line of its own and nothing half-written is read
                // back. The agent resends the whole batch.
                let _ = self.file.set_len(before);
                return Err(io(e));
            }
            self.lines += fresh.len() as u64;
        }
        out.stored = fresh.len() as u64;
        for s in &fresh {
            insert_newest(&mut self.index, s.clone());
        }
        out.fresh = fresh;
        out.evicted = self.evict_over_cap() as u64;
        // Updates append versions; compact once the file is mostly superseded ones, so
        // it stays within a small multiple of what is held (a failure only postpones).
        if self.lines > 2 * self.index.len() as u64 + 10_000
            && let Err(e) = self.compact()
        {
            tracing::warn!("{e}; compaction postponed");
        }
        Ok(out)
    }

    /// Caps the events held (`[storage] max_events`).
    pub fn set_max_events(&mut self, max: usize) {
        self.max_events = max.max(1);
        self.evict_over_cap();
    }

    /// Over the cap, drops the oldest tenth of the cap (by arrival) from the index, so
    /// eviction is rare and amortised; returns how many.
    fn evict_over_cap(&mut self) -> usize {
        if self.index.len() <= self.max_events {
            return 0;
        }
        let target = self.max_events - self.max_events / 10;
        let mut by_age: Vec<(u64, String)> = self
            .index
            .values()
            .map(|s| (s.received_ms, s.id.clone()))
            .collect();
        by_age.sort_unstable();
        let n = self.index.len() - target;
        for (_, id) in by_age.into_iter().take(n) {
            self.index.remove(&id);
        }
        n
    }

    /// Drops events older than the retention from the index (the file follows at the
    /// next compaction).
    pub fn enforce_retention(&mut self, now_ms: u64) -> usize {
        let before = self.index.len();
        let keep = self.retention_ms;
        self.index
            .retain(|_, s| now_ms.saturating_sub(s.received_ms) <= keep);
        before - self.index.len()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Stored> {
        self.index.get(id)
    }

    /// The events matching `q`, newest first (by the event's `last_ns`, then arrival).
    pub fn query(&self, q: &Query) -> Vec<&Stored> {
        let field =
            |s: &Stored, k: &str| s.event.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let mut out: Vec<&Stored> = self
            .index
            .values()
            .filter(|s| q.agent.as_ref().is_none_or(|a| &s.agent == a))
            .filter(|s| {
                q.kind
                    .as_ref()
                    .is_none_or(|k| field(s, "kind").as_ref() == Some(k))
            })
            .filter(|s| {
                q.severity
                    .as_ref()
                    .is_none_or(|k| field(s, "severity").as_ref() == Some(k))
            })
            .filter(|s| q.since_ns.is_none_or(|t| event_time_ns(s) >= t))
            .collect();
        out.sort_by(|a, b| {
            (event_time_ns(b), b.received_ms, &b.id).cmp(&(event_time_ns(a), a.received_ms, &a.id))
        });
        out.truncate(q.limit);
        out
    }
}

/// The time of an event: its `last_ns`, else when it arrived.
fn event_time_ns(s: &Stored) -> u64 {
    s.event
        .get("last_ns")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(s.received_ms.saturating_mul(1_000_000))
}

fn insert_newest(index: &mut HashMap<String, Stored>, s: Stored) {
    match index.get(&s.id) {
        Some(held) if held.version >= s.version => {}
        _ => {
            index.insert(s.id.clone(), s);
        }
    }
}

/// A query of `GET /api/v1/events`.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub since_ns: Option<u64>,
    pub kind: Option<String>,
    pub agent: Option<String>,
    pub severity: Option<String>,
    pub limit: usize,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;

    fn rec(seq: u64, id: &str, version: u32, kind: &str) -> EventRecord {
        EventRecord {
            store_seq: seq,
            id: id.into(),
            version,
            event: serde_json::json!({"kind": kind, "severity": "high", "last_ns": seq * 1_000_000_000}),
        }
    }

    #[test]
    fn upsert_keeps_the_newest_version_once_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EventStore::open(dir.path(), 3_600_000, usize::MAX, 0).unwrap();
        let batch = [
            rec(1, "a:b:1", 1, "port_scan"),
            rec(2, "a:b:1", 2, "port_scan"),
        ];
        let u = s.upsert("a", &batch, 10).unwrap();
        assert_eq!((u.stored, u.duplicates, u.fresh.len()), (2, 0, 2));
        // Replayed: nothing new.
        let u = s.upsert("a", &batch, 11).unwrap();
        assert_eq!((u.stored, u.duplicates, u.fresh.len()), (0, 2, 0));
        s.upsert("a", &[rec(3, "a:b:2", 1, "syn_flood")], 12)
            .unwrap();
        assert_eq!(s.len(), 2);
        drop(s);
        // A torn tail from a crash is skipped.
        let path = dir.path().join("events.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"received_ms\":1,\"ag").unwrap();
        drop(f);
        let s = EventStore::open(dir.path(), 3_600_000, usize::MAX, 100).unwrap();
        assert_eq!(s.skipped_on_open, 1);
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("a:b:1").unwrap().version, 2);
        // Compacted: one line per event.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn the_store_is_capped_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EventStore::open(dir.path(), 3_600_000, usize::MAX, 0).unwrap();
        s.set_max_events(10);
        for i in 0..10u64 {
            let u = s
                .upsert("a", &[rec(i, &format!("a:b:{i}"), 1, "k")], i)
                .unwrap();
            assert_eq!(u.evicted, 0);
        }
        let u = s.upsert("a", &[rec(10, "a:b:10", 1, "k")], 10).unwrap();
        assert_eq!(u.evicted, 2);
        assert_eq!(s.len(), 9);
        assert!(s.get("a:b:0").is_none() && s.get("a:b:1").is_none());
        assert!(s.get("a:b:10").is_some());
    }

    #[test]
    fn superseded_versions_are_compacted_away_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EventStore::open(dir.path(), 3_600_000, usize::MAX, 0).unwrap();
        // One long-lived event updated 10,050 times: the file is compacted to one line.
        let versions: Vec<EventRecord> = (1..=10_050)
            .map(|v| rec(1, "a:b:1", v, "syn_flood"))
            .collect();
        s.upsert("a", &versions, 1).unwrap();
        let path = dir.path().join("events.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{}", text.len());
        assert_eq!(s.get("a:b:1").unwrap().version, 10_050);
        // A crash mid-append leaves a line without its newline: cut on open, and the
        // next append starts on a line of its own.
        drop(s);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"received_ms\":1,\"agent\":\"a\",\"id\":\"a:b:2\",\"ver")
            .unwrap();
        drop(f);
        let mut s = EventStore::open(dir.path(), 3_600_000, usize::MAX, 2).unwrap();
        assert_eq!(s.skipped_on_open, 1);
        s.upsert("a", &[rec(2, "a:b:2", 1, "port_scan")], 2)
            .unwrap();
        drop(s);
        let s = EventStore::open(dir.path(), 3_600_000, usize::MAX, 3).unwrap();
        assert_eq!(s.skipped_on_open, 0);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn retention_and_queries() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EventStore::open(dir.path(), 1_000, usize::MAX, 0).unwrap();
        s.upsert("a", &[rec(1, "a:b:1", 1, "port_scan")], 0)
            .unwrap();
        s.upsert("b", &[rec(2, "b:b:1", 1, "syn_flood")], 500)
            .unwrap();
        let all = s.query(&Query {
            limit: 10,
            ..Query::default()
        });
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, "b:b:1"); // newest first
        let q = Query {
            kind: Some("port_scan".into()),
            limit: 10,
            ..Query::default()
        };
        assert_eq!(s.query(&q).len(), 1);
        let q = Query {
            since_ns: Some(2_000_000_000),
            limit: 10,
            ..Query::default()
        };
        assert_eq!(s.query(&q)[0].agent, "b");
        assert_eq!(s.enforce_retention(1_200), 1);
        drop(s);
        let s = EventStore::open(dir.path(), 1_000, usize::MAX, 2_000).unwrap();
        assert!(s.is_empty());
    }
}
