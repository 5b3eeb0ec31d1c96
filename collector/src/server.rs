//! The collector's two listeners over axum.
//!
//! - **ingest**: `POST /api/v1/reports`. The body is read up to `max_report_bytes`,
//!   decoded with [`infrawatch_config::report::decode`] (the same bound after
//!   decompression), authenticated (bearer tokens when configured), admitted by the
//!   state, its events made durable, then applied; the answer is an [`Ack`]. Every
//!   refusal has a status, a `reason` counted in
//!   `infrawatch_collector_rejected_reports_total`, a rate-limited log line, and changes
//!   nothing.
//! - **metrics**: `GET /metrics`, `/api/v1/events`, `/api/v1/agents`, `/api/v1/assets`,
//!   `/healthz`, `/readyz`.

use crate::events::{EventStore, Query};
use crate::state::{KnownAgent, Limits, ReportView, State};
use crate::tls::{PeerIdentity, identity};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query as QueryParams, State as Ext};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use infrawatch_config::collector::{CollectorConfig, token_digest};
use infrawatch_config::report::{
    Ack, DecodeError, REPORT_PATH, REPORT_VERSION, Report, decode, inflate,
};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every `reason` of `infrawatch_collector_rejected_reports_total`, present from start.
pub const REJECT_REASONS: &[&str] = &[
    "too_large",
    "bad_gzip",
    "malformed",
    "version",
    "unsupported_encoding",
    "unauthenticated",
    "forbidden",
    "revoked",
    "bad_agent_id",
    "too_many_agents",
    "store_error",
];

/// How soon after a new agent `agents.json` is saved (coalescing a burst of them).
pub const SAVE_NEW_AGENTS_AFTER: Duration = Duration::from_millis(100);

/// Wall-clock milliseconds since 1970.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The collector's own metrics, served through the `prometheus` crate.
#[derive(Debug)]
pub struct SelfMetrics {
    pub registry: Registry,
    pub rejected: IntCounterVec,
    pub accepted: IntCounter,
    pub events_stored: IntCounter,
    pub events_duplicate: IntCounter,
    pub series_refused: IntCounter,
    pub series: IntGauge,
    pub agents: IntGauge,
    pub events: IntGauge,
    pub tls_failures: IntCounter,
    pub events_evicted: IntCounter,
    pub forward: crate::forward::ForwardMetrics,
    pub remote_writes: IntCounter,
    pub remote_write_failures: IntCounter,
    /// 1 when the last reload (SIGHUP) was applied, 0 when it was refused.
    pub reload_ok: IntGauge,
    pub reloads: IntCounterVec,
}

/// The `result` labels of `infrawatch_collector_config_reloads_total`.
pub const RELOAD_RESULTS: &[&str] = &["applied", "refused"];

