//! The detectors that need no site knowledge (DESIGN.md, "Detection"): `port_scan`
//! (incl. stealth probes and ARP sweeps), `syn_flood` (per destination and in total),
//! `arp_spoof` (binding changes, gratuitous-ARP storms), `rate_anomaly` (EWMA band),
//! `malformed` (protocol violations), `goose` (publisher state), and [`CaptureWatch`]
//! (blind sensors) for the capture supervisor.
//!
//! STUB: API agreed with the engine; bodies to be written.

use super::Finding;
use crate::capture::Ts;
use crate::decode::{Addr, Arp, Mac};
use crate::dissect::Violation;
use crate::dissect::goose::{Expired, Observation};
use crate::proto::Proto;
use infrawatch_config::policy::Detectors;

/// Table sizes and what was evicted from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub entries: u64,
    pub capacity: u64,
    pub evictions: u64,
}

/// The site-independent detectors of one engine.
#[derive(Debug, Default)]
pub struct Independent {}

impl Independent {
    pub fn new(cfg: &Detectors) -> Self {
        let _ = cfg;
        Independent {}
    }

    /// A reload: new thresholds and switches, state kept.
    pub fn configure(&mut self, cfg: &Detectors) {
        let _ = cfg;
    }

    /// A known IP↔MAC binding (policy inventory: `inventory = true`; persisted learnt
    /// bindings: false).
    pub fn seed_binding(&mut self, ip: Addr, mac: Mac, inventory: bool) {
        let _ = (ip, mac, inventory);
    }

    /// The learnt bindings, for persistence.
    pub fn bindings(&self) -> Vec<(Addr, Mac)> {
        Vec::new()
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
        let _ = (now, client, server, dport, client_mac, out);
    }

    /// The server answered an attempt with SYN-ACK (still half-open).
    pub fn tcp_answered(&mut self, now: Ts, client: Addr, server: Addr, dport: u16) {
        let _ = (now, client, server, dport);
    }

    /// The client's ACK completed the handshake.
    pub fn tcp_established(&mut self, now: Ts, client: Addr, server: Addr, dport: u16) {
        let _ = (now, client, server, dport);
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
        let _ = (now, client, server, dport, out);
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
        let _ = (now, client, server, dport, payload, out);
    }

    /// A FIN, NULL or XMAS segment that belongs to no flow (the flow it would open).
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
        let _ = (now, src, dst, dport, flags, src_mac, out);
    }

    /// An ARP packet; `eth_src` the frame's source MAC.
    pub fn arp(&mut self, now: Ts, arp: &Arp, eth_src: Option<Mac>, out: &mut Vec<Finding>) {
        let _ = (now, arp, eth_src, out);
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
        let _ = (now, src, dst, src_mac, proto, v, out);
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
        let _ = (now, src, appid, gocb_ref, obs, out);
    }

    /// A GOOSE publisher fell silent past its time-allowed-to-live.
    pub fn goose_expired(&mut self, now: Ts, e: &Expired<'_>, out: &mut Vec<Finding>) {
        let _ = (now, e, out);
    }

    /// Once per second of packet time: windows close, silent attempts count as probes,
    /// per-minute rates are sampled. `packets` are the cumulative packets per protocol.
    pub fn tick(&mut self, now: Ts, packets: &[u64; Proto::COUNT], out: &mut Vec<Finding>) {
        let _ = (now, packets, out);
    }

    /// Sizes and evictions of every table.
    pub fn tables(&self) -> Vec<(&'static str, TableStats)> {
        Vec::new()
    }

    /// Bytes of detector state, for the bounded-memory test.
    pub fn memory_bytes(&self) -> usize {
        0
    }
}

/// The `capture` detector for one interface: down, or silent for longer than its norm.
#[derive(Debug, Default)]
pub struct CaptureWatch {}

impl CaptureWatch {
    pub fn new() -> Self {
        CaptureWatch {}
    }

    /// Called about once a second by the supervisor: whether the link is up and the
    /// time of the newest packet (None: none yet).
    pub fn observe(
        &mut self,
        cfg: &infrawatch_config::policy::CaptureDet,
        now: Ts,
        interface: &str,
        up: bool,
        last_packet: Option<Ts>,
        out: &mut Vec<Finding>,
    ) {
        let _ = (cfg, now, interface, up, last_packet, out);
    }
}
