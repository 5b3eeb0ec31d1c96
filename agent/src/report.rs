//! Reporting to the collector (DESIGN.md, "Agent → collector").
//!
//! Every `[report] interval` the reporter thread builds a [`Report`]: the agent id and
//! boot id, a sequence number from 1, the cumulative counters and gauges of
//! [`crate::metrics`], the devices that changed since the last acknowledged report (all
//! of them on the first report of a boot; at most [`MAX_ASSETS`]), and the event store's
//! unacknowledged records (at most [`MAX_EVENTS`] records and [`MAX_EVENT_BYTES`] per
//! report). It is serialised as JSON, gzip-compressed and posted to the first collector
//! of `[report] collectors` that answers 200; the [`Ack`] then moves the store's cursor,
//! so an event is resent until a collector has it durably (at-least-once; the collector
//! upserts by id and version). A failure is counted
//! (`infrawatch_agent_report_failures_total`), the next collector is tried, and when
//! all fail the next round waits an exponential, jittered [`Backoff`] (seeded, capped at
//! [`BACKOFF_CAP`]). A 4xx other than 408/429 is a misconfiguration: logged with the
//! collector's answer and retried only at the cap.
//!
//! The building blocks ([`ReportState`], [`event_records`], [`encode`], [`Backoff`],
//! [`send_round`] over an injected sender) are pure; the thread ([`spawn`]) and the
//! HTTP/1.1 client ([`Client::post`]) are the thin I/O around them. The thread runs off
//! the packet path; it takes the event sink's lock only to read a bounded batch and to
//! ack.
//!
//! Transport: `https://` collectors with mutual TLS (rustls: the collector's certificate
//! checked against `[report] ca` and its host name, ours from `cert`/`key`); `http://`
//! only with `insecure = true` (the config loader enforces it).

use crate::judge::PolicyCell;
use crate::metrics::{InterfaceInput, MetricInputs};
use crate::run::SourceShared;
use crate::sink::EventSink;
use crate::store::Record;
use infrawatch_config::agent::{CollectorUrl, ReportSection, parse_collector_url};
use infrawatch_config::report::{
    Ack, AssetRecord, EventRecord, REPORT_PATH, REPORT_VERSION, Report, Sample,
};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Event records per report, at most.
pub const MAX_EVENTS: usize = 1000;
/// Event payload bytes per report, at most (one record always goes).
pub const MAX_EVENT_BYTES: usize = 4 << 20;
/// Devices per report, at most.
pub const MAX_ASSETS: usize = 2000;
/// Backoff after failed rounds: from [`BACKOFF_BASE`], doubling, at most this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The last report at stop: tried for at most this long.
pub const FINAL_WAIT: Duration = Duration::from_secs(8);
/// Connect, and read/write, timeouts of one POST; shorter for the last report, so a
/// stop stays within the unit's `TimeoutStopSec=15s`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const FINAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const FINAL_IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The collector's answer is read up to this size.
const MAX_RESPONSE: usize = 1 << 20;

/// What the reports of one boot remember.
#[derive(Debug)]
pub struct ReportState {
    pub agent: String,
    pub boot: String,
    /// Sequence of the last report built (0: none yet).
    pub seq: u64,
    /// Devices as last acknowledged, by key: only changed ones are sent again.
    acked_assets: HashMap<String, AssetRecord>,
}

/// The key of a device: its MAC, else its addresses.
fn asset_key(a: &AssetRecord) -> String {
    match &a.mac {
        Some(m) => m.clone(),
        None => a.ips.join(","),
    }
}

impl ReportState {
    pub fn new(agent: &str, boot: &str) -> ReportState {
        ReportState {
            agent: agent.to_string(),
            boot: boot.to_string(),
            seq: 0,
            acked_assets: HashMap::new(),
        }
    }

