//! The packet path of one capture thread: decode → flow → classify → reassemble →
//! dissect → counters and assets. Sans-IO: it is given packets with their timestamps and
//! never reads a clock, so a capture file replays deterministically. Every table it owns
//! is bounded and allocated at start; the steady state allocates nothing per packet
//! (asset identities, learnt rarely, are the exception).

use crate::asset::Assets;
use crate::capture::{Packet, Ts};
use crate::classify::{self, MAX_PROBES, Verdict};
use crate::decode::{self, Addr, L3, L4, Mac};
use crate::detect::Detection;
use crate::detect::site::FlowFacts;
use crate::dissect::{
    FrameLen, Identity, PDU_CLEARTEXT_CREDENTIALS, PDU_TEST, Pdu, PduKind, PduSink, Side,
    Violation, bacnet, dnp3, enip, goose, iec104, modbus, mqtt, opcua, profinet, sv, tpkt,
};
use crate::flow::{
    Class, Flow, FlowKey, NO_SESSION, NOTE_ATTEMPT, NOTE_ENDED, NOTE_PAYLOAD, TcpState,
    first_sender_is_client,
};
use crate::lru::LruMap;
use crate::proto::Proto;
use crate::stats::Counters;
use crate::stream::{BLOCK, BufPool, DirStream, NO_BUF, StreamSink, StreamStats};

/// Sizes of an engine's tables.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub max_flows: usize,
    pub idle_timeout_ns: u64,
    pub max_assets: usize,
    /// Concurrent ICS flows with reassembly and per-flow protocol state.
    pub ics_sessions: usize,
    /// Reassembly blocks shared by all sessions (TCP stream bytes).
    pub stream_blocks: usize,
    /// Blocks for protocol-level reassembly (DNP3 transport fragments).
    pub app_blocks: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_flows: infrawatch_config::agent::DEFAULT_MAX_FLOWS as usize,
            idle_timeout_ns: 120_000_000_000,
            max_assets: 16_384,
            ics_sessions: 16_384,
            stream_blocks: 2_048,
            app_blocks: 1_024,
        }
    }
}

impl EngineConfig {
    /// The sizes an agent.toml asks for.
    pub fn from_agent(c: &infrawatch_config::AgentConfig) -> EngineConfig {
        EngineConfig {
            max_flows: c.flows.max_flows as usize,
            idle_timeout_ns: c.flows.idle_timeout.0.as_nanos().min(u128::from(u64::MAX)) as u64,
            ..EngineConfig::default()
        }
    }
}

/// Per-flow protocol state of an ICS flow.
#[derive(Clone, Copy, Debug, Default)]
enum App {
    #[default]
    None,
    Modbus,
    Dnp3(dnp3::State),
    Iec104(iec104::State),
    Tpkt(Proto, tpkt::State),
    Enip(enip::State),
    Opcua(opcua::State),
    Mqtt(mqtt::State),
}

#[derive(Clone, Copy, Debug, Default)]
struct Session {
    dirs: [DirStream; 2],
    app: App,
}

/// A bounded table of ICS sessions, allocated once.
#[derive(Debug)]
struct Sessions {
    slots: Vec<Session>,
    free: Vec<u32>,
}

impl Sessions {
    fn new(n: usize) -> Self {
        Sessions {
            slots: vec![Session::default(); n],
            free: (0..n as u32).rev().collect(),
        }
    }
    fn alloc(&mut self, app: App) -> Option<u32> {
        let id = self.free.pop()?;
        if let Some(s) = self.slots.get_mut(id as usize) {
            *s = Session {
                dirs: [DirStream::default(); 2],
                app,
            };
        }
        Some(id)
    }
    fn release(&mut self, id: u32, stream_pool: &mut BufPool, app_pool: &mut BufPool) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            for d in &mut s.dirs {
                d.reset(stream_pool);
            }
            s.app.release(app_pool);
            s.app = App::None;
            self.free.push(id);
        }
    }
}

/// A finished flow, for the top-flows list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSummary {
    pub key: FlowKey,
    pub client_is_a: bool,
    pub proto: Proto,
    pub packets: u64,
    pub bytes: u64,
    pub first: Ts,
    pub last: Ts,
}

impl FlowSummary {
    /// (client address, client port, server address, server port).
    pub fn endpoints(&self) -> (Addr, u16, Addr, u16) {
        let k = &self.key;
        if self.client_is_a {
            (k.a, k.a_port, k.b, k.b_port)
        } else {
            (k.b, k.b_port, k.a, k.a_port)
        }
    }
}

/// The largest flows by bytes, bounded.
#[derive(Debug, Default)]
struct TopFlows {
    flows: Vec<FlowSummary>,
}

const TOP_FLOWS: usize = 10;

impl TopFlows {
    fn offer(&mut self, key: &FlowKey, f: &Flow) {
        let bytes = f.total_bytes();
        if self.flows.len() >= TOP_FLOWS && self.flows.last().is_some_and(|l| l.bytes >= bytes) {
            return;
        }
        let s = FlowSummary {
            key: *key,
            client_is_a: f.client_is_a,
            proto: f.proto,
            packets: f.total_packets(),
            bytes,
            first: f.first,
            last: f.last,
        };
        let pos = self.flows.partition_point(|x| x.bytes >= bytes);
        self.flows.insert(pos, s);
        self.flows.truncate(TOP_FLOWS);
    }
}

/// First fragments remembered so later fragments count with their flow.
#[derive(Clone, Copy, Debug, Default)]
struct FragEntry {
    src: Addr,
    dst: Addr,
    id: u32,
    ip_proto: u8,
    key: FlowKey,
    from_a: bool,
    used: bool,
}

const FRAG_SLOTS: usize = 1024;

/// The HSR/PRP duplicate window: slots, and how long a sequence number is remembered.
const REDUNDANCY_SLOTS: usize = 4096;
const REDUNDANCY_WINDOW_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, Default)]
struct RedundancySeen {
    src: Mac,
    seq: u16,
    ts: u64,
    used: bool,
}

