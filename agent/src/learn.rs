//! Learning: from observed traffic, a policy an operator can review (DESIGN.md,
//! "Command line": `learn`; "Policy file": `mode = "learn"`).
//!
//! # What is observed
//!
//! The engine reports each flow once its protocol is decided ([`Learner::conversation`]),
//! when it ends ([`Learner::flow_end`]) and each request on it ([`Learner::request`]). A
//! **conversation** is client → server:port of one protocol (the client port is left
//! out, so reconnections are one conversation; non-IP link protocols are not learnt). Per conversation the learner keeps first
//! and last seen, flows, requests, the set of commands, the unit ids (at most
//! [`MAX_UNITS`]; past that the rule does not restrict them and says so), the Modbus
//! addresses touched as at most [`MAX_SPANS`] spans per table group (registers: holding
//! and input registers; coils: coils and discrete inputs; past the bound the two closest
//! spans are joined, which only widens), and the poll timing: the time spent in
//! inter-request gaps of each size class (a log histogram with √2 steps). Its time-weighted
//! quantiles describe the poll period: a single long outage weighs its share of time, not
//! of samples, and bursts (several reads every cycle) do not hide the cycle. A
//! conversation **polls regularly** when it made at least [`MIN_POLLS`] requests, at
//! least 80 % of the time between its requests was spent in gaps within a factor 2 of its
//! 95th-percentile gap (time-weighted p95 ≤ 2 × p20), and the requests span at least
//! [`MIN_PERIODS`] such gaps; then `silence_after` = max(3 × the 95th-percentile gap,
//! 10 s), rounded up to a human duration (at most a day).
//!
//! The table is bounded (`max_conversations`): when it is full, new conversations are
//! not learnt, and their flows and requests are counted ([`LearnReport::dropped`]). Per
//! request nothing is allocated once a conversation's sets have grown.
//!
//! # What is written
//!
//! [`Learner::render`] writes a valid, commented `policy.toml` (DESIGN.md schema) with
//! `mode = "monitor"`, byte-identical for the same observations:
//!
//! - **Zones** from the address plan: one per /24 of a private (RFC 1918), shared
//!   (100.64/10), link-local or benchmark (198.18/15) IPv4 range with hosts, and one per
//!   /64 of IPv6 ULA or link-local hosts; named from what its hosts do: `control_…` when
//!   one serves an ICS protocol, `scada_…` when they only poll ICS servers, `net_…`
//!   otherwise, then the network (`control_10_10_0`). Public IPv4 and global IPv6 hosts
//!   get no zone (the site's plan is unknown there): rules name them one by one.
//! - **Assets**: each unicast host of a learnt conversation (the busiest [`MAX_ASSETS`]),
//!   named from its role and address (`plc-10-10-0-5`, `hmi-…`, `rtu-…`), with the MAC
//!   when ARP/NDP/an un-routed packet bound it, and a description from the passive
//!   identity (vendor, model, firmware, serial) or the OUI.
//! - **Allow rules**, built in steps:
//!   1. ICS protocols (those with commands): one rule per conversation, `asset:client →
//!      asset:server`, the server port, `functions` = exactly the commands seen (always
//!      listed, `[]` when none), `unit_ids`, `registers`, `coils`, `silence_after`.
//!   2. Merging: conversations with the same protocol, port and **identical** command set
//!      whose clients share a zone and whose servers share a zone become one rule when
//!      there are at least two and every (client, server) pair of the group was seen (no
//!      pair among the seen hosts is granted that was not observed). A side with one host
//!      stays `asset:`, a side with several becomes `zone:` (which also lets the zone's
//!      other hosts do the same: the header asks for review). Unit ids and address spans
//!      are united; `silence_after` is kept only when every member polls regularly (the
//!      longest). Command sets are never united at this step: rights are not widened.
//!      Only one merged rule per (from, to, protocol, port); the group with the most
//!      conversations wins, the others stay per pair.
//!   3. Other IP protocols (IT: dns, ntp, http…, and icmp, other-tcp…): one rule per zone
//!      pair (or host, outside zones) and protocol, ports = those seen (none listed past
//!      [`MAX_PORTS`]), no functions.
//!   4. Order: most specific first (host → host, then host ↔ zone, then zone → zone), since
//!      a flow is judged by the first rule it matches. The learner then checks its own
//!      output: every learnt conversation must meet, as its first matching rule, one that
//!      grants all its commands, units and addresses; a merged rule that shadows another
//!      conversation is split back into per-pair rules until that holds.
//!   5. Cap: past `max_rules`, rules are merged more coarsely, by the buckets that save
//!      most first: per zone pair, protocol and ports (commands, units, spans united),
//!      then per zone pair and protocol, then per zone pair (any protocol). If still over,
//!      the rules standing for the least traffic are left out and counted as uncovered.
//!      The header and each coarse rule say so ([`LearnReport::capped`]).
//!
//! Non-IP link protocols (ARP, LLDP, STP, GOOSE, SV, PROFINET DCP) need no rules:
//! `[[allow]]` rules judge IP flows. They are not learnt.
//!
//! [`Learner::additions`] lists, against an existing policy ([`Allows`]), what the
//! learnt traffic would add: per-pair rules for conversations it does not allow and for
//! commands it does not allow, and the hosts it does not know, as TOML lines prefixed
//! `+ ` (no zones: the old policy's names are not known here).

use crate::asset::{Asset, AssetKey, Assets, is_unicast_ip};
use crate::capture::Ts;
use crate::command::{Class, Cmd};
use crate::decode::{Addr, Mac, fmt_mac};
use crate::dissect::{AddrRange, AddrSpace, Pdu, PduKind};
use crate::proto::Proto;
use infrawatch_config::units::HumanDuration;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

/// What an existing policy already allows (implemented by the compiled policy), so
/// `learn --policy old.toml` shows only what it would add.
pub trait Allows {
    /// Whether a flow client → server:port of `proto` matches a rule, and (when `cmd`
    /// is given) that rule allows the command.
    fn allows(&self, client: Addr, server: Addr, proto: Proto, port: u16, cmd: Option<Cmd>)
    -> bool;
    /// Whether the address or MAC is a declared asset.
    fn knows_asset(&self, ip: Option<Addr>, mac: Option<crate::decode::Mac>) -> bool;
}

/// Options of a rendering.
#[derive(Clone, Debug)]
pub struct LearnOptions {
    /// `[policy] name`.
    pub name: String,
    /// Cap on `[[allow]]` rules; past it conversations are merged more coarsely and the
    /// report says so.
    pub max_rules: usize,
    /// What the capture covered, for the header comment.
    pub source: String,
}

/// What a rendering did, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnReport {
    pub conversations: usize,
    pub rules: usize,
    /// Rules that stand for several conversations (zone or role rules).
    pub merged_rules: usize,
    pub zones: usize,
    pub assets: usize,
    /// Conversations dropped when the table was full (their flows, counted each time
    /// the engine reported one).
    pub dropped: u64,
    /// The cap was reached and rules were merged further.
    pub capped: bool,
    /// Flows and requests of the learnt conversations.
    pub flows: u64,
    pub requests: u64,
    /// Requests of conversations not learnt (the table was full).
    pub dropped_requests: u64,
    /// Hosts of learnt conversations left without an `[[assets]]` entry (past
    /// [`MAX_ASSETS`]); rules name them by address.
    pub hosts_without_asset: usize,
    /// Conversations no rule covers: the cap left their rules out.
    pub uncovered: usize,
}

/// Unit ids kept per conversation; past it the rule does not restrict them.
pub const MAX_UNITS: usize = 64;
/// Address spans kept per conversation and table group; past it the closest are joined.
pub const MAX_SPANS: usize = 8;
/// Server ports listed in a rule grouping several; past it the rule lists none (any).
pub const MAX_PORTS: usize = 16;
/// `[[assets]]` written at most.
pub const MAX_ASSETS: usize = 1000;
/// Requests before a conversation can be judged to poll regularly.
pub const MIN_POLLS: u64 = 10;
/// A regular poll is seen over at least this many of its periods.
pub const MIN_PERIODS: u64 = 5;
/// Floor of a proposed `silence_after`, seconds.
pub const MIN_SILENCE_SECS: u64 = 10;
/// Conversations kept by [`Learner::default`].
pub const DEFAULT_MAX_CONVERSATIONS: usize = 65_536;

/// Proposed `silence_after` values, seconds: the first at least 3 × the poll gap.
const SILENCE_LADDER: [u64; 21] = [
    10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 10_800,
    21_600, 43_200, 86_400,
];

/// Size classes of inter-request gaps: class b holds gaps of [2^(b/2), 2^((b+1)/2)) ms.
const GAP_CLASSES: usize = 64;

/// Protocols that never reach an `[[allow]]` rule: allow rules judge IP flows.
const LINK_ONLY: [Proto; 7] = [
    Proto::Arp,
    Proto::Lldp,
    Proto::Stp,
    Proto::Goose,
    Proto::Sv,
    Proto::OtherL2,
    Proto::Malformed,
];

const CMD_WORDS: usize = Cmd::COUNT.div_ceil(64);

/// A set of commands, a bit per [`Cmd`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CmdSet([u64; CMD_WORDS]);

impl CmdSet {
    fn insert(&mut self, c: Cmd) {
        let i = c.index();
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1u64 << (i % 64);
        }
    }
    fn contains(&self, c: Cmd) -> bool {
        let i = c.index();
        self.0
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }
    fn union(&mut self, o: &CmdSet) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a |= *b;
        }
    }
    fn subset_of(&self, o: &CmdSet) -> bool {
        self.0.iter().zip(o.0.iter()).all(|(a, b)| a & !b == 0)
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// In command-table order.
    fn iter(&self) -> impl Iterator<Item = Cmd> + '_ {
        Cmd::ALL.iter().copied().filter(|c| self.contains(*c))
    }
    fn names(&self) -> Vec<&'static str> {
        self.iter().map(Cmd::name).collect()
    }
    /// The most consequential class among the commands.
    fn top_class(&self) -> Option<Class> {
        self.iter().map(Cmd::class).max_by_key(|c| class_rank(*c))
    }
}

fn class_rank(c: Class) -> u8 {
    match c {
        Class::Read | Class::Diagnostic | Class::Other => 0,
        Class::Write => 1,
        Class::Control | Class::Config => 2,
        Class::State | Class::Program => 3,
    }
}

/// Inclusive address spans, sorted, disjoint, not adjacent, at most [`MAX_SPANS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spans(Vec<(u16, u16)>);

impl Spans {
    fn add(&mut self, first: u16, last: u16) {
        if self.0.iter().any(|&(a, b)| a <= first && last <= b) {
            return;
        }
        self.0.push((first, last));
        self.0.sort_unstable();
        self.0.dedup_by(|next, prev| {
            if u32::from(next.0) <= u32::from(prev.1) + 1 {
                prev.1 = prev.1.max(next.1);
                true
            } else {
                false
            }
        });
        while self.0.len() > MAX_SPANS {
            // Join the two spans with the smallest hole between them (only widens).
            let Some(i) = self
                .0
                .windows(2)
                .enumerate()
                .min_by_key(|(_, w)| match w {
                    [a, b] => u32::from(b.0) - u32::from(a.1),
                    _ => u32::MAX,
                })
                .map(|(i, _)| i)
            else {
                break;
            };
            let next_last = self.0.get(i + 1).map(|s| s.1);
            if let (Some(s), Some(l)) = (self.0.get_mut(i), next_last) {
                s.1 = l;
            }
            self.0.remove(i + 1);
        }
    }
    fn add_range(&mut self, r: &AddrRange) {
        if r.count == 0 {
            return;
        }
        let last = (u32::from(r.start) + u32::from(r.count) - 1).min(u32::from(u16::MAX)) as u16;
        self.add(r.start, last);
    }
    fn union(&mut self, o: &Spans) {
        for &(a, b) in &o.0 {
            self.add(a, b);
        }
    }
    fn covers(&self, o: &Spans) -> bool {
        o.0.iter()
            .all(|&(f, l)| self.0.iter().any(|&(a, b)| a <= f && l <= b))
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn toml(&self) -> String {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    format!("\"{a}\"")
                } else {
                    format!("\"{a}-{b}\"")
                }
            })
            .collect();
        format!("[{}]", items.join(", "))
    }
}