    /// The next report. `assets` is the whole inventory: those unchanged since the last
    /// acknowledged report are left out (so the first report of a boot has them all).
    pub fn build(
        &mut self,
        now_ms: u64,
        (counters, gauges): (Vec<Sample>, Vec<Sample>),
        assets: Vec<AssetRecord>,
        events: Vec<EventRecord>,
    ) -> Report {
        self.seq += 1;
        let assets = assets
            .into_iter()
            .filter(|a| self.acked_assets.get(&asset_key(a)) != Some(a))
            .take(MAX_ASSETS)
            .collect();
        Report {
            version: REPORT_VERSION,
            agent: self.agent.clone(),
            boot: self.boot.clone(),
            seq: self.seq,
            sent_unix_ms: now_ms,
            agent_version: crate::metrics::build_version().to_string(),
            counters,
            gauges,
            assets,
            events,
        }
    }

    /// A report was acknowledged: its devices need not be sent again unless they
    /// change (bounded: the table is cleared when it would outgrow the cap).
    pub fn acked(&mut self, report: &Report) {
        if self.acked_assets.len() + report.assets.len() > 4 * MAX_ASSETS {
            self.acked_assets.clear();
        }
        for a in &report.assets {
            self.acked_assets.insert(asset_key(a), a.clone());
        }
    }
}

/// Store records as event records (a payload that is not an event's JSON is skipped:
/// the ack covers it, it cannot be delivered anyway).
pub fn event_records(records: Vec<Record>) -> Vec<EventRecord> {
    records
        .into_iter()
        .filter_map(|r| {
            let event: serde_json::Value = serde_json::from_slice(&r.payload).ok()?;
            let id = event.get("id")?.as_str()?.to_string();
            let version = u32::try_from(event.get("version")?.as_u64()?).ok()?;
            Some(EventRecord {
                store_seq: r.seq,
                id,
                version,
                event,
            })
        })
        .collect()
}

/// The request body: JSON, gzip-compressed.
pub fn encode(report: &Report) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(report)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json)?;
    gz.finish()
}

/// Exponential backoff with jitter between failed rounds: the n-th consecutive failure
/// waits a uniformly random time in `[d/2, d]` with `d = min(cap, base·2^(n-1))`.
/// Seeded: the same seed gives the same schedule.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// A round failed: how long to wait before the next. `refused` (a 4xx that retrying
    /// will not fix) waits the cap at once.
    pub fn failed(&mut self, refused: bool) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let d = if refused {
            self.cap
        } else {
            let shift = self.failures.saturating_sub(1).min(20);
            self.base.saturating_mul(1u32 << shift).min(self.cap)
        };
        let half = d / 2;
        let span = half.as_millis().max(1) as u64;
        half + Duration::from_millis(self.next_rand() % (span + 1))
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach {url}: {source}; is the collector running and the address right?")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {source} while sending the report")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: not an HTTP answer: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{url}: TLS: {detail}")]
    Tls { url: String, detail: String },
}