/// The packet path of one thread.
#[derive(Debug)]
pub struct Engine {
    pub counters: Counters,
    flows: LruMap<FlowKey, Flow>,
    sessions: Sessions,
    stream_pool: BufPool,
    app_pool: BufPool,
    pub assets: Assets,
    frags: Vec<FragEntry>,
    idle_ns: u64,
    last_expiry_sec: u64,
    top: TopFlows,
    sstats: StreamStats,
    /// GOOSE publishers' last state, bounded.
    publishers: goose::Publishers,
    /// Recent (source MAC, sequence number) of HSR/PRP frames, to drop the duplicate.
    redundancy: Vec<RedundancySeen>,
    /// Where a probe buffer and a new segment are joined (reused, not zeroed per packet).
    scratch: Box<[u8; BLOCK]>,
    /// Time of the newest packet seen.
    pub now: Ts,
    /// The detectors and event layer; `None`: classification only (`--no-detect`).
    pub detect: Option<Box<Detection>>,
}

/// Where dissectors report, with the flow's context.
struct Ctx<'a> {
    c: &'a mut Counters,
    assets: &'a mut Assets,
    ts: Ts,
    client: Addr,
    server: Addr,
    /// MACs of the packet being dissected: (sender, receiver).
    macs: (Option<Mac>, Option<Mac>),
    sender: Side,
    noted: &'a mut u8,
    /// Server port, protocol and matched rule of the flow (for detection).
    port: u16,
    proto: Proto,
    rule: u16,
    det: Option<&'a mut Detection>,
}

impl Ctx<'_> {
    fn side_ip(&self, side: Side) -> Addr {
        match side {
            Side::Client => self.client,
            Side::Server => self.server,
        }
    }
    fn side_mac(&self, side: Side) -> Option<Mac> {
        if side == self.sender {
            self.macs.0
        } else {
            self.macs.1
        }
    }
}

/// Counts one message: its protocol's `pdus`, its command as request or response, its
/// flags.
fn count_pdu(c: &mut Counters, pdu: &Pdu<'_>) {
    c.proto(pdu.proto).pdus += 1;
    match pdu.kind {
        PduKind::Request(cmd) => Counters::bump(&mut c.commands, cmd.index(), 1),
        PduKind::Response(cmd) => Counters::bump(&mut c.responses, cmd.index(), 1),
        PduKind::Exception(_) => Counters::bump(&mut c.exceptions, pdu.proto.index(), 1),
        PduKind::Message => {}
    }
    if pdu.flags & PDU_CLEARTEXT_CREDENTIALS != 0 {
        c.cleartext_credentials += 1;
    }
    if pdu.flags & PDU_TEST != 0 {
        c.test_messages += 1;
    }
}

/// Where link-layer dissectors report: the sender is the frame's source MAC.
struct L2Ctx<'a> {
    c: &'a mut Counters,
    assets: &'a mut Assets,
    ts: Ts,
    src: Mac,
    dst: Mac,
    proto: Proto,
    det: Option<&'a mut Detection>,
}

impl PduSink for L2Ctx<'_> {
    fn pdu(&mut self, _side: Side, pdu: &Pdu<'_>) {
        count_pdu(self.c, pdu);
        if let (PduKind::Request(cmd), Some(d)) = (pdu.kind, self.det.as_deref_mut()) {
            // Link-layer commands (PROFINET DCP set…) have no IP flow: rules that name
            // the sender's asset (by MAC) or `any` may allow them.
            let facts = FlowFacts {
                client: Addr::default(),
                server: Addr::default(),
                client_mac: Some(self.src),
                server_mac: Some(self.dst),
                proto: cmd.proto(),
                port: 0,
                client_port: 0,
                tcp: true,
            };
            let p = d.policy.clone();
            let rule = p
                .as_deref()
                .map_or(crate::detect::site::NO_RULE, |p| p.match_flow(&facts));
            d.site.request_l2(
                p.as_deref(),
                rule,
                (self.src, self.dst),
                pdu,
                self.ts,
                &d.events,
                &mut d.findings,
            );
        }
    }
    fn violation(&mut self, v: Violation) {
        Counters::bump(&mut self.c.violations, v.index(), 1);
        if let Some(d) = self.det.as_deref_mut() {
            d.independent.violation(
                self.ts,
                None,
                None,
                Some(self.src),
                self.proto,
                v,
                &mut d.findings,
            );
        }
    }
    fn identity(&mut self, _side: Side, id: &Identity<'_>) {
        self.assets.identity(None, Some(self.src), id, self.ts);
    }
}

impl PduSink for Ctx<'_> {
    fn pdu(&mut self, side: Side, pdu: &Pdu<'_>) {
        count_pdu(self.c, pdu);
        if let PduKind::Request(_) = pdu.kind
            && let Some(d) = self.det.as_deref_mut()
        {
            // (client MAC, server MAC) from the packet's (sender, receiver).
            let macs = if self.sender == Side::Client {
                self.macs
            } else {
                (self.macs.1, self.macs.0)
            };
            if let Some(mut l) = d.learner.as_ref().and_then(|l| l.lock().ok()) {
                l.request(self.ts, self.client, self.server, self.port, pdu);
            }
            let p = d.policy.clone();
            d.site.request(
                p.as_deref(),
                self.rule,
                self.client,
                self.server,
                macs,
                pdu,
                self.ts,
                &d.events,
                &mut d.findings,
            );
        }
        let answer = matches!(pdu.kind, PduKind::Response(_) | PduKind::Exception(_));
        if answer && side == Side::Server && *self.noted & 4 == 0 {
            *self.noted |= 4;
            self.assets
                .roles(self.server, self.client, pdu.proto, self.ts);
        }
    }
    fn violation(&mut self, v: Violation) {
        Counters::bump(&mut self.c.violations, v.index(), 1);
        let (src, dst) = (self.side_ip(self.sender), self.side_ip(self.sender.other()));
        let mac = self.macs.0;
        let ts = self.ts;
        let proto = self.proto;
        if let Some(d) = self.det.as_deref_mut() {
            d.independent
                .violation(ts, Some(src), Some(dst), mac, proto, v, &mut d.findings);
        }
    }
    fn identity(&mut self, side: Side, id: &Identity<'_>) {
        let ip = self.side_ip(side);
        let mac = self.side_mac(side);
        self.assets.identity(Some(ip), mac, id, self.ts);
    }
}