/// Unit ids seen, sorted, bounded.
#[derive(Clone, Debug, Default)]
struct Units {
    ids: Vec<u32>,
    overflow: bool,
}

impl Units {
    fn insert(&mut self, u: u32) {
        if let Err(pos) = self.ids.binary_search(&u) {
            if self.ids.len() < MAX_UNITS {
                self.ids.insert(pos, u);
            } else {
                self.overflow = true;
            }
        }
    }
}

/// Time (ms, saturating) spent in inter-request gaps of each size class.
type Gaps = [u32; GAP_CLASSES];

fn gap_class(ms: u64) -> usize {
    if ms < 1 {
        return 0;
    }
    let k = 63 - u64::from(ms.leading_zeros());
    let half = u128::from(ms) * u128::from(ms) >= 1u128 << (2 * k + 1);
    ((2 * k + u64::from(half)) as usize).min(GAP_CLASSES - 1)
}

/// The upper bound (ms) of a gap class.
fn class_upper_ms(b: usize) -> u64 {
    let k = (b / 2) as u32;
    if b.is_multiple_of(2) {
        // 2^k · √2, rounded up.
        ((1u64 << k) as f64 * std::f64::consts::SQRT_2).ceil() as u64
    } else {
        1u64 << (k + 1)
    }
}

/// The time-weighted quantile `num/den` of the gaps: the gap size below which that
/// share of the time between requests was spent.
fn gap_quantile(g: &Gaps, num: u64, den: u64) -> Option<u64> {
    let total: u64 = g.iter().map(|&x| u64::from(x)).sum();
    if total == 0 {
        return None;
    }
    let mut cum = 0u64;
    for (b, &x) in g.iter().enumerate() {
        cum += u64::from(x);
        if cum * den >= total * num {
            return Some(class_upper_ms(b));
        }
    }
    None
}

/// What is known of one conversation.
#[derive(Clone, Debug)]
struct Conv {
    first: Ts,
    last: Ts,
    flows: u64,
    requests: u64,
    cmds: CmdSet,
    units: Units,
    /// Holding + input registers.
    regs: Spans,
    /// Coils + discrete inputs.
    coils: Spans,
    first_req: Ts,
    last_req: Option<Ts>,
    gaps: Option<Box<Gaps>>,
}

impl Conv {
    fn new(now: Ts) -> Conv {
        Conv {
            first: now,
            last: now,
            flows: 0,
            requests: 0,
            cmds: CmdSet::default(),
            units: Units::default(),
            regs: Spans::default(),
            coils: Spans::default(),
            first_req: now,
            last_req: None,
            gaps: None,
        }
    }
    fn seen(&mut self, now: Ts) {
        if now < self.first {
            self.first = now;
        }
        if now > self.last {
            self.last = now;
        }
    }
    fn range(&mut self, r: &AddrRange) {
        match r.space {
            AddrSpace::HoldingRegisters | AddrSpace::InputRegisters => self.regs.add_range(r),
            AddrSpace::Coils | AddrSpace::DiscreteInputs => self.coils.add_range(r),
            AddrSpace::FileRecords => {}
        }
    }
    fn request_at(&mut self, now: Ts) {
        match self.last_req {
            None => self.first_req = now,
            Some(prev) if now > prev => {
                let ms = now.saturating_sub(prev) / 1_000_000;
                let g = self.gaps.get_or_insert_with(|| Box::new([0; GAP_CLASSES]));
                if let Some(slot) = g.get_mut(gap_class(ms)) {
                    *slot = slot.saturating_add(ms.min(u64::from(u32::MAX)) as u32);
                }
            }
            Some(_) => {}
        }
        if self.last_req.is_none_or(|p| now > p) {
            self.last_req = Some(now);
        }
    }
    /// The proposed `silence_after` (seconds) when the conversation polls regularly.
    fn silence_secs(&self) -> Option<u64> {
        if self.requests < MIN_POLLS {
            return None;
        }
        let g = self.gaps.as_deref()?;
        let p20 = gap_quantile(g, 1, 5)?;
        let p95 = gap_quantile(g, 19, 20)?;
        if p95 > 2 * p20 {
            return None;
        }
        let span_ms = self.last_req?.saturating_sub(self.first_req) / 1_000_000;
        if span_ms < MIN_PERIODS * p95 {
            return None;
        }
        let need_ms = (3 * p95).max(MIN_SILENCE_SECS * 1000);
        SILENCE_LADDER.iter().copied().find(|s| s * 1000 >= need_ms)
    }
}

/// A conversation's key: client → server:port of one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    client: Addr,
    server: Addr,
    proto: Proto,
    port: u16,
}

/// Observations of one learning run, bounded.
#[derive(Debug)]
pub struct Learner {
    convs: HashMap<Key, Conv>,
    max: usize,
    dropped: u64,
    dropped_requests: u64,
    first: Option<Ts>,
    last: Option<Ts>,
}

impl Default for Learner {
    fn default() -> Self {
        Learner::new(DEFAULT_MAX_CONVERSATIONS)
    }
}

impl Learner {
    pub fn new(max_conversations: usize) -> Self {
        Learner {
            convs: HashMap::new(),
            max: max_conversations,
            dropped: 0,
            dropped_requests: 0,
            first: None,
            last: None,
        }
    }

    /// Conversations learnt.
    pub fn len(&self) -> usize {
        self.convs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
    }

    /// Flows of conversations not learnt because the table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A packet was seen at `now` (optional): widens the period the header reports to
    /// the whole capture, not only the learnt flows.
    pub fn observe(&mut self, now: Ts) {
        if self.first.is_none_or(|f| now < f) {
            self.first = Some(now);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    fn entry(&mut self, now: Ts, key: Key) -> Option<&mut Conv> {
        use std::collections::hash_map::Entry;
        self.observe(now);
        let full = self.convs.len() >= self.max;
        let c = match self.convs.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(_) if full => return None,
            Entry::Vacant(v) => v.insert(Conv::new(now)),
        };
        c.seen(now);
        Some(c)
    }

    /// A flow of `proto` from `client` to `server:port` was seen: call it once per flow,
    /// when its protocol is decided (it counts a flow). Link-layer protocols are ignored.
    pub fn conversation(&mut self, now: Ts, client: Addr, server: Addr, proto: Proto, port: u16) {
        if LINK_ONLY.contains(&proto) {
            return;
        }
        let key = Key {
            client,
            server,
            proto,
            port,
        };
        match self.entry(now, key) {
            Some(c) => c.flows += 1,
            None => self.dropped += 1,
        }
    }

    /// A flow ended (or was last seen) at `now`: updates the conversation's last seen
    /// without counting a flow.
    pub fn flow_end(&mut self, now: Ts, client: Addr, server: Addr, proto: Proto, port: u16) {
        let key = Key {
            client,
            server,
            proto,
            port,
        };
        if let Some(c) = self.convs.get_mut(&key) {
            c.seen(now);
            self.observe(now);
        }
    }

    /// A request on a flow: its command, unit, address ranges and time (poll
    /// intervals). Messages other than requests are ignored.
    pub fn request(&mut self, now: Ts, client: Addr, server: Addr, port: u16, pdu: &Pdu<'_>) {
        let PduKind::Request(cmd) = pdu.kind else {
            return;
        };
        if LINK_ONLY.contains(&pdu.proto) {
            return;
        }
        let key = Key {
            client,
            server,
            proto: pdu.proto,
            port,
        };
        let Some(c) = self.entry(now, key) else {
            self.dropped_requests += 1;
            return;
        };
        c.requests += 1;
        c.cmds.insert(cmd);
        if let Some(u) = pdu.unit {
            c.units.insert(u);
        }
        for r in [pdu.range, pdu.range2].iter().flatten() {
            c.range(r);
        }
        c.request_at(now);
    }

    /// Folds another learner's observations in (one learner per capture thread, one
    /// policy): counts add up, sets unite, poll-gap histograms add. The cap holds: the
    /// other's conversations that do not fit are counted as dropped.
    pub fn absorb(&mut self, other: Learner) {
        use std::collections::hash_map::Entry;
        for t in [other.first, other.last].into_iter().flatten() {
            self.observe(t);
        }
        self.dropped += other.dropped;
        self.dropped_requests += other.dropped_requests;
        let mut theirs: Vec<(Key, Conv)> = other.convs.into_iter().collect();
        // The busiest first, should the cap bite.
        theirs.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
        for (k, o) in theirs {
            let full = self.convs.len() >= self.max;
            let c = match self.convs.entry(k) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(_) if full => {
                    self.dropped += o.flows;
                    self.dropped_requests += o.requests;
                    continue;
                }
                Entry::Vacant(e) => {
                    e.insert(o);
                    continue;
                }
            };
            c.seen(o.first);
            c.seen(o.last);
            c.flows += o.flows;
            c.cmds.union(&o.cmds);
            for u in &o.units.ids {
                c.units.insert(*u);
            }
            c.units.overflow |= o.units.overflow;
            c.regs.union(&o.regs);
            c.coils.union(&o.coils);
            if o.requests > 0 {
                if c.requests == 0 || o.first_req < c.first_req {
                    c.first_req = o.first_req;
                }
                if o.last_req > c.last_req {
                    c.last_req = o.last_req;
                }
            }
            c.requests += o.requests;
            if let Some(og) = o.gaps {
                let g = c.gaps.get_or_insert_with(|| Box::new([0; GAP_CLASSES]));
                for (a, b) in g.iter_mut().zip(og.iter()) {
                    *a = a.saturating_add(*b);
                }
            }
        }
    }

    /// The learnt conversations, in key order (deterministic).
    fn sorted(&self) -> Vec<(Key, &Conv)> {
        let mut v: Vec<(Key, &Conv)> = self.convs.iter().map(|(k, c)| (*k, c)).collect();
        v.sort_unstable_by_key(|(k, _)| *k);
        v
    }

    /// The policy TOML (valid, commented) and what was done.
    pub fn render(&self, assets: &Assets, opts: &LearnOptions) -> (String, LearnReport) {
        let all = self.sorted();
        let mut b = Build::new(&all, &all, assets, true, None);
        b.rules(opts.max_rules);
        let report = LearnReport {
            conversations: all.len(),
            rules: b.rules.len(),
            merged_rules: b.rules.iter().filter(|r| r.members.len() > 1).count(),
            zones: b.zones.len(),
            assets: b.assets.len(),
            dropped: self.dropped,
            capped: b.capped,
            flows: all.iter().map(|(_, c)| c.flows).sum(),
            requests: all.iter().map(|(_, c)| c.requests).sum(),
            dropped_requests: self.dropped_requests,
            hosts_without_asset: b.hosts_without_asset,
            uncovered: b.uncovered,
        };
        let mut out = String::new();
        self.header(&mut out, opts, &report, &b);
        let _ = writeln!(out, "[policy]");
        let name = if opts.name.trim().is_empty() {
            "learnt"
        } else {
            opts.name.as_str()
        };
        let _ = writeln!(out, "name = {}", toml_str(name));
        let _ = writeln!(out, "mode = \"monitor\"");
        b.write_zones(&mut out);
        b.write_assets(&mut out);
        b.write_rules(&mut out, opts.max_rules);
        (out, report)
    }