impl SelfMetrics {
    fn new() -> Result<SelfMetrics, prometheus::Error> {
        let registry = Registry::new();
        let rejected = IntCounterVec::new(
            Opts::new(
                "infrawatch_collector_rejected_reports_total",
                "Reports refused, by reason.",
            ),
            &["reason"],
        )?;
        for r in REJECT_REASONS {
            rejected.with_label_values(&[*r]);
        }
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let m = SelfMetrics {
            accepted: counter("infrawatch_collector_reports_total", "Reports accepted.")?,
            events_stored: counter(
                "infrawatch_collector_events_stored_total",
                "Event versions stored.",
            )?,
            events_duplicate: counter(
                "infrawatch_collector_events_duplicate_total",
                "Event versions received again (already stored).",
            )?,
            series_refused: counter(
                "infrawatch_collector_series_refused_total",
                "Agent series dropped: over max_series_per_agent, or invalid names.",
            )?,
            series: gauge("infrawatch_collector_series", "Agent series held.")?,
            agents: gauge("infrawatch_collector_agents", "Agents known.")?,
            events: gauge("infrawatch_collector_events", "Events held in the store.")?,
            tls_failures: counter(
                "infrawatch_collector_tls_handshake_failures_total",
                "Ingest connections refused during the TLS handshake (no, unknown or invalid client certificate, not TLS).",
            )?,
            events_evicted: counter(
                "infrawatch_collector_events_evicted_total",
                "Events dropped, oldest first, because the store held [storage] max_events.",
            )?,
            remote_writes: counter(
                "infrawatch_collector_remote_write_requests_total",
                "Remote-write requests sent.",
            )?,
            remote_write_failures: counter(
                "infrawatch_collector_remote_write_failures_total",
                "Remote-write requests that failed (no connection, or not a 2xx answer).",
            )?,
            forward: crate::forward::ForwardMetrics {
                sent: IntCounterVec::new(
                    Opts::new(
                        "infrawatch_collector_forward_sent_total",
                        "Event versions sent to a [[forward]] destination.",
                    ),
                    &["url"],
                )?,
                dropped: IntCounterVec::new(
                    Opts::new(
                        "infrawatch_collector_forward_dropped_total",
                        "Event versions not forwarded: the destination's queue was full.",
                    ),
                    &["url"],
                )?,
                errors: IntCounterVec::new(
                    Opts::new(
                        "infrawatch_collector_forward_errors_total",
                        "Failed connections and sends to a [[forward]] destination (retried).",
                    ),
                    &["url"],
                )?,
            },
            reload_ok: gauge(
                "infrawatch_collector_config_last_reload_successful",
                "1 when the last reload of collector.toml (SIGHUP) was applied, 0 when it was refused (the running configuration stays).",
            )?,
            reloads: IntCounterVec::new(
                Opts::new(
                    "infrawatch_collector_config_reloads_total",
                    "Reloads of collector.toml (SIGHUP), by result.",
                ),
                &["result"],
            )?,
            rejected,
            registry,
        };
        m.reload_ok.set(1);
        for r in RELOAD_RESULTS {
            m.reloads.with_label_values(&[*r]);
        }
        m.registry.register(Box::new(m.reload_ok.clone()))?;
        m.registry.register(Box::new(m.reloads.clone()))?;
        m.registry.register(Box::new(m.rejected.clone()))?;
        m.registry.register(Box::new(m.accepted.clone()))?;
        m.registry.register(Box::new(m.events_stored.clone()))?;
        m.registry.register(Box::new(m.events_duplicate.clone()))?;
        m.registry.register(Box::new(m.series_refused.clone()))?;
        m.registry.register(Box::new(m.series.clone()))?;
        m.registry.register(Box::new(m.agents.clone()))?;
        m.registry.register(Box::new(m.events.clone()))?;
        m.registry.register(Box::new(m.tls_failures.clone()))?;
        m.registry.register(Box::new(m.forward.sent.clone()))?;
        m.registry.register(Box::new(m.remote_writes.clone()))?;
        m.registry.register(Box::new(m.events_evicted.clone()))?;
        m.registry
            .register(Box::new(m.remote_write_failures.clone()))?;
        m.registry.register(Box::new(m.forward.dropped.clone()))?;
        m.registry.register(Box::new(m.forward.errors.clone()))?;
        let build = prometheus::IntGaugeVec::new(
            // Not `infrawatch_build_info`: agents report that one, with their `agent`.
            Opts::new(
                "infrawatch_collector_build_info",
                "The collector's version.",
            ),
            &["version", "revision"],
        )?;
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("INFRAWATCH_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        m.registry.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }
}

/// The configuration in force, swapped whole by a reload ([`App::reload`]).
#[derive(Debug)]
struct Current {
    cfg: CollectorConfig,
    /// (agent, hex sha256 of its token).
    tokens: Vec<(String, String)>,
    /// `[ingest] revoked`, normalised.
    revoked: Vec<String>,
}

impl Current {
    fn new(cfg: CollectorConfig) -> Current {
        let tokens = cfg
            .ingest
            .tokens
            .iter()
            .filter_map(|(a, h)| token_digest(h).map(|d| (a.clone(), d)))
            .collect();
        let revoked = cfg
            .ingest
            .revoked
            .iter()
            .filter_map(|s| infrawatch_config::collector::normalise_serial(s))
            .collect();
        Current {
            cfg,
            tokens,
            revoked,
        }
    }
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0} changed; that needs a restart (systemctl restart infrawatch-collector)")]
    NeedsRestart(String),
}

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    /// The configuration in force; a reload swaps it (each request reads it once).
    current: std::sync::RwLock<Arc<Current>>,
    /// SHA-256 of `Authorization: Basic` values that verified (bounded), so a scrape
    /// does not pay bcrypt every time.
    basic_ok: Mutex<Vec<Vec<u8>>>,
    /// `[[forward]]` destinations, started by [`serve`], replaced by a reload.
    forwarders: std::sync::RwLock<Arc<Vec<crate::forward::Forwarder>>>,
    inner: Mutex<Inner>,
    pub metrics: SelfMetrics,
    log_limit: Mutex<HashMap<&'static str, (u64, u64)>>,
    /// Woken when a new agent appears: the saver task writes `agents.json` soon after,
    /// off the ingest path and coalesced ([`SAVE_NEW_AGENTS_AFTER`]).
    new_agents: tokio::sync::Notify,
}