/// Feeds reassembled messages of one direction to the flow's dissector.
struct Dissect<'a, 'b> {
    app: &'a mut App,
    app_pool: &'a mut BufPool,
    side: Side,
    ctx: &'a mut Ctx<'b>,
}

impl StreamSink for Dissect<'_, '_> {
    fn message(&mut self, msg: &[u8], truncated: bool) {
        dissect_message(self.app, msg, self.side, truncated, self.app_pool, self.ctx);
    }
    fn violation(&mut self, v: Violation) {
        self.ctx.violation(v);
    }
}

impl App {
    /// Frees the blocks a protocol state holds.
    fn release(&mut self, pool: &mut BufPool) {
        match self {
            App::Dnp3(st) => st.release(pool),
            App::Iec104(st) => st.release(pool),
            App::Tpkt(_, st) => st.release(pool),
            App::Enip(st) => st.release(pool),
            App::Opcua(st) => st.release(pool),
            App::Mqtt(st) => st.release(pool),
            App::None | App::Modbus => {}
        }
    }
}

fn dissect_message(
    app: &mut App,
    msg: &[u8],
    side: Side,
    truncated: bool,
    app_pool: &mut BufPool,
    ctx: &mut Ctx<'_>,
) {
    match app {
        App::Modbus => modbus::dissect(msg, side, truncated, ctx),
        App::Dnp3(st) => dnp3::dissect(msg, side, truncated, st, app_pool, ctx),
        App::Iec104(st) => iec104::dissect(msg, side, truncated, st, app_pool, ctx),
        App::Tpkt(proto, st) => tpkt::dissect(msg, side, truncated, *proto, st, app_pool, ctx),
        App::Enip(st) => enip::dissect(msg, side, truncated, st, app_pool, ctx),
        App::Opcua(st) => opcua::dissect(msg, side, truncated, st, app_pool, ctx),
        App::Mqtt(st) => mqtt::dissect(msg, side, truncated, st, app_pool, ctx),
        App::None => {}
    }
}

fn frame_fn(app: &App) -> fn(&[u8]) -> FrameLen {
    match app {
        App::Modbus => modbus::frame,
        App::Dnp3(_) => dnp3::frame,
        App::Iec104(_) => iec104::frame,
        App::Enip(_) => enip::frame,
        App::Opcua(_) => opcua::frame,
        App::Mqtt(_) => mqtt::frame,
        App::Tpkt(..) | App::None => tpkt::frame,
    }
}

fn app_for(p: Proto) -> App {
    match p {
        Proto::Modbus => App::Modbus,
        Proto::Dnp3 => App::Dnp3(dnp3::State::default()),
        Proto::Iec104 => App::Iec104(iec104::State::default()),
        Proto::S7comm | Proto::S7commplus | Proto::Mms => App::Tpkt(p, tpkt::State::default()),
        Proto::Enip => App::Enip(enip::State::default()),
        Proto::Opcua => App::Opcua(opcua::State::default()),
        Proto::Mqtt => App::Mqtt(mqtt::State::default()),
        _ => App::None,
    }
}

impl Engine {
    pub fn new(cfg: &EngineConfig) -> Engine {
        Engine {
            counters: Counters::default(),
            flows: LruMap::with_capacity(cfg.max_flows),
            sessions: Sessions::new(cfg.ics_sessions),
            stream_pool: BufPool::new(cfg.stream_blocks),
            app_pool: BufPool::new(cfg.app_blocks),
            assets: Assets::new(cfg.max_assets),
            frags: vec![FragEntry::default(); FRAG_SLOTS],
            idle_ns: cfg.idle_timeout_ns.max(1_000_000_000),
            last_expiry_sec: 0,
            top: TopFlows::default(),
            sstats: StreamStats::default(),
            scratch: Box::new([0u8; BLOCK]),
            publishers: goose::Publishers::new(4096),
            redundancy: vec![RedundancySeen::default(); REDUNDANCY_SLOTS],
            now: Ts(0),
            detect: None,
        }
    }

    /// An engine that judges what it sees.
    pub fn with_detection(cfg: &EngineConfig, detect: Detection) -> Engine {
        let mut e = Engine::new(cfg);
        e.assets.track_fresh = detect.policy.is_some();
        e.detect = Some(Box::new(detect));
        e
    }

    /// Processes one frame, then folds what the detectors found into events.
    pub fn process(&mut self, pkt: &Packet<'_>) {
        self.process_frame(pkt);
        if let Some(d) = self.detect.as_deref_mut() {
            if !self.assets.fresh.is_empty() {
                if let Some(p) = d.policy.clone() {
                    for (ip, mac) in self.assets.fresh.drain(..) {
                        d.site.asset(&p, ip, mac, self.now, &mut d.findings);
                    }
                } else {
                    self.assets.fresh.clear();
                }
            }
            if !d.findings.is_empty() {
                d.fold();
            }
        }
    }

    /// Moves the engine's clock to `now` without a packet (a quiet live link): idle
    /// flows expire and the detectors' windows and sweeps run (`silence` needs time to
    /// pass when nothing arrives).
    pub fn advance(&mut self, now: Ts) {
        if now > self.now {
            self.now = now;
        }
        if now.secs() > self.last_expiry_sec {
            self.last_expiry_sec = now.secs();
            self.expire(now);
            self.detect_tick(now);
        }
    }