    fn header(&self, out: &mut String, opts: &LearnOptions, r: &LearnReport, b: &Build<'_>) {
        let _ = writeln!(
            out,
            "# infrawatch policy learnt by `infrawatch-agent learn`"
        );
        let _ = writeln!(out, "# from: {}", comment_text(&opts.source));
        match (self.first, self.last) {
            (Some(f), Some(l)) => {
                let _ = writeln!(
                    out,
                    "# traffic seen from {} to {}",
                    f.rfc3339(),
                    l.rfc3339()
                );
            }
            _ => {
                let _ = writeln!(out, "# no traffic was seen");
            }
        }
        let _ = writeln!(
            out,
            "# {} ({}, {}) between {}: {}, {}, {} ({} merged)",
            plural(r.conversations as u64, "conversation", "conversations"),
            plural(r.flows, "flow", "flows"),
            plural(r.requests, "request", "requests"),
            plural(b.hosts.len() as u64, "host", "hosts"),
            plural(r.zones as u64, "zone", "zones"),
            plural(r.assets as u64, "asset", "assets"),
            plural(r.rules as u64, "rule", "rules"),
            r.merged_rules
        );
        if r.dropped > 0 || r.dropped_requests > 0 {
            let _ = writeln!(
                out,
                "# WARNING: the conversation table was full ({} kept): {} flows and {} requests of other conversations were not learnt",
                self.max, r.dropped, r.dropped_requests
            );
        }
        if r.hosts_without_asset > 0 {
            let _ = writeln!(
                out,
                "# {} hosts past the cap of {MAX_ASSETS} assets are named by address",
                r.hosts_without_asset
            );
        }
        if r.capped {
            let _ = writeln!(
                out,
                "# CAPPED: more than max_rules = {} rules were needed; rules were merged more coarsely (commands united){}",
                opts.max_rules,
                if r.uncovered > 0 {
                    format!(", and {} conversations are left uncovered", r.uncovered)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(out, "#");
        let _ = writeln!(
            out,
            "# REVIEW before you use it: it allows exactly what was seen while learning (and,"
        );
        let _ = writeln!(
            out,
            "# where rules name zones, the same between the other hosts of those zones). With"
        );
        let _ = writeln!(
            out,
            "# mode = \"monitor\" every flow and command outside it raises an anomaly as soon as it"
        );
        let _ = writeln!(
            out,
            "# is loaded. Check it with `infrawatch-agent check --policy FILE`."
        );
        let _ = writeln!(out);
    }

    /// What the learnt traffic would add to `old`: a reviewable text (rules, assets,
    /// commands not allowed yet), empty when nothing.
    pub fn additions(&self, assets: &Assets, old: &dyn Allows, opts: &LearnOptions) -> String {
        let all = self.sorted();
        let mut missing: BTreeMap<Key, CmdSet> = BTreeMap::new();
        let mut new_convs = 0usize;
        let mut new_cmds = 0usize;
        let mut selected = Vec::new();
        for (k, c) in &all {
            if !old.allows(k.client, k.server, k.proto, k.port, None) {
                new_convs += 1;
                selected.push((*k, *c));
                continue;
            }
            let mut m = CmdSet::default();
            for cmd in c.cmds.iter() {
                if !old.allows(k.client, k.server, k.proto, k.port, Some(cmd)) {
                    m.insert(cmd);
                }
            }
            if !m.is_empty() {
                new_cmds += 1;
                missing.insert(*k, m);
                selected.push((*k, *c));
            }
        }
        let mut b = Build::new(&selected, &all, assets, false, Some(old));
        b.missing = missing;
        b.rules(opts.max_rules);
        if b.rules.is_empty() && b.assets.is_empty() {
            return String::new();
        }
        let mut body = String::new();
        b.write_assets(&mut body);
        b.write_rules(&mut body, opts.max_rules);
        let mut out = format!(
            "# learn: {} would add {} ({} not allowed, {} with commands not allowed) and {}\n",
            comment_text(&opts.source),
            plural(b.rules.len() as u64, "rule", "rules"),
            plural(new_convs as u64, "conversation", "conversations"),
            new_cmds,
            plural(b.assets.len() as u64, "asset", "assets"),
        );
        for line in body.lines() {
            if line.is_empty() {
                out.push_str("+\n");
            } else {
                let _ = writeln!(out, "+ {line}");
            }
        }
        out
    }
}

/// Whether `p` has commands (an ICS protocol decoded to the command).
fn has_commands(p: Proto) -> bool {
    Cmd::ALL.iter().any(|c| c.proto() == p)
}

/// A rule endpoint: one host, or one zone (index into the zones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Ep {
    Host(Addr),
    Zone(usize),
}

/// How a rule came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// One conversation.
    Pair,
    /// Conversations with identical commands between two zones (step 2).
    Merged,
    /// A non-ICS protocol by zone pair (step 3).
    Grouped,
    /// Merged to stay under the cap (step 5), at this stage (1..=3).
    Coarse(u8),
}

#[derive(Clone, Debug)]
struct RuleOut {
    how: How,
    from: Ep,
    to: Ep,
    proto: Option<Proto>,
    /// `None`: any port.
    ports: Option<Vec<u16>>,
    /// `None`: every command (not listed).
    functions: Option<CmdSet>,
    units: Option<Vec<u32>>,
    regs: Option<Spans>,
    coils: Option<Spans>,
    silence: Option<u64>,
    /// Indices into the conversations.
    members: Vec<usize>,
    notes: Vec<String>,
    name: String,
}

impl RuleOut {
    /// 0: host → host … 2: zone → zone; 3 and up: any protocol.
    fn specificity(&self) -> u8 {
        let z = |e: Ep| u8::from(matches!(e, Ep::Zone(_)));
        z(self.from) + z(self.to) + if self.proto.is_none() { 3 } else { 0 }
    }
}

#[derive(Clone, Debug)]
struct ZoneOut {
    name: String,
    net: Addr,
    prefix: u8,
    hosts: usize,
    ics_server: bool,
    ics_client: bool,
}

#[derive(Clone, Debug)]
struct AssetOut {
    name: String,
    ip: Addr,
    mac: Option<Mac>,
    description: Option<String>,
    roles: Vec<String>,
    first: Ts,
    last: Ts,
}

/// What a host did in the learnt conversations.
#[derive(Clone, Debug, Default)]
struct HostInfo {
    served: BTreeSet<Proto>,
    used: BTreeSet<Proto>,
    convs: usize,
    first: Option<Ts>,
    last: Option<Ts>,
}

/// The site-local network of an address that zones group by: a /24 of private,
/// shared, link-local and benchmark IPv4, a /64 of IPv6 ULA and link-local.
fn site_net(a: Addr) -> Option<(Addr, u8)> {
    match a.to_ip() {
        IpAddr::V4(v4) => {
            let [o0, o1, o2, _] = v4.octets();
            let local = v4.is_private()
                || v4.is_link_local()
                || (o0 == 100 && (o1 & 0xc0) == 64)
                || (o0 == 198 && (o1 & 0xfe) == 18);
            local.then(|| (Addr::v4([o0, o1, o2, 0]), 24))
        }
        IpAddr::V6(v6) => {
            let s0 = v6.segments().first().copied().unwrap_or(0);
            let local = (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfe80;
            if !local {
                return None;
            }
            let mut o = v6.octets();
            for b in o.iter_mut().skip(8) {
                *b = 0;
            }
            Some((Addr::v6(o), 64))
        }
    }
}

fn net_suffix(net: Addr) -> String {
    match net.to_ip() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}_{b}_{c}")
        }
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .take(4)
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join("_"),
    }
}