#[derive(Debug)]
struct Inner {
    state: State,
    events: EventStore,
    /// Reused by every scrape.
    render_buf: Vec<u8>,
    /// The known agents changed since they were last saved.
    known_dirty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::events::StoreError),
    #[error("{path}: {source}")]
    Known {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

fn limits_of(cfg: &CollectorConfig) -> Limits {
    Limits {
        stale_after_ms: cfg.agents.stale_after.0.as_millis() as u64,
        forget_after_ms: cfg.agents.forget_after.0.as_millis() as u64,
        max_series_per_agent: cfg.agents.max_series_per_agent as usize,
        max_agents: cfg.agents.max_agents as usize,
    }
}

fn known_path(cfg: &CollectorConfig) -> PathBuf {
    cfg.storage.state_dir.join("agents.json")
}

impl App {
    /// Opens the state directory (events, known agents) and builds the state.
    pub fn open(cfg: CollectorConfig, now_ms: u64) -> Result<Arc<App>, StartError> {
        let events = EventStore::open(
            &cfg.storage.state_dir,
            cfg.storage.retention.0.as_millis() as u64,
            cfg.storage.max_events as usize,
            now_ms,
        )?;
        let path = known_path(&cfg);
        let known: Vec<KnownAgent> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: unreadable, starting without known agents: {e}",
                    path.display()
                );
                Vec::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(StartError::Known { path, source }),
        };
        let mut state = State::new(limits_of(&cfg), &cfg.agents.expected, &known);
        state.forget(now_ms);
        let metrics = SelfMetrics::new()?;
        Ok(Arc::new(App {
            current: std::sync::RwLock::new(Arc::new(Current::new(cfg))),
            basic_ok: Mutex::new(Vec::new()),
            forwarders: std::sync::RwLock::new(Arc::new(Vec::new())),
            inner: Mutex::new(Inner {
                state,
                events,
                render_buf: Vec::new(),
                known_dirty: false,
            }),
            metrics,
            log_limit: Mutex::new(HashMap::new()),
            new_agents: tokio::sync::Notify::new(),
        }))
    }

    /// The configuration in force.
    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The collector.toml in force.
    pub fn config(&self) -> CollectorConfig {
        self.current().cfg.clone()
    }

    /// Applies a new, valid collector.toml (SIGHUP): `[ingest] revoked`, `tokens` and
    /// `max_report_bytes`, `[metrics] basic_auth`, `[agents]` and `[[forward]]` take
    /// effect for the next request; listeners, TLS files, `[storage]` and
    /// `[remote_write]` need a restart, and a file that changes them is refused whole
    /// (the running configuration stays). Must run inside the runtime (forwarders are
    /// tasks). Returns what changed.
    pub fn reload(&self, new: CollectorConfig) -> Result<Vec<&'static str>, ReloadError> {
        let result = self.apply(new);
        match &result {
            Ok(_) => {
                self.metrics.reload_ok.set(1);
                self.metrics.reloads.with_label_values(&["applied"]).inc();
            }
            Err(_) => self.reload_refused(),
        }
        result
    }

    /// Whether ingest can make progress: the state lock is free within a moment (the
    /// watchdog probe, run on the blocking pool).
    pub fn probe(&self) {
        drop(self.lock());
    }

    /// `N agents (U up), R reports accepted` for `systemctl status`.
    pub fn status_line(&self, now_ms: u64) -> String {
        let (agents, up) = {
            let inner = self.lock();
            let up = inner
                .state
                .agents
                .values()
                .filter(|a| inner.state.up(a, now_ms))
                .count();
            (inner.state.agents.len(), up)
        };
        format!(
            "{agents} agents ({up} up), {} reports accepted",
            self.metrics.accepted.get()
        )
    }

    /// Counts a refused reload (also for a file that does not load).
    pub fn reload_refused(&self) {
        self.metrics.reload_ok.set(0);
        self.metrics.reloads.with_label_values(&["refused"]).inc();
    }

    fn apply(&self, new: CollectorConfig) -> Result<Vec<&'static str>, ReloadError> {
        let old = self.current();
        let o = &old.cfg;
        let restart = [
            ("[ingest] listen", o.ingest.listen != new.ingest.listen),
            (
                "[ingest] TLS (ca, cert, key, insecure)",
                (
                    &o.ingest.ca,
                    &o.ingest.cert,
                    &o.ingest.key,
                    o.ingest.insecure,
                ) != (
                    &new.ingest.ca,
                    &new.ingest.cert,
                    &new.ingest.key,
                    new.ingest.insecure,
                ),
            ),
            ("[metrics] listen", o.metrics.listen != new.metrics.listen),
            (
                "[metrics] TLS (cert, key)",
                (&o.metrics.cert, &o.metrics.key) != (&new.metrics.cert, &new.metrics.key),
            ),
            ("[storage]", o.storage != new.storage),
            ("[remote_write]", o.remote_write != new.remote_write),
        ];
        let needs: Vec<&str> = restart
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(what, _)| *what)
            .collect();
        if !needs.is_empty() {
            return Err(ReloadError::NeedsRestart(needs.join(", ")));
        }
        let changed: Vec<&'static str> = [
            ("[ingest] revoked", o.ingest.revoked != new.ingest.revoked),
            ("[ingest] tokens", o.ingest.tokens != new.ingest.tokens),
            (
                "[ingest] max_report_bytes",
                o.ingest.max_report_bytes != new.ingest.max_report_bytes,
            ),
            (
                "[metrics] basic_auth",
                o.metrics.basic_auth != new.metrics.basic_auth,
            ),
            ("[agents]", o.agents != new.agents),
            ("[[forward]]", o.forward != new.forward),
        ]
        .iter()
        .filter(|(_, c)| *c)
        .map(|(w, _)| *w)
        .collect();
        if o.agents != new.agents {
            self.lock()
                .state
                .reconfigure(limits_of(&new), &new.agents.expected);
        }
        if o.metrics.basic_auth != new.metrics.basic_auth {
            // Credentials verified under the old list must be verified again.
            self.basic_ok
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }
        if o.forward != new.forward {
            self.start_forwarders(&new);
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Current::new(new));
        Ok(changed)
    }

    /// (Re)starts the `[[forward]]` destinations: an unchanged one keeps its task and
    /// queue; a removed one's task ends once its queue is sent (or at once when its
    /// destination is unreachable).
    fn start_forwarders(&self, cfg: &CollectorConfig) {
        let mut slot = self
            .forwarders
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = slot.clone();
        let next: Vec<crate::forward::Forwarder> = cfg
            .forward
            .iter()
            .map(|e| match old.iter().find(|f| f.entry == *e) {
                Some(f) => f.clone(),
                None => crate::forward::spawn(e, self.metrics.forward.clone()),
            })
            .collect();
        *slot = Arc::new(next);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-written in a way
        // worse than refusing every request: carry on with it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a refusal, logs it (at most once per 10 s per reason, with the number
    /// suppressed) and builds the response.
    fn refuse(&self, status: StatusCode, reason: &'static str, message: String) -> Response {
        self.metrics.rejected.with_label_values(&[reason]).inc();
        let now = now_ms();
        let mut limit = self
            .log_limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = limit.entry(reason).or_insert((0, 0));
        if entry.0 == 0 || now.saturating_sub(entry.0) >= 10_000 {
            tracing::warn!(
                reason,
                suppressed = entry.1,
                "report refused ({}): {message}",
                status.as_u16()
            );
            *entry = (now, 0);
        } else {
            entry.1 += 1;
        }
        (status, message + "\n").into_response()
    }

    /// Saves the known agents when they changed (atomically), forgets silent agents and
    /// enforces event retention. Called every few seconds.
    pub fn tick(&self, now_ms: u64) {
        #[cfg(debug_assertions)]
        self.test_wedge();
        let (known, forgotten, expired) = {
            let mut inner = self.lock();
            let forgotten = inner.state.forget(now_ms);
            let expired = inner.events.enforce_retention(now_ms);
            if !forgotten.is_empty() {
                inner.known_dirty = true;
            }
            let known = inner.known_dirty.then(|| inner.state.known());
            inner.known_dirty = false;
            (known, forgotten, expired)
        };
        for id in forgotten {
            tracing::info!(agent = %id, "agent forgotten: silent for longer than forget_after");
        }
        if expired > 0 {
            tracing::info!(expired, "events past the retention dropped");
        }
        if let Some(known) = known {
            self.save_known_or_retry(&known);
        }
    }

    /// Saves the known agents if they changed since the last save (the saver task, soon
    /// after a new agent).
    pub fn save_known_if_dirty(&self) {
        let known = {
            let mut inner = self.lock();
            let known = inner.known_dirty.then(|| inner.state.known());
            inner.known_dirty = false;
            known
        };
        if let Some(known) = known {
            self.save_known_or_retry(&known);
        }
    }

    fn save_known_or_retry(&self, known: &[KnownAgent]) {
        if let Err(e) = self.save_known(known) {
            tracing::warn!("cannot save the known agents: {e}");
            self.lock().known_dirty = true;
        }
    }

    /// Test hook, debug builds only (release builds and the Debian packages do not
    /// contain it): while the file named by `INFRAWATCH_TEST_WEDGE_STATE` exists, the
    /// tick holds the state lock, as a wedged ingest would; the watchdog test uses it.
    #[cfg(debug_assertions)]
    fn test_wedge(&self) {
        let Some(path) = std::env::var_os("INFRAWATCH_TEST_WEDGE_STATE").map(PathBuf::from) else {
            return;
        };
        if !path.exists() {
            return;
        }
        tracing::warn!(
            "test hook: the state lock is held while {} exists",
            path.display()
        );
        let _held = self.lock();
        while path.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn save_known(&self, known: &[KnownAgent]) -> std::io::Result<()> {
        let path = known_path(&self.current().cfg);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(known).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// The ingest path after the body is read: decode, authenticate, store, apply.
    fn ingest(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        peer: Option<&PeerIdentity>,
        now_ms: u64,
    ) -> Response {
        let current = self.current();
        if !current.cfg.ingest.insecure {
            let Some(peer) = peer else {
                return self.refuse(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "no client certificate identity".into(),
                );
            };
            if current.revoked.contains(&peer.serial) {
                return self.refuse(
                    StatusCode::FORBIDDEN,
                    "revoked",
                    format!(
                        "the certificate of `{}` (serial {}) is revoked",
                        peer.name, peer.serial
                    ),
                );
            }
        }
        let gzip = match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("identity") | Some("") => false,
            Some("gzip") => true,
            Some(other) => {
                return self.refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    format!("Content-Encoding `{other}` is not supported: send gzip or nothing"),
                );
            }
        };
        let token_agent = match Self::authenticate(&current.tokens, headers) {
            Ok(a) => a,
            Err(why) => {
                return self.refuse(StatusCode::UNAUTHORIZED, "unauthenticated", why.into());
            }
        };
        let max = current.cfg.ingest.max_report_bytes.0 as usize;
        let refuse_decode = |e: DecodeError| {
            let status = match e {
                DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            self.refuse(status, e.reason(), e.to_string())
        };
        let json = match inflate(body, gzip, max) {
            Ok(j) => j,
            Err(e) => return refuse_decode(e),
        };
        // The samples borrowed from the text (no allocation per name and label). A
        // document the view refuses goes through `decode`, the one judge of what a
        // report is: it names the error (or, should it accept what the view did not,
        // its report is used).
        let owned: Report;
        let report = match serde_json::from_slice::<ReportView<'_>>(&json) {
            Ok(v) if v.version == REPORT_VERSION => v,
            _ => match decode(&json, false, max) {
                Ok(r) => {
                    owned = r;
                    ReportView::of(&owned)
                }
                Err(e) => return refuse_decode(e),
            },
        };
        if let Some(p) = peer
            && *p.name != *report.agent
        {
            return self.refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the certificate is `{}`'s, the report is for `{}`",
                    p.name, report.agent
                ),
            );
        }
        if let Some(a) = token_agent
            && a != report.agent
        {
            return self.refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token belongs to agent `{a}`, not `{}`", report.agent),
            );
        }
        self.store(&report, now_ms)
    }

    /// `Ok(Some(agent))` when tokens are configured and the bearer token is one of them.
    fn authenticate(
        tokens: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Option<String>, &'static str> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Err("an `Authorization: Bearer TOKEN` header is required");
        };
        let digest = hex(&Sha256::digest(token.trim().as_bytes()));
        match tokens.iter().find(|(_, d)| *d == digest) {
            Some((agent, _)) => Ok(Some(agent.clone())),
            None => Err("unknown token"),
        }
    }

    fn store(&self, report: &ReportView<'_>, now_ms: u64) -> Response {
        let mut inner = self.lock();
        if let Err(refusal) = inner.state.admit(&report.agent) {
            drop(inner);
            return self.refuse(StatusCode::FORBIDDEN, refusal.reason(), refusal.to_string());
        }
        // Events first: if they cannot be made durable, nothing is applied.
        let upserted = match inner.events.upsert(&report.agent, &report.events, now_ms) {
            Ok(u) => u,
            Err(e) => {
                drop(inner);
                return self.refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_error",
                    format!("events could not be stored: {e}"),
                );
            }
        };
        let applied = match inner.state.apply_view(report, now_ms) {
            Ok(a) => a,
            Err(refusal) => {
                drop(inner);
                return self.refuse(StatusCode::FORBIDDEN, refusal.reason(), refusal.to_string());
            }
        };
        inner.known_dirty = true;
        drop(inner);
        if applied.new_agent {
            // Saved by the saver task within SAVE_NEW_AGENTS_AFTER, not here: a burst of
            // new agents (a site starting up) is one write, not one rewrite of the whole
            // file per agent. The events are already durable; a new agent lost to a
            // crash in that window is known again at its next report.
            tracing::info!(agent = %report.agent, version = %report.agent_version, "new agent");
            self.new_agents.notify_one();
        }
        let fw = self
            .forwarders
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !fw.is_empty() {
            for s in upserted.fresh {
                let s = Arc::new(s);
                for f in fw.iter() {
                    f.offer(s.clone(), &self.metrics.forward);
                }
            }
        }
        self.metrics.accepted.inc();
        self.metrics.events_stored.inc_by(upserted.stored);
        self.metrics.events_duplicate.inc_by(upserted.duplicates);
        self.metrics.events_evicted.inc_by(upserted.evicted);
        self.metrics.series_refused.inc_by(applied.series_refused);
        let ack = Ack {
            seq: report.seq,
            events_upto: report.events.iter().map(|e| e.store_seq).max().unwrap_or(0),
        };
        json(serde_json::to_vec(&ack).unwrap_or_default())
    }

    /// The snappy-compressed remote-write request of the agent series now.
    pub fn remote_write_body(&self, now_ms: u64) -> Vec<u8> {
        crate::remote_write::write_request(&self.lock().state, now_ms)
    }

    /// The whole `/metrics` body: agent series, then the collector's own.
    pub fn render_metrics(&self, now_ms: u64) -> Vec<u8> {
        let mut inner = self.lock();
        let Inner {
            state,
            events,
            render_buf,
            ..
        } = &mut *inner;
        render_buf.clear();
        state.render(now_ms, render_buf);
        self.metrics.series.set(state.series_total() as i64);
        self.metrics.agents.set(state.agents.len() as i64);
        self.metrics.events.set(events.len() as i64);
        let own = prometheus::TextEncoder::new()
            .encode_to_string(&self.metrics.registry.gather())
            .unwrap_or_default();
        render_buf.extend_from_slice(own.as_bytes());
        render_buf.clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

async fn post_report(
    Ext(app): Ext<Arc<App>>,
    peer: Option<axum::Extension<PeerIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max = app.current().cfg.ingest.max_report_bytes.0 as usize;
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => {
            return app.refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body could not be read within {max} bytes: {e}"),
            );
        }
    };
    let peer = peer.map(|axum::Extension(p)| p);
    let task =
        tokio::task::spawn_blocking(move || app.ingest(&headers, &bytes, peer.as_ref(), now_ms()))
            .await;
    task.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The ingest router.
