//! The report of `replay` (and of `run`'s summaries): `--format json` is the stable
//! interface of DESIGN.md ("Command line"), the table is for people.

use crate::asset::{Asset, Assets, OwnedIdentity};
use crate::command::Cmd;
use crate::decode::{Layer, fmt_mac};
use crate::dissect::Violation;
use crate::engine::FlowSummary;
use crate::proto::Proto;
use crate::stats::Counters;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ProtoSummary {
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub pdus: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TopFlow {
    pub protocol: &'static str,
    pub client: String,
    pub server: String,
    pub transport: &'static str,
    pub vlan: u16,
    pub packets: u64,
    pub bytes: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AssetSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oui_vendor: Option<&'static str>,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<OwnedIdentity>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub router: bool,
    pub first_seen: String,
    pub last_seen: String,
}

/// A capture interface of `run` (absent for replayed files).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InterfaceSummary {
    pub interface: String,
    pub up: bool,
    /// Frames the kernel dropped before the agent read them (PACKET_STATISTICS).
    pub kernel_drops: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_packet: Option<String>,
}

/// Counters that are not per protocol.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Health {
    pub truncated_frames: u64,
    pub ip_fragments: u64,
    pub orphan_fragments: u64,
    pub flow_evictions: u64,
    pub flows_expired: u64,
    pub stream_gaps: u64,
    pub retransmitted_bytes: u64,
    pub reassembly_exhausted: u64,
    pub ics_sessions_exhausted: u64,
    pub asset_evictions: u64,
    pub cleartext_credentials: u64,
    pub test_messages: u64,
    pub goose_publishers: u64,
    pub goose_st_num_back: u64,
    pub goose_st_num_jump: u64,
    pub goose_sq_num_reset: u64,
    pub goose_test: u64,
    pub redundancy_frames: u64,
    pub redundancy_duplicates: u64,
}

/// The JSON object `replay --format json` prints (field order as DESIGN.md shows).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub files: usize,
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: BTreeMap<&'static str, u64>,
    pub protocols: BTreeMap<&'static str, ProtoSummary>,
    pub flows: u64,
    pub assets: usize,
    pub ics_commands: BTreeMap<String, u64>,
    pub ics_responses: BTreeMap<String, u64>,
    pub anomalies: Vec<serde_json::Value>,
    /// Events by `kind/severity`.
    pub anomaly_totals: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub packets_per_second: u64,
    /// Protocol violations by name (input of the `malformed` detector).
    pub violations: BTreeMap<&'static str, u64>,
    /// Files that could not be read to their end, and why.
    pub file_errors: Vec<FileError>,
    pub health: Health,
    pub top_flows: Vec<TopFlow>,
    pub asset_inventory: Vec<AssetSummary>,
    /// The policy in force and its reloads (`run` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyStatus>,
    /// Live capture interfaces (`run` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceSummary>,
}

fn nonzero<K: Ord, I: IntoIterator<Item = (K, u64)>>(it: I) -> BTreeMap<K, u64> {
    it.into_iter().filter(|(_, v)| *v > 0).collect()
}