fn host_cidr(a: Addr) -> String {
    match a.to_ip() {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn addr_dashes(a: Addr) -> String {
    a.to_ip().to_string().replace(['.', ':'], "-")
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Text safe inside a `#` comment (one line).
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The name prefix of a host from what it did.
fn role_prefix(h: &HostInfo) -> &'static str {
    let ics_served: Vec<Proto> = h
        .served
        .iter()
        .copied()
        .filter(|p| has_commands(*p))
        .collect();
    if let Some(p) = ics_served.first() {
        return match p {
            Proto::Dnp3 | Proto::Iec104 => "rtu",
            Proto::Mms => "ied",
            Proto::Bacnet => "bms",
            Proto::Mqtt => "broker",
            _ => "plc",
        };
    }
    if h.used.iter().any(|p| has_commands(*p)) {
        return "hmi";
    }
    if !h.served.is_empty() {
        return "server";
    }
    "host"
}

fn describe(a: Option<&Asset>) -> Option<String> {
    let a = a?;
    let mut parts: Vec<String> = Vec::new();
    let id = a.identity.as_deref();
    let vendor = id
        .and_then(|i| i.vendor.clone())
        .or_else(|| a.vendor_oui().map(|v| format!("{v} (OUI)")));
    let head: Vec<String> = [vendor, id.and_then(|i| i.model.clone())]
        .into_iter()
        .flatten()
        .collect();
    if !head.is_empty() {
        parts.push(head.join(" "));
    }
    if let Some(i) = id {
        for (label, v) in [
            ("firmware", &i.firmware),
            ("serial", &i.serial),
            ("name", &i.name),
        ] {
            if let Some(v) = v {
                parts.push(format!("{label} {v}"));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// One rendering: zones, assets and rules over a set of conversations.
struct Build<'a> {
    /// The conversations rules are made for.
    convs: &'a [(Key, &'a Conv)],
    zones: Vec<ZoneOut>,
    zone_of: BTreeMap<Addr, usize>,
    /// Every host of the learnt conversations (roles name assets consistently).
    hosts: BTreeMap<Addr, HostInfo>,
    assets: Vec<AssetOut>,
    asset_of: BTreeMap<Addr, usize>,
    hosts_without_asset: usize,
    rules: Vec<RuleOut>,
    capped: bool,
    uncovered: usize,
    /// Additions: the commands each conversation's current rule does not allow.
    missing: BTreeMap<Key, CmdSet>,
}

impl<'a> Build<'a> {
    /// `convs`: what rules are made for; `all`: every learnt conversation (hosts,
    /// roles). `zones`: propose zones (else every endpoint is a host). `old`: declare
    /// only the hosts it does not know.
    fn new(
        convs: &'a [(Key, &'a Conv)],
        all: &[(Key, &Conv)],
        assets: &Assets,
        zones: bool,
        old: Option<&dyn Allows>,
    ) -> Build<'a> {
        let mut hosts: BTreeMap<Addr, HostInfo> = BTreeMap::new();
        for (k, c) in all {
            for (a, server) in [(k.client, false), (k.server, true)] {
                if !is_unicast_ip(a) || a == Addr::v4([0, 0, 0, 0]) {
                    continue;
                }
                let h = hosts.entry(a).or_default();
                if server {
                    h.served.insert(k.proto);
                } else {
                    h.used.insert(k.proto);
                }
                h.convs += 1;
                if h.first.is_none_or(|f| c.first < f) {
                    h.first = Some(c.first);
                }
                if h.last.is_none_or(|l| c.last > l) {
                    h.last = Some(c.last);
                }
            }
        }
        let mut b = Build {
            convs,
            zones: Vec::new(),
            zone_of: BTreeMap::new(),
            hosts,
            assets: Vec::new(),
            asset_of: BTreeMap::new(),
            hosts_without_asset: 0,
            rules: Vec::new(),
            capped: false,
            uncovered: 0,
            missing: BTreeMap::new(),
        };
        if zones {
            b.plan_zones();
        }
        b.plan_assets(assets, old);
        b
    }

    fn plan_zones(&mut self) {
        let mut nets: BTreeMap<Addr, ZoneOut> = BTreeMap::new();
        for (a, h) in &self.hosts {
            let Some((net, prefix)) = site_net(*a) else {
                continue;
            };
            let z = nets.entry(net).or_insert_with(|| ZoneOut {
                name: String::new(),
                net,
                prefix,
                hosts: 0,
                ics_server: false,
                ics_client: false,
            });
            z.hosts += 1;
            z.ics_server |= h.served.iter().any(|p| has_commands(*p));
            z.ics_client |= h.used.iter().any(|p| has_commands(*p));
        }
        for (i, (net, mut z)) in nets.into_iter().enumerate() {
            let role = if z.ics_server {
                "control"
            } else if z.ics_client {
                "scada"
            } else {
                "net"
            };
            // The network makes the name unique.
            z.name = format!("{role}_{}", net_suffix(net));
            self.zone_of.insert(net, i);
            self.zones.push(z);
        }
    }

    fn plan_assets(&mut self, assets: &Assets, old: Option<&dyn Allows>) {
        let mut by_mac: HashMap<Mac, &Asset> = HashMap::new();
        let mut by_ip: HashMap<Addr, &Asset> = HashMap::new();
        for a in assets.iter() {
            match a.mac {
                Some(m) => {
                    by_mac.insert(m, a);
                }
                None => {
                    for ip in a.ips() {
                        by_ip.insert(*ip, a);
                    }
                }
            }
        }
        // The busiest hosts first for the cap, then by address.
        let mut ranked: Vec<(&Addr, &HostInfo)> = self.hosts.iter().collect();
        ranked.sort_by(|a, b| b.1.convs.cmp(&a.1.convs).then(a.0.cmp(b.0)));
        let mut chosen: Vec<AssetOut> = Vec::new();
        for (ip, h) in ranked {
            let (mac, asset) = match assets.key_of(*ip) {
                AssetKey::Mac(m) => (Some(m), by_mac.get(&m).copied()),
                _ => (None, by_ip.get(ip).copied()),
            };
            if old.is_some_and(|o| o.knows_asset(Some(*ip), mac)) {
                continue;
            }
            if chosen.len() >= MAX_ASSETS {
                self.hosts_without_asset += 1;
                continue;
            }
            let mut roles: Vec<String> = h.served.iter().map(|p| format!("{p}_server")).collect();
            roles.extend(h.used.iter().map(|p| format!("{p}_client")));
            chosen.push(AssetOut {
                name: format!("{}-{}", role_prefix(h), addr_dashes(*ip)),
                ip: *ip,
                mac,
                description: describe(asset),
                roles,
                first: asset.map_or(h.first.unwrap_or_default(), |a| a.first),
                last: asset.map_or(h.last.unwrap_or_default(), |a| a.last),
            });
        }
        chosen.sort_by_key(|a| a.ip);
        let mut names = BTreeSet::new();
        for a in &mut chosen {
            a.name = unique(&mut names, &a.name, "-");
        }
        for (i, a) in chosen.iter().enumerate() {
            self.asset_of.insert(a.ip, i);
        }
        self.assets = chosen;
    }

    /// The zone an address falls in, or the host itself.
    fn zkey(&self, a: Addr) -> Ep {
        site_net(a)
            .and_then(|(n, _)| self.zone_of.get(&n).copied())
            .map_or(Ep::Host(a), Ep::Zone)
    }

    fn ep_has(&self, ep: Ep, a: Addr) -> bool {
        match ep {
            Ep::Host(h) => h == a,
            Ep::Zone(_) => self.zkey(a) == ep,
        }
    }

    /// The zone of an endpoint (a host outside zones is its own).
    fn ep_zone(&self, ep: Ep) -> Ep {
        match ep {
            Ep::Host(a) => self.zkey(a),
            z => z,
        }
    }

    fn ep_label(&self, ep: Ep) -> String {
        match ep {
            Ep::Host(a) => match self.asset_of.get(&a).and_then(|i| self.assets.get(*i)) {
                Some(x) => x.name.clone(),
                None => a.to_string(),
            },
            Ep::Zone(i) => self
                .zones
                .get(i)
                .map_or_else(|| "?".into(), |z| z.name.clone()),
        }
    }

    fn ep_toml(&self, ep: Ep) -> String {
        match ep {
            Ep::Host(a) => match self.asset_of.get(&a).and_then(|i| self.assets.get(*i)) {
                Some(x) => format!("asset:{}", x.name),
                None => host_cidr(a),
            },
            Ep::Zone(i) => format!(
                "zone:{}",
                self.zones.get(i).map_or("?", |z| z.name.as_str())
            ),
        }
    }

    fn conv(&self, i: usize) -> Option<(Key, &'a Conv)> {
        self.convs.get(i).copied()
    }

    /// A rule standing for `members`, its fields united from theirs.
    fn make(
        &self,
        how: How,
        from: Ep,
        to: Ep,
        proto: Option<Proto>,
        members: Vec<usize>,
    ) -> RuleOut {
        let mut ports = BTreeSet::new();
        let mut any_port = false;
        let mut cmds = CmdSet::default();
        let mut units = BTreeSet::new();
        let mut units_any = false;
        let mut regs = Spans::default();
        let mut coils = Spans::default();
        let mut silence = Some(0u64);
        let mut notes = Vec::new();
        for (k, c) in members.iter().filter_map(|i| self.conv(*i)) {
            if k.port == 0 {
                any_port = true;
            } else {
                ports.insert(k.port);
            }
            cmds.union(&c.cmds);
            units_any |= c.units.overflow;
            units.extend(c.units.ids.iter().copied());
            regs.union(&c.regs);
            coils.union(&c.coils);
            silence = match (silence, c.silence_secs()) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let ports = if any_port {
            None
        } else if ports.len() > MAX_PORTS {
            notes.push(format!(
                "{} server ports seen (more than {MAX_PORTS}): ports are not restricted",
                ports.len()
            ));
            None
        } else {
            Some(ports.into_iter().collect())
        };
        let functions = match proto {
            Some(p) if has_commands(p) => Some(cmds),
            _ => None,
        };
        let units = if proto.is_none() || units.is_empty() {
            None
        } else if units_any || units.len() > MAX_UNITS {
            notes.push(format!(
                "more than {MAX_UNITS} unit ids seen: unit ids are not restricted"
            ));
            None
        } else {
            Some(units.into_iter().collect())
        };
        let spans = |s: Spans| (proto.is_some() && !s.is_empty()).then_some(s);
        RuleOut {
            how,
            from,
            to,
            proto,
            ports,
            silence: if functions.is_some() && !members.is_empty() {
                silence
            } else {
                None
            },
            functions,
            units,
            regs: spans(regs),
            coils: spans(coils),
            members,
            notes,
            name: String::new(),
        }
    }

    fn pair(&self, i: usize) -> Option<RuleOut> {
        let (k, _) = self.conv(i)?;
        Some(self.make(
            How::Pair,
            Ep::Host(k.client),
            Ep::Host(k.server),
            Some(k.proto),
            vec![i],
        ))
    }

    /// Steps 1–5 of the module documentation.
    fn rules(&mut self, max_rules: usize) {
        type IcsKey = (Proto, u16, Ep, Ep, CmdSet);
        let mut ics: BTreeMap<IcsKey, Vec<usize>> = BTreeMap::new();
        let mut other: BTreeMap<(Proto, Ep, Ep), Vec<usize>> = BTreeMap::new();
        for (i, (k, c)) in self.convs.iter().enumerate() {
            let (zc, zs) = (self.zkey(k.client), self.zkey(k.server));
            if has_commands(k.proto) {
                ics.entry((k.proto, k.port, zc, zs, c.cmds))
                    .or_default()
                    .push(i);
            } else {
                other.entry((k.proto, zc, zs)).or_default().push(i);
            }
        }
        let mut rules = Vec::new();
        // Step 2: merge candidates, at most one per (from, to, protocol, port).
        /// (conversations, requests, commands, members) of the best merge candidate.
        type Cand = (usize, u64, usize, Vec<usize>);
        let mut best: BTreeMap<(Ep, Ep, Proto, u16), Cand> = BTreeMap::new();
        for ((proto, port, zc, zs, cmds), members) in &ics {
            let clients: BTreeSet<Addr> = members
                .iter()
                .filter_map(|i| self.conv(*i))
                .map(|(k, _)| k.client)
                .collect();
            let servers: BTreeSet<Addr> = members
                .iter()
                .filter_map(|i| self.conv(*i))
                .map(|(k, _)| k.server)
                .collect();
            let complete = members.len() == clients.len() * servers.len();
            let side = |set: &BTreeSet<Addr>, z: Ep| match (set.len(), set.first()) {
                (1, Some(a)) => Ep::Host(*a),
                _ => z,
            };
            if members.len() < 2 || !complete {
                rules.extend(members.iter().filter_map(|i| self.pair(*i)));
                continue;
            }
            let from = side(&clients, *zc);
            let to = side(&servers, *zs);
            let requests: u64 = members
                .iter()
                .filter_map(|i| self.conv(*i))
                .map(|(_, c)| c.requests)
                .sum();
            let n_cmds = cmds.iter().count();
            let cand = (members.len(), requests, n_cmds, members.clone());
            match best.get_mut(&(from, to, *proto, *port)) {
                Some(cur) => {
                    // Most conversations, then most requests, then fewest commands.
                    let better = (cand.0, cand.1, std::cmp::Reverse(cand.2))
                        > (cur.0, cur.1, std::cmp::Reverse(cur.2));
                    let loser = if better {
                        std::mem::replace(cur, cand).3
                    } else {
                        cand.3
                    };
                    rules.extend(loser.iter().filter_map(|i| self.pair(*i)));
                }
                None => {
                    best.insert((from, to, *proto, *port), cand);
                }
            }
        }
        for ((from, to, proto, _), (_, _, _, members)) in best {
            rules.push(self.make(How::Merged, from, to, Some(proto), members));
        }
        // Step 3: other protocols by zone pair.
        for ((proto, zc, zs), members) in other {
            rules.push(self.make(How::Grouped, zc, zs, Some(proto), members));
        }
        self.rules = rules;
        // Step 4: order, then split merged rules that shadow another conversation.
        loop {
            self.sort_rules();
            let bad = self.shadowing();
            if bad.is_empty() {
                break;
            }
            let mut kept = Vec::with_capacity(self.rules.len());
            for (i, r) in std::mem::take(&mut self.rules).into_iter().enumerate() {
                if bad.contains(&i) {
                    kept.extend(r.members.iter().filter_map(|m| self.pair(*m)));
                } else {
                    kept.push(r);
                }
            }
            self.rules = kept;
        }
        // Step 5: the cap.
        for stage in 1..=3u8 {
            if self.rules.len() <= max_rules {
                break;
            }
            self.capped = true;
            self.coarsen(stage, max_rules);
            self.sort_rules();
        }
        if self.rules.len() > max_rules {
            self.capped = true;
            let mut order: Vec<(u64, usize)> = self
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let w: u64 = r
                        .members
                        .iter()
                        .filter_map(|m| self.conv(*m))
                        .map(|(_, c)| c.flows + c.requests)
                        .sum();
                    (w, i)
                })
                .collect();
            order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let keep: BTreeSet<usize> = order.iter().take(max_rules).map(|(_, i)| *i).collect();
            let mut kept = Vec::new();
            for (i, r) in std::mem::take(&mut self.rules).into_iter().enumerate() {
                if keep.contains(&i) {
                    kept.push(r);
                }
            }
            self.rules = kept;
        }
        self.name_rules();
        self.uncovered = self.check();
    }

    fn sort_rules(&mut self) {
        let mut rules = std::mem::take(&mut self.rules);
        rules.sort_by(|a, b| {
            (
                a.specificity(),
                a.proto.is_none(),
                a.proto,
                a.from,
                a.to,
                &a.ports,
                a.functions,
            )
                .cmp(&(
                    b.specificity(),
                    b.proto.is_none(),
                    b.proto,
                    b.from,
                    b.to,
                    &b.ports,
                    b.functions,
                ))
        });
        self.rules = rules;
    }

    fn matches(&self, r: &RuleOut, k: &Key) -> bool {
        self.ep_has(r.from, k.client)
            && self.ep_has(r.to, k.server)
            && r.proto.is_none_or(|p| p == k.proto)
            && r.ports.as_ref().is_none_or(|ps| ps.contains(&k.port))
    }

    fn grants(r: &RuleOut, c: &Conv) -> bool {
        r.functions.is_none_or(|f| c.cmds.subset_of(&f))
            && r.units.as_ref().is_none_or(|u| {
                !c.units.overflow && c.units.ids.iter().all(|x| u.binary_search(x).is_ok())
            })
            && r.regs.as_ref().is_none_or(|s| s.covers(&c.regs))
            && r.coils.as_ref().is_none_or(|s| s.covers(&c.coils))
    }

    /// The first rule a conversation meets.
    fn first_match(&self, k: &Key) -> Option<usize> {
        self.rules.iter().position(|r| self.matches(r, k))
    }

    /// Merged rules that are the first match of a conversation they do not grant.
    fn shadowing(&self) -> BTreeSet<usize> {
        let mut bad = BTreeSet::new();
        for (k, c) in self.convs {
            if let Some(i) = self.first_match(k)
                && let Some(r) = self.rules.get(i)
                && r.how == How::Merged
                && !Self::grants(r, c)
            {
                bad.insert(i);
            }
        }
        bad
    }

    /// Conversations whose first matching rule does not allow them (0 unless the cap
    /// left rules out).
    fn check(&self) -> usize {
        self.convs
            .iter()
            .filter(|(k, c)| {
                self.first_match(k)
                    .and_then(|i| self.rules.get(i))
                    .is_none_or(|r| !Self::grants(r, c))
            })
            .count()
    }

    /// Merges rules by bucket (stage 1: zone pair, protocol, ports; 2: zone pair and
    /// protocol; 3: zone pair), the buckets that save most first, until under the cap.
    fn coarsen(&mut self, stage: u8, max_rules: usize) {
        type Bucket = (Ep, Ep, Option<Proto>, Option<Vec<u16>>);
        let mut buckets: BTreeMap<Bucket, Vec<usize>> = BTreeMap::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = (
                self.ep_zone(r.from),
                self.ep_zone(r.to),
                if stage >= 3 { None } else { r.proto },
                if stage >= 2 { None } else { r.ports.clone() },
            );
            buckets.entry(key).or_default().push(i);
        }
        let mut order: Vec<(Bucket, Vec<usize>)> =
            buckets.into_iter().filter(|(_, v)| v.len() > 1).collect();
        // Stable: the largest savings first, then bucket order.
        order.sort_by_key(|b| std::cmp::Reverse(b.1.len()));
        let mut count = self.rules.len();
        let mut gone = BTreeSet::new();
        let mut added = Vec::new();
        for ((from, to, proto, _), idx) in order {
            if count <= max_rules {
                break;
            }
            let members: Vec<usize> = idx
                .iter()
                .filter_map(|i| self.rules.get(*i))
                .flat_map(|r| r.members.iter().copied())
                .collect();
            let mut r = self.make(How::Coarse(stage), from, to, proto, members);
            r.members.sort_unstable();
            count = count + 1 - idx.len();
            gone.extend(idx);
            added.push(r);
        }
        let mut kept: Vec<RuleOut> = std::mem::take(&mut self.rules)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, r)| r)
            .collect();
        kept.extend(added);
        self.rules = kept;
    }

    fn name_rules(&mut self) {
        let mut names = BTreeSet::new();
        let mut out = std::mem::take(&mut self.rules);
        for r in &mut out {
            let from = self.ep_label(r.from);
            let to = self.ep_label(r.to);
            let base = match (r.proto, r.functions) {
                (None, _) => format!("{from} to {to} (any protocol)"),
                (Some(p), None) => format!("{from} to {to} ({p})"),
                (Some(p), Some(f)) => {
                    let verb = match f.top_class().map(class_rank) {
                        None => "connects to",
                        Some(0) if r.silence.is_some() => "polls",
                        Some(0) => "reads",
                        Some(1) => "writes to",
                        Some(2) => "controls",
                        Some(_) => "operates",
                    };
                    format!("{from} {verb} {to} ({p})")
                }
            };
            r.name = unique(&mut names, &base, " ");
        }
        self.rules = out;
    }

    fn write_zones(&self, out: &mut String) {
        if self.zones.is_empty() {
            return;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# Zones from the address plan: one per /24 of private IPv4 (or /64 of IPv6 ULA and"
        );
        let _ = writeln!(
            out,
            "# link-local) with hosts, named control_ (hosts serve an ICS protocol), scada_ (hosts"
        );
        let _ = writeln!(
            out,
            "# only poll ICS servers) or net_. Public addresses get no zone: rules name them."
        );
        let _ = writeln!(out, "[zones]");
        for z in &self.zones {
            let what = match (z.ics_server, z.ics_client) {
                (true, true) => ": ICS servers and clients",
                (true, false) => ": ICS servers",
                (false, true) => ": ICS clients",
                (false, false) => "",
            };
            let _ = writeln!(
                out,
                "{} = [\"{}/{}\"]  # {}{what}",
                z.name,
                z.net.to_ip(),
                z.prefix,
                plural(z.hosts as u64, "host", "hosts")
            );
        }
    }

    fn write_assets(&self, out: &mut String) {
        if self.assets.is_empty() {
            return;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# Assets: the hosts of the learnt conversations (at most {MAX_ASSETS}), named from"
        );
        let _ = writeln!(
            out,
            "# their role and address; mac only where ARP/NDP or an un-routed packet bound it."
        );
        for a in &self.assets {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "# {}; seen {} to {}",
                a.roles.join(", "),
                a.first.rfc3339(),
                a.last.rfc3339()
            );
            let _ = writeln!(out, "[[assets]]");
            let _ = writeln!(out, "name = {}", toml_str(&a.name));
            let _ = writeln!(out, "ip = \"{}\"", a.ip.to_ip());
            if let Some(m) = a.mac {
                let _ = writeln!(out, "mac = \"{}\"", fmt_mac(&m));
            }
            if let Some(d) = &a.description {
                let _ = writeln!(out, "description = {}", toml_str(d));
            }
        }
    }

    fn write_rules(&self, out: &mut String, max_rules: usize) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# Allow rules, most specific first: a flow is judged by the first rule it matches."
        );
        let _ = writeln!(
            out,
            "# ARP, LLDP, STP, GOOSE, SV and PROFINET DCP need no rules: allow rules judge IP flows."
        );
        let _ = writeln!(
            out,
            "# registers and coils are wire (0-based) addresses, as the requests carried them."
        );
        for r in &self.rules {
            let _ = writeln!(out);
            self.write_rule(out, r, max_rules);
        }
    }

    fn write_rule(&self, out: &mut String, r: &RuleOut, max_rules: usize) {
        let ms: Vec<(Key, &Conv)> = r.members.iter().filter_map(|i| self.conv(*i)).collect();
        let flows: u64 = ms.iter().map(|(_, c)| c.flows).sum();
        let requests: u64 = ms.iter().map(|(_, c)| c.requests).sum();
        let first = ms.iter().map(|(_, c)| c.first).min().unwrap_or_default();
        let last = ms.iter().map(|(_, c)| c.last).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "# {}, {}, {}; seen {} to {}",
            plural(ms.len() as u64, "conversation", "conversations"),
            plural(flows, "flow", "flows"),
            plural(requests, "request", "requests"),
            first.rfc3339(),
            last.rfc3339()
        );
        match r.how {
            How::Pair => {}
            How::Merged => {
                let clients: BTreeSet<Addr> = ms.iter().map(|(k, _)| k.client).collect();
                let servers: BTreeSet<Addr> = ms.iter().map(|(k, _)| k.server).collect();
                let _ = writeln!(
                    out,
                    "# merged: {} x {} with the same commands, every pair seen",
                    plural(clients.len() as u64, "client", "clients"),
                    plural(servers.len() as u64, "server", "servers"),
                );
            }
            How::Grouped => {
                let _ = writeln!(out, "# by zone pair and protocol");
            }
            How::Coarse(stage) => {
                let by = match stage {
                    1 => "zone pair, protocol and ports",
                    2 => "zone pair and protocol",
                    _ => "zone pair (any protocol)",
                };
                let _ = writeln!(
                    out,
                    "# CAPPED (max_rules = {max_rules}): merged by {by}; commands, units and addresses united"
                );
            }
        }
        if ms.len() > 1 {
            for (k, _) in ms.iter().take(6) {
                let _ = writeln!(out, "#   {}", conv_label(k));
            }
            if ms.len() > 6 {
                let _ = writeln!(out, "#   … and {} more", ms.len() - 6);
            }
        }
        for (k, _) in &ms {
            if let Some(m) = self.missing.get(k) {
                let _ = writeln!(
                    out,
                    "# not allowed yet by the rule this flow matches: {} (add them to that rule, or put this rule before it)",
                    m.names().join(", ")
                );
            }
        }
        for n in &r.notes {
            let _ = writeln!(out, "# {n}");
        }
        if r.functions.is_some_and(|f| f.is_empty()) {
            let _ = writeln!(out, "# no command was seen: none is allowed");
        }
        let _ = writeln!(out, "[[allow]]");
        let _ = writeln!(out, "name = {}", toml_str(&r.name));
        let _ = writeln!(out, "from = {}", toml_str(&self.ep_toml(r.from)));
        let _ = writeln!(out, "to = {}", toml_str(&self.ep_toml(r.to)));
        if let Some(p) = r.proto {
            let _ = writeln!(out, "protocol = \"{p}\"");
        }
        if let Some(ps) = &r.ports {
            let list: Vec<String> = ps.iter().map(u16::to_string).collect();
            let _ = writeln!(out, "ports = [{}]", list.join(", "));
        }
        if let Some(f) = &r.functions {
            let list: Vec<String> = f.names().iter().map(|n| format!("\"{n}\"")).collect();
            let _ = writeln!(out, "functions = [{}]", list.join(", "));
        }
        if let Some(u) = &r.units {
            let list: Vec<String> = u.iter().map(u32::to_string).collect();
            let _ = writeln!(out, "unit_ids = [{}]", list.join(", "));
        }
        if let Some(s) = &r.regs {
            let _ = writeln!(out, "registers = {}", s.toml());
        }
        if let Some(s) = &r.coils {
            let _ = writeln!(out, "coils = {}", s.toml());
        }
        if let Some(s) = r.silence {
            let _ = writeln!(out, "silence_after = \"{}\"", HumanDuration::secs(s));
        }
    }
}

