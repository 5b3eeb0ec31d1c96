//! `infrawatch-agent run`: the daemon. One plain thread per packet source (each live
//! interface, or the replayed `[capture] pcap` files) runs its own [`Engine`]; counters
//! are published to a shared registry once a second (never per packet). The main
//! thread runs a small tokio runtime for signals (SIGTERM/SIGINT stop, SIGHUP reloads)
//! and periodic summaries. On stop, live sources drain what the kernel already queued
//! before the threads end, so nothing captured is left uncounted.

use crate::capture::bpf;
use crate::capture::live::{self, KernelStats, LiveOptions, LiveSource};
use crate::capture::pcap::PcapFile;
use crate::capture::{CaptureError, Next, PacketSource, Ts};
use crate::detect::Detection;
use crate::detect::independent::CaptureWatch;
use crate::engine::{Engine, EngineConfig};
use crate::event::{Events, IdSource};
use crate::judge::{PolicyCell, Reload};
use crate::proto::Proto;
use crate::sink::{Baseline, EventSink, baseline_path};
use crate::stats::Counters;
use crate::summary::Summary;
use anyhow::{Context as _, bail};
use infrawatch_config::agent::{AtEnd, Pace};
use infrawatch_config::notify::Notifier;
use infrawatch_config::{AgentConfig, RealEnvironment, load_agent_file};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often threads publish counters.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How often the agent logs a summary.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// State one capture thread shares with the rest of the agent.
#[derive(Debug)]
pub struct SourceShared {
    /// `eth1`, or `pcap` for replayed files.
    pub interface: String,
    /// Bumped on every loop iteration (packet, idle wait, pacing wait) through
    /// [`SourceShared::beat`]: proves the loop runs, whether packets arrive or not. The
    /// supervisor withholds `WATCHDOG=1` when it stops advancing.
    pub heartbeat: AtomicU64,
    /// The source is open (the interface, or the first replayed file): readiness.
    pub opened: AtomicBool,
    /// Time of the last packet, ns since the epoch (0: none yet).
    pub last_packet_ns: AtomicU64,
    /// 1 up, 0 down, 2 unknown.
    pub up: AtomicU8,
    /// Kernel drops (PACKET_STATISTICS), cumulative.
    pub kernel_drops: AtomicU64,
    /// The thread's latest counters.
    pub counters: Mutex<Counters>,
    /// The source is exhausted (files) or failed for good.
    pub finished: AtomicBool,
    /// The engine's detection counters (anomalies, site), published with `counters`.
    pub detection: Mutex<DetectionCounts>,
    /// The engine's devices, published every [`ASSETS_EVERY`] (capped at
    /// [`crate::report::MAX_ASSETS`]).
    pub assets: Mutex<Vec<infrawatch_config::report::AssetRecord>>,
}

/// Counters of one engine's detectors, as published.
#[derive(Clone, Debug, Default)]
pub struct DetectionCounts {
    pub anomalies: crate::event::AnomalyCounts,
    pub site: crate::detect::site::SiteCounts,
}

/// How often capture threads publish their device list (for reports).
const ASSETS_EVERY: Duration = Duration::from_secs(10);

impl SourceShared {
    pub fn new(interface: &str) -> Self {
        SourceShared {
            interface: interface.to_string(),
            heartbeat: AtomicU64::new(0),
            opened: AtomicBool::new(false),
            last_packet_ns: AtomicU64::new(0),
            up: AtomicU8::new(2),
            kernel_drops: AtomicU64::new(0),
            counters: Mutex::new(Counters::default()),
            finished: AtomicBool::new(false),
            detection: Mutex::new(DetectionCounts::default()),
            assets: Mutex::new(Vec::new()),
        }
    }

    /// One turn of the capture loop. (In debug builds, also the point where a test can
    /// stall the loop: [`crate::fault`].)
    #[inline]
    pub fn beat(&self) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
        crate::fault::stall_point();
    }

    /// The source is open: its thread holds only `CAP_NET_RAW` from now on.
    fn mark_opened(&self) {
        if self.opened.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = crate::capture::privs::keep_only_net_raw() {
            tracing::debug!(interface = %self.interface, "capabilities left as they are: {e}");
        }
        self.opened.store(true, Ordering::Release);
    }
}

/// Wall-clock time as a packet timestamp (for live capture and idle expiry).
pub fn wall_now() -> Ts {
    Ts(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64))
}

