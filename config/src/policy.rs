//! `policy.toml`: the operator's judgement (DESIGN.md, "Policy file"). Zones, assets,
//! `[[allow]]` rules down to ICS commands and registers, maintenance windows, learning
//! and detector tuning.
//!
//! [`load_policy`] is the one validation path (`check`, start-up, reload). It returns a
//! validated [`Policy`]: every reference resolved to an index, every name checked against
//! the agent's [`Vocabulary`] (protocol ids, command names), every address parsed, so the
//! agent compiles it into matchers without a second round of checks.
//!
//! INTERFACE FROZEN: the types below are what the agent codes against. The loader fills
//! them.

use crate::units::HumanDuration;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The names a policy may use, as the agent knows them (its protocol ids and its
/// command table). The config crate does not know the protocols itself.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    /// Every protocol id of DESIGN.md ("Classification"), e.g. `modbus`, `dns`, `arp`.
    pub protocols: Vec<&'static str>,
    /// Command names (snake_case spec names) per protocol id; protocols without
    /// commands are absent.
    pub commands: BTreeMap<&'static str, Vec<&'static str>>,
}

/// Anomaly severities (DESIGN.md, "Detection").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Info,
    Warning,
    Critical,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Critical, Level::Warning, Level::Info];
    pub const fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// `[policy] mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Monitor,
    Learn,
}

/// `[learning] then`: what a learning agent does when `duration` has passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Then {
    /// Write the learnt policy into the state directory and judge traffic against it.
    #[default]
    Monitor,
    /// Keep learning.
    Stay,
}

/// An IPv4 or IPv6 network; `addr` has no host bits set (the loader refuses them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside (an IPv4 address never matches an IPv6 network).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let p = u32::from(self.prefix.min(32));
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let p = u32::from(self.prefix.min(128));
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `[zones] NAME = ["CIDR", ...]`, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub nets: Vec<Cidr>,
}

/// `[[assets]]`: a known device. At least one of `ip` and `mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetDecl {
    pub name: String,
    pub ip: Option<IpAddr>,
    pub mac: Option<[u8; 6]>,
    /// Free text an operator keeps with the device (learn fills it from the passive
    /// identity: vendor, model, firmware).
    pub description: Option<String>,
}

/// `from` / `to` of a rule or a maintenance window: `zone:NAME | asset:NAME | CIDR | any`
/// (or an IP address, meaning that one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Any,
    /// Index into [`Policy::zones`].
    Zone(usize),
    /// Index into [`Policy::assets`].
    Asset(usize),
    Net(Cidr),
}

/// An inclusive range of wire (0-based) addresses, from `"0-99"` or `"7"` or `7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrSpan {
    pub first: u16,
    pub last: u16,
}

/// `[[allow]]`: traffic the site expects. A flow (client → server) matches the first
/// rule whose `from` holds the client, `to` the server, `protocol` (when given) the
/// flow's protocol and `ports` (when given) the server port.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub from: Endpoint,
    pub to: Endpoint,
    /// A protocol id of the vocabulary; `None`: any protocol.
    pub protocol: Option<String>,
    /// Server ports; empty: any.
    pub ports: Vec<u16>,
    /// Allowed commands (names of the vocabulary for `protocol`); `None`: every command.
    pub functions: Option<Vec<String>>,
    /// Modbus unit ids / DNP3 destination addresses / IEC-104 common addresses allowed;
    /// `None`: any.
    pub unit_ids: Option<Vec<u32>>,
    /// Modbus holding/input register wire addresses a request may touch; `None`: any.
    pub registers: Option<Vec<AddrSpan>>,
    /// Modbus coil/discrete-input wire addresses; `None`: any.
    pub coils: Option<Vec<AddrSpan>>,
    /// Severity of this rule's anomalies (overrides the kind's).
    pub severity: Option<Level>,
    /// Raise `silence` when this rule's traffic, once seen, stops for this long.
    pub silence_after: Option<Duration>,
}

/// `[[maintenance]]`: commands from `from` (to `to`, default any) between `start` and
/// `end` count as authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maintenance {
    pub name: String,
    pub from: Endpoint,
    pub to: Endpoint,
    /// Unix seconds (RFC 3339 in the file).
    pub start: i64,
    pub end: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learning {
    pub duration: HumanDuration,
    pub then: Then,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            duration: HumanDuration::secs(7 * 86_400),
            then: Then::Monitor,
        }
    }
}

