//! The report an agent sends its collector (DESIGN.md, "Agent → collector"):
//! `POST /api/v1/reports`, a versioned JSON document, gzip-compressed
//! (`Content-Encoding: gzip`).
//!
//! Counters are cumulative since the agent's boot, so a lost report loses nothing; the
//! collector keeps the latest per agent. Events are versions from the agent's on-disk
//! store not yet acknowledged; the collector upserts them by (id, version) and answers
//! with an [`Ack`] naming the highest store sequence it has made durable, which the
//! agent then marks in its store.
//!
//! INTERFACE FROZEN (types and wire names): the agent's reporter and the collector's
//! ingest code against it. Helpers for encoding/decoding with bounded decompression
//! are to be added below the types.

use serde::{Deserialize, Serialize};

/// The version this build writes; the collector refuses others with 400.
pub const REPORT_VERSION: u32 = 1;

/// The path reports are posted to.
pub const REPORT_PATH: &str = "/api/v1/reports";

/// One report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The agent's id (`[agent] id`); must match its certificate's identity.
    pub agent: String,
    /// Random per agent process: counters restart from 0 with a new boot.
    pub boot: String,
    /// Report sequence within the boot, from 1.
    pub seq: u64,
    /// When the agent built the report, ms since 1970 (wall clock).
    pub sent_unix_ms: u64,
    /// The agent's version (`infrawatch_build_info`).
    pub agent_version: String,
    /// Cumulative counters since boot (`_total` series).
    pub counters: Vec<Sample>,
    /// Gauges, as of now.
    pub gauges: Vec<Sample>,
    /// Devices that changed since the last acknowledged report (all of them after a
    /// boot).
    pub assets: Vec<AssetRecord>,
    /// Event versions from the store, oldest first, not yet acknowledged.
    pub events: Vec<EventRecord>,
}

/// One series: a metric name (`infrawatch_packets_total`, without the `agent` label —
/// the collector adds it), its labels (bounded values only), its value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub name: String,
    /// Label pairs, sorted by name, no duplicates.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One event version, as the agent stored it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Sequence number of the record in the agent's store (what [`Ack`] refers to).
    pub store_seq: u64,
    /// The event's id (`agent:boot:sequence`) and version: the upsert key.
    pub id: String,
    pub version: u32,
    /// The whole event as the agent's event layer wrote it (JSON object).
    pub event: serde_json::Value,
}

/// A device as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRecord {
    /// `aa:bb:cc:dd:ee:ff` when known.
    pub mac: Option<String>,
    pub ips: Vec<String>,
    /// Vendor from the OUI table.
    pub oui_vendor: Option<String>,
    /// Identity told by a protocol (Modbus 43/14, CIP ListIdentity, S7 SZL, …).
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub serial: Option<String>,
    pub name: Option<String>,
    /// `modbus_server`, `s7comm_client`, …
    pub roles: Vec<String>,
    /// Policy zone of its address, when a policy is in force.
    pub zone: Option<String>,
    /// RFC 3339.
    pub first_seen: String,
    pub last_seen: String,
}

/// The collector's answer to an accepted report (200, JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// The report's `seq`.
    pub seq: u64,
    /// Every event record with `store_seq <= events_upto` is stored durably (0: none).
    pub events_upto: u64,
}