/// Compiles `[capture] exclude` expressions into the kernel filter, as start-up does;
/// the error says which expression and why.
pub fn compile_excludes(exprs: &[String]) -> Result<(), String> {
    let filters = bpf::parse_all(exprs).map_err(|e| e.to_string())?;
    bpf::compile(&filters)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The replayed files, opened one at a time as the capture thread reaches them.
fn file_sources(
    files: Vec<PathBuf>,
    pace: Pace,
    stop: Arc<AtomicBool>,
    shared: Arc<SourceShared>,
) -> Box<dyn Iterator<Item = Box<dyn PacketSource + Send>> + Send> {
    let origin = Arc::new(Mutex::new(None));
    Box::new(
        files
            .into_iter()
            .filter_map(move |path| match PcapFile::open(&path) {
                Ok(f) => {
                    tracing::info!(file = %path.display(), "replaying capture file");
                    let source: Box<dyn PacketSource + Send> = match pace {
                        Pace::Max => Box::new(f),
                        Pace::Recorded => Box::new(Paced {
                            inner: f,
                            origin: Arc::clone(&origin),
                            stop: Arc::clone(&stop),
                            shared: Arc::clone(&shared),
                        }),
                    };
                    Some(source)
                }
                Err(e) => {
                    tracing::error!("{e}; skipping it");
                    None
                }
            }),
    )
}

/// Replays packets at the pace their timestamps say (a decorator over any source).
struct Paced<S> {
    inner: S,
    /// Wall time and packet time of the first packet, shared by consecutive files.
    origin: Arc<Mutex<Option<(Instant, Ts)>>>,
    stop: Arc<AtomicBool>,
    /// Beaten while waiting: a long gap in a recording is a quiet link, not a stuck loop.
    shared: Arc<SourceShared>,
}

impl<S: PacketSource> PacketSource for Paced<S> {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        let stop = Arc::clone(&self.stop);
        let origin = Arc::clone(&self.origin);
        match self.inner.next()? {
            Next::Packet(p) => {
                let (wall0, ts0) = match origin.lock() {
                    Ok(mut o) => *o.get_or_insert((Instant::now(), p.ts)),
                    Err(_) => (Instant::now(), p.ts),
                };
                let due = wall0 + Duration::from_nanos(p.ts.saturating_sub(ts0));
                loop {
                    let now = Instant::now();
                    if now >= due || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep((due - now).min(Duration::from_millis(100)));
                    self.shared.beat();
                }
                Ok(Next::Packet(p))
            }
            other => Ok(other),
        }
    }

    fn interface(&self) -> &str {
        self.inner.interface()
    }
}

/// How long a stopping live source may keep draining what the kernel queued.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Why [`pump`] returned.
enum Ended {
    /// The source is exhausted (end of a file).
    End,
    /// Stop was requested (and a live source drained its queue).
    Stopped,
    /// The source failed.
    Failed(CaptureError),
}

/// What every capture thread shares to judge traffic.
#[derive(Debug, Clone)]
struct Judging {
    cell: Arc<PolicyCell>,
    sink: Arc<Mutex<EventSink>>,
    ids: Arc<IdSource>,
    state_dir: PathBuf,
    learning: Option<Arc<LearnRun>>,
}

/// `mode = "learn"`: the capture threads feed one learner for `[learning] duration` of
/// packet time; then the learnt policy is written to `state_dir/learnt-policy.toml`
/// and, with `then = "monitor"`, put in force (`then = "stay"`: written again after
/// each period, learning goes on).
#[derive(Debug)]
struct LearnRun {
    learner: crate::learn_cmd::SharedLearner,
    duration_ns: u64,
    /// Packet time of the period's start (0: no packet yet).
    started_ns: AtomicU64,
    then: infrawatch_config::policy::Then,
    done: AtomicBool,
    name: String,
    detectors: infrawatch_config::policy::Detectors,
}

/// Where a learning agent writes what it learnt.
pub fn learnt_policy_path(state_dir: &Path) -> PathBuf {
    state_dir.join("learnt-policy.toml")
}

/// How often a capture thread saves its baseline.
const SAVE_EVERY: Duration = Duration::from_secs(60);

impl Judging {
    /// A capture thread's engine: detectors with the policy in force, seeded with the
    /// source's saved baseline.
    fn engine(&self, cfg: &EngineConfig, source: &str) -> (Engine, u64) {
        let generation = self.cell.generation();
        let det = match &self.learning {
            Some(l) if !l.done.load(Ordering::Acquire) => {
                let mut d =
                    Detection::new(None, Arc::clone(&self.ids), Some(Arc::clone(&l.learner)));
                d.independent.configure(&l.detectors);
                d
            }
            _ => Detection::new(self.cell.get(), Arc::clone(&self.ids), None),
        };
        let baseline = Baseline::load(&baseline_path(&self.state_dir, source));
        if let Some(b) = &baseline {
            tracing::info!(
                source,
                conversations = b.conversations.len(),
                assets = b.assets.len(),
                devices = b.devices.len(),
                bindings = b.bindings.len(),
                "baseline loaded"
            );
        }
        let mut engine = Engine::with_detection(cfg, det);
        if let (Some(b), Some(d)) = (&baseline, engine.detect.as_deref_mut()) {
            b.seed(d, &mut engine.assets);
        }
        (engine, generation)
    }

    /// Takes a reloaded policy into the engine (between packets: nothing is lost).
    fn sync_policy(&self, engine: &mut Engine, generation: &mut u64) {
        let now = self.cell.generation();
        if now == *generation {
            return;
        }
        *generation = now;
        let p = self.cell.get();
        engine.assets.track_fresh = p.is_some();
        if let Some(d) = engine.detect.as_deref_mut() {
            if p.is_some() {
                // Learning (if any) is over once a policy is in force.
                d.learner = None;
            }
            d.set_policy(p);
        }
    }

