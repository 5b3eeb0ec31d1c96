//! `arp_spoof`: IPv4↔MAC bindings from ARP, and who lies about them.
//!
//! Bindings come from the policy's inventory ([`ArpWatch::seed`] with `inventory`: never
//! stale, never re-learnt) and from the sender fields of ARP requests and replies (and
//! persisted ones, seeded at start). It fires (default severity critical) when:
//!
//! - an IP is claimed by a MAC other than its inventory binding (always), or other than
//!   its learnt binding, unless the learnt binding is stale (not confirmed for
//!   [`STALE_NS`], 1 h: a re-assignment, re-learnt silently), either MAC is a VRRP/HSRP/
//!   GLBP virtual MAC (a failover), or the old MAC is a proxy (bound to
//!   [`PROXY_IPS`] or more IPs: the IP moves to its real owner). A proxy claiming an IP
//!   whose real owner is bound keeps the owner's binding, silently. The learnt binding is
//!   kept (the liar does not replace it), so every further claim of the liar counts in
//!   the same event until the owner's binding goes stale;
//! - a MAC asks who has an IP it claimed itself (from another IP of its own): a host
//!   never resolves its own address, so the earlier claim was a lie. This is how a
//!   poisoner is caught when no true binding was seen before it (it resolves the real
//!   gateway to relay the traffic it diverted);
//! - `gratuitous` (default 10) gratuitous ARPs (sender IP = target IP) or unsolicited
//!   replies (no request for the sender IP within [`ANSWER_NS`]) come from one MAC within
//!   `window` (default 10 s); virtual MACs are left out (routers announce failovers).
//!
//! ARP probes (sender 0.0.0.0) never bind nor count. Findings per IP (or per MAC for the
//! storms): the first at once, then at most every 10 s with the claims since.
//!
//! Bounds: [`ARP_TABLE`] learnt bindings, inventory bindings (seeds beyond are dropped
//! and counted), MACs (IPs claimed, gratuitous counter) and recent requests; the learnt
//! ones and the others LRU-evicted and counted.

use super::scan::{fmt_ns, window_ns};
use super::table::{Episode, Ring, Table};
use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::decode::{Addr, Arp, Mac, fmt_mac};
use crate::proto::Proto;
use infrawatch_config::policy::ArpSpoof;

/// Entries of each ARP table.
pub(crate) const ARP_TABLE: usize = 4096;

/// A learnt binding not confirmed for this long is stale: a new MAC replaces it silently.
pub(crate) const STALE_NS: u64 = 3_600_000_000_000;

/// A reply within this long of a request for its sender's IP was solicited.
pub(crate) const ANSWER_NS: u64 = 5_000_000_000;

/// A MAC claiming this many IPs (within [`STALE_NS`]) is a proxy ARP.
pub(crate) const PROXY_IPS: usize = 4;

/// Slots of each table looked at per tick.
const SWEEP: usize = 512;

const NO_MAC: Mac = [0; 6];

