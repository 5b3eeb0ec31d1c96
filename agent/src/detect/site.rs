//! The detectors that judge against the site's policy (DESIGN.md, "Detection"):
//! `policy_violation`, `ics_command`, `new_asset`, `new_conversation`, `silence`; and
//! `ics_command` under the no-policy rule.
//!
//! [`CompiledPolicy`] is a validated [`Policy`] turned into matchers: zones and assets
//! resolved to addresses, protocol and command names to ids. It is immutable and shared
//! (`Arc`) by the engines; a reload swaps in a new one, and each flow re-matches its
//! rule lazily when it sees that the policy generation changed, so no flow state is lost.
//!
//! Rule matching: a flow client → server matches the first `[[allow]]` rule (file order)
//! whose `from` holds the client, `to` the server, `protocol` (if any) the flow's
//! protocol and `ports` (if any) the server port. UDP flows, whose client is a guess,
//! also match in the other direction. Commands are then judged against the matched rule:
//! `functions`, `unit_ids`, `registers`/`coils` (Modbus wire addresses), unless a
//! `[[maintenance]]` window covers the pair. A denied command of class
//! write/control/program/state/config is an `ics_command`; a denied read or diagnostic
//! is a `policy_violation` naming the command (the allowlist reaches down to commands
//! and registers).
//!
//! Baselines (known conversations and assets, bounded hash sets) are what the site has
//! seen before: `new_conversation` and `new_asset` fire only outside them, and they are
//! persisted in the state directory so a restart raises no storm.

use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::command::{Class, Cmd};
use crate::decode::{Addr, Mac};
use crate::dissect::{AddrSpace, Pdu, PduKind};
use crate::lru::LruMap;
use crate::proto::Proto;
use infrawatch_config::policy::{AddrSpan, Cidr, Endpoint, Level, Policy};
use std::collections::HashSet;

/// No rule matched.
pub const NO_RULE: u16 = u16::MAX;

/// Silence-tracked conversations, at most.
pub const MAX_SILENCE: usize = 4096;
/// Baseline entries (conversations, assets), at most each.
pub const MAX_BASELINE: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Any,
    Zone(usize),
    /// An asset: its address and/or MAC (either identifies it).
    Host(Option<Addr>, Option<Mac>),
    Net(Cidr),
    /// An asset with neither (the loader refuses it; matches nothing).
    Nothing,
}

#[derive(Clone, Debug)]
struct CRule {
    from: End,
    to: End,
    proto: Option<Proto>,
    ports: Vec<u16>,
    /// Allowed commands (sorted), `None`: all.
    cmds: Option<Vec<Cmd>>,
    units: Option<Vec<u32>>,
    registers: Option<Vec<AddrSpan>>,
    coils: Option<Vec<AddrSpan>>,
    silence_ns: Option<u64>,
    /// Both ends name hosts (asset or single address): such a rule lists its
    /// conversations, so they are not "new".
    host_specific: bool,
}

#[derive(Clone, Debug)]
struct CMaint {
    from: End,
    to: End,
    start_ns: u64,
    end_ns: u64,
}

/// A policy ready for matching.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: Policy,
    /// Changes with every reload (flows re-match when it differs from theirs).
    pub generation: u8,
    zones: Vec<Vec<Cidr>>,
    rules: Vec<CRule>,
    maintenance: Vec<CMaint>,
    inventory_ips: HashSet<Addr>,
    inventory_macs: HashSet<Mac>,
    /// (ip, mac) pairs the inventory binds (seeds of `arp_spoof`).
    pub inventory_bindings: Vec<(Addr, Mac)>,
}

fn to_ns(unix_secs: i64) -> u64 {
    u64::try_from(unix_secs)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
}