impl SendError {
    /// A 4xx other than 408 and 429: the collector refuses this agent or report
    /// (certificate, identity, size, version): retrying sooner will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, SendError::Status { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

/// One round: the collectors in order until one acknowledges. Each failure is counted
/// in `failures` and logged (a warning, an error for a refusal, when `loud`; else at
/// debug level, so a long outage does not flood the log). Returns the ack and the index
/// of the collector that gave it, or the last error.
pub fn send_round<F>(
    collectors: &[String],
    body: &[u8],
    failures: &mut u64,
    loud: bool,
    mut send: F,
) -> Result<(Ack, usize), SendError>
where
    F: FnMut(&str, &[u8]) -> Result<Ack, SendError>,
{
    let mut last = None;
    for (i, url) in collectors.iter().enumerate() {
        match send(url, body) {
            Ok(ack) => return Ok((ack, i)),
            Err(e) => {
                *failures += 1;
                if !loud {
                    tracing::debug!(failures = *failures, "report failed: {e}");
                } else if e.is_refusal() {
                    tracing::error!(
                        failures = *failures,
                        "report refused (check the collector's and this agent's configuration): {e}"
                    );
                } else {
                    tracing::warn!(failures = *failures, "report failed: {e}");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| SendError::Protocol {
        url: String::new(),
        detail: "no collector configured".into(),
    }))
}

fn host_header(u: &CollectorUrl) -> String {
    if u.host.contains(':') {
        format!("[{}]:{}", u.host, u.port)
    } else {
        format!("{}:{}", u.host, u.port)
    }
}

/// The TLS settings of `[report]`: the collectors' CA, our certificate chain and key.
pub fn tls_config(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |p: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in the file", p.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(Arc::new(cfg))
}

/// The HTTP/1.1 client of the reporter: plain TCP, or TLS when configured.
#[derive(Clone, Debug)]
pub struct Client {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    /// Per read or write.
    pub io_timeout: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            tls: None,
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: IO_TIMEOUT,
        }
    }
}

impl Client {
    /// The client for `[report]`: TLS settings loaded when any collector is `https://`.
    pub fn from_config(cfg: &ReportSection) -> Result<Client, String> {
        let any_tls = cfg
            .collectors
            .iter()
            .any(|u| parse_collector_url(u).is_ok_and(|u| u.tls));
        if !any_tls {
            return Ok(Client::default());
        }
        match (&cfg.ca, &cfg.cert, &cfg.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Client {
                tls: Some(tls_config(ca, cert, key)?),
                ..Client::default()
            }),
            _ => Err("https collectors need `ca`, `cert` and `key` in [report]".into()),
        }
    }

    /// POSTs a gzip'd report to `url` (`http(s)://host:port`) and parses the [`Ack`] of
    /// a 200.
    pub fn post(&self, url: &str, body: &[u8]) -> Result<Ack, SendError> {
        let u = parse_collector_url(url).map_err(|detail| SendError::Protocol {
            url: url.to_string(),
            detail,
        })?;
        let connect = |source| SendError::Connect {
            url: url.to_string(),
            source,
        };
        let io = |source| SendError::Io {
            url: url.to_string(),
            source,
        };
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(u.host.as_str(), u.port))
            .map_err(connect)?;
        let mut stream = None;
        let mut last_err = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match std::net::TcpStream::connect_timeout(&a, self.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let stream = stream.ok_or_else(|| connect(last_err))?;
        stream.set_read_timeout(Some(self.io_timeout)).map_err(io)?;
        stream
            .set_write_timeout(Some(self.io_timeout))
            .map_err(io)?;
        let _ = stream.set_nodelay(true);
        let raw = if u.tls {
            let tls_err = |detail: String| SendError::Tls {
                url: url.to_string(),
                detail,
            };
            let cfg = self
                .tls
                .clone()
                .ok_or_else(|| tls_err("no [report] ca, cert and key loaded".into()))?;
            let name = rustls::pki_types::ServerName::try_from(u.host.clone())
                .map_err(|e| tls_err(format!("`{}`: {e}", u.host)))?;
            let conn =
                rustls::ClientConnection::new(cfg, name).map_err(|e| tls_err(e.to_string()))?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            exchange(&mut tls, &u, body).map_err(|e| match e.get_ref() {
                // Handshake failures come out of the first write as io errors.
                Some(inner) if inner.is::<rustls::Error>() => tls_err(inner.to_string()),
                _ => io(e),
            })?
        } else {
            let mut s = stream;
            exchange(&mut s, &u, body).map_err(io)?
        };
        let (status, body) = parse_response(&raw, true)
            .and_then(|r| r.ok_or_else(|| "the answer ended early".to_string()))
            .map_err(|detail| SendError::Protocol {
                url: url.to_string(),
                detail,
            })?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            return Err(SendError::Status {
                url: url.to_string(),
                status,
                body: text.chars().take(500).collect(),
            });
        }
        serde_json::from_slice::<Ack>(&body).map_err(|e| SendError::Protocol {
            url: url.to_string(),
            detail: format!("the acknowledgement does not parse: {e}"),
        })
    }
}