impl Summary {
    pub fn build(
        c: &Counters,
        files: usize,
        top: &[FlowSummary],
        assets: &Assets,
        file_errors: Vec<FileError>,
        elapsed_s: f64,
    ) -> Summary {
        let protocols = Proto::ALL
            .iter()
            .map(|p| (p.name(), c.proto_ref(*p)))
            .filter(|(_, pc)| pc.packets > 0 || pc.pdus > 0)
            .map(|(n, pc)| {
                (
                    n,
                    ProtoSummary {
                        packets: pc.packets,
                        bytes: pc.bytes,
                        flows: pc.flows,
                        pdus: pc.pdus,
                    },
                )
            })
            .collect();
        let mut ics_responses = nonzero(Cmd::ALL.iter().map(|cmd| {
            (
                cmd.key(),
                c.responses.get(cmd.index()).copied().unwrap_or(0),
            )
        }));
        for p in Proto::ALL {
            let n = c.exceptions.get(p.index()).copied().unwrap_or(0);
            if n > 0 {
                ics_responses.insert(format!("{}/exception", p.name()), n);
            }
        }
        Summary {
            files,
            packets: c.packets,
            bytes: c.bytes,
            decode_errors: nonzero(Layer::ALL.iter().map(|l| {
                (
                    l.name(),
                    c.decode_errors.get(l.index()).copied().unwrap_or(0),
                )
            })),
            protocols,
            flows: c.flows_created,
            assets: assets.len(),
            ics_commands: nonzero(
                Cmd::ALL
                    .iter()
                    .map(|cmd| (cmd.key(), c.commands.get(cmd.index()).copied().unwrap_or(0))),
            ),
            ics_responses,
            anomalies: Vec::new(),
            anomaly_totals: BTreeMap::new(),
            policy: None,
            elapsed_s,
            packets_per_second: if elapsed_s > 0.0 {
                (c.packets as f64 / elapsed_s) as u64
            } else {
                0
            },
            violations: nonzero(
                Violation::ALL
                    .iter()
                    .map(|v| (v.name(), c.violations.get(v.index()).copied().unwrap_or(0))),
            ),
            file_errors,
            health: Health {
                truncated_frames: c.truncated_frames,
                ip_fragments: c.ip_fragments,
                orphan_fragments: c.orphan_fragments,
                flow_evictions: c.flow_evictions,
                flows_expired: c.flows_expired,
                stream_gaps: c.stream_gaps,
                retransmitted_bytes: c.retransmitted_bytes,
                reassembly_exhausted: c.reassembly_exhausted,
                ics_sessions_exhausted: c.ics_sessions_exhausted,
                asset_evictions: c.asset_evictions,
                cleartext_credentials: c.cleartext_credentials,
                test_messages: c.test_messages,
                goose_publishers: c.goose.publishers,
                goose_st_num_back: c.goose.st_num_back,
                goose_st_num_jump: c.goose.st_num_jump,
                goose_sq_num_reset: c.goose.sq_num_reset,
                goose_test: c.goose.test,
                redundancy_frames: c.redundancy_frames,
                redundancy_duplicates: c.redundancy_duplicates,
            },
            top_flows: top.iter().map(top_flow).collect(),
            asset_inventory: assets.iter().map(asset_summary).collect(),
            interfaces: Vec::new(),
        }
    }

    /// The anomalies list and totals from the events of a run.
    pub fn set_events(&mut self, events: &[crate::event::Event]) {
        self.anomalies = events
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        self.anomaly_totals.clear();
        for e in events {
            *self
                .anomaly_totals
                .entry(format!("{}/{}", e.kind, e.severity))
                .or_default() += 1;
        }
    }