impl CompiledPolicy {
    pub fn compile(policy: Policy, generation: u8) -> CompiledPolicy {
        let assets: Vec<(Option<Addr>, Option<Mac>)> = policy
            .assets
            .iter()
            .map(|a| (a.ip.map(Addr::from_ip), a.mac))
            .collect();
        let end = |e: &Endpoint| match *e {
            Endpoint::Any => End::Any,
            Endpoint::Zone(z) => End::Zone(z),
            Endpoint::Net(c) => End::Net(c),
            Endpoint::Asset(i) => match assets.get(i) {
                Some((None, None)) | None => End::Nothing,
                Some((ip, mac)) => End::Host(*ip, *mac),
            },
        };
        let host = |e: &End| match e {
            End::Host(..) => true,
            End::Net(c) => (c.addr.is_ipv4() && c.prefix == 32) || c.prefix == 128,
            _ => false,
        };
        let rules = policy
            .allow
            .iter()
            .map(|r| {
                let proto = r.protocol.as_deref().and_then(Proto::from_name);
                let cmds = r.functions.as_ref().map(|f| {
                    let mut v: Vec<Cmd> = f
                        .iter()
                        .filter_map(|n| proto.and_then(|p| Cmd::find(p, n)))
                        .collect();
                    v.sort();
                    v
                });
                let (from, to) = (end(&r.from), end(&r.to));
                CRule {
                    host_specific: host(&from) && host(&to),
                    from,
                    to,
                    proto,
                    ports: r.ports.clone(),
                    cmds,
                    units: r.unit_ids.clone(),
                    registers: r.registers.clone(),
                    coils: r.coils.clone(),
                    silence_ns: r
                        .silence_after
                        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64),
                }
            })
            .collect();
        let maintenance = policy
            .maintenance
            .iter()
            .map(|m| CMaint {
                from: end(&m.from),
                to: end(&m.to),
                start_ns: to_ns(m.start),
                end_ns: to_ns(m.end),
            })
            .collect();
        let inventory_ips = assets.iter().filter_map(|a| a.0).collect();
        let inventory_macs = assets.iter().filter_map(|a| a.1).collect();
        let inventory_bindings = assets
            .iter()
            .filter_map(|a| match a {
                (Some(ip), Some(mac)) => Some((*ip, *mac)),
                _ => None,
            })
            .collect();
        CompiledPolicy {
            zones: policy.zones.iter().map(|z| z.nets.clone()).collect(),
            rules,
            maintenance,
            inventory_ips,
            inventory_macs,
            inventory_bindings,
            policy,
            generation,
        }
    }

    /// The zone an address is in (the most specific network wins).
    pub fn zone_of(&self, ip: Addr) -> Option<usize> {
        let ip = ip.to_ip();
        let mut best: Option<(u8, usize)> = None;
        for (i, nets) in self.zones.iter().enumerate() {
            for n in nets {
                if n.contains(ip) && best.is_none_or(|(p, _)| n.prefix > p) {
                    best = Some((n.prefix, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    fn holds(&self, e: &End, ip: Addr, mac: Option<Mac>) -> bool {
        match e {
            End::Any => true,
            End::Host(a, m) => a.is_some_and(|a| a == ip) || (m.is_some() && *m == mac),
            End::Net(c) => c.contains(ip.to_ip()),
            End::Zone(z) => {
                let ip = ip.to_ip();
                self.zones
                    .get(*z)
                    .is_some_and(|nets| nets.iter().any(|n| n.contains(ip)))
            }
            End::Nothing => false,
        }
    }

    /// The first rule allowing a flow, or [`NO_RULE`] (both ways round when the
    /// direction is a guess).
    pub fn match_flow(&self, f: &FlowFacts) -> u16 {
        let found = self.match_dir(f.client, f.client_mac, f.server, f.server_mac, f.port, f);
        if found != NO_RULE || f.tcp {
            return found;
        }
        self.match_dir(
            f.server,
            f.server_mac,
            f.client,
            f.client_mac,
            f.client_port,
            f,
        )
    }

    fn match_dir(
        &self,
        client: Addr,
        client_mac: Option<Mac>,
        server: Addr,
        server_mac: Option<Mac>,
        port: u16,
        f: &FlowFacts,
    ) -> u16 {
        for (i, r) in self.rules.iter().enumerate() {
            if r.proto.is_some_and(|p| p != f.proto) {
                continue;
            }
            if !r.ports.is_empty() && !r.ports.contains(&port) {
                continue;
            }
            if self.holds(&r.from, client, client_mac) && self.holds(&r.to, server, server_mac) {
                return u16::try_from(i).unwrap_or(NO_RULE);
            }
        }
        NO_RULE
    }

    fn rule(&self, i: u16) -> Option<&CRule> {
        self.rules.get(usize::from(i))
    }

    pub fn rule_name(&self, i: u16) -> Option<&str> {
        self.policy
            .allow
            .get(usize::from(i))
            .map(|r| r.name.as_str())
    }

    /// Whether a maintenance window covers commands client → server at `ts`.
    pub fn in_maintenance(&self, client: Addr, server: Addr, ts: Ts) -> bool {
        self.maintenance.iter().any(|m| {
            m.start_ns <= ts.0
                && ts.0 <= m.end_ns
                && self.holds(&m.from, client, None)
                && self.holds(&m.to, server, None)
        })
    }

    /// Why rule `rule` does not allow this request (None: it does). Cheap: nothing is
    /// formatted until [`CompiledPolicy::deny_text`] is asked.
    pub fn deny(&self, rule: u16, pdu: &Pdu<'_>, cmd: Cmd) -> Option<Deny> {
        let Some(r) = self.rule(rule) else {
            return Some(Deny::NoRule);
        };
        if let Some(cmds) = &r.cmds
            && cmds.binary_search(&cmd).is_err()
        {
            return Some(Deny::Function);
        }
        if let (Some(units), Some(u)) = (&r.units, pdu.unit)
            && !units.contains(&u)
        {
            return Some(Deny::Unit(u));
        }
        for range in [pdu.range, pdu.range2].into_iter().flatten() {
            let (spans, what) = match range.space {
                AddrSpace::HoldingRegisters | AddrSpace::InputRegisters => {
                    (&r.registers, "registers")
                }
                AddrSpace::Coils | AddrSpace::DiscreteInputs => (&r.coils, "coils"),
                AddrSpace::FileRecords => continue,
            };
            let Some(spans) = spans else { continue };
            let first = u32::from(range.start);
            let last = first + u32::from(range.count.max(1)) - 1;
            let inside = spans
                .iter()
                .any(|s| u32::from(s.first) <= first && last <= u32::from(s.last));
            if !inside {
                return Some(Deny::Range { what, first, last });
            }
        }
        None
    }

    /// Why rule `rule` does not allow `cmd`, for people.
    pub fn deny_text(&self, rule: u16, cmd: Cmd, d: &Deny) -> String {
        let name = self.rule_name(rule).unwrap_or("?");
        match d {
            Deny::NoRule => "no [[allow]] rule matches this flow".to_string(),
            Deny::Function => format!("{} is not in the functions of rule \"{name}\"", cmd.name()),
            Deny::Unit(u) => format!("unit {u} is not in the unit_ids of rule \"{name}\""),
            Deny::Range { what, first, last } => {
                format!("{what} {first}-{last} are outside the {what} of rule \"{name}\"")
            }
        }
    }

    pub fn knows_ip(&self, ip: Addr) -> bool {
        self.inventory_ips.contains(&ip)
    }
    pub fn knows_mac(&self, mac: &Mac) -> bool {
        self.inventory_macs.contains(mac)
    }
}

impl crate::event::Namer for CompiledPolicy {
    fn rule_name(&self, i: u16) -> Option<&str> {
        CompiledPolicy::rule_name(self, i)
    }
    fn rule_severity(&self, i: u16) -> Option<Level> {
        self.policy
            .allow
            .get(usize::from(i))
            .and_then(|r| r.severity)
    }
    fn zone_name(&self, ip: Addr) -> Option<&str> {
        self.zone_of(ip)
            .and_then(|z| self.policy.zones.get(z))
            .map(|z| z.name.as_str())
    }
    fn kind_severity(&self, kind: Kind) -> Option<Level> {
        crate::event::policy_kind_severity(&self.policy, kind)
    }
    fn sha256(&self) -> &str {
        &self.policy.sha256
    }
}

impl crate::learn::Allows for CompiledPolicy {
    fn allows(
        &self,
        client: Addr,
        server: Addr,
        proto: Proto,
        port: u16,
        cmd: Option<Cmd>,
    ) -> bool {
        let facts = FlowFacts {
            client,
            server,
            client_mac: None,
            server_mac: None,
            proto,
            port,
            client_port: 0,
            tcp: true,
        };
        let rule = self.match_flow(&facts);
        if rule == NO_RULE {
            return false;
        }
        match cmd {
            None => true,
            Some(c) => self
                .rule(rule)
                .is_some_and(|r| r.cmds.as_ref().is_none_or(|v| v.binary_search(&c).is_ok())),
        }
    }
    fn knows_asset(&self, ip: Option<Addr>, mac: Option<Mac>) -> bool {
        ip.is_some_and(|i| self.knows_ip(i)) || mac.is_some_and(|m| self.knows_mac(&m))
    }
}

/// Why a rule does not allow a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deny {
    NoRule,
    Function,
    Unit(u32),
    Range {
        what: &'static str,
        first: u32,
        last: u32,
    },
}

/// The two ends of a request: addresses for IP flows, MACs for link-layer ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ends {
    pub client: Option<Addr>,
    pub server: Option<Addr>,
    pub client_mac: Option<Mac>,
    pub server_mac: Option<Mac>,
}

fn who(ip: Option<Addr>, mac: Option<Mac>) -> String {
    match (ip, mac) {
        (Some(i), _) => i.to_string(),
        (None, Some(m)) => crate::decode::fmt_mac(&m),
        (None, None) => "?".to_string(),
    }
}

/// What the engine tells the site detectors about a flow whose protocol is decided.
#[derive(Clone, Copy, Debug)]
pub struct FlowFacts {
    pub client: Addr,
    pub server: Addr,
    pub client_mac: Option<Mac>,
    pub server_mac: Option<Mac>,
    pub proto: Proto,
    /// Server and client ports (0 without ports).
    pub port: u16,
    pub client_port: u16,
    /// The direction is known (a TCP flow seen from its SYN): match client → server
    /// only. Otherwise (UDP, a TCP flow picked up mid-stream) the other way round too.
    pub tcp: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Quiet {
    rule: u16,
    client: Addr,
    server: Addr,
    proto: Option<Proto>,
    last: Ts,
    silence_ns: u64,
    /// Silent periods reported (the event key changes with each).
    silences: u32,
    reported: bool,
}

/// Counters of the site detectors (metrics of DESIGN.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteCounts {
    /// `infrawatch_policy_violations_total{src_zone, dst_zone}`: (zones + 1)², the last
    /// index standing for "no zone".
    pub violations: Vec<u64>,
    /// `infrawatch_ics_command_denials_total{rule, class}`: (rules + 1) × classes, the
    /// last row standing for "no rule".
    pub denials: Vec<[u64; 8]>,
    pub silence_evictions: u64,
    pub baseline_full: u64,
}

/// Requests per minute of one `[[allow]]` rule (`rate_anomaly` per conversation: the
/// rule is the conversation the operator named).
#[derive(Clone, Debug)]
struct RuleRate {
    name: String,
    /// Requests in the current minute.
    count: u64,
    /// The rule has carried a request (its band starts then).
    used: bool,
    band: super::rate::RateBand,
}

/// The site detectors of one engine.
#[derive(Debug)]
pub struct Site {
    silence: LruMap<(u16, u64), Quiet>,
    cursor: u32,
    rates: Vec<RuleRate>,
    /// The minute of packet time the rule counts belong to.
    minute: Option<u64>,
    conversations: HashSet<u64>,
    assets: HashSet<u64>,
    pub counts: SiteCounts,
}

fn class_index(c: Class) -> usize {
    Class::ALL.iter().position(|x| *x == c).unwrap_or(7)
}

/// Baseline key of a conversation.
pub fn conversation_key(client: Addr, server: Addr, proto: Proto) -> u64 {
    key_of(&[&client.0, &server.0, &[proto as u8]])
}
/// Baseline key of an asset identifier.
pub fn asset_key_ip(ip: Addr) -> u64 {
    key_of(&[b"ip", &ip.0])
}
pub fn asset_key_mac(mac: &Mac) -> u64 {
    key_of(&[b"mac", mac])
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    pub fn new() -> Self {
        Site {
            silence: LruMap::with_capacity(MAX_SILENCE),
            cursor: 0,
            rates: Vec::new(),
            minute: None,
            conversations: HashSet::new(),
            assets: HashSet::new(),
            counts: SiteCounts::default(),
        }
    }

    /// A new policy: counters sized for its zones and rules (totals of the old one are
    /// kept in the rows that still exist).
    pub fn resize(&mut self, p: &CompiledPolicy) {
        let z = p.zone_count() + 1;
        self.counts.violations.resize(z * z, 0);
        self.counts.denials.resize(p.policy.allow.len() + 1, [0; 8]);
        // Rule rates follow their rule by name across reloads; a new rule starts afresh.
        let cfg = &p.policy.detectors.rate_anomaly;
        let mut old = std::mem::take(&mut self.rates);
        self.rates = p
            .policy
            .allow
            .iter()
            .map(|r| match old.iter().position(|o| o.name == r.name) {
                Some(i) => {
                    let mut o = old.swap_remove(i);
                    o.band.configure(cfg);
                    o
                }
                None => RuleRate {
                    name: r.name.clone(),
                    count: 0,
                    used: false,
                    band: super::rate::RateBand::new(cfg),
                },
            })
            .collect();
    }

    /// Baseline contents, for persistence.
    pub fn baseline(&self) -> (Vec<u64>, Vec<u64>) {
        let mut c: Vec<u64> = self.conversations.iter().copied().collect();
        let mut a: Vec<u64> = self.assets.iter().copied().collect();
        c.sort_unstable();
        a.sort_unstable();
        (c, a)
    }

    /// Restores a persisted baseline (bounded).
    pub fn seed_baseline(&mut self, conversations: &[u64], assets: &[u64]) {
        for c in conversations.iter().take(MAX_BASELINE) {
            self.conversations.insert(*c);
        }
        for a in assets.iter().take(MAX_BASELINE) {
            self.assets.insert(*a);
        }
    }

    /// Adds a conversation to the baseline (learning, or once reported).
    pub fn learn_conversation(&mut self, key: u64) {
        if self.conversations.len() < MAX_BASELINE {
            self.conversations.insert(key);
        } else {
            self.counts.baseline_full += 1;
        }
    }
    pub fn learn_asset(&mut self, key: u64) {
        if self.assets.len() < MAX_BASELINE {
            self.assets.insert(key);
        } else {
            self.counts.baseline_full += 1;
        }
    }

    fn bump_violation(&mut self, p: &CompiledPolicy, client: Addr, server: Addr) {
        let z = p.zone_count() + 1;
        let a = p.zone_of(client).unwrap_or(z - 1);
        let b = p.zone_of(server).unwrap_or(z - 1);
        if let Some(c) = self.counts.violations.get_mut(a * z + b) {
            *c += 1;
        }
    }

    /// A flow's protocol is decided: which rule allows it (`policy_violation` if none;
    /// `new_conversation` for a pair outside the baseline that no host rule names).
    pub fn flow(
        &mut self,
        p: &CompiledPolicy,
        f: &FlowFacts,
        now: Ts,
        out: &mut Vec<Finding>,
    ) -> u16 {
        let rule = p.match_flow(f);
        let d = &p.policy.detectors;
        if rule == NO_RULE {
            if d.policy_violation.enabled {
                self.bump_violation(p, f.client, f.server);
                let mut x = Finding::new(
                    Kind::PolicyViolation,
                    key_of(&[&f.client.0, &f.server.0, &[f.proto as u8]]),
                    now,
                );
                x.src = Some(f.client);
                x.dst = Some(f.server);
                x.src_mac = f.client_mac;
                x.dst_mac = f.server_mac;
                x.proto = Some(f.proto);
                x.detail = format!(
                    "{} {} → {} port {}: no [[allow]] rule matches",
                    f.proto.name(),
                    f.client,
                    f.server,
                    f.port
                );
                out.push(x);
            }
            return rule;
        }
        let ck = conversation_key(f.client, f.server, f.proto);
        let host_rule = p.rule(rule).is_some_and(|r| r.host_specific);
        if !host_rule && !self.conversations.contains(&ck) {
            self.learn_conversation(ck);
            if d.new_conversation.enabled {
                let mut x = Finding::new(Kind::NewConversation, ck, now);
                x.src = Some(f.client);
                x.dst = Some(f.server);
                x.proto = Some(f.proto);
                x.rule = Some(rule);
                x.detail = format!(
                    "first {} conversation {} → {} (allowed by rule \"{}\")",
                    f.proto.name(),
                    f.client,
                    f.server,
                    p.rule_name(rule).unwrap_or("?")
                );
                out.push(x);
            }
        }
        self.heard(p, rule, f.client, f.server, Some(f.proto), now);
        rule
    }

    /// Traffic of an allowed conversation was heard (for `silence`).
    pub fn heard(
        &mut self,
        p: &CompiledPolicy,
        rule: u16,
        client: Addr,
        server: Addr,
        proto: Option<Proto>,
        now: Ts,
    ) {
        let Some(silence_ns) = p.rule(rule).and_then(|r| r.silence_ns) else {
            return;
        };
        let key = (rule, key_of(&[&client.0, &server.0]));
        let epoch = now.secs() as u32;
        match self.silence.find(&key) {
            Some(s) => {
                self.silence.touch(s, epoch);
                if let Some(q) = self.silence.get_mut(s) {
                    if now > q.last {
                        q.last = now;
                    }
                    q.silence_ns = silence_ns;
                    q.reported = false;
                }
            }
            None => {
                let q = Quiet {
                    rule,
                    client,
                    server,
                    proto,
                    last: now,
                    silence_ns,
                    silences: 0,
                    reported: false,
                };
                if self.silence.insert(key, q, epoch).1.is_some() {
                    self.counts.silence_evictions += 1;
                }
            }
        }
    }

    /// A request on a flow: judged against its rule (or the no-policy rule when `p` is
    /// None).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        p: Option<&CompiledPolicy>,
        rule: u16,
        client: Addr,
        server: Addr,
        macs: (Option<Mac>, Option<Mac>),
        pdu: &Pdu<'_>,
        now: Ts,
        open: &crate::event::Events,
        out: &mut Vec<Finding>,
    ) {
        let ends = Ends {
            client: Some(client),
            server: Some(server),
            client_mac: macs.0,
            server_mac: macs.1,
        };
        self.judge_request(p, rule, &ends, pdu, now, open, out);
    }

    /// A link-layer request (PROFINET DCP…): the ends are MACs.
    #[allow(clippy::too_many_arguments)]
    pub fn request_l2(
        &mut self,
        p: Option<&CompiledPolicy>,
        rule: u16,
        macs: (Mac, Mac),
        pdu: &Pdu<'_>,
        now: Ts,
        open: &crate::event::Events,
        out: &mut Vec<Finding>,
    ) {
        let ends = Ends {
            client: None,
            server: None,
            client_mac: Some(macs.0),
            server_mac: Some(macs.1),
        };
        self.judge_request(p, rule, &ends, pdu, now, open, out);
    }

    /// `open`: the event layer, asked whether the finding's event is open already (its
    /// detail is then not formatted again: a command repeated every 100 ms costs a
    /// count, not a string).
    #[allow(clippy::too_many_arguments)]
    fn judge_request(
        &mut self,
        p: Option<&CompiledPolicy>,
        rule: u16,
        ends: &Ends,
        pdu: &Pdu<'_>,
        now: Ts,
        open: &crate::event::Events,
        out: &mut Vec<Finding>,
    ) {
        let client = ends.client.unwrap_or_default();
        let server = ends.server.unwrap_or_default();
        let PduKind::Request(cmd) = pdu.kind else {
            return;
        };
        let class = cmd.class();
        let judged = matches!(
            class,
            Class::Write | Class::Control | Class::Program | Class::State | Class::Config
        );
        let (deny, kind) = match p {
            None => {
                // No policy: nothing is authorized; every command that changes the
                // process is reported (writes at info, by their class's severity).
                if !judged {
                    return;
                }
                (None, Kind::IcsCommand)
            }
            Some(p) => {
                if rule != NO_RULE {
                    self.heard(p, rule, client, server, Some(cmd.proto()), now);
                    if let Some(r) = self.rates.get_mut(usize::from(rule)) {
                        r.count += 1;
                        r.used = true;
                    }
                }
                let d = &p.policy.detectors;
                let Some(deny) = p.deny(rule, pdu, cmd) else {
                    return;
                };
                if p.in_maintenance(client, server, now) {
                    return;
                }
                if judged {
                    if !d.ics_command.enabled {
                        return;
                    }
                    let row = if rule == NO_RULE {
                        self.counts.denials.len().saturating_sub(1)
                    } else {
                        usize::from(rule)
                    };
                    if let Some(c) = self
                        .counts
                        .denials
                        .get_mut(row)
                        .and_then(|r| r.get_mut(class_index(class)))
                    {
                        *c += 1;
                    }
                    (Some(deny), Kind::IcsCommand)
                } else {
                    if rule == NO_RULE || !d.policy_violation.enabled {
                        // The flow itself was reported as a policy violation.
                        return;
                    }
                    self.bump_violation(p, client, server);
                    (Some(deny), Kind::PolicyViolation)
                }
            }
        };
        let mut x = Finding::new(
            kind,
            key_of(&[
                &client.0,
                &server.0,
                &ends.client_mac.unwrap_or_default(),
                &(cmd as u16).to_le_bytes(),
            ]),
            now,
        );
        x.src = ends.client;
        x.dst = ends.server;
        x.src_mac = ends.client_mac;
        x.dst_mac = ends.server_mac;
        x.proto = Some(cmd.proto());
        x.cmd = Some(cmd);
        x.rule = (rule != NO_RULE).then_some(rule);
        if open.is_open(kind, x.key) {
            // An update of an open event: its count, not a new text.
            out.push(x);
            return;
        }
        let reason = match (p, deny) {
            (Some(p), Some(d)) => p.deny_text(rule, cmd, &d),
            _ => "no policy is loaded: nothing is authorized".to_string(),
        };
        let object = pdu
            .object
            .map(|o| crate::asset::clean(Some(o)).unwrap_or_default())
            .filter(|o| !o.is_empty())
            .map(|o| format!(" on {o}"))
            .unwrap_or_default();
        let unit = pdu.unit.map(|u| format!(" (unit {u})")).unwrap_or_default();
        x.detail = format!(
            "{} {} ({}){object}{unit} from {} to {}: {reason}",
            cmd.proto().name(),
            cmd.name(),
            class.name(),
            who(ends.client, ends.client_mac),
            who(ends.server, ends.server_mac),
        );
        out.push(x);
    }

    /// A device appeared: `new_asset` unless the inventory or the baseline knows it.
    /// `ip` assets outside every zone are left to `policy_violation` (remote hosts).
    pub fn asset(
        &mut self,
        p: &CompiledPolicy,
        ip: Option<Addr>,
        mac: Option<Mac>,
        now: Ts,
        out: &mut Vec<Finding>,
    ) {
        let key = match (ip, mac) {
            (_, Some(m)) => {
                if p.knows_mac(&m) {
                    return;
                }
                asset_key_mac(&m)
            }
            (Some(ip), None) => {
                if p.knows_ip(ip) || (p.zone_count() > 0 && p.zone_of(ip).is_none()) {
                    return;
                }
                asset_key_ip(ip)
            }
            (None, None) => return,
        };
        if self.assets.contains(&key) {
            return;
        }
        self.learn_asset(key);
        if !p.policy.detectors.new_asset.enabled {
            return;
        }
        let mut x = Finding::new(Kind::NewAsset, key, now);
        x.src = ip;
        x.src_mac = mac;
        let what = match (ip, mac) {
            (Some(i), Some(m)) => format!("{i} ({})", crate::decode::fmt_mac(&m)),
            (Some(i), None) => i.to_string(),
            (None, Some(m)) => crate::decode::fmt_mac(&m),
            (None, None) => String::new(),
        };
        x.detail = format!("device {what} is not in the inventory nor the baseline");
        out.push(x);
    }

    /// Once per second: conversations silent past their rule's `silence_after`; at each
    /// minute, the rules' request rates against their bands.
    pub fn tick(&mut self, p: &CompiledPolicy, now: Ts, out: &mut Vec<Finding>) {
        self.rule_rates(p, now, out);
        self.silences(p, now, out);
    }

    fn rule_rates(&mut self, p: &CompiledPolicy, now: Ts, out: &mut Vec<Finding>) {
        let minute = now.secs() / 60;
        let Some(last) = self.minute.replace(minute) else {
            // The first (partial) minute is no sample.
            for r in &mut self.rates {
                r.count = 0;
            }
            return;
        };
        if minute == last {
            return;
        }
        let enabled = p.policy.detectors.rate_anomaly.enabled;
        for (i, r) in self.rates.iter_mut().enumerate() {
            let count = std::mem::take(&mut r.count);
            // One sample per elapsed minute: a gap of quiet minutes is zeros.
            if !r.used || minute != last + 1 {
                continue;
            }
            let Some(d) = r.band.observe(count as f64) else {
                continue;
            };
            if !enabled {
                continue;
            }
            let rule = u16::try_from(i).unwrap_or(NO_RULE);
            let mut x = Finding::new(
                Kind::RateAnomaly,
                key_of(&[b"rule-rate", r.name.as_bytes()]),
                now,
            );
            // Severity as for every finding of a rule: the rule's, else
            // [detectors.rate_anomaly] severity, else the default (Events::severity).
            x.rule = Some(rule);
            x.detail = format!(
                "rule \"{}\": {} requests in the last minute, usually {:.0} ± {:.0}",
                r.name, d.sample, d.mean, d.band
            );
            out.push(x);
        }
    }

    fn silences(&mut self, p: &CompiledPolicy, now: Ts, out: &mut Vec<Finding>) {
        const BUDGET: u32 = 512;
        if !p.policy.detectors.silence.enabled {
            return;
        }
        let cap = self.silence.capacity() as u32;
        for _ in 0..BUDGET.min(cap) {
            let slot = self.cursor;
            self.cursor = if slot + 1 >= cap { 0 } else { slot + 1 };
            let Some(q) = self.silence.get_mut(slot) else {
                continue;
            };
            if q.reported || now.saturating_sub(q.last) <= q.silence_ns {
                continue;
            }
            q.reported = true;
            q.silences = q.silences.wrapping_add(1);
            let q = *q;
            let mut x = Finding::new(
                Kind::Silence,
                key_of(&[
                    &q.client.0,
                    &q.server.0,
                    &q.rule.to_le_bytes(),
                    &q.silences.to_le_bytes(),
                ]),
                now,
            );
            x.src = Some(q.client);
            x.dst = Some(q.server);
            x.proto = q.proto;
            x.rule = Some(q.rule);
            x.detail = format!(
                "{} → {} silent for {} s (rule \"{}\" expects traffic every {} s at most)",
                q.client,
                q.server,
                now.saturating_sub(q.last) / 1_000_000_000,
                p.rule_name(q.rule).unwrap_or("?"),
                q.silence_ns / 1_000_000_000
            );
            out.push(x);
        }
    }
}