/// Writes the request and reads the answer (until it is complete, the peer closes, or
/// [`MAX_RESPONSE`]).
fn exchange<S: std::io::Read + std::io::Write>(
    s: &mut S,
    u: &CollectorUrl,
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let head = format!(
        "POST {REPORT_PATH} HTTP/1.1\r\nHost: {}\r\nUser-Agent: infrawatch-agent/{}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        host_header(u),
        crate::metrics::build_version(),
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify after a whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        if buf.len() > MAX_RESPONSE {
            break;
        }
        if let Ok(Some(_)) = parse_response(&buf, false) {
            break;
        }
    }
    Ok(buf)
}

/// Parses an HTTP/1.1 response: `Ok(None)` while incomplete (`at_eof`: the body runs to
/// the end of the data when it has no length).
pub fn parse_response(buf: &[u8], at_eof: bool) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(buf.get(..end).unwrap_or(&[]));
    let rest = buf.get(end + 4..).unwrap_or(&[]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let (Some(proto), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("status line `{status_line}`"));
    };
    if !proto.starts_with("HTTP/1.") {
        return Err(format!("status line `{status_line}`"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("status line `{status_line}`"))?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    if chunked {
        return Ok(dechunk(rest).map(|b| (status, b)));
    }
    match length {
        Some(n) if rest.len() >= n => Ok(Some((status, rest.get(..n).unwrap_or(&[]).to_vec()))),
        Some(_) => Ok(None),
        None if at_eof => Ok(Some((status, rest.to_vec()))),
        None => Ok(None),
    }
}

/// A chunked body, when complete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(data.get(..eol)?).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = data.get(eol + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// What the reporter thread reads the agent's state from.
#[derive(Debug)]
pub struct Sources {
    pub sources: Vec<Arc<SourceShared>>,
    pub sink: Arc<Mutex<EventSink>>,
    pub cell: Arc<PolicyCell>,
    /// The supervisor's anomaly counts (the `capture` detector).
    pub supervisor: Arc<Mutex<crate::event::AnomalyCounts>>,
}

/// The reporter: its state, its backoff, its counters.
#[derive(Debug)]
pub struct Reporter {
    cfg: ReportSection,
    src: Sources,
    state: ReportState,
    backoff: Backoff,
    /// When a failure was last logged loudly.
    last_loud: Option<Instant>,
    pub failures: u64,
    pub sent: u64,
}

/// What one attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged; `more`: the store has more unacknowledged records than fitted.
    Acked { more: bool },
    /// Every collector failed: wait this long.
    Failed(Duration),
}

fn unix_ms() -> u64 {
    crate::run::wall_now().0 / 1_000_000
}

impl Reporter {
    pub fn new(cfg: ReportSection, src: Sources, agent: &str, boot: &str) -> Reporter {
        let seed = boot.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Reporter {
            cfg,
            src,
            state: ReportState::new(agent, boot),
            backoff: Backoff::new(BACKOFF_BASE, BACKOFF_CAP, seed),
            last_loud: None,
            failures: 0,
            sent: 0,
        }
    }

    fn inputs_and_assets(&self) -> (Vec<Sample>, Vec<Sample>, Vec<AssetRecord>) {
        let policy = self.src.cell.get();
        let mut m = MetricInputs {
            policy: policy.as_deref(),
            reload_ok: self.src.cell.reload_ok.load(Ordering::Relaxed),
            report_failures: self.failures,
            reports_sent: self.sent,
            ..MetricInputs::default()
        };
        if let Ok(a) = self.src.supervisor.lock() {
            m.anomalies.add(&a);
        }
        let mut assets = Vec::new();
        for s in &self.src.sources {
            let up = match s.up.load(Ordering::Relaxed) {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            };
            let mut i = InterfaceInput {
                interface: s.interface.clone(),
                kernel_drops: s.kernel_drops.load(Ordering::Relaxed),
                last_packet_ns: s.last_packet_ns.load(Ordering::Relaxed),
                up,
                ..InterfaceInput::default()
            };
            if let Ok(c) = s.counters.lock() {
                i.counters.clone_from(&c);
            }
            if let Ok(d) = s.detection.lock() {
                m.anomalies.add(&d.anomalies);
                crate::metrics::merge_site(&mut m.site, &d.site);
            }
            if let Ok(a) = s.assets.lock() {
                assets.extend(a.iter().cloned());
            }
            m.interfaces.push(i);
        }
        if let Ok(sink) = self.src.sink.lock() {
            m.store = sink.store_stats();
            m.sink = sink.stats;
        }
        let (c, g) = crate::metrics::samples(&m);
        (c, g, assets)
    }