    /// The readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} file(s), {} packets, {} bytes, {} flows, {} assets, {:.3} s ({} packets/s)",
            self.files,
            self.packets,
            self.bytes,
            self.flows,
            self.assets,
            self.elapsed_s,
            self.packets_per_second
        );
        for e in &self.file_errors {
            let _ = writeln!(o, "warning: {}: {}", e.file, e.error);
        }
        let _ = writeln!(o, "\nProtocols");
        let _ = writeln!(
            o,
            "  {:<12} {:>12} {:>14} {:>8} {:>10}",
            "protocol", "packets", "bytes", "flows", "messages"
        );
        let mut protos: Vec<_> = self.protocols.iter().collect();
        protos.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(b.0)));
        for (name, p) in protos {
            let _ = writeln!(
                o,
                "  {:<12} {:>12} {:>14} {:>8} {:>10}",
                name, p.packets, p.bytes, p.flows, p.pdus
            );
        }
        if !self.ics_commands.is_empty() {
            let _ = writeln!(o, "\nICS commands (requests) by class");
            let mut by_class: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
            for (key, n) in &self.ics_commands {
                let class = key
                    .split_once('/')
                    .and_then(|(p, c)| Proto::from_name(p).and_then(|p| Cmd::find(p, c)))
                    .map_or("other", |c| c.class().name());
                by_class.entry(class).or_default().push((key, *n));
            }
            for (class, cmds) in by_class {
                let total: u64 = cmds.iter().map(|(_, n)| n).sum();
                let _ = writeln!(o, "  {class} ({total})");
                for (k, n) in cmds {
                    let _ = writeln!(o, "    {k:<48} {n:>10}");
                }
            }
        }
        if !self.ics_responses.is_empty() {
            let _ = writeln!(o, "\nICS responses");
            for (k, n) in &self.ics_responses {
                let _ = writeln!(o, "    {k:<48} {n:>10}");
            }
        }
        if !self.anomalies.is_empty() {
            let _ = writeln!(o, "\nAnomalies ({})", self.anomalies.len());
            for a in &self.anomalies {
                let f = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("");
                let count = a
                    .get("count")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                let _ = writeln!(
                    o,
                    "  {:<8} {:<16} ×{:<6} {}",
                    f("severity"),
                    f("kind"),
                    count,
                    f("detail")
                );
            }
        }
        if !self.decode_errors.is_empty() || !self.violations.is_empty() {
            let _ = writeln!(o, "\nErrors");
            for (k, n) in &self.decode_errors {
                let _ = writeln!(o, "    decode error, {k:<34} {n:>10}");
            }
            for (k, n) in &self.violations {
                let _ = writeln!(o, "    violation, {k:<37} {n:>10}");
            }
        }
        if !self.top_flows.is_empty() {
            let _ = writeln!(o, "\nTop flows by bytes");
            for f in &self.top_flows {
                let _ = writeln!(
                    o,
                    "  {:<10} {:>22} -> {:<22} {:>8} pkts {:>10} bytes",
                    f.protocol, f.client, f.server, f.packets, f.bytes
                );
            }
        }
        if !self.asset_inventory.is_empty() {
            let _ = writeln!(o, "\nAssets");
            for a in &self.asset_inventory {
                let who = a.mac.clone().unwrap_or_else(|| "-".into());
                let vendor = a
                    .identity
                    .as_ref()
                    .and_then(|i| i.vendor.clone())
                    .or(a.oui_vendor.map(str::to_string))
                    .unwrap_or_default();
                let model = a
                    .identity
                    .as_ref()
                    .and_then(|i| i.model.clone())
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  {:<17} {:<30} {:<20} {:<20} {}",
                    who,
                    a.ips.join(","),
                    vendor,
                    model,
                    a.roles.join(",")
                );
            }
        }
        o
    }
}

fn top_flow(f: &FlowSummary) -> TopFlow {
    let (ca, cp, sa, sp) = f.endpoints();
    let fmt = |a: crate::decode::Addr, p: u16| {
        if f.key.a_port == 0 && f.key.b_port == 0 {
            a.to_string()
        } else if a.is_v4() {
            format!("{a}:{p}")
        } else {
            format!("[{a}]:{p}")
        }
    };
    TopFlow {
        protocol: f.proto.name(),
        client: fmt(ca, cp),
        server: fmt(sa, sp),
        transport: match f.key.ip_proto {
            6 => "tcp",
            17 => "udp",
            1 => "icmp",
            58 => "icmpv6",
            _ => "ip",
        },
        vlan: f.key.vlan,
        packets: f.packets,
        bytes: f.bytes,
        first_seen: f.first.rfc3339(),
        last_seen: f.last.rfc3339(),
    }
}

/// The policy of a `run` (`infrawatch_policy_info`, `infrawatch_config_last_reload_successful`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PolicyStatus {
    pub name: Option<String>,
    pub sha256: Option<String>,
    pub last_reload_successful: bool,
    pub reloads: u64,
    pub reload_failures: u64,
}

/// The devices of an asset table, as the summary lists them.
pub fn asset_inventory(assets: &Assets) -> Vec<AssetSummary> {
    assets.iter().map(asset_summary).collect()
}

fn asset_summary(a: &Asset) -> AssetSummary {
    AssetSummary {
        mac: a.mac.as_ref().map(fmt_mac),
        ips: a.ips().iter().map(ToString::to_string).collect(),
        oui_vendor: a.vendor_oui(),
        roles: a.roles(),
        identity: a.identity.as_deref().cloned(),
        router: a.router,
        first_seen: a.first.rfc3339(),
        last_seen: a.last.rfc3339(),
    }
}