    /// Once per second of packet time: the detectors' windows and sweeps.
    fn detect_tick(&mut self, now: Ts) {
        let Some(d) = self.detect.as_deref_mut() else {
            return;
        };
        let mut packets = [0u64; Proto::COUNT];
        for (p, c) in packets.iter_mut().zip(self.counters.protocols.iter()) {
            *p = c.packets;
        }
        d.independent.tick(now, &packets, &mut d.findings);
        if let Some(p) = d.policy.clone() {
            d.site.tick(&p, now, &mut d.findings);
        }
        let (indep, findings) = (&mut d.independent, &mut d.findings);
        self.publishers
            .expired(now, 256, &mut |e| indep.goose_expired(now, e, findings));
        d.fold();
        d.events.tick(now);
    }

    fn process_frame(&mut self, pkt: &Packet<'_>) {
        let ts = pkt.ts;
        if ts > self.now {
            self.now = ts;
        }
        if ts.secs() != self.last_expiry_sec {
            self.last_expiry_sec = ts.secs();
            self.expire(ts);
            self.detect_tick(ts);
        }
        let wire = u64::from(pkt.orig_len.max(pkt.data.len() as u32));
        let frame = decode::decode(pkt.link, pkt.data);
        if let (Some(red), Some(src)) = (frame.redundancy, frame.src_mac) {
            self.counters.redundancy_frames += 1;
            if self.duplicate(src, red.seq, ts) {
                // The same frame from the other LAN (or ring direction): counted once.
                self.counters.redundancy_duplicates += 1;
                return;
            }
        }
        self.counters.packets += 1;
        self.counters.bytes += wire;
        if (pkt.data.len() as u64) < wire {
            self.counters.truncated_frames += 1;
        }
        match frame.l3 {
            L3::Malformed(layer) => {
                Counters::bump(&mut self.counters.decode_errors, layer.index(), 1);
                self.count(Proto::Malformed, wire, true);
                if let Some(m) = frame.src_mac {
                    self.assets.station(m, ts);
                }
            }
            L3::Arp(arp) => {
                self.count(Proto::Arp, wire, true);
                if let Some(m) = frame.src_mac {
                    self.assets.station(m, ts);
                }
                if let Some(a) = arp {
                    // The sender's binding is evidence (RFC 826); probes (sender 0.0.0.0)
                    // bind nothing.
                    self.assets
                        .bind(Addr::v4(a.sender_ip), a.sender_mac, false, ts);
                    if let Some(d) = self.detect.as_deref_mut() {
                        d.independent.arp(ts, &a, frame.src_mac, &mut d.findings);
                    }
                }
            }
            L3::Link(proto, _ethertype, payload) => {
                let dissected = matches!(proto, Proto::Goose | Proto::Sv | Proto::Profinet);
                // Dissected link protocols count their own messages.
                self.count(proto, wire, !dissected);
                if let Some(m) = frame.src_mac {
                    self.assets.station(m, ts);
                    if dissected {
                        self.link_dissect(
                            proto,
                            payload,
                            m,
                            frame.dst_mac.unwrap_or([0xff; 6]),
                            ts,
                        );
                    }
                }
            }
            L3::Ip(ip) => self.ip(ts, &frame, &ip, wire),
        }
    }

    /// Industrial link-layer frames: GOOSE (with its publisher's state), SV, PROFINET.
    fn link_dissect(&mut self, proto: Proto, payload: &[u8], src: Mac, dst: Mac, ts: Ts) {
        let mut ctx = L2Ctx {
            c: &mut self.counters,
            assets: &mut self.assets,
            ts,
            src,
            dst,
            proto,
            det: self.detect.as_deref_mut(),
        };
        match proto {
            Proto::Goose => {
                if let Some(info) = goose::dissect_frame(payload, src, &mut ctx) {
                    let o = self.publishers.observe(src, &info, ts);
                    let g = &mut ctx.c.goose;
                    g.new_publishers += u64::from(o.new_publisher);
                    g.st_num_back += u64::from(o.st_num_back);
                    g.st_num_jump += u64::from(o.st_num_jump);
                    g.sq_num_reset += u64::from(o.sq_num_reset);
                    g.test += u64::from(o.test);
                    if let Some(d) = ctx.det.as_deref_mut() {
                        d.independent.goose(
                            ts,
                            src,
                            info.appid,
                            info.gocb_ref,
                            &o,
                            &mut d.findings,
                        );
                    }
                }
            }
            Proto::Sv => sv::dissect_frame(payload, src, &mut ctx),
            Proto::Profinet => profinet::dissect_frame(payload, src, dst, &mut ctx),
            _ => {}
        }
    }

