//! The detectors that need no site knowledge (DESIGN.md, "Detection"): `port_scan`
//! (incl. stealth probes and ARP sweeps, `detect/scan.rs`), `syn_flood` (per destination
//! and in total, `detect/flood.rs`), `arp_spoof` (binding changes, gratuitous-ARP storms,
//! `detect/arp.rs`), `rate_anomaly` (EWMA band, [`super::rate`]), `malformed` (protocol
//! violations, `detect/malformed.rs`), `goose` (publisher state, `detect/goose.rs`), and
//! [`CaptureWatch`] (blind sensors, `detect/capture_watch.rs`) for the capture supervisor.
//!
//! [`Independent`] routes the engine's facts to them. The TCP facts go through one table
//! of connection attempts (`detect/attempts.rs`) that tells both `port_scan` (which
//! attempts are probes) and `syn_flood` (which are half-open). Each detector is switched
//! and tuned by its `[detectors.KIND]` section; [`Independent::configure`] swaps the
//! thresholds and keeps every table (only a changed `window` restarts the sliding
//! counters of `syn_flood` and of gratuitous ARPs; the sets of distinct ports, hosts and
//! sources keep their times and are read with the new window). Time is the `now` given with each fact, never a
//! clock. Every table is allocated by [`Independent::new`] with a fixed capacity and an
//! LRU eviction counted in [`Independent::tables`]: [`Independent::memory_bytes`] (about
//! 11.3 MiB with the default sizes) never changes afterwards, whatever the traffic.
//!
//! Findings are not per packet: each detector reports when its threshold is crossed,
//! then at most every 10 s per key with the occurrences since (the tick flushes what is
//! left when an event goes quiet for 60 s), so the event layer updates one event.

use super::Finding;
use super::arp::ArpWatch;
use super::attempts::{Attempts, Conn};
use super::flood::Flood;
use super::goose::Goose;
use super::malformed::Malformed;
use super::rate::Rates;
use super::scan::{Probe, Scan, stealth_name};
use crate::capture::Ts;
use crate::decode::{Addr, Arp, Mac};
use crate::dissect::Violation;
use crate::dissect::goose::{Expired, Observation};
use crate::proto::Proto;
use infrawatch_config::policy::Detectors;

pub use super::capture_watch::CaptureWatch;
pub use super::rate::{Deviation, RateBand};

/// Table sizes and what was evicted from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub entries: u64,
    pub capacity: u64,
    pub evictions: u64,
}

/// The site-independent detectors of one engine.
#[derive(Debug)]
pub struct Independent {
    cfg: Detectors,
    attempts: Attempts,
    scan: Scan,
    flood: Flood,
    arp: ArpWatch,
    rates: Rates,
    malformed: Malformed,
    goose: Goose,
}

impl Default for Independent {
    fn default() -> Self {
        Independent::new(&Detectors::default())
    }
}

impl Independent {
    pub fn new(cfg: &Detectors) -> Self {
        Independent {
            cfg: cfg.clone(),
            attempts: Attempts::new(),
            scan: Scan::new(),
            flood: Flood::new(),
            arp: ArpWatch::new(),
            rates: Rates::new(&cfg.rate_anomaly),
            malformed: Malformed::new(),
            goose: Goose::new(),
        }
    }

    /// A reload: new thresholds and switches, state kept.
    pub fn configure(&mut self, cfg: &Detectors) {
        self.cfg = cfg.clone();
        self.rates.configure(&cfg.rate_anomaly);
    }

    /// A known IP↔MAC binding (policy inventory: `inventory = true`; persisted learnt
    /// bindings: false). IPv6 addresses are ignored (bindings come from ARP).
    pub fn seed_binding(&mut self, ip: Addr, mac: Mac, inventory: bool) {
        self.arp.seed(ip, mac, inventory);
    }

    /// The learnt bindings, for persistence.
    pub fn bindings(&self) -> Vec<(Addr, Mac)> {
        self.arp.bindings()
    }

    fn tcp_on(&self) -> bool {
        self.cfg.port_scan.enabled || self.cfg.syn_flood.enabled
    }

    /// A new TCP flow opened by a SYN without ACK from `client` to `server:dport`.
    pub fn tcp_attempt(
        &mut self,
        now: Ts,
        client: Addr,
        server: Addr,
        dport: u16,
        client_mac: Option<Mac>,
        out: &mut Vec<Finding>,
    ) {
        if !self.tcp_on() {
            return;
        }
        let c = Conn {
            client,
            server,
            port: dport,
        };
        self.attempts.attempt(now, c, client_mac);
        let scan_on = self.cfg.port_scan.enabled;
        self.flood.added(&self.cfg.syn_flood, scan_on, now, c, out);
    }

    /// The server answered an attempt with SYN-ACK (still half-open).
    pub fn tcp_answered(&mut self, now: Ts, client: Addr, server: Addr, dport: u16) {
        let _ = now;
        if !self.tcp_on() {
            return;
        }
        self.attempts.answered(Conn {
            client,
            server,
            port: dport,
        });
    }

    /// The client's ACK completed the handshake.
    pub fn tcp_established(&mut self, now: Ts, client: Addr, server: Addr, dport: u16) {
        let _ = now;
        if !self.tcp_on() {
            return;
        }
        let c = Conn {
            client,
            server,
            port: dport,
        };
        if let Some(closed) = self.attempts.established(c).closed {
            self.flood.closed(&self.cfg.syn_flood, c, closed);
        }
    }

    /// The server refused an attempt (RST before the handshake completed).
    pub fn tcp_refused(
        &mut self,
        now: Ts,
        client: Addr,
        server: Addr,
        dport: u16,
        out: &mut Vec<Finding>,
    ) {
        if !self.tcp_on() {
            return;
        }
        let c = Conn {
            client,
            server,
            port: dport,
        };
        let o = self.attempts.refused(c);
        self.settle(now, c, &o, out);
    }