pub fn ingest_router(app: Arc<App>) -> Router {
    Router::new()
        .route(REPORT_PATH, post(post_report))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(app)
}

/// Checks `Authorization: Basic` against `[metrics] basic_auth` (bcrypt).
fn basic_auth_ok(app: &App, value: &str) -> bool {
    use base64::Engine;
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim()) else {
        return false;
    };
    let digest = Sha256::digest(&decoded).to_vec();
    let mut cache = app
        .basic_ok
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.contains(&digest) {
        return true;
    }
    drop(cache);
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return false;
    };
    let Some((user, password)) = text.split_once(':') else {
        return false;
    };
    let ok = app
        .current()
        .cfg
        .metrics
        .basic_auth
        .get(user)
        .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
    if ok {
        cache = app
            .basic_ok
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= 16 {
            cache.clear();
        }
        cache.push(digest);
    }
    ok
}

async fn require_basic_auth(
    Ext(app): Ext<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if app.current().cfg.metrics.basic_auth.is_empty() {
        return next.run(req).await;
    }
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_owned);
    let ok = match value {
        Some(v) => {
            let app = app.clone();
            tokio::task::spawn_blocking(move || basic_auth_ok(&app, &v))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"infrawatch\"")],
            "unauthorized\n",
        )
            .into_response()
    }
}