    /// Whether an HSR/PRP frame (source, sequence number) was seen within the window;
    /// remembers it otherwise. Bounded: one slot per hash, the newest wins.
    fn duplicate(&mut self, src: Mac, seq: u16, ts: Ts) -> bool {
        let mut h: u64 = u64::from(seq);
        for b in src {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let i = (h as usize) % REDUNDANCY_SLOTS;
        let Some(slot) = self.redundancy.get_mut(i) else {
            return false;
        };
        let dup = slot.used
            && slot.src == src
            && slot.seq == seq
            && ts.0.saturating_sub(slot.ts) <= REDUNDANCY_WINDOW_NS;
        if !dup {
            *slot = RedundancySeen {
                src,
                seq,
                ts: ts.0,
                used: true,
            };
        }
        dup
    }

    /// Counts a frame under a protocol (and as one of its messages for link protocols).
    #[inline]
    fn count(&mut self, p: Proto, wire: u64, pdu: bool) {
        let c = self.counters.proto(p);
        c.packets += 1;
        c.bytes += wire;
        if pdu {
            c.pdus += 1;
        }
    }

    fn ip(&mut self, ts: Ts, frame: &decode::Frame<'_>, ip: &decode::Ip<'_>, wire: u64) {
        if ip.fragmented {
            self.counters.ip_fragments += 1;
        }
        let (sport, dport, flags, seq, payload, fixed) = match ip.l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                flags,
                payload,
            } => (sport, dport, Some(flags), seq, payload, None),
            L4::Udp {
                sport,
                dport,
                payload,
            } => (sport, dport, None, 0, payload, None),
            L4::Icmp { .. } => (0, 0, None, 0, &[][..], Some(Proto::Icmp)),
            L4::Icmpv6 {
                icmp_type, payload, ..
            } => {
                self.ndp(ts, ip, frame, icmp_type, payload);
                (0, 0, None, 0, &[][..], Some(Proto::Icmpv6))
            }
            L4::Igmp => (0, 0, None, 0, &[][..], Some(Proto::Igmp)),
            L4::Other(_) => (0, 0, None, 0, &[][..], Some(Proto::OtherIp)),
            L4::Fragment => {
                self.later_fragment(ts, ip, wire);
                return;
            }
        };
        let (key, from_a) = FlowKey::new(ip.src, sport, ip.dst, dport, ip.proto, frame.vlan);
        let epoch = ts.secs() as u32;
        let mut created = false;
        let slot = match self.flows.find(&key) {
            Some(s) => {
                self.flows.touch(s, epoch);
                s
            }
            None => {
                created = true;
                let client_first = first_sender_is_client(flags, sport, dport);
                let mut f = Flow {
                    first: ts,
                    last: ts,
                    client_is_a: client_first == from_a,
                    ..Flow::default()
                };
                if let Some(p) = fixed {
                    f.proto = p;
                    f.class = Class::Decided;
                    self.counters.proto(p).flows += 1;
                }
                self.counters.flows_created += 1;
                let (s, evicted) = self.flows.insert(key, f, epoch);
                if let Some((k, old)) = evicted {
                    self.counters.flow_evictions += 1;
                    self.finalize(&k, old);
                }
                s
            }
        };
        if ip.fragmented {
            self.remember_fragment(ip, key, from_a);
        }
        let Self {
            flows,
            counters,
            assets,
            sessions,
            stream_pool,
            app_pool,
            sstats,
            scratch,
            detect,
            ..
        } = self;
        let Some(flow) = flows.get_mut(slot) else {
            return;
        };
        let macs = (frame.src_mac, frame.dst_mac);
        if created && flow.class == Class::Decided {
            // ICMP and other port-less flows are decided at once.
            if let Some(d) = detect.as_deref_mut() {
                judge_flow(d, flow, &key, from_a, macs, ts);
            }
        }
        if !payload.is_empty() {
            flow.noted |= NOTE_PAYLOAD;
        }
        let di = usize::from(!from_a);
        if let (Some(p), Some(b)) = (flow.packets.get_mut(di), flow.bytes.get_mut(di)) {
            *p += 1;
            *b += wire;
        }
        if ts > flow.last {
            flow.last = ts;
        }
        if let Some(f) = flags {
            let before = flow.tcp;
            flow.tcp_update(from_a, f);
            // Only a new flow or a change of TCP state is a fact for the detectors.
            if (created || flow.tcp != before)
                && let Some(d) = detect.as_deref_mut()
            {
                tcp_facts(d, flow, &key, before, from_a, f, created, frame.src_mac, ts);
            }
        }
        let side = flow.side(from_a);
        // Assets: each endpoint once per flow, when it first sends.
        let bit = if from_a { 1 } else { 2 };
        // (Only senders: an address nobody has heard from is not a device seen.)
        if flow.noted & bit == 0 {
            flow.noted |= bit;
            assets.endpoint(ip.src, frame.src_mac, Some(ip.ttl), ts);
        }
        if flow.class == Class::Decided {
            let c = counters.proto(flow.proto);
            c.packets += 1;
            c.bytes += wire;
        }
        if payload.is_empty() {
            if flow.tcp == TcpState::Closed && flow.session != NO_SESSION {
                sessions.release(flow.session, stream_pool, app_pool);
                flow.session = NO_SESSION;
            }
            return;
        }
        let (cport, sport_srv) = if side == Side::Client {
            (sport, dport)
        } else {
            (dport, sport)
        };
        // Stream bytes of this segment already taken by the probe buffer (TCP): fed to
        // the dissector as they are instead of going through `accept` again.
        let mut accepted: Option<&[u8]> = None;
        if flow.class == Class::Pending {
            let tcp = flags.is_some();
            // A TCP direction that was `Unsure` keeps its bytes in a probe buffer (a
            // reassembly block of a session), so a header split across segments is
            // recognised and no message before the decision is lost.
            let mut probe_data = payload;
            if tcp && let Some(sess) = sessions.slots.get_mut(flow.session as usize) {
                let Some(d) = sess.dirs.get_mut(side.index()) else {
                    return;
                };
                let Some(new) = d.accept(seq, payload, stream_pool, sstats) else {
                    return; // a retransmission of what was probed
                };
                probe_data = new;
                if d.buf != NO_BUF {
                    let held = usize::from(d.len);
                    let n = new.len().min(BLOCK.saturating_sub(held));
                    if let (Some(dst), Some(src)) = (
                        scratch.get_mut(..held),
                        stream_pool.block(d.buf).get(..held),
                    ) {
                        dst.copy_from_slice(src);
                    }
                    if let (Some(dst), Some(src)) = (scratch.get_mut(held..held + n), new.get(..n))
                    {
                        dst.copy_from_slice(src);
                    }
                    d.reset(stream_pool);
                    probe_data = scratch.get(..held + n).unwrap_or(&[]);
                }
                accepted = Some(probe_data);
            }
            let verdict = if tcp {
                classify::tcp(probe_data, cport, sport_srv, side == Side::Client)
            } else {
                classify::udp(probe_data, sport, dport, side == Side::Client)
            };
            flow.probes = flow.probes.saturating_add(1);
            let decided = match verdict {
                Verdict::Match(p) => Some(p),
                _ if flow.probes >= MAX_PROBES => Some(if tcp {
                    Proto::OtherTcp
                } else {
                    Proto::OtherUdp
                }),
                Verdict::Unsure if tcp => {
                    hold_for_probe(
                        flow,
                        sessions,
                        stream_pool,
                        sstats,
                        side,
                        seq,
                        payload,
                        probe_data,
                        accepted.is_some(),
                    );
                    None
                }
                _ => None,
            };
            let Some(p) = decided else {
                return;
            };
            decide(counters, flow, p);
            if let Some(d) = detect.as_deref_mut() {
                judge_flow(d, flow, &key, from_a, macs, ts);
            }
            // Per-flow state: TCP industrial flows (reassembly) and DNP3 over UDP
            // (transport reassembly); other datagram protocols are stateless.
            let app = if tcp || p == Proto::Dnp3 {
                app_for(p)
            } else {
                App::None
            };
            match (matches!(app, App::None), flow.session == NO_SESSION) {
                (false, true) => match sessions.alloc(app) {
                    Some(id) => flow.session = id,
                    None => counters.ics_sessions_exhausted += 1,
                },
                (false, false) => {
                    if let Some(sess) = sessions.slots.get_mut(flow.session as usize) {
                        sess.app = app;
                    }
                }
                (true, false) => {
                    sessions.release(flow.session, stream_pool, app_pool);
                    flow.session = NO_SESSION;
                    accepted = None;
                }
                (true, true) => {}
            }
        }
        let proto = flow.proto;
        let ics = if flags.is_some() {
            classify::is_stream_ics(proto)
        } else {
            classify::is_datagram_ics(proto)
        };
        if !ics {
            // IT protocols: a payload-carrying packet is one message.
            counters.proto(proto).pdus += 1;
            if side == Side::Server
                && flow.noted & 4 == 0
                && !matches!(proto, Proto::OtherTcp | Proto::OtherUdp)
            {
                flow.noted |= 4;
                let (client, server) = if side == Side::Client {
                    (ip.src, ip.dst)
                } else {
                    (ip.dst, ip.src)
                };
                assets.roles(server, client, proto, ts);
            }
            return;
        }
        let (client, server) = if side == Side::Client {
            (ip.src, ip.dst)
        } else {
            (ip.dst, ip.src)
        };
        if let Some(d) = detect.as_deref_mut()
            && d.policy.is_some()
            && flow.rule_gen != d.generation()
        {
            // The policy was reloaded since this flow was judged.
            judge_flow(d, flow, &key, from_a, macs, ts);
        }
        let mut ctx = Ctx {
            c: counters,
            assets,
            ts,
            client,
            server,
            port: sport_srv,
            proto,
            rule: flow.rule,
            macs,
            sender: side,
            noted: &mut flow.noted,
            det: detect.as_deref_mut(),
        };
        if flags.is_none() && proto != Proto::Dnp3 {
            // Stateless datagram protocols: each datagram is whole.
            match proto {
                Proto::Enip => enip::dissect_datagram(payload, side, &mut ctx),
                Proto::Bacnet => bacnet::dissect_datagram(payload, side, &mut ctx),
                Proto::Profinet => profinet::dissect_datagram(payload, side, &mut ctx),
                _ => {}
            }
            return;
        }
        match sessions.slots.get_mut(flow.session as usize) {
            Some(session) => {
                let Session { dirs, app } = session;
                if flags.is_none() {
                    // UDP (DNP3): datagrams are whole.
                    if let App::Dnp3(st) = app {
                        dnp3::dissect_datagram(payload, side, st, app_pool, &mut ctx);
                    }
                } else if let Some(d) = dirs.get_mut(side.index())
                    && let Some(data) = match accepted {
                        Some(a) => Some(a),
                        None => d.accept(seq, payload, stream_pool, sstats),
                    }
                {
                    let frame = frame_fn(app);
                    let mut sink = Dissect {
                        app,
                        app_pool,
                        side,
                        ctx: &mut ctx,
                    };
                    d.feed(data, stream_pool, sstats, frame, &mut sink);
                }
            }
            None => {
                // No session (table full): dissect whole messages of this segment alone.
                let mut app = app_for(proto);
                if flags.is_none() {
                    if let App::Dnp3(st) = &mut app {
                        dnp3::dissect_datagram(payload, side, st, app_pool, &mut ctx);
                    }
                } else {
                    let frame = frame_fn(&app);
                    let mut rest = payload;
                    while let FrameLen::Len(n) = frame(rest) {
                        let Some((msg, tail)) = rest.split_at_checked(n) else {
                            break;
                        };
                        dissect_message(&mut app, msg, side, false, app_pool, &mut ctx);
                        rest = tail;
                    }
                }
                app.release(app_pool);
            }
        }
        if flow.tcp == TcpState::Closed && flow.session != NO_SESSION {
            sessions.release(flow.session, stream_pool, app_pool);
            flow.session = NO_SESSION;
        }
    }

    /// ICMPv6 neighbour discovery carries IP↔MAC evidence (RFC 4861 4.3/4.4).
    fn ndp(
        &mut self,
        ts: Ts,
        ip: &decode::Ip<'_>,
        frame: &decode::Frame<'_>,
        icmp_type: u8,
        body: &[u8],
    ) {
        // body = after the 8-byte ICMPv6 header: for NS/NA the 16-byte target, then options.
        let (Some(src_mac), 135 | 136) = (frame.src_mac, icmp_type) else {
            return;
        };
        if icmp_type == 136 {
            if let Some(target) = body.get(..16).and_then(|t| <[u8; 16]>::try_from(t).ok()) {
                // Target link-layer address option (type 2), else the frame's source.
                let mac = ndp_option(body.get(16..).unwrap_or(&[]), 2).unwrap_or(src_mac);
                self.assets.bind(Addr::v6(target), mac, false, ts);
            }
        } else if ip.src != Addr::v6([0; 16]) {
            let mac = ndp_option(body.get(16..).unwrap_or(&[]), 1).unwrap_or(src_mac);
            self.assets.bind(ip.src, mac, false, ts);
        }
    }

    fn frag_slot(src: &Addr, dst: &Addr, id: u32, ip_proto: u8) -> usize {
        let mut h: u64 = u64::from(id) ^ (u64::from(ip_proto) << 32);
        for chunk in src.0.chunks(8).chain(dst.0.chunks(8)) {
            let mut w = [0u8; 8];
            w.iter_mut().zip(chunk).for_each(|(d, s)| *d = *s);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        (h >> 54) as usize % FRAG_SLOTS
    }

    fn remember_fragment(&mut self, ip: &decode::Ip<'_>, key: FlowKey, from_a: bool) {
        let i = Self::frag_slot(&ip.src, &ip.dst, ip.frag_id, ip.proto);
        if let Some(e) = self.frags.get_mut(i) {
            *e = FragEntry {
                src: ip.src,
                dst: ip.dst,
                id: ip.frag_id,
                ip_proto: ip.proto,
                key,
                from_a,
                used: true,
            };
        }
    }

    fn later_fragment(&mut self, ts: Ts, ip: &decode::Ip<'_>, wire: u64) {
        let i = Self::frag_slot(&ip.src, &ip.dst, ip.frag_id, ip.proto);
        let entry = self
            .frags
            .get(i)
            .filter(|e| {
                e.used
                    && e.src == ip.src
                    && e.dst == ip.dst
                    && e.id == ip.frag_id
                    && e.ip_proto == ip.proto
            })
            .copied();
        let slot = entry.and_then(|e| self.flows.find(&e.key).map(|s| (s, e.from_a)));
        match slot {
            Some((s, from_a)) => {
                self.flows.touch(s, ts.secs() as u32);
                let Some(flow) = self.flows.get_mut(s) else {
                    return;
                };
                let di = usize::from(!from_a);
                if let (Some(p), Some(b)) = (flow.packets.get_mut(di), flow.bytes.get_mut(di)) {
                    *p += 1;
                    *b += wire;
                }
                if flow.class == Class::Decided {
                    let proto = flow.proto;
                    self.count(proto, wire, false);
                }
            }
            None => {
                self.counters.orphan_fragments += 1;
                self.count(Proto::OtherIp, wire, false);
            }
        }
    }

    /// Expires flows idle for longer than the timeout at `now`.
    pub fn expire(&mut self, now: Ts) {
        let idle_secs = self.idle_ns / 1_000_000_000;
        let now_secs = now.secs();
        while let Some(s) = self.flows.oldest() {
            let epoch = u64::from(self.flows.epoch(s).unwrap_or(0));
            if epoch + idle_secs >= now_secs {
                break;
            }
            // The epoch is coarse; check the exact last-seen time too.
            let last = self.flows.get(s).map_or(Ts(0), |f| f.last);
            if now.saturating_sub(last) < self.idle_ns && epoch + idle_secs + 1 >= now_secs {
                break;
            }
            if let Some((k, f)) = self.flows.remove(s) {
                self.counters.flows_expired += 1;
                self.finalize(&k, f);
            }
        }
    }

    /// A flow leaves the table: settle its classification and free its session.
    fn finalize(&mut self, key: &FlowKey, mut f: Flow) {
        let now = self.now;
        if f.class == Class::Pending {
            let p = match key.ip_proto {
                6 => Proto::OtherTcp,
                17 => Proto::OtherUdp,
                _ => Proto::OtherIp,
            };
            decide(&mut self.counters, &mut f, p);
            if let Some(d) = self.detect.as_deref_mut() {
                let a = f.client_is_a;
                judge_flow(d, &mut f, key, a, (None, None), now);
            }
        }
        if let Some(d) = self.detect.as_deref_mut()
            && let Some(mut l) = d.learner.as_ref().and_then(|l| l.lock().ok())
        {
            let (client, server, port) = ends(key, &f);
            l.flow_end(f.last, client, server, f.proto, port);
        }
        if f.noted & (NOTE_ATTEMPT | NOTE_ENDED) == NOTE_ATTEMPT
            && let Some(d) = self.detect.as_deref_mut()
        {
            let (client, server, port) = ends(key, &f);
            d.independent.tcp_ended(
                now,
                client,
                server,
                port,
                f.noted & NOTE_PAYLOAD != 0,
                &mut d.findings,
            );
        }
        if f.session != NO_SESSION {
            self.sessions
                .release(f.session, &mut self.stream_pool, &mut self.app_pool);
        }
        self.top.offer(key, &f);
    }

    /// Ends a run: every flow still in the table is settled (end of a replay).
    pub fn finish(&mut self) {
        while let Some(s) = self.flows.oldest() {
            if let Some((k, f)) = self.flows.remove(s) {
                self.finalize(&k, f);
            } else {
                break;
            }
        }
        if let Some(d) = self.detect.as_deref_mut() {
            d.fold();
            d.events.close_all();
        }
        self.sync_gauges();
    }

    /// Copies gauges and side counters into `counters` (call before reading them).
    pub fn sync_gauges(&mut self) {
        let c = &mut self.counters;
        c.flows_active = self.flows.len() as u64;
        c.assets_active = self.assets.len() as u64;
        c.asset_evictions = self.assets.evictions;
        c.stream_gaps = self.sstats.gaps;
        c.retransmitted_bytes = self.sstats.retransmitted_bytes;
        c.reassembly_exhausted = self.sstats.out_of_buffers;
        c.goose.publishers = self.publishers.len() as u64;
        c.goose.publisher_evictions = self.publishers.evictions;
    }

    /// The largest finished flows by bytes.
    pub fn top_flows(&self) -> &[FlowSummary] {
        &self.top.flows
    }
}