    /// A learning run whose period is over: the learnt policy is written and, with
    /// `then = "monitor"`, put in force. Called about once a second per thread.
    fn check_learning(&self, engine: &Engine) {
        let Some(l) = &self.learning else {
            return;
        };
        let now = engine.now.0;
        if now == 0 || l.done.load(Ordering::Acquire) {
            return;
        }
        let start = match l
            .started_ns
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => now,
            Err(s) => s,
        };
        if now < start.saturating_add(l.duration_ns) {
            return;
        }
        let stay = l.then == infrawatch_config::policy::Then::Stay;
        if stay {
            if l.started_ns
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return;
            }
        } else if l.done.swap(true, Ordering::AcqRel) {
            return;
        }
        let opts = crate::learn::LearnOptions {
            name: l.name.clone(),
            max_rules: crate::learn_cmd::MAX_RULES,
            source: format!(
                "agent {} ({} s of traffic)",
                self.ids.agent,
                l.duration_ns / 1_000_000_000
            ),
        };
        let (text, report) = match l.learner.lock() {
            Ok(learner) => learner.render(&engine.assets, &opts),
            Err(_) => return,
        };
        let path = learnt_policy_path(&self.state_dir);
        if let Err(e) = crate::statefile::write_atomic(&path, text.as_bytes()) {
            tracing::error!("writing the learnt policy: {e}");
            return;
        }
        tracing::info!(
            path = %path.display(),
            conversations = report.conversations,
            rules = report.rules,
            zones = report.zones,
            assets = report.assets,
            capped = report.capped,
            "learning period over: learnt policy written"
        );
        if stay {
            return;
        }
        match crate::judge::load(&path, self.cell.next_generation()) {
            Ok((p, _)) => {
                tracing::info!(sha256 = %p.policy.sha256, "monitoring with the learnt policy");
                self.cell.install(p);
            }
            Err(errors) => tracing::error!(
                "the learnt policy does not load; still without a policy:\n{errors}"
            ),
        }
    }

    /// Hands the engine's new event versions to the sink.
    fn deliver(&self, engine: &mut Engine, pkt: Option<&crate::capture::Packet<'_>>) {
        if let Some(d) = engine.detect.as_deref_mut()
            && !d.events.outbox.is_empty()
            && let Ok(mut sink) = self.sink.lock()
        {
            sink.deliver(&mut d.events.outbox, pkt);
        }
    }

    fn save(&self, engine: &Engine, source: &str) {
        if let Some(d) = engine.detect.as_deref() {
            Baseline::of(d, &engine.assets).save(&baseline_path(&self.state_dir, source));
        }
    }
}

/// Per-thread bookkeeping of [`pump`].
struct PumpState {
    last_publish: Instant,
    last_save: Instant,
    last_assets: Instant,
    generation: u64,
    /// Packet time (ns) from which the next packet looks at the wall clock for
    /// [`PumpState::periodic`]: once per second of packet time, so a steady trickle that
    /// never lets the source go idle still publishes every second, and a full-speed
    /// replay does not read the clock per packet.
    next_look_ns: u64,
}

impl PumpState {
    /// Once a second: counters published, the learning period checked; once a minute:
    /// the baseline saved.
    fn periodic(&mut self, engine: &mut Engine, shared: &SourceShared, judging: &Judging) {
        if self.last_publish.elapsed() < PUBLISH_EVERY {
            return;
        }
        self.last_publish = Instant::now();
        publish(engine, shared);
        judging.check_learning(engine);
        if self.last_assets.elapsed() >= ASSETS_EVERY {
            self.last_assets = Instant::now();
            publish_assets(engine, shared, &judging.cell);
        }
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.last_save = Instant::now();
            judging.save(engine, &shared.interface);
        }
    }
}

/// Publishes an engine's counters to the shared state.
fn publish(engine: &mut Engine, shared: &SourceShared) {
    engine.sync_gauges();
    if let Ok(mut c) = shared.counters.lock() {
        c.clone_from(&engine.counters);
    }
    if let Some(d) = engine.detect.as_deref()
        && let Ok(mut x) = shared.detection.lock()
    {
        x.anomalies = d.events.counts;
        x.site.clone_from(&d.site.counts);
    }
}

/// Publishes an engine's devices as report records (zone from the policy in force).
fn publish_assets(engine: &Engine, shared: &SourceShared, cell: &PolicyCell) {
    let policy = cell.get();
    let list: Vec<_> = crate::summary::asset_inventory(&engine.assets)
        .into_iter()
        .take(crate::report::MAX_ASSETS)
        .map(|a| {
            let zone = policy.as_deref().and_then(|p| {
                let ip = a.ips.first()?.parse::<std::net::IpAddr>().ok()?;
                let z = p.zone_of(crate::decode::Addr::from_ip(ip))?;
                p.policy.zones.get(z).map(|z| z.name.clone())
            });
            let id = a.identity.unwrap_or_default();
            infrawatch_config::report::AssetRecord {
                mac: a.mac,
                ips: a.ips,
                oui_vendor: a.oui_vendor.map(str::to_string),
                vendor: id.vendor,
                model: id.model,
                firmware: id.firmware,
                serial: id.serial,
                name: id.name,
                roles: a.roles,
                zone,
                first_seen: a.first_seen,
                last_seen: a.last_seen,
            }
        })
        .collect();
    if let Ok(mut x) = shared.assets.lock() {
        *x = list;
    }
}