/// The metrics and API router (behind basic auth when configured).
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(get_metrics))
        .route("/api/v1/events", get(get_events))
        .route("/api/v1/agents", get(get_agents))
        .route("/api/v1/assets", get(get_assets))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_basic_auth,
        ))
        .with_state(app)
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn get_metrics(Ext(app): Ext<Arc<App>>, headers: HeaderMap) -> Response {
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let body = tokio::task::spawn_blocking(move || {
        let text = app.render_metrics(now_ms());
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(text.len() / 8),
                flate2::Compression::fast(),
            );
            if enc.write_all(&text).is_ok()
                && let Ok(z) = enc.finish()
            {
                return (z, true);
            }
        }
        (text, false)
    })
    .await;
    let Ok((body, zipped)) = body else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    if zipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (h, body).into_response()
}

/// `GET /api/v1/events` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Unix seconds: events whose last packet is at or after this.
    pub since: Option<f64>,
    pub kind: Option<String>,
    pub agent: Option<String>,
    pub severity: Option<String>,
    /// Default 1000, at most 10000.
    pub limit: Option<usize>,
}

async fn get_events(
    Ext(app): Ext<Arc<App>>,
    QueryParams(p): QueryParams<EventsParams>,
) -> Response {
    let q = Query {
        since_ns: p.since.map(|s| (s.max(0.0) * 1e9) as u64),
        kind: p.kind,
        agent: p.agent,
        severity: p.severity,
        limit: p.limit.unwrap_or(1000).min(10_000),
    };
    let inner = app.lock();
    let out = serde_json::to_vec(&inner.events.query(&q)).unwrap_or_default();
    drop(inner);
    json(out)
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Debug, Serialize)]
struct AgentView<'a> {
    agent: &'a str,
    up: bool,
    expected: bool,
    /// 0: never reported.
    last_report_unix_ms: u64,
    version: &'a str,
    boot: &'a str,
    seq: u64,
    series: usize,
    assets: usize,
}