    /// Builds, sends and (on an ack) marks one report, with `send` as the transport.
    pub fn attempt<F>(&mut self, send: F) -> Outcome
    where
        F: FnMut(&str, &[u8]) -> Result<Ack, SendError>,
    {
        let records = match self.src.sink.lock() {
            Ok(mut s) => s.unacked(MAX_EVENTS, MAX_EVENT_BYTES),
            Err(_) => Vec::new(),
        };
        let read = records.len();
        let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
        let last_seq = records.last().map(|r| r.seq);
        let more = read >= MAX_EVENTS || bytes >= MAX_EVENT_BYTES;
        let events = event_records(records);
        let (c, g, assets) = self.inputs_and_assets();
        let report = self.state.build(unix_ms(), (c, g), assets, events);
        let body = match encode(&report) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("encoding a report: {e}");
                self.failures += 1;
                return Outcome::Failed(self.backoff.failed(false));
            }
        };
        // The first failed round after a success is logged loudly, then once a minute.
        let loud = self.backoff.failures() == 0
            || self
                .last_loud
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if loud && self.backoff.failures() > 0 {
            tracing::info!(
                failed_rounds = self.backoff.failures(),
                "reports still failing (logged once a minute)"
            );
        }
        let result = send_round(&self.cfg.collectors, &body, &mut self.failures, loud, send);
        if loud && result.is_err() {
            self.last_loud = Some(Instant::now());
        }
        match result {
            Ok((ack, i)) => {
                self.sent += 1;
                self.backoff.succeeded();
                self.state.acked(&report);
                if ack.seq != report.seq {
                    tracing::warn!(
                        sent = report.seq,
                        acked = ack.seq,
                        "the collector acknowledged another report sequence"
                    );
                }
                // Never past what this report carried.
                let upto = ack.events_upto.min(last_seq.unwrap_or(0));
                if upto > 0
                    && let Ok(mut s) = self.src.sink.lock()
                {
                    s.ack(upto);
                }
                tracing::debug!(
                    seq = report.seq,
                    collector = i,
                    events = report.events.len(),
                    events_upto = upto,
                    "report acknowledged"
                );
                Outcome::Acked {
                    more: more && upto >= last_seq.unwrap_or(0),
                }
            }
            Err(e) => Outcome::Failed(self.backoff.failed(e.is_refusal())),
        }
    }
}

/// Starts the reporter thread. It reports every `interval` until `stop` receives (or
/// its sender is dropped), then sends a last report, retrying for at most
/// [`FINAL_WAIT`], and returns.
pub fn spawn(
    mut reporter: Reporter,
    client: Client,
    stop: Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("reporter".into())
        .spawn(move || {
            let interval = reporter.cfg.interval.0;
            // The first report goes at once: the collector, and Prometheus after it, see
            // every series at its starting value (0) before anything is detected, so
            // `increase()` counts the first detection instead of taking it for the
            // series' start.
            let mut wait = Duration::ZERO;
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
                wait = match reporter.attempt(|u, b| client.post(u, b)) {
                    Outcome::Acked { more: true } => Duration::ZERO,
                    Outcome::Acked { more: false } => interval,
                    Outcome::Failed(d) => d,
                };
            }
            final_report(&mut reporter, &client);
        })
}