/// Feeds one source's packets to the engine until it ends, fails or is stopped. A live
/// source being stopped is drained first (until it idles, at most [`DRAIN_LIMIT`]), so
/// frames the kernel already captured are counted.
fn pump(
    source: &mut dyn PacketSource,
    engine: &mut Engine,
    shared: &SourceShared,
    stop: &AtomicBool,
    live: bool,
    judging: &Judging,
    st: &mut PumpState,
) -> Ended {
    let mut n: u64 = 0;
    let mut drain_since: Option<Instant> = None;
    loop {
        shared.beat();
        if stop.load(Ordering::Relaxed) {
            if !live {
                return Ended::Stopped;
            }
            let since = *drain_since.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN_LIMIT {
                return Ended::Stopped;
            }
        }
        match source.next() {
            Ok(Next::Packet(p)) => {
                engine.process(&p);
                judging.deliver(engine, Some(&p));
                shared.last_packet_ns.store(p.ts.0, Ordering::Relaxed);
                n += 1;
                if n == 1 || n & 63 == 0 {
                    // A learning period starts with the first packet and ends in packet
                    // time (a replayed capture runs faster than the clock); a new policy
                    // is taken within 64 packets (one relaxed atomic load).
                    judging.check_learning(engine);
                    judging.sync_policy(engine, &mut st.generation);
                }
                if n & 1023 == 0 || p.ts.0 >= st.next_look_ns {
                    st.next_look_ns = p.ts.0.saturating_add(1_000_000_000);
                    st.periodic(engine, shared, judging);
                }
            }
            Ok(Next::Idle) => {
                if drain_since.is_some() {
                    return Ended::Stopped;
                }
                judging.sync_policy(engine, &mut st.generation);
                if live {
                    // Time passes on a quiet link: windows close, silences show.
                    engine.advance(wall_now());
                    judging.deliver(engine, None);
                }
                st.periodic(engine, shared, judging);
            }
            Ok(Next::End) => return Ended::End,
            Err(e) => return Ended::Failed(e),
        }
    }
}

/// Sleeps up to `d`, waking early when stop is requested; beats the heartbeat.
fn wait(d: Duration, stop: &AtomicBool, shared: &SourceShared) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        shared.beat();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a live capture thread needs.
struct LiveThread {
    judging: Judging,
    iface: String,
    opts: LiveOptions,
    cfg: EngineConfig,
    shared: Arc<SourceShared>,
    stop: Arc<AtomicBool>,
    kernel: std::sync::mpsc::Sender<(usize, KernelStats)>,
    index: usize,
}

/// The thread of one live interface: opens it (waiting while it does not exist), reads
/// it, and reopens it if it was removed and comes back. Returns its engine.
fn live_thread(t: LiveThread) -> Engine {
    let LiveThread {
        judging,
        iface,
        opts,
        cfg,
        shared,
        stop,
        kernel,
        index,
    } = t;
    let (mut engine, generation) = judging.engine(&cfg, &iface);
    let mut st = PumpState {
        last_publish: Instant::now(),
        last_save: Instant::now(),
        last_assets: Instant::now(),
        generation,
        next_look_ns: 0,
    };
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        let (mut src, info) = match LiveSource::open(&iface, &opts) {
            Ok(x) => x,
            Err(e) => {
                if !warned {
                    tracing::warn!(interface = %iface, "cannot capture yet, retrying every 5 s: {e}");
                    warned = true;
                }
                wait(Duration::from_secs(5), &stop, &shared);
                continue;
            }
        };
        warned = false;
        if info.buffer_short() {
            tracing::warn!("{info}");
        } else {
            tracing::info!("{info}");
        }
        shared.mark_opened();
        if let Some(ks) = src.take_kernel_stats() {
            let _ = kernel.send((index, ks));
        }
        loop {
            match pump(
                &mut src,
                &mut engine,
                &shared,
                &stop,
                true,
                &judging,
                &mut st,
            ) {
                Ended::Stopped | Ended::End => break,
                Ended::Failed(e) if e.is_interface_down() => {
                    if live::interface_index(&iface) == Some(src.ifindex()) {
                        tracing::warn!(interface = %iface, "interface went down; waiting for it");
                        continue;
                    }
                    tracing::warn!(interface = %iface, "interface was removed; reopening when it is back");
                    break;
                }
                Ended::Failed(e) => {
                    tracing::error!(interface = %iface, "{e}; reopening in 5 s");
                    wait(Duration::from_secs(5), &stop, &shared);
                    break;
                }
            }
        }
    }
    finish_thread(&mut engine, &shared, &judging);
    engine
}

/// A capture thread's end: open events get their last version, the baseline is saved,
/// counters are published.
fn finish_thread(engine: &mut Engine, shared: &SourceShared, judging: &Judging) {
    judging.check_learning(engine);
    engine.finish();
    judging.deliver(engine, None);
    judging.save(engine, &shared.interface);
    publish(engine, shared);
    publish_assets(engine, shared, &judging.cell);
    shared.finished.store(true, Ordering::Relaxed);
}

/// The thread replaying `[capture] pcap`.
fn file_thread(
    sources: Box<dyn Iterator<Item = Box<dyn PacketSource + Send>> + Send>,
    cfg: EngineConfig,
    shared: Arc<SourceShared>,
    stop: Arc<AtomicBool>,
    judging: Judging,
) -> Engine {
    let (mut engine, generation) = judging.engine(&cfg, &shared.interface);
    let mut st = PumpState {
        last_publish: Instant::now(),
        last_save: Instant::now(),
        last_assets: Instant::now(),
        generation,
        next_look_ns: 0,
    };
    let mut sources = sources.peekable();
    // Opening the first file is the start of capture (the others open as reached); with
    // none readable, there is nothing to wait for either.
    let _ = sources.peek();
    shared.mark_opened();
    for mut source in sources {
        match pump(
            source.as_mut(),
            &mut engine,
            &shared,
            &stop,
            false,
            &judging,
            &mut st,
        ) {
            Ended::End => {}
            Ended::Stopped => break,
            Ended::Failed(e) => tracing::error!("{e}"),
        }
    }
    finish_thread(&mut engine, &shared, &judging);
    engine
}