async fn get_agents(Ext(app): Ext<Arc<App>>) -> Response {
    let now = now_ms();
    let current = app.current();
    let inner = app.lock();
    let list: Vec<AgentView<'_>> = inner
        .state
        .agents
        .iter()
        .map(|(id, a)| AgentView {
            agent: id,
            up: inner.state.up(a, now),
            expected: current.cfg.agents.expected.contains(id),
            last_report_unix_ms: a.last_seen_ms,
            version: &a.version,
            boot: &a.boot,
            seq: a.seq,
            series: a.series_count(),
            assets: a.assets.len(),
        })
        .collect();
    let out = serde_json::to_vec(&list).unwrap_or_default();
    drop(list);
    drop(inner);
    json(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsParams {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Serialize)]
struct AssetView<'a> {
    agent: &'a str,
    #[serde(flatten)]
    asset: &'a infrawatch_config::report::AssetRecord,
}

/// The CSV columns of `/api/v1/assets?format=csv`.
pub const ASSET_CSV_HEADER: &str =
    "agent,mac,ips,oui_vendor,vendor,model,firmware,serial,name,roles,zone,first_seen,last_seen\n";

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

async fn get_assets(
    Ext(app): Ext<Arc<App>>,
    QueryParams(p): QueryParams<AssetsParams>,
) -> Response {
    let inner = app.lock();
    let all = inner.state.agents.iter().flat_map(|(id, a)| {
        a.assets
            .values()
            .map(move |asset| AssetView { agent: id, asset })
    });
    match p.format.as_deref() {
        None | Some("json") => {
            let out = serde_json::to_vec(&all.collect::<Vec<_>>()).unwrap_or_default();
            drop(inner);
            json(out)
        }
        Some("csv") => {
            let mut out = String::from(ASSET_CSV_HEADER);
            for v in all {
                let a = v.asset;
                let o = |x: &Option<String>| x.clone().unwrap_or_default();
                let fields = [
                    v.agent.to_string(),
                    o(&a.mac),
                    a.ips.join(";"),
                    o(&a.oui_vendor),
                    o(&a.vendor),
                    o(&a.model),
                    o(&a.firmware),
                    o(&a.serial),
                    o(&a.name),
                    a.roles.join(";"),
                    o(&a.zone),
                    a.first_seen.clone(),
                    a.last_seen.clone(),
                ];
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    csv_field(&mut out, f);
                }
                out.push('\n');
            }
            drop(inner);
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
        }
        Some(other) => {
            drop(inner);
            (
                StatusCode::BAD_REQUEST,
                format!("format `{other}` is not known: json or csv\n"),
            )
                .into_response()
        }
    }
}