fn conv_label(k: &Key) -> String {
    match k.server.to_ip() {
        IpAddr::V6(v6) => format!("{} -> [{v6}]:{} {}", k.client, k.port, k.proto),
        IpAddr::V4(v4) => format!("{} -> {v4}:{} {}", k.client, k.port, k.proto),
    }
}

/// `base`, or `base{sep}2`, `base{sep}3`… whichever is free; records it.
fn unique(names: &mut BTreeSet<String>, base: &str, sep: &str) -> String {
    let mut n = 1u32;
    let mut name = base.to_string();
    while names.contains(&name) {
        n += 1;
        name = format!("{base}{sep}{n}");
    }
    names.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::{Identity, PduSink, Side, Violation};
    use infrawatch_config::policy::Cidr;
    use std::collections::HashSet;

    const HMI: [u8; 4] = [10, 20, 0, 10];
    const PLCS: [[u8; 4]; 3] = [[10, 10, 0, 5], [10, 10, 0, 6], [10, 10, 0, 7]];

    fn ip(a: [u8; 4]) -> Addr {
        Addr::v4(a)
    }

    fn opts(max_rules: usize) -> LearnOptions {
        LearnOptions {
            name: "site-test".into(),
            max_rules,
            source: "test: synthetic traffic".into(),
        }
    }

    fn modbus(cmd: Cmd, unit: u32, space: AddrSpace, start: u16, count: u16) -> Pdu<'static> {
        let mut p = Pdu::new(Proto::Modbus, PduKind::Request(cmd));
        p.unit = Some(unit);
        p.range = Some(AddrRange {
            space,
            start,
            count,
        });
        p
    }

    fn rhr() -> Pdu<'static> {
        modbus(
            Cmd::ModbusReadHoldingRegisters,
            1,
            AddrSpace::HoldingRegisters,
            0,
            10,
        )
    }

    /// `client` polls `server` with `pdu` every `period_ms` from `start` s, `n` times.
    fn poll(
        l: &mut Learner,
        client: Addr,
        server: Addr,
        pdu: &Pdu<'_>,
        start: u64,
        period_ms: u64,
        n: u64,
    ) {
        l.conversation(Ts::from_secs(start), client, server, pdu.proto, 502);
        for i in 0..n {
            let t = Ts::from_secs(start).add_nanos(i * period_ms * 1_000_000);
            l.request(t, client, server, 502, pdu);
        }
    }

    /// The asset table as the engine would fill it for these hosts.
    fn assets_for(servers: &[Addr], clients: &[Addr], proto: Proto) -> Assets {
        let mut t = Assets::new(1000);
        for s in servers {
            for c in clients {
                t.endpoint(*c, None, None, Ts::from_secs(1));
                t.endpoint(*s, None, None, Ts::from_secs(1));
                t.roles(*s, *c, proto, Ts::from_secs(1));
            }
        }
        t
    }

    /// A policy read back from the rendered TOML, judging flows as the agent will (the
    /// first rule whose from/to/protocol/ports fit), for tests and as a fake old policy.
    #[derive(Debug, Default)]
    struct TomlPolicy {
        zones: HashMap<String, Vec<Cidr>>,
        assets: Vec<(String, IpAddr, Option<String>)>,
        rules: Vec<toml::Table>,
    }

    fn cidr(s: &str) -> Cidr {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        let prefix = if p.is_empty() {
            if addr.is_ipv4() { 32 } else { 128 }
        } else {
            p.parse().unwrap()
        };
        Cidr { addr, prefix }
    }

    impl TomlPolicy {
        /// Parses and checks: valid TOML, `[policy]`, unique names, every reference
        /// resolved.
        fn parse(text: &str) -> TomlPolicy {
            let v: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let pol = v["policy"].as_table().unwrap();
            assert_eq!(pol["mode"].as_str(), Some("monitor"));
            assert!(pol["name"].as_str().is_some());
            let mut p = TomlPolicy::default();
            if let Some(z) = v.get("zones").and_then(|z| z.as_table()) {
                for (name, nets) in z {
                    assert!(
                        name.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    );
                    let nets = nets.as_array().unwrap();
                    p.zones.insert(
                        name.clone(),
                        nets.iter().map(|n| cidr(n.as_str().unwrap())).collect(),
                    );
                }
            }
            let mut names = HashSet::new();
            for a in v
                .get("assets")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
            {
                let name = a["name"].as_str().unwrap().to_string();
                assert!(names.insert(name.clone()), "duplicate asset {name}");
                let ip: IpAddr = a["ip"].as_str().unwrap().parse().unwrap();
                let mac = a.get("mac").and_then(|m| m.as_str()).map(String::from);
                p.assets.push((name, ip, mac));
            }
            let mut rule_names = HashSet::new();
            for r in v
                .get("allow")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
            {
                let r = r.as_table().unwrap().clone();
                let name = r["name"].as_str().unwrap().to_string();
                assert!(rule_names.insert(name.clone()), "duplicate rule {name}");
                for side in ["from", "to"] {
                    let ep = r[side].as_str().unwrap();
                    if let Some(z) = ep.strip_prefix("zone:") {
                        assert!(p.zones.contains_key(z), "{name}: no zone {z}");
                    } else if let Some(a) = ep.strip_prefix("asset:") {
                        assert!(p.assets.iter().any(|x| x.0 == a), "{name}: no asset {a}");
                    } else if ep != "any" {
                        cidr(ep);
                    }
                }
                if let Some(proto) = r.get("protocol").and_then(|p| p.as_str()) {
                    let proto = Proto::from_name(proto).unwrap();
                    for f in r
                        .get("functions")
                        .and_then(|f| f.as_array())
                        .into_iter()
                        .flatten()
                    {
                        assert!(Cmd::find(proto, f.as_str().unwrap()).is_some(), "{f}");
                    }
                }
                if let Some(s) = r.get("silence_after").and_then(|s| s.as_str()) {
                    infrawatch_config::units::parse_duration(s).unwrap();
                }
                p.rules.push(r);
            }
            p
        }

        fn has(&self, ep: &str, a: Addr) -> bool {
            let a = a.to_ip();
            if ep == "any" {
                true
            } else if let Some(z) = ep.strip_prefix("zone:") {
                self.zones[z].iter().any(|c| c.contains(a))
            } else if let Some(n) = ep.strip_prefix("asset:") {
                self.assets.iter().any(|x| x.0 == n && x.1 == a)
            } else {
                cidr(ep).contains(a)
            }
        }

        fn first(&self, c: Addr, s: Addr, proto: Proto, port: u16) -> Option<&toml::Table> {
            self.rules.iter().find(|r| {
                self.has(r["from"].as_str().unwrap(), c)
                    && self.has(r["to"].as_str().unwrap(), s)
                    && r.get("protocol")
                        .is_none_or(|p| p.as_str() == Some(proto.name()))
                    && r.get("ports").is_none_or(|ps| {
                        ps.as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x.as_integer() == Some(i64::from(port)))
                    })
            })
        }
    }

    impl Allows for TomlPolicy {
        fn allows(&self, c: Addr, s: Addr, proto: Proto, port: u16, cmd: Option<Cmd>) -> bool {
            let Some(r) = self.first(c, s, proto, port) else {
                return false;
            };
            match (cmd, r.get("functions")) {
                (Some(cmd), Some(f)) => f
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x.as_str() == Some(cmd.name())),
                _ => true,
            }
        }
        fn knows_asset(&self, ip: Option<Addr>, mac: Option<Mac>) -> bool {
            self.assets.iter().any(|(_, a, m)| {
                ip.is_some_and(|ip| ip.to_ip() == *a)
                    || (mac.is_some() && m.as_deref() == mac.as_ref().map(fmt_mac).as_deref())
            })
        }
    }

    /// Every learnt conversation and command is allowed by the rendered policy.
    fn assert_covers(l: &Learner, p: &TomlPolicy) {
        for (k, c) in l.sorted() {
            assert!(p.allows(k.client, k.server, k.proto, k.port, None), "{k:?}");
            for cmd in c.cmds.iter() {
                assert!(
                    p.allows(k.client, k.server, k.proto, k.port, Some(cmd)),
                    "{k:?} {cmd:?}"
                );
            }
        }
    }

    fn allow_rules(p: &TomlPolicy, proto: &str) -> Vec<toml::Table> {
        p.rules
            .iter()
            .filter(|r| r.get("protocol").and_then(|x| x.as_str()) == Some(proto))
            .cloned()
            .collect()
    }

    fn strs(v: &toml::Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    }

    fn hmi_polls_plcs() -> Learner {
        let mut l = Learner::new(100);
        for (i, plc) in PLCS.iter().enumerate() {
            poll(&mut l, ip(HMI), ip(*plc), &rhr(), 1000 + i as u64, 1000, 60);
        }
        l
    }

    #[test]
    fn hmi_polling_three_plcs_is_one_merged_zone_rule() {
        let l = hmi_polls_plcs();
        let plcs: Vec<Addr> = PLCS.iter().map(|p| ip(*p)).collect();
        let mut assets = assets_for(&plcs, &[ip(HMI)], Proto::Modbus);
        let mac = [0x00, 0x80, 0xf4, 1, 2, 3];
        assets.bind(ip(PLCS[0]), mac, false, Ts::from_secs(2));
        assets.identity(
            Some(ip(PLCS[0])),
            None,
            &Identity {
                vendor: Some(b"Schneider Electric"),
                model: Some(b"BMX P34 2020"),
                firmware: Some(b"v2.7"),
                ..Identity::default()
            },
            Ts::from_secs(2),
        );
        let (text, report) = l.render(&assets, &opts(100));
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);
        let rules = allow_rules(&p, "modbus");
        assert_eq!(rules.len(), 1, "{text}");
        let r = &rules[0];
        assert_eq!(r["from"].as_str(), Some("asset:hmi-10-20-0-10"));
        assert_eq!(r["to"].as_str(), Some("zone:control_10_10_0"));
        assert_eq!(strs(&r["functions"]), ["read_holding_registers"]);
        assert_eq!(r["unit_ids"].as_array().unwrap().len(), 1);
        assert_eq!(r["unit_ids"][0].as_integer(), Some(1));
        assert_eq!(strs(&r["registers"]), ["0-9"]);
        assert_eq!(r["silence_after"].as_str(), Some("10s"));
        assert_eq!(r["ports"][0].as_integer(), Some(502));
        assert_eq!(
            r["name"].as_str(),
            Some("hmi-10-20-0-10 polls control_10_10_0 (modbus)")
        );
        assert!(r.get("coils").is_none());
        // Zones and assets from the address plan and the roles.
        assert_eq!(p.zones.len(), 2);
        assert!(p.zones.contains_key("control_10_10_0"));
        assert!(p.zones.contains_key("scada_10_20_0"));
        let names: Vec<&str> = p.assets.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "plc-10-10-0-5",
                "plc-10-10-0-6",
                "plc-10-10-0-7",
                "hmi-10-20-0-10"
            ]
        );
        assert_eq!(p.assets[0].2.as_deref(), Some("00:80:f4:01:02:03"));
        assert!(p.assets[1].2.is_none(), "no binding, no mac");
        assert!(text.contains("description = \"Schneider Electric BMX P34 2020, firmware v2.7\""));
        assert!(text.contains("# merged: 1 client x 3 servers"));
        assert!(text.contains("# 3 conversations, 3 flows, 180 requests; seen "));
        assert!(text.contains("REVIEW"));
        assert_eq!(
            report,
            LearnReport {
                conversations: 3,
                rules: 1,
                merged_rules: 1,
                zones: 2,
                assets: 4,
                flows: 3,
                requests: 180,
                ..LearnReport::default()
            }
        );
    }

    #[test]
    fn different_command_sets_stay_separate() {
        let mut l = Learner::new(100);
        let write = modbus(
            Cmd::ModbusWriteSingleRegister,
            1,
            AddrSpace::HoldingRegisters,
            40,
            1,
        );
        poll(&mut l, ip(HMI), ip(PLCS[0]), &rhr(), 10, 1000, 30);
        poll(&mut l, ip(HMI), ip(PLCS[1]), &rhr(), 10, 1000, 30);
        poll(&mut l, ip(HMI), ip(PLCS[1]), &write, 50, 1000, 3);
        let (text, _) = l.render(&Assets::new(10), &opts(100));
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);
        let rules = allow_rules(&p, "modbus");
        assert_eq!(rules.len(), 2, "{text}");
        let fns: Vec<Vec<String>> = rules.iter().map(|r| strs(&r["functions"])).collect();
        assert!(fns.contains(&vec!["read_holding_registers".to_string()]));
        assert!(fns.contains(&vec![
            "read_holding_registers".to_string(),
            "write_single_register".to_string()
        ]));
        let writer = rules
            .iter()
            .find(|r| strs(&r["functions"]).len() == 2)
            .unwrap();
        assert_eq!(strs(&writer["registers"]), ["0-9", "40"]);
        assert_eq!(
            writer["name"].as_str().unwrap(),
            "hmi-10-20-0-10 writes to plc-10-10-0-6 (modbus)"
        );
        assert!(!p.allows(
            ip(HMI),
            ip(PLCS[0]),
            Proto::Modbus,
            502,
            Some(Cmd::ModbusWriteSingleRegister)
        ));
    }

    #[test]
    fn a_merged_rule_never_shadows_a_wider_conversation() {
        // The HMI reads PLCs 5 and 6 (merged), and reads and writes PLC 7: the specific
        // rule for PLC 7 comes first, so its writes stay allowed.
        let mut l = Learner::new(100);
        let write = modbus(Cmd::ModbusWriteSingleCoil, 1, AddrSpace::Coils, 3, 1);
        for plc in PLCS {
            poll(&mut l, ip(HMI), ip(plc), &rhr(), 10, 1000, 20);
        }
        poll(&mut l, ip(HMI), ip(PLCS[2]), &write, 40, 1000, 2);
        let (text, report) = l.render(&Assets::new(10), &opts(100));
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);
        assert_eq!(report.rules, 2);
        assert_eq!(report.merged_rules, 1);
        let rules = allow_rules(&p, "modbus");
        assert_eq!(rules[0]["to"].as_str(), Some("asset:plc-10-10-0-7"));
        assert_eq!(strs(&rules[0]["coils"]), ["3"]);
        assert_eq!(rules[1]["to"].as_str(), Some("zone:control_10_10_0"));

        // Two HMIs in one zone with different rights: the merged zone → zone rule would
        // meet the other HMI's writes first, so the learner splits it.
        let mut l = Learner::new(100);
        let hmi2 = ip([10, 20, 0, 11]);
        let hmi3 = ip([10, 20, 0, 12]);
        for plc in PLCS {
            poll(&mut l, hmi2, ip(plc), &rhr(), 10, 1000, 20);
            poll(&mut l, hmi3, ip(plc), &rhr(), 10, 1000, 20);
        }
        let write = modbus(
            Cmd::ModbusWriteMultipleRegisters,
            1,
            AddrSpace::HoldingRegisters,
            0,
            4,
        );
        poll(&mut l, ip(HMI), ip(PLCS[0]), &write, 10, 1000, 20);
        poll(&mut l, ip(HMI), ip(PLCS[1]), &write, 10, 1000, 20);
        let (text, _) = l.render(&Assets::new(10), &opts(100));
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);

        // The HMI only reads PLCs 5 and 6 (asset:hmi → zone:control), but it and a
        // second HMI also read and write PLCs 7 and 8 (zone:scada → zone:control). The
        // first rule would meet the HMI's writes to PLC 7 first: it is split per pair.
        let mut l = Learner::new(100);
        let plc8 = ip([10, 10, 0, 8]);
        let rw = modbus(
            Cmd::ModbusWriteSingleRegister,
            1,
            AddrSpace::HoldingRegisters,
            0,
            1,
        );
        for plc in [ip(PLCS[0]), ip(PLCS[1])] {
            poll(&mut l, ip(HMI), plc, &rhr(), 10, 1000, 20);
        }
        for hmi in [ip(HMI), hmi2] {
            for plc in [ip(PLCS[2]), plc8] {
                poll(&mut l, hmi, plc, &rhr(), 10, 1000, 20);
                poll(&mut l, hmi, plc, &rw, 40, 1000, 2);
            }
        }
        let (text, report) = l.render(&Assets::new(10), &opts(100));
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);
        let rules = allow_rules(&p, "modbus");
        let shape: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r["from"].as_str().unwrap(), r["to"].as_str().unwrap()))
            .collect();
        assert_eq!(
            shape,
            [
                ("asset:hmi-10-20-0-10", "asset:plc-10-10-0-5"),
                ("asset:hmi-10-20-0-10", "asset:plc-10-10-0-6"),
                ("zone:scada_10_20_0", "zone:control_10_10_0"),
            ],
            "{text}"
        );
        assert_eq!(report.merged_rules, 1);
    }

    #[test]
    fn learners_of_several_threads_fold_into_one() {
        let whole = hmi_polls_plcs();
        let mut a = Learner::new(100);
        let mut b = Learner::new(100);
        poll(&mut a, ip(HMI), ip(PLCS[0]), &rhr(), 1000, 1000, 60);
        poll(&mut b, ip(HMI), ip(PLCS[1]), &rhr(), 1001, 1000, 60);
        poll(&mut b, ip(HMI), ip(PLCS[2]), &rhr(), 1002, 1000, 60);
        a.absorb(b);
        let assets = Assets::new(10);
        assert_eq!(
            a.render(&assets, &opts(100)),
            whole.render(&assets, &opts(100))
        );
        // The same conversation from two threads: counts add, sets unite.
        let mut c = Learner::new(1);
        let mut d = Learner::new(1);
        poll(&mut c, ip(HMI), ip(PLCS[0]), &rhr(), 0, 1000, 10);
        let w = modbus(Cmd::ModbusWriteSingleCoil, 2, AddrSpace::Coils, 4, 1);
        poll(&mut d, ip(HMI), ip(PLCS[0]), &w, 20, 1000, 10);
        poll(&mut d, ip(HMI), ip(PLCS[1]), &w, 20, 1000, 10);
        c.absorb(d);
        assert_eq!(c.len(), 1);
        assert_eq!(c.dropped(), 1, "the cap holds");
        let (_, conv) = c.sorted()[0];
        assert_eq!((conv.flows, conv.requests), (2, 20));
        assert_eq!(conv.units.ids, [1, 2]);
        assert_eq!(conv.coils.0, [(4, 4)]);
        assert!(conv.cmds.contains(Cmd::ModbusWriteSingleCoil));
    }

    #[test]
    fn rendering_is_deterministic() {
        let a = hmi_polls_plcs();
        // The same observations in another order (another hash order too).
        let mut b = Learner::new(100);
        for (i, plc) in PLCS.iter().enumerate().rev() {
            poll(&mut b, ip(HMI), ip(*plc), &rhr(), 1000 + i as u64, 1000, 60);
        }
        let dns = Pdu::new(Proto::Dns, PduKind::Message);
        // Messages other than requests are not learnt.
        b.request(Ts::from_secs(1001), ip(HMI), ip(PLCS[0]), 53, &dns);
        let assets = Assets::new(10);
        let (t1, r1) = a.render(&assets, &opts(100));
        let (t2, r2) = a.render(&assets, &opts(100));
        let (t3, r3) = b.render(&assets, &opts(100));
        assert_eq!(t1, t2);
        assert_eq!(r1, r2);
        assert_eq!(t1, t3);
        assert_eq!(r1, r3);
    }

    /// Three HMIs in one zone, each with its own commands on its own PLCs, plus DNS.
    fn mixed_site() -> Learner {
        let mut l = Learner::new(1000);
        let cmds = [
            Cmd::ModbusReadHoldingRegisters,
            Cmd::ModbusReadInputRegisters,
            Cmd::ModbusReadCoils,
        ];
        for (h, cmd) in cmds.iter().enumerate() {
            let hmi = ip([10, 20, 0, 10 + h as u8]);
            for d in 0..4u8 {
                let plc = ip([10, 10, 0, 5 + 4 * h as u8 + d]);
                let p = modbus(*cmd, 1 + u32::from(d), AddrSpace::InputRegisters, 100, 5);
                poll(&mut l, hmi, plc, &p, 100, 2000, 10 + u64::from(d));
            }
            l.conversation(Ts::from_secs(7), hmi, ip([10, 30, 0, 53]), Proto::Dns, 53);
        }
        l
    }

    #[test]
    fn the_cap_merges_coarsely_and_reports() {
        let l = mixed_site();
        let (text, report) = l.render(&Assets::new(10), &opts(100));
        assert!(!report.capped);
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);
        // Per HMI: one rule for its 4 PLCs (different unit ids per PLC but the same
        // commands); DNS by zone pair.
        assert_eq!(report.rules, 4, "{text}");
        let dns = allow_rules(&p, "dns");
        assert_eq!(dns.len(), 1);
        assert_eq!(dns[0]["from"].as_str(), Some("zone:scada_10_20_0"));
        assert_eq!(dns[0]["to"].as_str(), Some("zone:net_10_30_0"));
        assert!(dns[0].get("functions").is_none());

        let (text, report) = l.render(&Assets::new(10), &opts(2));
        let p = TomlPolicy::parse(&text);
        assert!(report.capped);
        assert!(report.rules <= 2, "{text}");
        assert_eq!(report.uncovered, 0);
        assert!(text.contains("# CAPPED: more than max_rules = 2"));
        assert!(text.contains("# CAPPED (max_rules = 2): merged by"));
        assert_covers(&l, &p);

        // Nothing can merge below one rule per zone pair: the least used rules are left
        // out and counted.
        let (text, report) = l.render(&Assets::new(10), &opts(1));
        let p = TomlPolicy::parse(&text);
        assert_eq!(report.rules, 1);
        assert!(report.uncovered > 0);
        assert!(text.contains("conversations are left uncovered"));
        let (_, again) = l.render(&Assets::new(10), &opts(1));
        assert_eq!(report, again);
        assert!(!p.rules.is_empty());
    }

    #[test]
    fn additions_list_exactly_what_is_missing() {
        let base = hmi_polls_plcs();
        let plcs: Vec<Addr> = PLCS.iter().map(|p| ip(*p)).collect();
        let assets = assets_for(&plcs, &[ip(HMI)], Proto::Modbus);
        let (old_text, _) = base.render(&assets, &opts(100));
        let old = TomlPolicy::parse(&old_text);
        assert_eq!(base.additions(&assets, &old, &opts(100)), "");

        // The same traffic, plus a write to PLC 5, a new PLC, and a new engineering host.
        let mut l = hmi_polls_plcs();
        let write = modbus(
            Cmd::ModbusWriteSingleRegister,
            1,
            AddrSpace::HoldingRegisters,
            7,
            1,
        );
        poll(&mut l, ip(HMI), ip(PLCS[0]), &write, 2000, 1000, 1);
        let ews = ip([192, 168, 5, 20]);
        let plc9 = ip([172, 16, 1, 9]);
        poll(&mut l, ews, plc9, &rhr(), 2000, 1000, 2);
        let text = l.additions(&assets, &old, &opts(100));
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "# learn: test: synthetic traffic would add 2 rules (1 conversation not allowed, 1 with commands not allowed) and 2 assets"
        );
        for line in text.lines().skip(1) {
            assert!(line == "+" || line.starts_with("+ "), "{line}");
        }
        let body: String = text
            .lines()
            .skip(1)
            .map(|l| format!("{}\n", l.strip_prefix("+ ").unwrap_or("")))
            .collect();
        let v: toml::Table = toml::from_str(&body).unwrap();
        let rules = v["allow"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "{text}");
        let assets_added: Vec<&str> = v["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(assets_added, ["plc-172-16-1-9", "hmi-192-168-5-20"]);
        assert!(
            text.contains("# not allowed yet by the rule this flow matches: write_single_register")
        );
        let write_rule = rules
            .iter()
            .find(|r| r["from"].as_str() == Some("10.20.0.10/32"))
            .unwrap();
        assert_eq!(write_rule["to"].as_str(), Some("10.10.0.5/32"));
        assert_eq!(
            strs(&write_rule["functions"]),
            ["read_holding_registers", "write_single_register"]
        );
        let new_rule = rules
            .iter()
            .find(|r| r["from"].as_str() == Some("asset:hmi-192-168-5-20"))
            .unwrap();
        assert_eq!(new_rule["to"].as_str(), Some("asset:plc-172-16-1-9"));
    }

    /// An `Allows` that knows one host and allows one conversation without commands.
    struct Fake;
    impl Allows for Fake {
        fn allows(&self, c: Addr, _: Addr, _: Proto, _: u16, cmd: Option<Cmd>) -> bool {
            c == ip(HMI) && cmd.is_none()
        }
        fn knows_asset(&self, ip_: Option<Addr>, _: Option<Mac>) -> bool {
            ip_ == Some(ip(HMI))
        }
    }

    #[test]
    fn additions_with_a_fake_policy() {
        let l = hmi_polls_plcs();
        let text = l.additions(&Assets::new(10), &Fake, &opts(100));
        assert!(text.starts_with(
            "# learn: test: synthetic traffic would add 3 rules (0 conversations not allowed, 3 with commands not allowed) and 3 assets\n"
        ));
        assert_eq!(text.matches("+ [[allow]]").count(), 3);
        assert_eq!(text.matches("+ [[assets]]").count(), 3);
        assert!(!text.contains("hmi-10-20-0-10"), "known: named by address");
        assert_eq!(text.matches("+ from = \"10.20.0.10/32\"").count(), 3);
    }

    #[test]
    fn poll_timing_is_robust_and_only_for_regular_polls() {
        let hmi = ip(HMI);
        let plc = ip(PLCS[0]);
        // One second polls for an hour, with one 2-minute outage: still 10 s.
        let mut l = Learner::new(10);
        l.conversation(Ts::from_secs(0), hmi, plc, Proto::Modbus, 502);
        let mut t = 0u64;
        for i in 0..3600u64 {
            if i == 1800 {
                t += 120_000;
            }
            t += 1000;
            l.request(Ts::from_micros(t * 1000), hmi, plc, 502, &rhr());
        }
        let c = l.sorted()[0].1;
        assert_eq!(c.silence_secs(), Some(10));
        // Bursts of three reads every 30 s: the cycle, not the burst, sets it.
        let mut l = Learner::new(10);
        for cycle in 0..20u64 {
            for j in 0..3u64 {
                let t = Ts::from_secs(cycle * 30).add_nanos(j * 5_000_000);
                l.request(t, hmi, plc, 502, &rhr());
            }
        }
        let c = l.sorted()[0].1;
        assert_eq!(c.silence_secs(), Some(120), "3 × ~32 s, rounded up");
        // Irregular: gaps of 1 s, 2 s, 4 s … 512 s, over and over.
        let mut l = Learner::new(10);
        let mut t = 0;
        for i in 0..100u64 {
            t += 1 << (i % 10);
            l.request(Ts::from_secs(t), hmi, plc, 502, &rhr());
        }
        assert_eq!(l.sorted()[0].1.silence_secs(), None);
        // Operator-driven: exponential gaps (mean 60 s) from a fixed LCG.
        let mut l = Learner::new(10);
        let (mut t, mut x) = (0f64, 12_345u64);
        for _ in 0..500 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            t += -u.ln() * 60.0;
            l.request(Ts((t * 1e9) as u64), hmi, plc, 502, &rhr());
        }
        assert_eq!(l.sorted()[0].1.silence_secs(), None);
        // A cycle of 1 s, 10 s and 100 s gaps is a 111 s poll: 100 s gaps carry 90 % of
        // the time.
        let mut l = Learner::new(10);
        let mut t = 0;
        for i in 0..60u64 {
            t += [1, 10, 100][(i % 3) as usize];
            l.request(Ts::from_secs(t), hmi, plc, 502, &rhr());
        }
        assert_eq!(l.sorted()[0].1.silence_secs(), Some(600));
        // Too few requests.
        let mut l = Learner::new(10);
        poll(&mut l, hmi, plc, &rhr(), 0, 1000, 5);
        assert_eq!(l.sorted()[0].1.silence_secs(), None);
    }

    #[test]
    fn spans_units_and_gap_classes_are_bounded() {
        let mut s = Spans::default();
        s.add(10, 19);
        s.add(20, 29);
        s.add(0, 5);
        assert_eq!(s.0, vec![(0, 5), (10, 29)]);
        for i in 0..50u16 {
            s.add(1000 + i * 100, 1000 + i * 100 + 1);
        }
        assert_eq!(s.0.len(), MAX_SPANS);
        assert!(s.covers(&Spans(vec![(0, 5), (10, 29), (5900, 5901)])));
        s.add_range(&AddrRange {
            space: AddrSpace::Coils,
            start: 65_530,
            count: 100,
        });
        assert_eq!(s.0.len(), MAX_SPANS);
        assert!(s.covers(&Spans(vec![(65_530, 65_535)])));
        let mut u = Units::default();
        for i in 0..100 {
            u.insert(i);
        }
        assert_eq!(u.ids.len(), MAX_UNITS);
        assert!(u.overflow);
        assert_eq!(gap_class(0), 0);
        assert_eq!(gap_class(1), 0);
        assert_eq!(gap_class(2), 2);
        assert_eq!(gap_class(1000), 19);
        assert_eq!(class_upper_ms(19), 1024);
        assert_eq!(gap_class(u64::MAX), GAP_CLASSES - 1);
    }

    #[test]
    fn the_table_is_bounded_and_drops_are_counted() {
        let mut l = Learner::new(2);
        for d in 0..5u8 {
            l.conversation(
                Ts::from_secs(1),
                ip(HMI),
                ip([10, 10, 0, d + 1]),
                Proto::Modbus,
                502,
            );
            l.request(
                Ts::from_secs(2),
                ip(HMI),
                ip([10, 10, 0, d + 1]),
                502,
                &rhr(),
            );
        }
        // Link-layer protocols are not learnt.
        l.conversation(Ts::from_secs(1), ip(HMI), ip(HMI), Proto::Arp, 0);
        assert_eq!(l.len(), 2);
        assert_eq!(l.dropped(), 3);
        let (text, r) = l.render(&Assets::new(10), &opts(10));
        assert_eq!((r.dropped, r.dropped_requests), (3, 3));
        assert!(text.contains("# WARNING: the conversation table was full (2 kept)"));
        TomlPolicy::parse(&text);
    }

    #[test]
    fn it_protocols_public_and_v6_hosts() {
        let mut l = Learner::new(100);
        let a = ip([192, 168, 1, 10]);
        let b = ip([192, 168, 1, 11]);
        let ntp = ip([203, 0, 113, 5]);
        let v6a = Addr::v6([0xfd, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        let v6b = Addr::v6([0xfd, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x20]);
        let g6 = Addr::v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        for (c, s, p, port) in [
            (a, ntp, Proto::Ntp, 123),
            (b, ntp, Proto::Ntp, 123),
            (a, b, Proto::Http, 80),
            (a, b, Proto::Http, 8080),
            (a, b, Proto::Icmp, 0),
            (a, ip([255, 255, 255, 255]), Proto::Dhcp, 67),
            (v6a, v6b, Proto::Ssh, 22),
            (v6a, g6, Proto::Tls, 443),
        ] {
            l.conversation(Ts::from_secs(3), c, s, p, port);
        }
        let (text, report) = l.render(&Assets::new(10), &opts(100));
        let p = TomlPolicy::parse(&text);
        assert_covers(&l, &p);
        assert_eq!(report.zones, 2, "{text}");
        assert!(p.zones.contains_key("net_192_168_1"));
        assert!(p.zones.contains_key("net_fd00_0_0_1"));
        let ntp_rules = allow_rules(&p, "ntp");
        assert_eq!(ntp_rules.len(), 1);
        assert_eq!(
            ntp_rules[0]["to"].as_str(),
            Some("asset:server-203-0-113-5")
        );
        let http = allow_rules(&p, "http");
        assert_eq!(http.len(), 1);
        assert_eq!(http[0]["ports"].as_array().unwrap().len(), 2);
        let icmp = allow_rules(&p, "icmp");
        assert!(icmp[0].get("ports").is_none());
        let dhcp = allow_rules(&p, "dhcp");
        assert_eq!(dhcp[0]["to"].as_str(), Some("255.255.255.255/32"));
        let tls = allow_rules(&p, "tls");
        assert_eq!(tls[0]["to"].as_str(), Some("asset:server-2001-db8--1"));
        assert!(text.contains("allow rules judge IP flows"));
    }

    /// Feeds the learner as the engine will: a conversation per flow, each request.
    struct Feed<'a> {
        l: &'a mut Learner,
        ts: Ts,
        client: Addr,
        server: Addr,
    }
    impl PduSink for Feed<'_> {
        fn pdu(&mut self, side: Side, pdu: &Pdu<'_>) {
            if side == Side::Client {
                self.l.request(self.ts, self.client, self.server, 502, pdu);
            }
        }
        fn violation(&mut self, _: Violation) {}
        fn identity(&mut self, _: Side, _: &Identity<'_>) {}
    }

    /// A capture through the real engine (assets, the commands it counts) and, beside
    /// it, its Modbus flows reassembled and dissected as the engine does into the
    /// learner (the engine's calls to the learner are wired later).
    fn learn_capture(rel: &str, l: &mut Learner) -> crate::engine::Engine {
        use crate::capture::{Next, PacketSource, pcap::PcapFile};
        use crate::decode::{L3, L4, decode};
        use crate::dissect::modbus;
        use crate::engine::{Engine, EngineConfig};
        use crate::stream::tests::Collect;
        use crate::stream::{BufPool, DirStream, StreamStats};
        let path = crate::dissect::testutil::pcap_path(rel);
        let mut engine = Engine::new(&EngineConfig::default());
        let mut src = PcapFile::open(&path).unwrap();
        let mut pool = BufPool::new(16);
        let mut stats = StreamStats::default();
        let mut dirs: HashMap<(Addr, u16, Addr, Side), DirStream> = HashMap::new();
        let mut flows = HashSet::new();
        while let Ok(Next::Packet(p)) = src.next() {
            engine.process(&p);
            l.observe(p.ts);
            let L3::Ip(ipk) = decode(p.link, p.data).l3 else {
                continue;
            };
            let L4::Tcp {
                sport,
                dport,
                seq,
                payload,
                ..
            } = ipk.l4
            else {
                continue;
            };
            let (client, cport, server, side) = if dport == 502 {
                (ipk.src, sport, ipk.dst, Side::Client)
            } else if sport == 502 {
                (ipk.dst, dport, ipk.src, Side::Server)
            } else {
                continue;
            };
            if payload.is_empty() {
                continue;
            }
            if flows.insert((client, cport, server)) {
                l.conversation(p.ts, client, server, Proto::Modbus, 502);
            }
            let dir = dirs.entry((client, cport, server, side)).or_default();
            let Some(data) = dir.accept(seq, payload, &mut pool, &mut stats) else {
                continue;
            };
            let mut c = Collect::default();
            dir.feed(data, &mut pool, &mut stats, modbus::frame, &mut c);
            for (msg, truncated) in c.msgs {
                let mut feed = Feed {
                    l: &mut *l,
                    ts: p.ts,
                    client,
                    server,
                };
                modbus::dissect(&msg, side, truncated, &mut feed);
            }
        }
        engine.finish();
        engine
    }

    #[test]
    fn real_modbus_captures_become_policies_listing_their_function_codes() {
        for rel in [
            "modbus/icsnpp_modbus_example.pcap",
            "modbus/iti_modbus_test_data_part1.pcap",
            "modbus/iti_modbus_test_data_part2_fc_sweep.pcap",
            "modbus/zeek_4sics_fc23_read_write_registers.pcap",
        ] {
            let mut l = Learner::new(1000);
            let engine = learn_capture(rel, &mut l);
            let o = LearnOptions {
                name: "capture".into(),
                max_rules: 100,
                source: rel.into(),
            };
            let (text, report) = l.render(&engine.assets, &o);
            let p = TomlPolicy::parse(&text);
            assert_covers(&l, &p);
            assert!(report.conversations > 0, "{rel}");
            assert_eq!(report.uncovered, 0);
            let listed: BTreeSet<String> = allow_rules(&p, "modbus")
                .iter()
                .flat_map(|r| strs(&r["functions"]))
                .collect();
            // What the real engine counted as requests of this capture.
            let counted: BTreeSet<String> = Cmd::ALL
                .iter()
                .filter(|c| c.proto() == Proto::Modbus)
                .filter(|c| engine.counters.commands[c.index()] > 0)
                .map(|c| c.name().to_string())
                .collect();
            assert!(!counted.is_empty(), "{rel}");
            assert!(
                counted.is_subset(&listed),
                "{rel}: {counted:?} vs {listed:?}\n{text}"
            );
            assert_eq!(text, l.render(&engine.assets, &o).0, "deterministic");
            if rel.contains("icsnpp") {
                for f in [
                    "read_holding_registers",
                    "read_coils",
                    "write_multiple_coils",
                    "read_write_multiple_registers",
                    "read_device_identification",
                ] {
                    assert!(listed.contains(f), "{f}\n{text}");
                }
                assert!(text.contains("# traffic seen from 2020-07-25T"), "{text}");
            }
        }
    }

    /// One random observation: (client, server, protocol, port, command, unit, start).
    type Obs = (u8, u8, u8, u8, u8, u8, u16);

    fn feed_random(obs: &[Obs]) -> Learner {
        const PROTOS: [(Proto, u16); 6] = [
            (Proto::Modbus, 502),
            (Proto::Modbus, 503),
            (Proto::Dnp3, 20000),
            (Proto::Dns, 53),
            (Proto::Http, 80),
            (Proto::OtherTcp, 0),
        ];
        const CMDS: [Cmd; 4] = [
            Cmd::ModbusReadHoldingRegisters,
            Cmd::ModbusWriteSingleRegister,
            Cmd::Dnp3Read,
            Cmd::Dnp3Operate,
        ];
        let host = |h: u8| match h % 8 {
            // Three /24s, a public host and an IPv6 ULA pair.
            0..=2 => ip([10, 10, 0, 1 + h % 3]),
            3 | 4 => ip([10, 20, 0, 1 + h % 2]),
            5 => ip([192, 168, 3, 1 + h / 8 % 4]),
            6 => ip([8, 8, 4, 4]),
            _ => Addr::v6([
                0xfd,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1 + h / 8 % 2,
            ]),
        };
        let mut l = Learner::new(1000);
        for (i, &(c, s, p, port_sel, cmd, unit, start)) in obs.iter().enumerate() {
            let (proto, base) = PROTOS[usize::from(p) % PROTOS.len()];
            let port = if base == 0 {
                1000 + u16::from(port_sel % 40)
            } else {
                base
            };
            let (c, s) = (host(c), host(s));
            let t = Ts::from_secs(100 + i as u64);
            l.conversation(t, c, s, proto, port);
            let cmd = CMDS[usize::from(cmd) % CMDS.len()];
            if cmd.proto() == proto {
                let mut pdu = modbus(cmd, u32::from(unit % 3), AddrSpace::Coils, start, 2);
                pdu.proto = proto;
                l.request(t, c, s, port, &pdu);
            }
        }
        l
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever was seen: valid, unique names, resolved references, deterministic,
        /// within the cap, and every conversation allowed unless counted as uncovered.
        #[test]
        fn any_traffic_renders_a_valid_covering_policy(
            obs in proptest::collection::vec(proptest::prelude::any::<Obs>(), 0..60),
            max_rules in 0usize..12,
        ) {
            let l = feed_random(&obs);
            for cap in [max_rules, 1000] {
                let (text, r) = l.render(&Assets::new(100), &opts(cap));
                let p = TomlPolicy::parse(&text);
                assert!(r.rules <= cap);
                assert_eq!(p.rules.len(), r.rules);
                assert_eq!(text, l.render(&Assets::new(100), &opts(cap)).0);
                let allowed = l
                    .sorted()
                    .iter()
                    .filter(|(k, c)| {
                        p.allows(k.client, k.server, k.proto, k.port, None)
                            && c.cmds
                                .iter()
                                .all(|cmd| p.allows(k.client, k.server, k.proto, k.port, Some(cmd)))
                    })
                    .count();
                assert!(allowed + r.uncovered >= r.conversations, "{text}");
                if cap == 1000 {
                    assert!(!r.capped);
                    assert_eq!(r.uncovered, 0);
                    assert_covers(&l, &p);
                }
            }
        }
    }
}