/// Keeps the bytes of an `Unsure` TCP probe for the next segment of the direction.
#[allow(clippy::too_many_arguments)]
fn hold_for_probe(
    flow: &mut Flow,
    sessions: &mut Sessions,
    pool: &mut BufPool,
    sstats: &mut StreamStats,
    side: Side,
    seq: u32,
    payload: &[u8],
    data: &[u8],
    accepted: bool,
) {
    if flow.session == NO_SESSION {
        match sessions.alloc(App::None) {
            Some(id) => flow.session = id,
            None => return,
        }
    }
    let Some(d) = sessions
        .slots
        .get_mut(flow.session as usize)
        .and_then(|s| s.dirs.get_mut(side.index()))
    else {
        return;
    };
    if !accepted && d.accept(seq, payload, pool, sstats).is_none() {
        return;
    }
    d.hold(data, pool);
}

/// (client, server, server port) of a flow.
fn ends(key: &FlowKey, f: &Flow) -> (Addr, Addr, u16) {
    if f.client_is_a {
        (key.a, key.b, key.b_port)
    } else {
        (key.b, key.a, key.a_port)
    }
}

/// The client's port of a flow.
fn client_port(key: &FlowKey, f: &Flow) -> u16 {
    if f.client_is_a {
        key.a_port
    } else {
        key.b_port
    }
}