/// Runs both listeners until `shutdown` resolves, with a tick every 2 s that saves the
/// known agents, forgets silent ones and enforces event retention.
pub async fn serve(
    app: Arc<App>,
    ingest: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: tokio::net::TcpListener,
    metrics_tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cfg = app.config();
    app.start_forwarders(&cfg);
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(rw) = cfg.remote_write.clone() {
        let app = app.clone();
        let mut rx = rx.clone();
        let endpoint = crate::remote_write::Endpoint::new(&rw.url, rw.ca.as_deref())?;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(rw.interval.0);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = rx.wait_for(|stop| *stop) => break,
                }
                let a = app.clone();
                let Ok(body) =
                    tokio::task::spawn_blocking(move || a.remote_write_body(now_ms())).await
                else {
                    continue;
                };
                // Retries of this body with backoff, while the next interval is not due
                // (then fresher values go instead).
                let due = tokio::time::Instant::now() + rw.interval.0;
                let mut backoff = Duration::from_secs(1);
                loop {
                    app.metrics.remote_writes.inc();
                    let outcome = endpoint.post(&body).await;
                    match &outcome {
                        Ok(code) if (200..300).contains(code) => break,
                        Ok(code) => tracing::warn!(url = %rw.url, "remote_write answered {code}"),
                        Err(e) => tracing::warn!(url = %rw.url, "remote_write failed: {e}"),
                    }
                    app.metrics.remote_write_failures.inc();
                    let next = tokio::time::Instant::now() + backoff;
                    if !crate::remote_write::retryable(&outcome) || next >= due {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = rx.wait_for(|stop| *stop) => break,
                    }
                    backoff = backoff.saturating_mul(2);
                }
            }
        });
    }
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let ticker = {
        let app = app.clone();
        let mut rx = rx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = rx.wait_for(|stop| *stop) => break,
                }
                let app = app.clone();
                let _ = tokio::task::spawn_blocking(move || app.tick(now_ms())).await;
            }
            // The last word: known agents saved at stop.
            let _ = tokio::task::spawn_blocking(move || app.tick(now_ms())).await;
        })
    };
    {
        let app = app.clone();
        let mut rx = rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = app.new_agents.notified() => {}
                    _ = rx.wait_for(|stop| *stop) => break,
                }
                // Coalesce the burst; the ticker's last word saves at stop.
                tokio::time::sleep(SAVE_NEW_AGENTS_AFTER).await;
                let app = app.clone();
                let _ = tokio::task::spawn_blocking(move || app.save_known_if_dirty()).await;
            }
        });
    }
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let m = {
        let app = app.clone();
        let rx = rx.clone();
        async move {
            match metrics_tls {
                None => {
                    axum::serve(metrics, metrics_router(app))
                        .with_graceful_shutdown(wait(rx))
                        .await
                }
                Some(t) => {
                    let failures = app.metrics.tls_failures.clone();
                    let router = metrics_router(app);
                    serve_tls(metrics, t, failures, rx, move |_| router.clone()).await;
                    Ok(())
                }
            }
        }
    };
    let i = async move {
        match tls {
            None => {
                axum::serve(ingest, ingest_router(app))
                    .with_graceful_shutdown(wait(rx))
                    .await
            }
            Some(t) => {
                let failures = app.metrics.tls_failures.clone();
                serve_tls(ingest, t, failures, rx, move |peer| {
                    let router = ingest_router(app.clone());
                    match peer {
                        Some(p) => router.layer(axum::Extension(p)),
                        None => router,
                    }
                })
                .await;
                Ok(())
            }
        }
    };
    let (ri, rm) = tokio::join!(i, m);
    let result = ri.and(rm);
    let _ = ticker.await;
    result
}

/// A listener over TLS: each connection's client certificate (when there is one)
/// becomes a [`PeerIdentity`] given to `make` for that connection's router.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    failures: IntCounter,
    mut stop: tokio::sync::watch::Receiver<bool>,
    make: impl Fn(Option<PeerIdentity>) -> Router + Send + Sync + 'static,
) {
    let make = Arc::new(make);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("ingest accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let make = make.clone();
        let failures = failures.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        failures.inc();
                        tracing::debug!(%from, "TLS handshake refused: {e}");
                        return;
                    }
                    Err(_) => {
                        failures.inc();
                        return;
                    }
                };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity(c));
            let router = make(peer);
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