    /// A TCP flow left the table or closed; `payload` whether either side sent data.
    pub fn tcp_ended(
        &mut self,
        now: Ts,
        client: Addr,
        server: Addr,
        dport: u16,
        payload: bool,
        out: &mut Vec<Finding>,
    ) {
        if !self.tcp_on() {
            return;
        }
        let c = Conn {
            client,
            server,
            port: dport,
        };
        let o = self.attempts.ended(c, payload);
        self.settle(now, c, &o, out);
    }

    /// What an attempt's end means: it is no longer half-open (`syn_flood`), and a
    /// failed or empty one is a probe (`port_scan`).
    fn settle(
        &mut self,
        now: Ts,
        c: Conn,
        o: &crate::detect::attempts::Outcome,
        out: &mut Vec<Finding>,
    ) {
        if let Some(closed) = o.closed {
            self.flood.closed(&self.cfg.syn_flood, c, closed);
        }
        if o.probe {
            let p = Probe::Tcp {
                dst: c.server,
                port: c.port,
            };
            self.scan
                .probe(&self.cfg.port_scan, now, c.client, o.mac, p, out);
        }
    }

    /// A FIN, NULL or XMAS segment that belongs to no flow (the flow it would open).
    /// Segments with SYN, ACK or RST set are not stealth probes and are ignored.
    #[allow(clippy::too_many_arguments)]
    pub fn stealth_probe(
        &mut self,
        now: Ts,
        src: Addr,
        dst: Addr,
        dport: u16,
        flags: u8,
        src_mac: Option<Mac>,
        out: &mut Vec<Finding>,
    ) {
        if stealth_name(flags).is_none() {
            return;
        }
        let p = Probe::Stealth {
            dst,
            port: dport,
            flags,
        };
        self.scan
            .probe(&self.cfg.port_scan, now, src, src_mac, p, out);
    }

    /// An ARP packet; `eth_src` the frame's source MAC.
    pub fn arp(&mut self, now: Ts, arp: &Arp, eth_src: Option<Mac>, out: &mut Vec<Finding>) {
        self.arp
            .observe(&self.cfg.arp_spoof, now, arp, eth_src, out);
        // An ARP sweep: requests that are neither probes nor announcements.
        if arp.op == 1 && arp.sender_ip != [0; 4] && arp.sender_ip != arp.target_ip {
            let p = Probe::Arp {
                target: arp.target_ip,
            };
            let src = Addr::v4(arp.sender_ip);
            self.scan
                .probe(&self.cfg.port_scan, now, src, Some(arp.sender_mac), p, out);
        }
    }

    /// A protocol violation on a flow (`src` sent the message).
    #[allow(clippy::too_many_arguments)]
    pub fn violation(
        &mut self,
        now: Ts,
        src: Option<Addr>,
        dst: Option<Addr>,
        src_mac: Option<Mac>,
        proto: Proto,
        v: Violation,
        out: &mut Vec<Finding>,
    ) {
        self.malformed
            .violation(&self.cfg.malformed, now, src, dst, src_mac, proto, v, out);
    }

    /// A GOOSE message and what it changed in its publisher's state.
    pub fn goose(
        &mut self,
        now: Ts,
        src: Mac,
        appid: u16,
        gocb_ref: &[u8],
        obs: &Observation,
        out: &mut Vec<Finding>,
    ) {
        self.goose
            .observe(&self.cfg.goose, now, src, appid, gocb_ref, obs, out);
    }

    /// A GOOSE publisher fell silent past its time-allowed-to-live.
    pub fn goose_expired(&mut self, now: Ts, e: &Expired<'_>, out: &mut Vec<Finding>) {
        self.goose.expired(&self.cfg.goose, now, e, out);
    }

    /// Once per second of packet time: windows close, silent attempts count as probes,
    /// per-minute rates are sampled. `packets` are the cumulative packets per protocol.
    /// Each table is swept a bounded number of slots per call.
    pub fn tick(&mut self, now: Ts, packets: &[u64; Proto::COUNT], out: &mut Vec<Finding>) {
        let (scan, cfg) = (&mut self.scan, &self.cfg);
        self.attempts.sweep(now, |c, mac| {
            let p = Probe::Tcp {
                dst: c.server,
                port: c.port,
            };
            scan.probe(&cfg.port_scan, now, c.client, mac, p, out);
        });
        self.scan.tick(&self.cfg.port_scan, now, out);
        self.flood.tick(&self.cfg.syn_flood, now, out);
        self.arp.tick(&self.cfg.arp_spoof, now, out);
        self.rates.tick(&self.cfg.rate_anomaly, now, packets, out);
        self.malformed.tick(&self.cfg.malformed, now, out);
        self.goose.tick(&self.cfg.goose, now, out);
    }

    /// Sizes and evictions of every table.
    pub fn tables(&self) -> Vec<(&'static str, TableStats)> {
        let mut v = Vec::with_capacity(16);
        v.push(("tcp_attempts", self.attempts.stats()));
        self.scan.tables(&mut v);
        self.flood.tables(&mut v);
        self.arp.tables(&mut v);
        self.malformed.tables(&mut v);
        self.goose.tables(&mut v);
        v
    }

    /// Bytes of detector state (capacity-based; fixed at [`Independent::new`]).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.attempts.memory_bytes()
            + self.scan.memory_bytes()
            + self.flood.memory_bytes()
            + self.arp.memory_bytes()
            + self.rates.memory_bytes()
            + self.malformed.memory_bytes()
            + self.goose.memory_bytes()
    }
}