/// Once a second: the kernel's drop counters (read by this thread only, as they reset
/// on read) and the interfaces' up/down state.
fn stats_thread(
    shared: Vec<Arc<SourceShared>>,
    kernel: std::sync::mpsc::Receiver<(usize, KernelStats)>,
    stop: Arc<AtomicBool>,
) {
    let mut readers: Vec<(usize, KernelStats)> = Vec::new();
    loop {
        while let Ok(r) = kernel.try_recv() {
            // A reopened interface replaces its previous reader.
            readers.retain(|(i, _)| *i != r.0);
            readers.push(r);
        }
        for (i, ks) in &mut readers {
            if let (Ok(delta), Some(s)) = (ks.update(), shared.get(*i)) {
                s.kernel_drops.fetch_add(delta.drops, Ordering::Relaxed);
            }
        }
        for s in &shared {
            let up =
                live::interface_state(&s.interface).is_some_and(|st| st.admin_up && st.running);
            s.up.store(u8::from(up), Ordering::Relaxed);
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn agent_id(cfg: &AgentConfig) -> String {
    cfg.agent.id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "infrawatch-agent".into())
    })
}

fn log_summary(sources: &[Arc<SourceShared>]) {
    let mut total = Counters::default();
    for s in sources {
        if let Ok(c) = s.counters.lock() {
            total.merge(&c);
        }
    }
    let mut protos: Vec<(Proto, u64)> = Proto::ALL
        .iter()
        .map(|p| (*p, total.proto_ref(*p).packets))
        .filter(|(_, n)| *n > 0)
        .collect();
    protos.sort_by_key(|p| std::cmp::Reverse(p.1));
    let top: Vec<String> = protos
        .iter()
        .take(8)
        .map(|(p, n)| format!("{}={n}", p.name()))
        .collect();
    let commands: u64 = total.commands.iter().sum();
    let drops: u64 = sources
        .iter()
        .map(|s| s.kernel_drops.load(Ordering::Relaxed))
        .sum();
    tracing::info!(
        packets = total.packets,
        bytes = total.bytes,
        flows_active = total.flows_active,
        assets = total.assets_active,
        ics_commands = commands,
        kernel_drops = drops,
        "summary: {}",
        top.join(" ")
    );
}

/// How often `STATUS=` is refreshed for `systemctl status`.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// Readiness is announced at the latest this long after start, even while an interface
/// is missing (the agent waits for it and reports it down): a NIC that comes up late
/// must not turn into a start timeout and a restart loop.
const READY_AT_LATEST: Duration = Duration::from_secs(30);
/// A capture loop turns at least once a second when idle (the receive timeout of a live
/// source, the pacing wait of a replay, the retry wait of a missing interface): it is
/// stuck when its heartbeat has not moved for the watchdog timeout, and never sooner
/// than this.
const STALL_AFTER_AT_LEAST: Duration = Duration::from_secs(3);

/// What the supervisor tells the service manager (sd_notify): readiness once every
/// source is open, `WATCHDOG=1` only while every capture loop's heartbeat moves, and a
/// status line.
struct Supervision {
    ready: bool,
    started: Instant,
    /// Per source: the heartbeat last seen, and when it last moved.
    beats: Vec<(u64, Instant)>,
    /// How long a heartbeat may stand still.
    stall_after: Duration,
    /// The source whose loop is stuck (logged once per episode).
    stuck: Option<String>,
    last_status: Instant,
    last_packets: u64,
}

impl Supervision {
    fn new(watchdog: Option<Duration>) -> Supervision {
        let now = Instant::now();
        Supervision {
            ready: false,
            started: now,
            beats: Vec::new(),
            stall_after: watchdog.unwrap_or_default().max(STALL_AFTER_AT_LEAST),
            stuck: None,
            last_status: now,
            last_packets: 0,
        }
    }

    /// `READY=1` once every source is open (or [`READY_AT_LATEST`] has passed).
    fn check_ready(&mut self, notifier: &Notifier, shared: &[Arc<SourceShared>]) {
        if self.ready {
            return;
        }
        let waiting: Vec<&str> = shared
            .iter()
            .filter(|s| !s.opened.load(Ordering::Acquire))
            .map(|s| s.interface.as_str())
            .collect();
        if waiting.is_empty() {
            self.ready = true;
            tracing::info!("capture open on every source: ready");
            let status = self.status(shared);
            notifier.ready(&status);
        } else if self.started.elapsed() >= READY_AT_LATEST {
            self.ready = true;
            tracing::warn!(
                "ready without {}: still waiting for it to appear",
                waiting.join(", ")
            );
            notifier.ready(&format!("running; waiting for {}", waiting.join(", ")));
        }
    }

    /// `WATCHDOG=1` when every capture loop that has not finished turned recently. A
    /// quiet link keeps its loop turning (idle wake-ups beat too); a stuck loop does not.
    fn watchdog(&mut self, notifier: &Notifier, shared: &[Arc<SourceShared>]) {
        let now = Instant::now();
        self.beats.resize(shared.len(), (0, now));
        let mut stuck = None;
        for (s, b) in shared.iter().zip(self.beats.iter_mut()) {
            let hb = s.heartbeat.load(Ordering::Relaxed);
            if hb != b.0 {
                *b = (hb, now);
            }
            if !s.finished.load(Ordering::Relaxed) && now.duration_since(b.1) > self.stall_after {
                stuck = Some(s.interface.clone());
            }
        }
        match stuck {
            None => {
                if let Some(s) = self.stuck.take() {
                    tracing::warn!(source = %s, "capture loop turns again: watchdog pings resume");
                }
                notifier.watchdog();
            }
            Some(s) => {
                if self.stuck.is_none() {
                    tracing::error!(
                        source = %s,
                        stalled_s = self.stall_after.as_secs_f64(),
                        "capture loop stuck: watchdog pings withheld (systemd restarts the agent)"
                    );
                    notifier.status(&format!("capture loop {s} stuck"));
                }
                self.stuck = Some(s);
            }
        }
    }