/// A flow's protocol is known: the learner hears of it, the policy judges it.
fn judge_flow(
    d: &mut Detection,
    flow: &mut Flow,
    key: &FlowKey,
    from_a: bool,
    macs: (Option<Mac>, Option<Mac>),
    ts: Ts,
) {
    let (client, server, port) = ends(key, flow);
    if let Some(mut l) = d.learner.as_ref().and_then(|l| l.lock().ok()) {
        l.conversation(ts, client, server, flow.proto, port);
    }
    let Some(p) = d.policy.clone() else {
        return;
    };
    let (client_mac, server_mac) = if from_a == flow.client_is_a {
        macs
    } else {
        (macs.1, macs.0)
    };
    let facts = FlowFacts {
        client,
        server,
        client_mac,
        server_mac,
        proto: flow.proto,
        port,
        client_port: client_port(key, flow),
        // Only a flow seen from its SYN has a known direction; one picked up mid-stream
        // (or UDP) may match a rule either way round.
        tcp: flow.noted & NOTE_ATTEMPT != 0,
    };
    flow.rule = d.site.flow(&p, &facts, ts, &mut d.findings);
    flow.rule_gen = p.generation;
}

/// What a TCP segment tells the scan and flood detectors: a new attempt, a stealth
/// probe, the attempt answered, established, refused or ended.
#[allow(clippy::too_many_arguments)]
fn tcp_facts(
    d: &mut Detection,
    flow: &mut Flow,
    key: &FlowKey,
    before: TcpState,
    from_a: bool,
    flags: u8,
    created: bool,
    src_mac: Option<Mac>,
    ts: Ts,
) {
    use crate::decode::tcp_flags::{ACK, RST, SYN};
    let (client, server, port) = ends(key, flow);
    if created {
        if flags & SYN != 0 && flags & ACK == 0 {
            flow.noted |= NOTE_ATTEMPT;
            d.independent
                .tcp_attempt(ts, client, server, port, src_mac, &mut d.findings);
        } else if flags & (SYN | ACK | RST) == 0 {
            // FIN, NULL or XMAS outside any flow: a stealth probe (sent by endpoint
            // a or b as this packet says).
            let (src, dst, dport) = if from_a {
                (key.a, key.b, key.b_port)
            } else {
                (key.b, key.a, key.a_port)
            };
            d.independent
                .stealth_probe(ts, src, dst, dport, flags, src_mac, &mut d.findings);
        }
        return;
    }
    if flow.noted & (NOTE_ATTEMPT | NOTE_ENDED) != NOTE_ATTEMPT {
        return;
    }
    let from_server = flow.side(from_a) == Side::Server;
    match (before, flow.tcp) {
        (TcpState::SynSent, TcpState::SynReceived) if from_server => {
            d.independent.tcp_answered(ts, client, server, port);
        }
        (TcpState::SynReceived, TcpState::Established) => {
            d.independent.tcp_established(ts, client, server, port);
        }
        (TcpState::SynSent | TcpState::SynReceived, TcpState::Closed)
            if from_server && flags & RST != 0 =>
        {
            flow.noted |= NOTE_ENDED;
            d.independent
                .tcp_refused(ts, client, server, port, &mut d.findings);
        }
        (_, TcpState::Closed) => {
            flow.noted |= NOTE_ENDED;
            let payload = flow.noted & NOTE_PAYLOAD != 0;
            d.independent
                .tcp_ended(ts, client, server, port, payload, &mut d.findings);
        }
        _ => {}
    }
}

/// Settles a pending flow's protocol: its packets so far are counted under it.
fn decide(c: &mut Counters, f: &mut Flow, p: Proto) {
    f.proto = p;
    f.class = Class::Decided;
    let pc = c.proto(p);
    pc.packets += f.total_packets();
    pc.bytes += f.total_bytes();
    pc.flows += 1;
}

/// The MAC in an NDP option of `kind` (1 source, 2 target link-layer address).
fn ndp_option(mut opts: &[u8], kind: u8) -> Option<Mac> {
    while let (Some(&t), Some(&len8)) = (opts.first(), opts.get(1)) {
        let len = usize::from(len8) * 8;
        if len == 0 {
            return None;
        }
        if t == kind && len >= 8 {
            return opts.get(2..8).and_then(|m| m.try_into().ok());
        }
        opts = opts.get(len..)?;
    }
    None
}