/// A MAC as a table key.
fn mac64(m: &Mac) -> u64 {
    let [a, b, c, d, e, f] = *m;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

fn mac_of(k: u64) -> Mac {
    let [_, _, a, b, c, d, e, f] = k.to_be_bytes();
    [a, b, c, d, e, f]
}

/// VRRP (RFC 5798: 00-00-5E-00-01-{VRID}, IPv6 00-00-5E-00-02-{VRID}), HSRP v1
/// (00-00-0C-07-AC-{group}) and v2 (00-00-0C-9F-F{group}), GLBP (00-07-B4-00-…): MACs
/// that move between routers by design.
pub(crate) fn virtual_mac(m: &Mac) -> bool {
    matches!(
        m,
        [0x00, 0x00, 0x5e, 0x00, 0x01 | 0x02, _]
            | [0x00, 0x00, 0x0c, 0x07, 0xac, _]
            | [0x00, 0x07, 0xb4, 0x00, _, _]
    ) || matches!(m, [0x00, 0x00, 0x0c, 0x9f, x, _] if x & 0xf0 == 0xf0)
}

#[derive(Clone, Copy, Debug, Default)]
struct Binding {
    /// [`NO_MAC`]: unknown (its last claimant was caught lying).
    mac: Mac,
    /// The last MAC caught claiming this IP against the binding.
    liar: Mac,
    /// Ts(0): seeded, not seen since start.
    confirmed: Ts,
    ep: Episode,
}

#[derive(Clone, Copy, Debug, Default)]
struct MacState {
    ips: [u32; PROXY_IPS],
    seen: [Ts; PROXY_IPS],
    grat: Ring,
    ep: Episode,
}

impl MacState {
    /// `ip` claimed at `now`; returns how many IPs were claimed within [`STALE_NS`]
    /// (at most [`PROXY_IPS`]).
    fn claim(&mut self, ip: u32, now: Ts) -> usize {
        let live = |t: &Ts| *t != Ts(0) && now.saturating_sub(*t) < STALE_NS;
        if let Some(i) = self.ips.iter().position(|x| *x == ip)
            && self.seen.get(i).is_some_and(live)
        {
            if let Some(t) = self.seen.get_mut(i) {
                *t = now;
            }
        } else if let Some(i) = self.seen.iter().position(|t| !live(t))
            && let (Some(x), Some(t)) = (self.ips.get_mut(i), self.seen.get_mut(i))
        {
            *x = ip;
            *t = now;
        }
        self.seen.iter().filter(|t| live(t)).count()
    }

    fn is_proxy(&self, now: Ts) -> bool {
        self.seen
            .iter()
            .filter(|t| **t != Ts(0) && now.saturating_sub(**t) < STALE_NS)
            .count()
            >= PROXY_IPS
    }
}

/// Why a claim is a spoof.
enum Why {
    Inventory { bound: Mac },
    Learnt { bound: Mac, confirmed_ago: u64 },
    SelfQuery { asked_as: u32 },
}

#[derive(Debug)]
pub(crate) struct ArpWatch {
    inventory: Table<u32, Binding>,
    learnt: Table<u32, Binding>,
    /// By [`mac64`].
    macs: Table<u64, MacState>,
    asked: Table<u32, Ts>,
    /// The first time seen: seeded bindings count as confirmed then.
    start: Option<Ts>,
    inventory_dropped: u64,
    cursors: [u32; 3],
}

fn ip_str(ip: u32) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

fn spoof_key(ip: u32) -> u64 {
    key_of(&[b"arp_spoof", &ip.to_be_bytes()])
}

fn storm_key(mac: &Mac) -> u64 {
    key_of(&[b"arp_storm", mac])
}

impl ArpWatch {
    pub fn new() -> Self {
        ArpWatch {
            inventory: Table::new(ARP_TABLE),
            learnt: Table::new(ARP_TABLE),
            macs: Table::new(ARP_TABLE),
            asked: Table::new(ARP_TABLE),
            start: None,
            inventory_dropped: 0,
            cursors: [0; 3],
        }
    }

    /// A known binding (inventory: pinned; otherwise a persisted learnt one).
    pub fn seed(&mut self, ip: Addr, mac: Mac, inventory: bool) {
        if !ip.is_v4() {
            return;
        }
        let [.., a, b, c, d] = ip.0;
        let ip = u32::from_be_bytes([a, b, c, d]);
        let b = Binding {
            mac,
            ..Binding::default()
        };
        if inventory {
            if let Some(s) = self.learnt.find(&ip) {
                self.learnt.remove(s);
            }
            match self
                .inventory
                .find(&ip)
                .and_then(|s| self.inventory.get_mut(s))
            {
                Some(e) => e.mac = mac,
                None => {
                    if self.inventory.try_insert(ip, b).is_none() {
                        self.inventory_dropped += 1;
                    }
                }
            }
        } else if self.inventory.find(&ip).is_none() {
            match self.learnt.find(&ip).and_then(|s| self.learnt.get_mut(s)) {
                Some(e) => e.mac = mac,
                None => {
                    self.learnt.insert(ip, b);
                }
            }
        }
    }

    /// Learnt bindings (for persistence).
    pub fn bindings(&self) -> Vec<(Addr, Mac)> {
        (0..self.learnt.high())
            .filter_map(|s| Some((*self.learnt.key(s)?, self.learnt.get(s)?.mac)))
            .filter(|(_, m)| *m != NO_MAC)
            .map(|(ip, m)| (Addr::v4(ip.to_be_bytes()), m))
            .collect()
    }

    fn is_proxy(&self, mac: &Mac, now: Ts) -> bool {
        self.macs
            .find(&mac64(mac))
            .and_then(|s| self.macs.get(s))
            .is_some_and(|m| m.is_proxy(now))
    }

    fn solicited(&self, ip: u32, now: Ts) -> bool {
        self.asked
            .find(&ip)
            .and_then(|s| self.asked.get(s))
            .is_some_and(|t| now.saturating_sub(*t) <= ANSWER_NS)
    }

    fn finding(cfg: &ArpSpoof, now: Ts, key: u64, detail: String, n: u64) -> Finding {
        let mut f = Finding::new(Kind::ArpSpoof, key, now);
        f.severity = cfg.severity;
        f.proto = Some(Proto::Arp);
        f.detail = detail;
        f.count = n;
        f
    }

    fn spoof_finding(
        cfg: &ArpSpoof,
        now: Ts,
        ip: u32,
        claimant: Mac,
        detail: String,
        n: u64,
    ) -> Finding {
        let mut f = ArpWatch::finding(cfg, now, spoof_key(ip), detail, n);
        f.src = Some(Addr::v4(ip.to_be_bytes()));
        f.src_mac = Some(claimant);
        f
    }

    fn continuing(cfg: &ArpSpoof, now: Ts, ip: u32, liar: Mac, n: u64) -> Finding {
        ArpWatch::spoof_finding(
            cfg,
            now,
            ip,
            liar,
            format!(
                "{} still claimed by {}: {n} more claims since the last report",
                ip_str(ip),
                fmt_mac(&liar)
            ),
            n,
        )
    }

    /// A claim of `ip` by `mac` against binding `b`.
    fn report(
        cfg: &ArpSpoof,
        now: Ts,
        b: &mut Binding,
        ip: u32,
        mac: Mac,
        why: Why,
        out: &mut Vec<Finding>,
    ) {
        if b.ep.ongoing(now) && b.liar == mac {
            if let Some(n) = b.ep.add(now, 1) {
                out.push(ArpWatch::continuing(cfg, now, ip, mac, n));
            }
            return;
        }
        if let Some(n) = b.ep.end() {
            out.push(ArpWatch::continuing(cfg, now, ip, b.liar, n));
        }
        b.ep.start(now);
        b.liar = mac;
        let (ips, macs) = (ip_str(ip), fmt_mac(&mac));
        let detail = match why {
            Why::Inventory { bound } => format!(
                "ARP says {ips} is at {macs}, but the inventory binds {ips} to {}",
                fmt_mac(&bound)
            ),
            Why::Learnt {
                bound,
                confirmed_ago,
            } => format!(
                "ARP says {ips} is at {macs}, but it was at {} (learnt, confirmed {} before)",
                fmt_mac(&bound),
                fmt_ns(confirmed_ago.max(1_000_000))
            ),
            Why::SelfQuery { asked_as } => format!(
                "{macs} claimed {ips}, then asked who has {ips} as {}: its claim of {ips} \
                 was false",
                ip_str(asked_as)
            ),
        };
        out.push(ArpWatch::spoof_finding(cfg, now, ip, mac, detail, 1));
    }

    /// An ARP packet.
    pub fn observe(
        &mut self,
        cfg: &ArpSpoof,
        now: Ts,
        a: &Arp,
        eth_src: Option<Mac>,
        out: &mut Vec<Finding>,
    ) {
        if !cfg.enabled {
            return;
        }
        let start = *self.start.get_or_insert(now);
        let sip = u32::from_be_bytes(a.sender_ip);
        let tip = u32::from_be_bytes(a.target_ip);
        let smac = a.sender_mac;
        if a.op == 1 && sip != tip {
            let (s, _) = self.asked.upsert(tip);
            if let Some(t) = self.asked.get_mut(s) {
                *t = now;
            }
        }
        if sip == 0 || smac == NO_MAC || smac[0] & 1 != 0 {
            // An ARP probe (RFC 5227), or a sender MAC no host has.
            return;
        }
        // Gratuitous ARP storms.
        let from = eth_src.unwrap_or(smac);
        let gratuitous = sip == tip || (a.op == 2 && !self.solicited(sip, now));
        if gratuitous && !virtual_mac(&from) {
            let w = window_ns(cfg.window);
            let at = cfg.gratuitous.max(1);
            let (s, _) = self.macs.upsert(mac64(&from));
            if let Some(m) = self.macs.get_mut(s) {
                let n = m.grat.add(now, w, 1);
                if m.ep.ongoing(now) {
                    if let Some(k) = m.ep.add(now, 1) {
                        out.push(storm_continuing(cfg, now, from, k));
                    }
                } else if n >= at {
                    if let Some(k) = m.ep.end() {
                        out.push(storm_continuing(cfg, now, from, k));
                    }
                    m.ep.start(now);
                    let mut f = ArpWatch::finding(
                        cfg,
                        now,
                        storm_key(&from),
                        format!(
                            "{n} gratuitous or unsolicited ARPs from {} within {} \
                             (threshold {at})",
                            fmt_mac(&from),
                            fmt_ns(w)
                        ),
                        u64::from(n),
                    );
                    f.src_mac = Some(from);
                    f.src = Some(Addr::v4(a.sender_ip));
                    out.push(f);
                }
            }
        }
        // A MAC claiming many IPs (its accepted claims) is a proxy.
        let sender_proxy = self.is_proxy(&smac, now);
        // A MAC asking for an IP it claimed.
        if a.op == 1
            && tip != sip
            && tip != 0
            && !sender_proxy
            && !virtual_mac(&smac)
            && let Some(s) = self.learnt.find(&tip)
            && let Some(b) = self.learnt.get_mut(s)
            && b.mac == smac
        {
            b.mac = NO_MAC;
            b.confirmed = now;
            ArpWatch::report(
                cfg,
                now,
                b,
                tip,
                smac,
                Why::SelfQuery { asked_as: sip },
                out,
            );
        }
        if self.bind(cfg, now, start, sip, smac, sender_proxy, out) {
            let (s, _) = self.macs.upsert(mac64(&smac));
            if let Some(m) = self.macs.get_mut(s) {
                m.claim(sip, now);
            }
        }
    }

    /// The claim of `sip` by `smac` against its binding; whether it was accepted.
    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        cfg: &ArpSpoof,
        now: Ts,
        start: Ts,
        sip: u32,
        smac: Mac,
        sender_proxy: bool,
        out: &mut Vec<Finding>,
    ) -> bool {
        if let Some(s) = self.inventory.find(&sip) {
            let Some(b) = self.inventory.get_mut(s) else {
                return false;
            };
            if b.mac == smac {
                b.confirmed = now;
                return true;
            }
            let bound = b.mac;
            ArpWatch::report(cfg, now, b, sip, smac, Why::Inventory { bound }, out);
            return false;
        }
        let Some(s) = self.learnt.find(&sip) else {
            self.learnt.insert(
                sip,
                Binding {
                    mac: smac,
                    confirmed: now,
                    ..Binding::default()
                },
            );
            return true;
        };
        self.learnt.touch(s);
        let Some(b) = self.learnt.get(s).copied() else {
            return false;
        };
        if b.mac == smac {
            if let Some(b) = self.learnt.get_mut(s) {
                b.confirmed = now;
            }
            return true;
        }
        let confirmed = if b.confirmed == Ts(0) {
            start
        } else {
            b.confirmed
        };
        let ago = now.saturating_sub(confirmed);
        let relearn = ago > STALE_NS
            || (b.liar != smac
                && (b.mac == NO_MAC
                    || virtual_mac(&b.mac)
                    || virtual_mac(&smac)
                    || self.is_proxy(&b.mac, now)));
        if relearn {
            if let Some(b) = self.learnt.get_mut(s) {
                *b = Binding {
                    mac: smac,
                    confirmed: now,
                    ..Binding::default()
                };
            }
            return true;
        }
        if b.liar != smac && sender_proxy {
            // A proxy answering for a host whose own binding stands.
            return false;
        }
        if let Some(b) = self.learnt.get_mut(s) {
            let bound = b.mac;
            let why = Why::Learnt {
                bound,
                confirmed_ago: ago,
            };
            ArpWatch::report(cfg, now, b, sip, smac, why, out);
        }
        false
    }

    /// Periodic findings of ongoing spoofs and storms.
    pub fn tick(&mut self, cfg: &ArpSpoof, now: Ts, out: &mut Vec<Finding>) {
        let [c0, c1, c2] = &mut self.cursors;
        for (table, cursor) in [(&mut self.inventory, c0), (&mut self.learnt, c1)] {
            for slot in table.sweep_slots(cursor, SWEEP) {
                let Some((ip, b)) = table.entry_mut(slot) else {
                    continue;
                };
                if let Some(n) = b.ep.tick(now)
                    && cfg.enabled
                {
                    out.push(ArpWatch::continuing(cfg, now, *ip, b.liar, n));
                }
            }
        }
        for slot in self.macs.sweep_slots(c2, SWEEP) {
            let Some((mac, m)) = self.macs.entry_mut(slot) else {
                continue;
            };
            if let Some(n) = m.ep.tick(now)
                && cfg.enabled
            {
                out.push(storm_continuing(cfg, now, mac_of(*mac), n));
            }
        }
    }

    pub fn tables(&self, v: &mut Vec<(&'static str, super::independent::TableStats)>) {
        let mut inv = self.inventory.stats();
        inv.evictions += self.inventory_dropped;
        v.push(("arp_inventory", inv));
        v.push(("arp_bindings", self.learnt.stats()));
        v.push(("arp_macs", self.macs.stats()));
        v.push(("arp_requests", self.asked.stats()));
    }

    pub fn memory_bytes(&self) -> usize {
        self.inventory.memory_bytes()
            + self.learnt.memory_bytes()
            + self.macs.memory_bytes()
            + self.asked.memory_bytes()
    }
}

fn storm_continuing(cfg: &ArpSpoof, now: Ts, mac: Mac, n: u64) -> Finding {
    let mut f = ArpWatch::finding(
        cfg,
        now,
        storm_key(&mac),
        format!(
            "gratuitous ARP storm from {} goes on: {n} more since the last report",
            fmt_mac(&mac)
        ),
        n,
    );
    f.src_mac = Some(mac);
    f
}