    /// `N source(s): P packets/s, T packets`.
    fn status(&mut self, shared: &[Arc<SourceShared>]) -> String {
        let packets: u64 = shared
            .iter()
            .filter_map(|s| s.counters.lock().ok().map(|c| c.packets))
            .sum();
        let secs = self.last_status.elapsed().as_secs_f64().max(0.001);
        let rate = packets.saturating_sub(self.last_packets) as f64 / secs;
        self.last_status = Instant::now();
        self.last_packets = packets;
        let names: Vec<&str> = shared.iter().map(|s| s.interface.as_str()).collect();
        format!(
            "capturing on {}: {rate:.0} packets/s, {packets} packets",
            names.join(", ")
        )
    }
}

/// A reload of the policy file: swapped in, or refused with every error (the last good
/// policy stays).
fn reload_policy(cell: &PolicyCell) {
    match cell.reload() {
        Reload::Unchanged => tracing::info!("reload: policy unchanged"),
        Reload::Swapped(what) => {
            let sha = cell
                .get()
                .map(|p| p.policy.sha256.clone())
                .unwrap_or_default();
            tracing::info!(sha256 = %sha, "reload: new policy in force: {what}");
        }
        Reload::Refused(errors) => tracing::error!(
            "reload refused, the last good policy stays in force (config_last_reload_successful 0):\n{errors}"
        ),
    }
}

