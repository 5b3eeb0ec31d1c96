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

/// Why a report body was refused. Each maps to one HTTP status and one `reason` label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More than the allowed bytes, compressed or after decompression (413).
    #[error("the report is larger than {max} bytes (after decompression)")]
    TooLarge { max: usize },
    /// Not a valid gzip stream (400).
    #[error("the body is not valid gzip: {0}")]
    Gzip(String),
    /// Not a JSON report (400).
    #[error("the body is not a valid report: {0}")]
    Malformed(String),
    /// A report of another version (400).
    #[error(
        "report version {got} is not supported (this collector reads version {REPORT_VERSION})"
    )]
    Version { got: u32 },
}

impl DecodeError {
    /// The `reason` label of `infrawatch_collector_rejected_reports_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Gzip(_) => "bad_gzip",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Version { .. } => "version",
        }
    }
}

/// The JSON text of a report body: gunzipped when `gzip` (never holding more than
/// `max_bytes + 1` decompressed bytes, so a decompression bomb costs bounded memory),
/// and checked against `max_bytes`. [`decode`] parses what it returns; a reader with its
/// own view of the document (the collector borrows the samples from the text) starts
/// from here, so the bounds are the same.
pub fn inflate(
    body: &[u8],
    gzip: bool,
    max_bytes: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    use std::io::Read;
    if gzip {
        let limit = u64::try_from(max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_bytes));
        flate2::read::MultiGzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| DecodeError::Gzip(e.to_string()))?;
        if out.len() > max_bytes {
            return Err(DecodeError::TooLarge { max: max_bytes });
        }
        Ok(std::borrow::Cow::Owned(out))
    } else {
        if body.len() > max_bytes {
            return Err(DecodeError::TooLarge { max: max_bytes });
        }
        Ok(std::borrow::Cow::Borrowed(body))
    }
}

/// Decodes a report body: [`inflate`]s it, parses the JSON and checks the version.
pub fn decode(body: &[u8], gzip: bool, max_bytes: usize) -> Result<Report, DecodeError> {
    let inflated = inflate(body, gzip, max_bytes)?;
    let json: &[u8] = &inflated;
    match serde_json::from_slice::<Report>(json) {
        Ok(r) if r.version == REPORT_VERSION => Ok(r),
        Ok(r) => Err(DecodeError::Version { got: r.version }),
        Err(e) => {
            // A report of another version may have other fields: name the version.
            #[derive(Deserialize)]
            struct VersionOnly {
                version: u32,
            }
            match serde_json::from_slice::<VersionOnly>(json) {
                Ok(v) if v.version != REPORT_VERSION => {
                    Err(DecodeError::Version { got: v.version })
                }
                _ => Err(DecodeError::Malformed(e.to_string())),
            }
        }
    }
}

/// Encodes a report as gzip-compressed JSON (what the agent posts).
pub fn encode(r: &Report) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail, and a Report always serialises (string keys only).
    if serde_json::to_writer(&mut enc, r).is_err() {
        return Vec::new();
    }
    let _ = enc.flush();
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn sample() -> Report {
        Report {
            version: REPORT_VERSION,
            agent: "substation-7-a".into(),
            boot: "b1".into(),
            seq: 3,
            sent_unix_ms: 1_700_000_000_000,
            agent_version: "0.1.0".into(),
            counters: vec![Sample {
                name: "infrawatch_packets_total".into(),
                labels: vec![
                    ("interface".into(), "eth1".into()),
                    ("protocol".into(), "modbus".into()),
                ],
                value: 42.0,
            }],
            gauges: vec![],
            assets: vec![AssetRecord {
                mac: Some("00:11:22:33:44:55".into()),
                ips: vec!["10.0.0.5".into()],
                first_seen: "2026-01-01T00:00:00Z".into(),
                last_seen: "2026-01-01T00:00:00Z".into(),
                ..AssetRecord::default()
            }],
            events: vec![EventRecord {
                store_seq: 7,
                id: "substation-7-a:b1:1".into(),
                version: 1,
                event: serde_json::json!({"kind": "port_scan"}),
            }],
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let bytes = encode(&r);
        assert_eq!(decode(&bytes, true, 1 << 20), Ok(r.clone()));
        let plain = serde_json::to_vec(&r).unwrap();
        assert_eq!(decode(&plain, false, 1 << 20), Ok(r));
    }

    #[test]
    fn decompression_bomb_is_too_large_with_bounded_memory() {
        // One gzip member of 8 MiB of zeros (about 8 KiB), repeated 1280 times: a
        // 10 MiB body that inflates to 10 GiB. The decoder stops after max + 1 bytes.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let member = enc.finish().unwrap();
        assert!(member.len() < 10 << 10, "{}", member.len());
        let bomb = member.repeat(1280);
        assert_eq!(
            decode(&bomb, true, 4 << 20),
            Err(DecodeError::TooLarge { max: 4 << 20 })
        );
        assert_eq!(
            decode(&member, true, 1 << 20),
            Err(DecodeError::TooLarge { max: 1 << 20 })
        );
    }

    #[test]
    fn a_plain_body_over_the_limit_is_too_large() {
        let plain = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(
            decode(&plain, false, 10),
            Err(DecodeError::TooLarge { max: 10 })
        );
        // Exactly at the limit is fine.
        assert!(decode(&plain, false, plain.len()).is_ok());
        let gz = encode(&sample());
        assert!(decode(&gz, true, plain.len()).is_ok());
        assert_eq!(
            decode(&gz, true, plain.len() - 1),
            Err(DecodeError::TooLarge {
                max: plain.len() - 1
            })
        );
    }

    #[test]
    fn garbage_and_truncation_are_refused() {
        assert!(matches!(
            decode(b"not gzip", true, 1024),
            Err(DecodeError::Gzip(_))
        ));
        let gz = encode(&sample());
        assert!(matches!(
            decode(&gz[..gz.len() / 2], true, 1 << 20),
            Err(DecodeError::Gzip(_))
        ));
        let e = decode(b"{\"version\":1}", false, 1024).unwrap_err();
        assert_eq!(e.reason(), "malformed");
        assert!(e.to_string().contains("missing field"), "{e}");
    }

    #[test]
    fn other_versions_are_named() {
        let mut r = sample();
        r.version = 2;
        let plain = serde_json::to_vec(&r).unwrap();
        assert_eq!(
            decode(&plain, false, 1 << 20),
            Err(DecodeError::Version { got: 2 })
        );
        assert_eq!(
            decode(b"{\"version\":9,\"whatever\":true}", false, 1024),
            Err(DecodeError::Version { got: 9 })
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), gzip: bool) {
            let _ = decode(&data, gzip, 256);
        }

        #[test]
        fn decode_never_panics_on_damaged_reports(pos in 0usize..4096, byte: u8) {
            let mut gz = encode(&sample());
            let n = gz.len();
            gz[pos % n] = byte;
            let _ = decode(&gz, true, 1 << 16);
        }
    }
}