/// `[detectors.KIND]`: each detector can be turned off, tuned, and given a severity.
/// Defaults are DESIGN.md's ("Default thresholds").
#[derive(Clone, Debug, PartialEq)]
pub struct Detectors {
    pub policy_violation: Basic,
    pub ics_command: Basic,
    pub new_asset: Basic,
    pub new_conversation: Basic,
    pub port_scan: PortScan,
    pub syn_flood: SynFlood,
    pub arp_spoof: ArpSpoof,
    pub rate_anomaly: RateAnomaly,
    pub malformed: Basic,
    pub goose: Basic,
    pub silence: Basic,
    pub capture: CaptureDet,
}

/// A detector with no thresholds.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Basic {
    pub enabled: bool,
    /// `None`: the kind's default (for `ics_command`, the class's default).
    pub severity: Option<Level>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PortScan {
    pub enabled: bool,
    pub severity: Option<Level>,
    /// Distinct ports of one host from one source within `window`.
    pub distinct_ports: u32,
    /// Distinct hosts (on one port, or by ARP) from one source within `window`.
    pub distinct_hosts: u32,
    pub window: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SynFlood {
    pub enabled: bool,
    pub severity: Option<Level>,
    /// Half-open connections to one destination within `window`.
    pub half_open: u32,
    /// Distinct sources of half-open connections to one destination port within `window`.
    pub distinct_sources: u32,
    /// Half-open connections to all destinations together within `window` (a flood with
    /// spoofed sources and destinations).
    pub total_half_open: u32,
    pub window: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ArpSpoof {
    pub enabled: bool,
    pub severity: Option<Level>,
    /// Gratuitous ARPs from one MAC within `window`.
    pub gratuitous: u32,
    pub window: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RateAnomaly {
    pub enabled: bool,
    pub severity: Option<Level>,
    /// EWMA weight of a new per-minute sample (0 < alpha ≤ 1).
    pub alpha: f64,
    /// Width of the band in standard deviations.
    pub k: f64,
    /// Samples (minutes) before the band is trusted.
    pub min_samples: u32,
    /// The band is at least this fraction of the mean wide (deterministic polling has
    /// σ ≈ 0).
    pub min_deviation: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CaptureDet {
    pub enabled: bool,
    pub severity: Option<Level>,
    /// An interface silent for longer than max(`min_silence`, `factor` × its longest
    /// usual gap) is blind.
    pub min_silence: Duration,
    pub factor: u32,
}

impl Default for Detectors {
    fn default() -> Self {
        let on = Basic {
            enabled: true,
            severity: None,
        };
        Detectors {
            policy_violation: on.clone(),
            ics_command: on.clone(),
            new_asset: on.clone(),
            new_conversation: on.clone(),
            port_scan: PortScan {
                enabled: true,
                severity: None,
                distinct_ports: 20,
                distinct_hosts: 20,
                window: Duration::from_secs(60),
            },
            syn_flood: SynFlood {
                enabled: true,
                severity: None,
                half_open: 100,
                distinct_sources: 20,
                total_half_open: 100,
                window: Duration::from_secs(1),
            },
            arp_spoof: ArpSpoof {
                enabled: true,
                severity: None,
                gratuitous: 10,
                window: Duration::from_secs(10),
            },
            rate_anomaly: RateAnomaly {
                enabled: true,
                severity: None,
                alpha: 0.1,
                k: 4.0,
                min_samples: 30,
                min_deviation: 0.5,
            },
            malformed: on.clone(),
            goose: on.clone(),
            silence: on,
            capture: CaptureDet {
                enabled: true,
                severity: None,
                min_silence: Duration::from_secs(300),
                factor: 10,
            },
        }
    }
}

/// A validated policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `[policy] name`.
    pub name: String,
    pub mode: Mode,
    pub learning: Learning,
    pub zones: Vec<Zone>,
    pub assets: Vec<AssetDecl>,
    pub allow: Vec<Rule>,
    pub maintenance: Vec<Maintenance>,
    pub detectors: Detectors,
    /// Lower-case hex sha256 of the file's bytes (`infrawatch_policy_info{sha256}`).
    pub sha256: String,
}

mod load;
pub use load::{
    DETECTOR_KINDS, POLICY_SECTIONS, load_policy, load_policy_file, parse_rfc3339, sha256_hex,
};

#[cfg(test)]
mod tests;