/// The last report at stop: until everything stored is acknowledged, for at most
/// [`FINAL_WAIT`] (retries at most a second apart).
fn final_report(reporter: &mut Reporter, client: &Client) {
    let deadline = Instant::now() + FINAL_WAIT;
    let client = Client {
        connect_timeout: FINAL_CONNECT_TIMEOUT,
        io_timeout: FINAL_IO_TIMEOUT,
        ..client.clone()
    };
    loop {
        match reporter.attempt(|u, b| client.post(u, b)) {
            Outcome::Acked { more: false } => {
                tracing::info!(reports = reporter.sent, "last report acknowledged");
                return;
            }
            Outcome::Acked { more: true } => {}
            Outcome::Failed(d) => {
                let d = d.min(Duration::from_secs(1));
                if Instant::now() + d >= deadline {
                    tracing::error!(
                        failures = reporter.failures,
                        "the last report could not be delivered; unacknowledged events stay in the store and are sent after the next start"
                    );
                    return;
                }
                std::thread::sleep(d);
            }
        }
        if Instant::now() >= deadline {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::capture::Ts;
    use crate::store::{Store, StoreConfig};
    use std::io::Read as _;

    fn event_json(id: &str, version: u32) -> String {
        format!(
            "{{\"id\":\"{id}\",\"version\":{version},\"kind\":\"ics_command\",\"severity\":\"critical\"}}"
        )
    }

    #[test]
    fn events_come_from_the_store_and_acked_ones_are_not_resent() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(StoreConfig::new(
            dir.path().join("events"),
            1 << 30,
            Duration::from_secs(86_400),
        ))
        .unwrap();
        for i in 1..=5u32 {
            store
                .append(
                    Ts(u64::from(i)),
                    event_json(&format!("a:b:{i}"), 1).as_bytes(),
                )
                .unwrap();
        }
        store.append(Ts(6), b"not json").unwrap();
        let first = store.first_unacked();
        let recs = event_records(store.read_from(first, 3, 1 << 20).unwrap());
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].id, "a:b:1");
        assert_eq!(recs[0].version, 1);
        assert_eq!(recs[0].event["kind"], "ics_command");
        let upto = recs[2].store_seq;
        store.ack(upto).unwrap();
        let rest = event_records(
            store
                .read_from(store.first_unacked(), MAX_EVENTS, MAX_EVENT_BYTES)
                .unwrap(),
        );
        let ids: Vec<_> = rest.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a:b:4", "a:b:5"],
            "acked records are not resent; junk is skipped"
        );
    }

    #[test]
    fn reports_number_from_one_and_send_only_changed_assets() {
        let mut st = ReportState::new("agent-a", "boot1");
        let dev = |last: &str| AssetRecord {
            mac: Some("00:11:22:33:44:55".into()),
            ips: vec!["10.0.0.1".into()],
            first_seen: "t0".into(),
            last_seen: last.into(),
            ..AssetRecord::default()
        };
        let other = AssetRecord {
            ips: vec!["10.0.0.2".into()],
            ..AssetRecord::default()
        };
        let r1 = st.build(
            1000,
            (vec![], vec![]),
            vec![dev("t1"), other.clone()],
            vec![],
        );
        assert_eq!(
            (r1.seq, r1.version, r1.agent.as_str()),
            (1, REPORT_VERSION, "agent-a")
        );
        assert_eq!(r1.assets.len(), 2, "all devices on the first report");
        // Not acknowledged: sent again.
        let r2 = st.build(
            2000,
            (vec![], vec![]),
            vec![dev("t1"), other.clone()],
            vec![],
        );
        assert_eq!((r2.seq, r2.assets.len()), (2, 2));
        st.acked(&r2);
        let r3 = st.build(3000, (vec![], vec![]), vec![dev("t2"), other], vec![]);
        assert_eq!(r3.seq, 3);
        assert_eq!(r3.assets, vec![dev("t2")], "only the changed device");
    }

    #[test]
    fn encoded_reports_gunzip_to_the_report() {
        let mut st = ReportState::new("a", "b");
        let r = st.build(
            5,
            (
                vec![Sample {
                    name: "infrawatch_flow_evictions_total".into(),
                    labels: vec![],
                    value: 3.0,
                }],
                vec![],
            ),
            vec![],
            vec![EventRecord {
                store_seq: 7,
                id: "a:b:1".into(),
                version: 2,
                event: serde_json::json!({"id": "a:b:1"}),
            }],
        );
        let body = encode(&r).unwrap();
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        let back: Report = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_is_seeded() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        let mut again = b.clone();
        let mut prev_hi = Duration::ZERO;
        for n in 1..=10u32 {
            let d = b.failed(false);
            assert_eq!(d, again.failed(false), "same seed, same schedule");
            let full = Duration::from_secs(1u64 << (n - 1).min(6)).min(Duration::from_secs(60));
            assert!(
                d >= full / 2 && d <= full,
                "failure {n}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
            prev_hi = prev_hi.max(d);
        }
        assert!(prev_hi <= Duration::from_secs(60));
        b.succeeded();
        let d = b.failed(false);
        assert!(d <= Duration::from_secs(1), "a success resets: {d:?}");
        let d = b.failed(true);
        assert!(
            d >= Duration::from_secs(30),
            "a refusal waits the cap: {d:?}"
        );
        let mut c = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 43);
        let xs: Vec<_> = (0..6).map(|_| c.failed(false)).collect();
        let ys: Vec<_> = (0..6).map(|_| again.failed(false)).collect();
        assert_ne!(xs, ys, "another seed, another jitter");
    }

    #[test]
    fn a_round_fails_over_in_order_and_counts_failures() {
        let collectors = vec![
            "http://a:1".to_string(),
            "http://b:2".into(),
            "http://c:3".into(),
        ];
        let mut failures = 0;
        let mut tried = Vec::new();
        let r = send_round(&collectors, b"x", &mut failures, true, |url, _| {
            tried.push(url.to_string());
            if url == "http://c:3" {
                Ok(Ack {
                    seq: 1,
                    events_upto: 4,
                })
            } else {
                Err(SendError::Connect {
                    url: url.into(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                })
            }
        });
        let (ack, i) = r.unwrap();
        assert_eq!((ack.events_upto, i, failures), (4, 2, 2));
        assert_eq!(tried, collectors);
        // The first that answers is used; later ones are not tried.
        let mut tried = Vec::new();
        let r = send_round(&collectors, b"x", &mut failures, true, |url, _| {
            tried.push(url.to_string());
            Ok(Ack::default())
        });
        assert_eq!(r.unwrap().1, 0);
        assert_eq!(tried.len(), 1);
        // All down: the last error, each counted.
        let r = send_round(&collectors, b"x", &mut failures, true, |url, _| {
            Err(SendError::Status {
                url: url.into(),
                status: 403,
                body: "unknown agent".into(),
            })
        });
        assert!(r.unwrap_err().is_refusal());
        assert_eq!(failures, 5);
    }

    fn reporter(dir: &std::path::Path) -> (Reporter, Arc<Mutex<EventSink>>) {
        let sink = Arc::new(Mutex::new(EventSink::open(
            dir,
            &infrawatch_config::agent::EventsSection::default(),
        )));
        let shared = Arc::new(SourceShared::new("eth1"));
        if let Ok(mut c) = shared.counters.lock() {
            c.proto(crate::proto::Proto::Dnp3).packets = 9;
        }
        let src = Sources {
            sources: vec![shared],
            sink: Arc::clone(&sink),
            cell: PolicyCell::new(None, None),
            supervisor: Arc::default(),
        };
        let cfg = ReportSection {
            collectors: vec!["http://a:1".into(), "http://b:2".into()],
            insecure: true,
            ..ReportSection::default()
        };
        (Reporter::new(cfg, src, "agent-a", "boot1"), sink)
    }

    fn deliver(sink: &Mutex<EventSink>, n: u64) {
        let mut events: Vec<crate::event::Event> = (1..=n)
            .map(|i| crate::event::Event {
                id: format!("agent-a:boot1:{i}"),
                version: 1,
                kind: "port_scan".into(),
                ..crate::event::Event::default()
            })
            .collect();
        sink.lock().unwrap().deliver(&mut events, None);
    }

    fn unpack(body: &[u8]) -> Report {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut json)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn a_reporter_sends_unacked_events_and_the_ack_moves_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, sink) = reporter(dir.path());
        deliver(&sink, 3);
        // Both collectors down: counted, backed off, nothing acknowledged.
        let down = |url: &str, _: &[u8]| {
            Err(SendError::Connect {
                url: url.into(),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            })
        };
        let Outcome::Failed(d) = r.attempt(down) else {
            panic!("no collector answered")
        };
        assert!(d <= BACKOFF_BASE);
        assert_eq!(r.failures, 2);
        // The second collector answers, acknowledging less than it got.
        let mut seen = Vec::new();
        let out = r.attempt(|url, body| {
            let rep = unpack(body);
            seen.push((url.to_string(), rep.seq, rep.events.len()));
            if url == "http://a:1" {
                return down(url, body);
            }
            let packets = rep
                .counters
                .iter()
                .find(|s| {
                    s.name == "infrawatch_packets_total"
                        && s.labels.contains(&("protocol".into(), "dnp3".into()))
                })
                .map(|s| s.value);
            assert_eq!(packets, Some(9.0));
            let failures = rep
                .counters
                .iter()
                .find(|s| s.name == "infrawatch_agent_report_failures_total")
                .map(|s| s.value);
            assert_eq!(failures, Some(2.0), "earlier failures are reported");
            Ok(Ack {
                seq: rep.seq,
                events_upto: 2,
            })
        });
        assert_eq!(out, Outcome::Acked { more: false });
        assert_eq!(
            seen,
            [
                ("http://a:1".to_string(), 2, 3),
                ("http://b:2".to_string(), 2, 3)
            ]
        );
        assert_eq!(r.failures, 3);
        assert_eq!(sink.lock().unwrap().store().unwrap().first_unacked(), 3);
        // Only the unacknowledged record goes again; an ack past it is clamped.
        let mut ids = Vec::new();
        r.attempt(|_, body| {
            let rep = unpack(body);
            ids = rep.events.iter().map(|e| e.id.clone()).collect();
            Ok(Ack {
                seq: rep.seq,
                events_upto: 1000,
            })
        });
        assert_eq!(ids, ["agent-a:boot1:3"]);
        let store_next = sink.lock().unwrap().store().unwrap().next_seq();
        assert_eq!(
            sink.lock().unwrap().store().unwrap().first_unacked(),
            store_next
        );
        // Nothing left: an empty report still carries the metrics.
        r.attempt(|_, body| {
            assert!(unpack(body).events.is_empty());
            Ok(Ack::default())
        });
        assert_eq!(r.sent, 3);
    }

    #[test]
    fn refusals_are_4xx_but_not_408_or_429() {
        let s = |status| SendError::Status {
            url: String::new(),
            status,
            body: String::new(),
        };
        assert!(s(400).is_refusal() && s(403).is_refusal() && s(413).is_refusal());
        assert!(!s(408).is_refusal() && !s(429).is_refusal() && !s(503).is_refusal());
    }

    #[test]
    fn responses_parse_with_length_chunked_or_to_eof() {
        let r =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(r, false).unwrap(),
            Some((200, b"hello".to_vec()))
        );
        assert_eq!(parse_response(&r[..r.len() - 1], false).unwrap(), None);
        let c = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3\r\nbad\r\n5\r\n oops\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(c, false).unwrap(),
            Some((400, b"bad oops".to_vec()))
        );
        let e = b"HTTP/1.0 200 OK\r\n\r\n{}";
        assert_eq!(parse_response(e, false).unwrap(), None);
        assert_eq!(
            parse_response(e, true).unwrap(),
            Some((200, b"{}".to_vec()))
        );
        assert!(parse_response(b"SSH-2.0-x\r\n\r\n", true).is_err());
    }
}