/// This boot of the agent: random, so event ids of two runs never collide.
fn boot_id() -> String {
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = wall_now().0 ^ u64::from(std::process::id());
        b = t.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs the agent until SIGTERM/SIGINT (or the end of replayed files with
/// `at_end = "exit"`).
pub fn run(config_path: &Path, summary_json: Option<&Path>) -> anyhow::Result<()> {
    let notifier = Notifier::from_env();
    let loaded = load_agent_file(config_path, &RealEnvironment);
    let rendered = loaded.render();
    if !rendered.is_empty() {
        eprint!("{rendered}");
    }
    let Some(cfg) = loaded.config else {
        bail!(
            "{}: invalid configuration ({} errors)",
            config_path.display(),
            loaded.error_count()
        );
    };
    let id = agent_id(&cfg);
    std::fs::create_dir_all(&cfg.agent.state_dir).with_context(|| {
        format!(
            "creating the state directory {}",
            cfg.agent.state_dir.display()
        )
    })?;
    let initial = match &cfg.agent.policy {
        None => {
            tracing::info!(
                "no [agent] policy: site-independent detectors only, and every command that changes the process is reported"
            );
            None
        }
        Some(p) => match crate::judge::load(p, 0) {
            Ok((compiled, warnings)) => {
                if !warnings.is_empty() {
                    eprint!("{warnings}");
                }
                tracing::info!(
                    policy = %p.display(),
                    name = %compiled.policy.name,
                    sha256 = %compiled.policy.sha256,
                    rules = compiled.policy.allow.len(),
                    "policy loaded"
                );
                Some(compiled)
            }
            Err(errors) => {
                eprint!("{errors}");
                bail!("{}: invalid policy", p.display());
            }
        },
    };
    // mode = "learn": learn first, unless an earlier run already learnt and switched.
    let mut learning = None;
    let initial = match initial {
        Some(p) if p.policy.mode == infrawatch_config::policy::Mode::Learn => {
            let learnt = learnt_policy_path(&cfg.agent.state_dir);
            let then = p.policy.learning.then;
            match (then, learnt.exists()) {
                (infrawatch_config::policy::Then::Monitor, true) => {
                    match crate::judge::load(&learnt, 0) {
                        Ok((l, _)) => {
                            tracing::info!(path = %learnt.display(), "learning finished in an earlier run: monitoring with the learnt policy (set mode = \"monitor\" and point [agent] policy at a reviewed copy)");
                            Some(l)
                        }
                        Err(errors) => {
                            bail!("{}: invalid learnt policy:\n{errors}", learnt.display())
                        }
                    }
                }
                _ => {
                    tracing::info!(
                        duration_s = p.policy.learning.duration.0.as_secs(),
                        "mode = learn: learning the site's traffic; site-independent detectors only until it ends"
                    );
                    learning = Some(Arc::new(LearnRun {
                        learner: Arc::new(Mutex::new(crate::learn::Learner::new(
                            crate::learn_cmd::MAX_CONVERSATIONS,
                        ))),
                        duration_ns: p
                            .policy
                            .learning
                            .duration
                            .0
                            .as_nanos()
                            .min(u128::from(u64::MAX)) as u64,
                        started_ns: AtomicU64::new(0),
                        then,
                        done: AtomicBool::new(false),
                        name: p.policy.name.clone(),
                        detectors: p.policy.detectors.clone(),
                    }));
                    None
                }
            }
        }
        other => other,
    };
    let cell = PolicyCell::new(cfg.agent.policy.clone(), initial);
    let boot = boot_id();
    let ids = IdSource::new(&id, &boot);
    let sink = Arc::new(Mutex::new(EventSink::open(
        &cfg.agent.state_dir,
        &cfg.events,
    )));
    let judging = Judging {
        cell: Arc::clone(&cell),
        sink: Arc::clone(&sink),
        ids: Arc::clone(&ids),
        state_dir: cfg.agent.state_dir.clone(),
        learning,
    };
    // The supervisor's own event layer (the `capture` detector).
    let mut sup_events = Events::new(Arc::clone(&ids));
    let mut watches: Vec<CaptureWatch> = Vec::new();
    let sup_counts = Arc::new(Mutex::new(crate::event::AnomalyCounts::default()));
    // The TLS files are read before anything starts: a bad one stops the start.
    let client = match &cfg.report {
        Some(rc) => {
            crate::report::Client::from_config(rc).map_err(|e| anyhow::anyhow!("[report]: {e}"))?
        }
        None => crate::report::Client::default(),
    };
    let engine_cfg = EngineConfig::from_agent(&cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let mut shared = Vec::new();
    let mut threads = Vec::new();
    let live = !cfg.capture.interfaces.is_empty();
    let mut stats_handle = None;
    let mut stats_rx = None;
    // The stats thread stops after the capture threads, for a last read of the drops.
    let stats_stop = Arc::new(AtomicBool::new(false));
    if live {
        let opts = LiveOptions::from_config(&cfg.capture)
            .map_err(|e| anyhow::anyhow!("[capture] exclude: {e}"))?;
        let (ktx, krx) = std::sync::mpsc::channel();
        for (index, iface) in cfg.capture.interfaces.iter().enumerate() {
            let s = Arc::new(SourceShared::new(iface));
            shared.push(Arc::clone(&s));
            let t = LiveThread {
                judging: judging.clone(),
                iface: iface.clone(),
                opts: opts.clone(),
                cfg: engine_cfg,
                shared: s,
                stop: Arc::clone(&stop),
                kernel: ktx.clone(),
                index,
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("capture-{iface}"))
                    .spawn(move || live_thread(t))?,
            );
        }
        stats_rx = Some(krx);
    } else {
        let s = Arc::new(SourceShared::new("pcap"));
        let source = file_sources(
            cfg.capture.pcap.clone(),
            cfg.capture.pace,
            Arc::clone(&stop),
            Arc::clone(&s),
        );
        shared.push(Arc::clone(&s));
        let stop2 = Arc::clone(&stop);
        let j = judging.clone();
        threads.push(
            std::thread::Builder::new()
                .name("capture-pcap".into())
                .spawn(move || file_thread(source, engine_cfg, s, stop2, j))?,
        );
    }

    // Capabilities are per thread: the capture threads (made above, with what opening
    // needs) give theirs up once their source is open; this thread gives them up now, so
    // the stats, reporter and runtime threads made from here on never hold any but
    // CAP_NET_RAW.
    match crate::capture::privs::keep_only_net_raw() {
        Ok(crate::capture::privs::Dropped::Nothing) => {}
        Ok(crate::capture::privs::Dropped::Dropped { before, bounding }) => tracing::info!(
            before = format!("{before:#x}"),
            bounding,
            "capabilities: only CAP_NET_RAW kept once capture is open, no_new_privs set"
        ),
        Err(e) => tracing::info!(
            "capabilities left as the service manager set them (CapabilityBoundingSet=): {e}"
        ),
    }
    if let Some(krx) = stats_rx {
        let (sh, st) = (shared.clone(), Arc::clone(&stats_stop));
        stats_handle = Some(
            std::thread::Builder::new()
                .name("capture-stats".into())
                .spawn(move || stats_thread(sh, krx, st))?,
        );
    }

    // The reporter thread (with `[report]`): stopped (a last report) after the capture
    // threads have ended and their last events are stored.
    let mut reporter = None;
    if let Some(rc) = cfg.report.clone() {
        let src = crate::report::Sources {
            sources: shared.clone(),
            sink: Arc::clone(&sink),
            cell: Arc::clone(&cell),
            supervisor: Arc::clone(&sup_counts),
        };
        tracing::info!(collectors = ?rc.collectors, interval_s = rc.interval.0.as_secs(), "reporting to the collector");
        let r = crate::report::Reporter::new(rc, src, &id, &boot);
        let (tx, rx) = std::sync::mpsc::channel();
        reporter = Some((tx, crate::report::spawn(r, client.clone(), rx)?));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    let at_end = cfg.capture.at_end;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        // Only now: a SIGHUP before its handler exists would end the process.
        tracing::info!(agent = %id, sources = shared.len(), "infrawatch-agent running");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_summary = Instant::now();
        let mut sv = Supervision::new(notifier.watchdog_timeout());
        // Readiness is looked at often until it is announced.
        let mut open_poll = tokio::time::interval(Duration::from_millis(50));
        let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);
        if let Some(w) = notifier.watchdog_timeout() {
            tracing::info!(timeout_ms = w.as_millis() as u64, "systemd watchdog: pinging while every capture loop runs");
        }
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
                _ = open_poll.tick(), if !sv.ready => sv.check_ready(&notifier, &shared),
                _ = async {
                    match watchdog.as_mut() {
                        Some(w) => { w.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => sv.watchdog(&notifier, &shared),
                _ = hup.recv() => {
                    // Before READY=1 systemd is still starting us: no reload to announce.
                    if sv.ready {
                        notifier.reloading();
                    }
                    let l = load_agent_file(config_path, &RealEnvironment);
                    if l.error_count() > 0 {
                        tracing::error!("reload refused, keeping the running configuration:\n{}", l.render());
                    } else if l.config.as_ref().map(|c| &c.capture) != Some(&cfg.capture) {
                        tracing::warn!("reload: [capture] changed; that needs a restart, keeping the running capture");
                    } else if l.config.as_ref().map(|c| &c.agent) != Some(&cfg.agent) {
                        tracing::warn!("reload: [agent] changed (id, policy path or state_dir); that needs a restart, keeping the running values");
                    } else {
                        tracing::info!("reload: agent configuration valid");
                    }
                    reload_policy(&cell);
                    if sv.ready {
                        notifier.ready(&sv.status(&shared));
                    }
                }
                _ = tick.tick() => {
                    if sv.ready && sv.last_status.elapsed() >= STATUS_EVERY {
                        notifier.status(&sv.status(&shared));
                    }
                    if cell.changed_on_disk() {
                        tracing::info!("the policy file changed on disk: reloading");
                        reload_policy(&cell);
                    }
                    if live {
                        let det = cell
                            .get()
                            .map(|p| p.policy.detectors.capture.clone())
                            .unwrap_or_else(|| infrawatch_config::policy::Detectors::default().capture);
                        let now = wall_now();
                        watches.resize_with(shared.len(), CaptureWatch::new);
                        let mut findings = Vec::new();
                        for (s, w) in shared.iter().zip(watches.iter_mut()) {
                            let last = s.last_packet_ns.load(Ordering::Relaxed);
                            let up = s.up.load(Ordering::Relaxed) != 0;
                            w.observe(&det, now, &s.interface, up, (last > 0).then_some(Ts(last)), &mut findings);
                        }
                        let p = cell.get();
                        for f in findings {
                            match p.as_deref() {
                                Some(p) => sup_events.fold(f, p),
                                None => sup_events.fold(f, &crate::event::NoPolicy),
                            }
                        }
                        sup_events.tick(now);
                        if let Ok(mut c) = sup_counts.lock() {
                            *c = sup_events.counts;
                        }
                    }
                    if let Ok(mut s) = sink.lock() {
                        if !sup_events.outbox.is_empty() {
                            s.deliver(&mut sup_events.outbox, None);
                        }
                        s.sync(wall_now());
                    }
                    if last_summary.elapsed() >= SUMMARY_EVERY {
                        last_summary = Instant::now();
                        log_summary(&shared);
                    }
                    let all_done = shared.iter().all(|s| s.finished.load(Ordering::Relaxed));
                    if all_done && (live || at_end == AtEnd::Exit) {
                        if !live {
                            tracing::info!("replayed files ended: exiting");
                        }
                        break;
                    }
                }
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .context("waiting for signals")?;

    notifier.stopping();
    stop.store(true, Ordering::Relaxed);
    let mut engines = Vec::new();
    for t in threads {
        match t.join() {
            Ok(e) => engines.push(e),
            Err(_) => tracing::error!("a capture thread panicked"),
        }
    }
    stats_stop.store(true, Ordering::Relaxed);
    if let Some(h) = stats_handle {
        let _ = h.join();
    }
    sup_events.close_all();
    if let Ok(mut s) = sink.lock() {
        s.deliver(&mut sup_events.outbox, None);
        s.sync(wall_now());
    }
    if let Ok(mut c) = sup_counts.lock() {
        *c = sup_events.counts;
    }
    if let Some((tx, handle)) = reporter {
        let _ = tx.send(());
        if handle.join().is_err() {
            tracing::error!("the reporter thread panicked");
        }
    }
    log_summary(&shared);
    if let Some(path) = summary_json {
        let mut total = Counters::default();
        let mut top = Vec::new();
        for e in &mut engines {
            total.merge(&e.counters);
            top.extend_from_slice(e.top_flows());
        }
        top.sort_by_key(|f| std::cmp::Reverse(f.bytes));
        top.truncate(10);
        let assets = match engines.first() {
            Some(e) => &e.assets,
            None => bail!("no capture thread finished"),
        };
        let mut summary = Summary::build(
            &total,
            cfg.capture.pcap.len(),
            &top,
            assets,
            Vec::new(),
            0.0,
        );
        let current = cell.get();
        summary.policy = Some(crate::summary::PolicyStatus {
            name: current.as_ref().map(|p| p.policy.name.clone()),
            sha256: current.as_ref().map(|p| p.policy.sha256.clone()),
            last_reload_successful: cell.reload_ok.load(Ordering::Relaxed),
            reloads: cell.reloads.load(Ordering::Relaxed),
            reload_failures: cell.reload_failures.load(Ordering::Relaxed),
        });
        if live {
            summary.interfaces = shared
                .iter()
                .map(|s| {
                    let last = s.last_packet_ns.load(Ordering::Relaxed);
                    crate::summary::InterfaceSummary {
                        interface: s.interface.clone(),
                        up: s.up.load(Ordering::Relaxed) == 1,
                        kernel_drops: s.kernel_drops.load(Ordering::Relaxed),
                        last_packet: (last > 0).then(|| Ts(last).rfc3339()),
                    }
                })
                .collect();
        }
        let text = serde_json::to_string(&summary)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!("stopped");
    Ok(())
}
