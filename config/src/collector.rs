//! `collector.toml`: the collector's listeners, agents, storage and forwarding (DESIGN.md,
//! "Agent and collector files").
//!
//! [`load_collector`] is the one validation path: `infrawatch-collector check` and
//! start-up call it, with an [`Environment`] that answers questions about the host so
//! the checks stay testable. Every mistake is reported at once, with its position.

use crate::agent::{Environment, Loaded, resolve_credential, valid_agent_id};
use crate::diag::{Diagnostic, Source};
use crate::doc::{Doc, Seg};
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The sections of collector.toml.
pub const COLLECTOR_SECTIONS: &[&str] = &[
    "ingest",
    "metrics",
    "agents",
    "storage",
    "forward",
    "remote_write",
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectorConfig {
    pub ingest: IngestSection,
    pub metrics: MetricsSection,
    pub agents: AgentsSection,
    pub storage: StorageSection,
    pub forward: Vec<ForwardEntry>,
    pub remote_write: Option<RemoteWriteSection>,
}

/// Where agents report (`POST /api/v1/reports`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Required: `ADDRESS:PORT`.
    pub listen: Option<String>,
    /// mTLS: the site CA that signed the agents' certificates, the collector's own
    /// certificate and key. Required unless `insecure`.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Plain HTTP: only when said explicitly.
    pub insecure: bool,
    /// Serial numbers (hex) of revoked agent certificates.
    pub revoked: Vec<String>,
    /// Per-agent bearer tokens, stored hashed: `agent = "sha256:<hex>"`.
    pub tokens: BTreeMap<String, String>,
    /// The largest report accepted, after decompression.
    pub max_report_bytes: ByteSize,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            listen: None,
            ca: None,
            cert: None,
            key: None,
            insecure: false,
            revoked: Vec::new(),
            tokens: BTreeMap::new(),
            max_report_bytes: ByteSize(16 << 20),
        }
    }
}

impl IngestSection {
    /// The listen address, once validated.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}

/// Where Prometheus and people read (`/metrics`, `/api/v1/…`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Required: `ADDRESS:PORT`.
    pub listen: Option<String>,
    /// Optional TLS, as Prometheus exporters offer.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Optional basic auth: `user = "<bcrypt hash>"`.
    pub basic_auth: BTreeMap<String, String>,
}

impl MetricsSection {
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsSection {
    /// `infrawatch_agent_up` is 0 once an agent has not reported for this long.
    pub stale_after: HumanDuration,
    /// An agent silent this long is forgotten with its series.
    pub forget_after: HumanDuration,
    /// Agents known before they ever report: down until they do.
    pub expected: Vec<String>,
    /// Series kept per agent; more are refused and counted.
    pub max_series_per_agent: u32,
    /// Agents kept; reports from more are refused and counted.
    pub max_agents: u32,
}

impl Default for AgentsSection {
    fn default() -> Self {
        AgentsSection {
            stale_after: HumanDuration::secs(300),
            forget_after: HumanDuration::secs(7 * 86_400),
            expected: Vec::new(),
            max_series_per_agent: 10_000,
            max_agents: 1_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Events and the known agents; created when missing.
    pub state_dir: PathBuf,
    /// Events older than this are dropped.
    pub retention: HumanDuration,
    /// Events held at most; past it the oldest are dropped (counted).
    pub max_events: u32,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            state_dir: PathBuf::from("/var/lib/infrawatch-collector"),
            retention: HumanDuration::secs(90 * 86_400),
            max_events: 1_000_000,
        }
    }
}

/// How events are forwarded to a SIEM.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ForwardKind {
    /// RFC 5424 syslog.
    Syslog,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardEntry {
    pub kind: ForwardKind,
    /// `tcp://host:port`, `tcp+tls://host:port` or `udp://host:port`.
    pub url: String,
    /// For `tcp+tls://`: the CA that signed the SIEM's certificate.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteSection {
    /// A Prometheus remote-write endpoint: `http://` or `https://`.
    pub url: String,
    #[serde(default = "default_remote_write_interval")]
    pub interval: HumanDuration,
    /// For `https://`: the CA file (PEM) that signed the endpoint's certificate; the
    /// system's CAs (`/etc/ssl/certs/ca-certificates.crt`) when absent.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

fn default_remote_write_interval() -> HumanDuration {
    HumanDuration::secs(15)
}

/// Reads and validates a collector.toml from disk.
pub fn load_collector_file(path: &Path, env: &dyn Environment) -> Loaded<CollectorConfig> {
    crate::agent::load_file(
        path,
        "give the path of a collector.toml with --config",
        |p, t| load_collector(p, t, env),
    )
}

/// Parses and validates collector.toml text; `path` is used in messages.
pub fn load_collector(path: &str, text: &str, env: &dyn Environment) -> Loaded<CollectorConfig> {
    let mut doc = Doc::parse(text);
    doc.check_top_level(COLLECTOR_SECTIONS);
    let mut ingest = required_section::<IngestSection>(&mut doc, "ingest");
    let mut metrics = required_section::<MetricsSection>(&mut doc, "metrics");
    let agents = doc.section::<AgentsSection>("agents");
    let storage = doc.section::<StorageSection>("storage");
    let mut forward = match doc.get("forward").cloned() {
        None => Some(Vec::new()),
        Some(v) => match v.get_ref().as_array() {
            Some(items) => {
                let mut out = Some(Vec::new());
                for (i, item) in items.iter().enumerate() {
                    let e = doc.value::<ForwardEntry>(item, &format!("[[forward]] #{}", i + 1));
                    match (e, out.as_mut()) {
                        (Some(e), Some(o)) => o.push(e),
                        _ => out = None,
                    }
                }
                out
            }
            None => {
                doc.push(
                    Diagnostic::error(Some(v.span()), "`forward` must be an array of tables")
                        .with_help("write each destination as its own `[[forward]]` table"),
                );
                None
            }
        },
    };
    let remote_write = match doc.get("remote_write").cloned() {
        None => Some(None),
        Some(v) => doc
            .value::<RemoteWriteSection>(&v, "[remote_write]")
            .map(Some),
    };
    // TLS files may name systemd credentials (see `resolve_credential`).
    if let Some(i) = &mut ingest {
        for (key, value) in [
            ("ca", &mut i.ca),
            ("cert", &mut i.cert),
            ("key", &mut i.key),
        ] {
            resolve_credential(value, &[Seg::Key("ingest"), Seg::Key(key)], &mut doc, env);
        }
    }
    if let Some(m) = &mut metrics {
        for (key, value) in [("cert", &mut m.cert), ("key", &mut m.key)] {
            resolve_credential(value, &[Seg::Key("metrics"), Seg::Key(key)], &mut doc, env);
        }
    }
    if let Some(f) = &mut forward {
        for (n, e) in f.iter_mut().enumerate() {
            let at = [Seg::Key("forward"), Seg::Index(n), Seg::Key("ca")];
            resolve_credential(&mut e.ca, &at, &mut doc, env);
        }
    }
    if let Some(i) = &ingest {
        validate_ingest(i, &mut doc, env);
    }
    if let Some(m) = &metrics {
        validate_metrics(m, &mut doc, env);
    }
    if let Some(a) = &agents {
        validate_agents(a, &mut doc);
    }
    if let Some(s) = &storage {
        validate_storage(s, &mut doc);
    }
    if let Some(f) = &forward {
        validate_forward(f, &mut doc, env);
    }
    if let Some(Some(r)) = &remote_write {
        validate_remote_write(r, &mut doc, env);
    }
    let config = match (ingest, metrics, agents, storage, forward, remote_write) {
        (
            Some(ingest),
            Some(metrics),
            Some(agents),
            Some(storage),
            Some(forward),
            Some(remote_write),
        ) => Some(CollectorConfig {
            ingest,
            metrics,
            agents,
            storage,
            forward,
            remote_write,
        }),
        _ => None,
    };
    let ok = !doc.has_errors();
    Loaded {
        config: config.filter(|_| ok),
        diagnostics: doc.diagnostics,
        source: Source::new(path, text),
    }
}

fn required_section<T: serde::de::DeserializeOwned + Default>(
    doc: &mut Doc<'_>,
    name: &str,
) -> Option<T> {
    if doc.get(name).is_none() {
        doc.push(
            Diagnostic::error(None, format!("`[{name}]` is missing")).with_help(format!(
                "add `[{name}]` with at least `listen = \"0.0.0.0:PORT\"`"
            )),
        );
        return None;
    }
    doc.section::<T>(name)
}

fn validate_listen(listen: Option<&str>, section: &str, port: u16, doc: &mut Doc<'_>) {
    match listen {
        None => {
            let span = doc.span_of(&[Seg::Key(section)]);
            doc.push(
                Diagnostic::error(span, format!("`[{section}]` needs `listen`"))
                    .with_help(format!("add `listen = \"0.0.0.0:{port}\"`")),
            );
        }
        Some(l) => {
            if l.parse::<SocketAddr>().is_err() {
                let span = doc.span_of(&[Seg::Key(section), Seg::Key("listen")]);
                doc.push(
                    Diagnostic::error(span, format!("`{l}` is not an address and port"))
                        .with_help(format!(
                            "write an IP address and a port, e.g. \"0.0.0.0:{port}\" or \"[::]:{port}\""
                        )),
                );
            }
        }
    }
}

fn check_readable(doc: &mut Doc<'_>, env: &dyn Environment, section: &str, key: &str, path: &Path) {
    if crate::agent::is_unresolved_credential(path) {
        // Reported already by `resolve_credential`.
        return;
    }
    if let Err(e) = env.readable(path) {
        let span = doc.span_of(&[Seg::Key(section), Seg::Key(key)]);
        doc.push(Diagnostic::error(
            span,
            format!("cannot read {}: {e}", path.display()),
        ));
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A certificate serial as written in `revoked` (hex, `:` separators allowed),
/// normalised to lowercase hex without leading zeros.
pub fn normalise_serial(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if !is_hex(&hex) {
        return None;
    }
    let t = hex.trim_start_matches('0').to_ascii_lowercase();
    Some(if t.is_empty() { "0".into() } else { t })
}

/// The hex digest of a token hash as written in `tokens` (`sha256:<64 hex>`).
pub fn token_digest(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:")?;
    (hex.len() == 64 && is_hex(hex)).then(|| hex.to_ascii_lowercase())
}

/// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`, cost, 53 characters of salt and hash).
pub fn is_bcrypt_hash(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 60
        && (s.starts_with("$2a$") || s.starts_with("$2b$") || s.starts_with("$2y$"))
        && b.get(4..6)
            .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
        && b.get(6) == Some(&b'$')
        && b.get(7..).is_some_and(|r| {
            r.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
        })
}

fn validate_ingest(i: &IngestSection, doc: &mut Doc<'_>, env: &dyn Environment) {
    validate_listen(i.listen.as_deref(), "ingest", 9700, doc);
    if !i.insecure {
        for (key, value) in [("ca", &i.ca), ("cert", &i.cert), ("key", &i.key)] {
            match value {
                None => {
                    let span = doc.span_of(&[Seg::Key("ingest")]);
                    doc.push(
                        Diagnostic::error(span, format!("`[ingest]` needs `{key}` for mutual TLS"))
                            .with_help("give the site CA, the collector's certificate and key (deploy/pki.sh makes them), or set `insecure = true` for plain HTTP"),
                    );
                }
                Some(p) => check_readable(doc, env, "ingest", key, p),
            }
        }
    }
    for (n, serial) in i.revoked.iter().enumerate() {
        if normalise_serial(serial).is_none() {
            let span = doc.span_of(&[Seg::Key("ingest"), Seg::Key("revoked"), Seg::Index(n)]);
            doc.push(
                Diagnostic::error(span, format!("`{serial}` is not a certificate serial"))
                    .with_help(
                        "write the serial in hex, as `openssl x509 -noout -serial` prints it",
                    ),
            );
        }
    }
    for (agent, hash) in &i.tokens {
        let span = doc.span_of(&[Seg::Key("ingest"), Seg::Key("tokens"), Seg::Key(agent)]);
        if !valid_agent_id(agent) {
            doc.push(
                Diagnostic::error(span.clone(), format!("`{agent}` is not an agent id"))
                    .with_help("use 1 to 63 letters, digits, `-`, `_` or `.`"),
            );
        }
        if token_digest(hash).is_none() {
            doc.push(
                Diagnostic::error(span, format!("the token of `{agent}` is not a sha256 hash"))
                    .with_help("write \"sha256:\" and the 64 hex digits of the token's SHA-256, e.g. from `printf %s TOKEN | sha256sum`"),
            );
        }
    }
    if i.max_report_bytes.0 < (64 << 10) || i.max_report_bytes.0 > (1 << 30) {
        let span = doc.span_of(&[Seg::Key("ingest"), Seg::Key("max_report_bytes")]);
        doc.push(
            Diagnostic::error(span, "max_report_bytes must be between 64KiB and 1GiB")
                .with_help("16MiB, the default, holds a report of 10,000 series and events"),
        );
    }
}

fn validate_metrics(m: &MetricsSection, doc: &mut Doc<'_>, env: &dyn Environment) {
    validate_listen(m.listen.as_deref(), "metrics", 9701, doc);
    match (&m.cert, &m.key) {
        (Some(c), Some(k)) => {
            check_readable(doc, env, "metrics", "cert", c);
            check_readable(doc, env, "metrics", "key", k);
        }
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            let span = doc.span_of(&[Seg::Key("metrics")]);
            doc.push(
                Diagnostic::error(span, "`[metrics]` TLS needs both `cert` and `key`")
                    .with_help("give both, or neither to serve plain HTTP"),
            );
        }
    }
    for (user, hash) in &m.basic_auth {
        if !is_bcrypt_hash(hash) {
            let span = doc.span_of(&[Seg::Key("metrics"), Seg::Key("basic_auth"), Seg::Key(user)]);
            doc.push(
                Diagnostic::error(
                    span,
                    format!("the password of `{user}` is not a bcrypt hash"),
                )
                .with_help("write a bcrypt hash, e.g. from `htpasswd -nbBC 10 USER PASSWORD`"),
            );
        }
    }
}

fn validate_agents(a: &AgentsSection, doc: &mut Doc<'_>) {
    if a.stale_after.0.as_millis() < 100 {
        let span = doc.span_of(&[Seg::Key("agents"), Seg::Key("stale_after")]);
        doc.push(
            Diagnostic::error(span, "stale_after must be at least 100ms")
                .with_help("a few report intervals, e.g. \"5m\" for agents reporting every 10s"),
        );
    }
    if a.forget_after <= a.stale_after {
        let span = doc.span_of(&[Seg::Key("agents"), Seg::Key("forget_after")]);
        doc.push(
            Diagnostic::error(span, "forget_after must be longer than stale_after")
                .with_help("an agent is first shown down, then forgotten"),
        );
    }
    for (n, id) in a.expected.iter().enumerate() {
        let span = doc.span_of(&[Seg::Key("agents"), Seg::Key("expected"), Seg::Index(n)]);
        if !valid_agent_id(id) {
            doc.push(
                Diagnostic::error(span, format!("`{id}` is not an agent id"))
                    .with_help("use 1 to 63 letters, digits, `-`, `_` or `.`"),
            );
        } else if a.expected.iter().take(n).any(|e| e == id) {
            doc.push(Diagnostic::error(
                span,
                format!("agent `{id}` is listed twice"),
            ));
        }
    }
    if a.max_series_per_agent == 0 || a.max_series_per_agent > 10_000_000 {
        let span = doc.span_of(&[Seg::Key("agents"), Seg::Key("max_series_per_agent")]);
        doc.push(Diagnostic::error(
            span,
            "max_series_per_agent must be between 1 and 10000000",
        ));
    }
    if a.max_agents == 0 || a.max_agents > 1_000_000 {
        let span = doc.span_of(&[Seg::Key("agents"), Seg::Key("max_agents")]);
        doc.push(Diagnostic::error(
            span,
            "max_agents must be between 1 and 1000000",
        ));
    } else if a.expected.len() > a.max_agents as usize {
        let span = doc.span_of(&[Seg::Key("agents"), Seg::Key("expected")]);
        doc.push(Diagnostic::error(
            span,
            "more `expected` agents than `max_agents`",
        ));
    }
}

fn validate_storage(s: &StorageSection, doc: &mut Doc<'_>) {
    if s.state_dir.as_os_str().is_empty() || !s.state_dir.is_absolute() {
        let span = doc.span_of(&[Seg::Key("storage"), Seg::Key("state_dir")]);
        doc.push(
            Diagnostic::error(span, "state_dir must be an absolute path")
                .with_help("e.g. \"/var/lib/infrawatch-collector\""),
        );
    }
    if s.max_events < 1000 || s.max_events > 100_000_000 {
        let span = doc.span_of(&[Seg::Key("storage"), Seg::Key("max_events")]);
        doc.push(
            Diagnostic::error(span, "max_events must be between 1000 and 100000000")
                .with_help("each event takes about 1 KiB of memory"),
        );
    }
    if s.retention.0.as_secs() < 3600 {
        let span = doc.span_of(&[Seg::Key("storage"), Seg::Key("retention")]);
        doc.push(Diagnostic::error(
            span,
            "storage retention must be at least 1h",
        ));
    }
}

fn validate_forward(f: &[ForwardEntry], doc: &mut Doc<'_>, env: &dyn Environment) {
    for (n, e) in f.iter().enumerate() {
        if e.url.starts_with("tcp+tls://") {
            match &e.ca {
                None => {
                    let span = doc.span_of(&[Seg::Key("forward"), Seg::Index(n)]);
                    doc.push(
                        Diagnostic::error(span, "a tcp+tls:// forward needs `ca`")
                            .with_help("give the CA file that signed the SIEM's certificate"),
                    );
                }
                Some(ca) if crate::agent::is_unresolved_credential(ca) => {}
                Some(ca) => {
                    if let Err(err) = env.readable(ca) {
                        let span =
                            doc.span_of(&[Seg::Key("forward"), Seg::Index(n), Seg::Key("ca")]);
                        doc.push(Diagnostic::error(
                            span,
                            format!("cannot read {}: {err}", ca.display()),
                        ));
                    }
                }
            }
        }
        let ok = ["tcp://", "tcp+tls://", "udp://"].iter().any(|s| {
            e.url
                .strip_prefix(s)
                .and_then(|rest| rest.rsplit_once(':'))
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        });
        if !ok {
            let span = doc.span_of(&[Seg::Key("forward"), Seg::Index(n), Seg::Key("url")]);
            doc.push(
                Diagnostic::error(span, format!("`{}` is not a forwarding address", e.url))
                    .with_help("write tcp://HOST:PORT, tcp+tls://HOST:PORT or udp://HOST:PORT"),
            );
        }
    }
}

fn validate_remote_write(r: &RemoteWriteSection, doc: &mut Doc<'_>, env: &dyn Environment) {
    let rest = r
        .url
        .strip_prefix("http://")
        .or_else(|| r.url.strip_prefix("https://"));
    if rest.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
        let span = doc.span_of(&[Seg::Key("remote_write"), Seg::Key("url")]);
        doc.push(
            Diagnostic::error(span, format!("`{}` is not an http(s) URL", r.url))
                .with_help("e.g. \"http://victoria.site:8428/api/v1/write\""),
        );
    }
    if r.interval.0.as_secs() < 1 {
        let span = doc.span_of(&[Seg::Key("remote_write"), Seg::Key("interval")]);
        doc.push(Diagnostic::error(
            span,
            "remote_write interval must be at least 1s",
        ));
    }
    if let Some(ca) = &r.ca {
        if !r.url.starts_with("https://") {
            let span = doc.span_of(&[Seg::Key("remote_write"), Seg::Key("ca")]);
            doc.push(
                Diagnostic::error(span, "`ca` is only for an https:// remote_write url")
                    .with_help("remove `ca`, or write the url with https://"),
            );
        } else if let Err(err) = env.readable(ca) {
            let span = doc.span_of(&[Seg::Key("remote_write"), Seg::Key("ca")]);
            doc.push(Diagnostic::error(
                span,
                format!("cannot read {}: {err}", ca.display()),
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct FakeEnv(HashSet<PathBuf>);
    impl Environment for FakeEnv {
        fn readable(&self, path: &Path) -> Result<(), String> {
            if self.0.contains(path) {
                Ok(())
            } else {
                Err("No such file or directory (os error 2)".into())
            }
        }
        fn interface_exists(&self, _: &str) -> bool {
            true
        }
    }
    fn env() -> FakeEnv {
        FakeEnv(
            [
                "/etc/infrawatch/ca.pem",
                "/etc/infrawatch/collector.pem",
                "/etc/infrawatch/collector.key",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
        )
    }
    const HASH: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    use crate::testenv::CredEnv;

    #[test]
    fn tls_files_may_name_systemd_credentials() {
        let text = "[ingest]\nlisten = \"0.0.0.0:9700\"\nca = \"/etc/infrawatch/ca.pem\"\ncert = \"${CREDENTIALS_DIRECTORY}/collector.pem\"\nkey = \"${CREDENTIALS_DIRECTORY}/collector.key\"\n[metrics]\nlisten = \"0.0.0.0:9701\"\n";
        let dir = "/run/credentials/infrawatch-collector.service";
        let mut files = env().0;
        files.insert(PathBuf::from(dir).join("collector.pem"));
        files.insert(PathBuf::from(dir).join("collector.key"));
        let l = load_collector("collector.toml", text, &CredEnv(FakeEnv(files), Some(dir)));
        assert_eq!(l.error_count(), 0, "{}", l.render());
        let c = l.config.unwrap();
        assert_eq!(
            c.ingest.key.unwrap(),
            PathBuf::from(dir).join("collector.key")
        );
        // A plain path is used as written.
        assert_eq!(
            c.ingest.ca.unwrap(),
            PathBuf::from("/etc/infrawatch/ca.pem")
        );
        // Outside systemd: an error at the key, saying what to write instead.
        let l = load_collector("collector.toml", text, &CredEnv(env(), None));
        let r = l.render();
        assert_eq!(l.error_count(), 2, "{r}");
        assert!(
            r.contains("collector.toml:4:8: error: `${CREDENTIALS_DIRECTORY}/collector.pem`: $CREDENTIALS_DIRECTORY is not set"),
            "{r}"
        );
        assert!(r.contains("write the file's plain path"), "{r}");
    }

    fn load(text: &str) -> Loaded<CollectorConfig> {
        load_collector("collector.toml", text, &env())
    }

    #[test]
    fn design_example_is_valid() {
        let text = format!(
            r#"
[ingest]
listen = "0.0.0.0:9700"
ca = "/etc/infrawatch/ca.pem"
cert = "/etc/infrawatch/collector.pem"
key = "/etc/infrawatch/collector.key"
revoked = ["0A:1B", "ff"]
tokens = {{ "substation-7-a" = "{HASH}" }}

[metrics]
listen = "0.0.0.0:9701"
basic_auth = {{ prometheus = "$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234" }}

[agents]
stale_after = "5m"
forget_after = "7d"
expected = ["substation-7-a"]
max_series_per_agent = 10000

[storage]
state_dir = "/var/lib/infrawatch-collector"
retention = "90d"

[[forward]]
kind = "syslog"
url = "tcp+tls://siem.site:6514"
ca = "/etc/infrawatch/ca.pem"

[remote_write]
url = "http://victoria.site:8428/api/v1/write"
interval = "15s"
"#
        );
        let l = load(&text);
        assert_eq!(l.error_count(), 0, "{}", l.render());
        let c = l.config.unwrap();
        assert_eq!(
            c.ingest.listen_addr(),
            Some("0.0.0.0:9700".parse().unwrap())
        );
        assert_eq!(c.agents.expected, vec!["substation-7-a".to_string()]);
        assert_eq!(c.agents.max_agents, 1000);
        assert_eq!(c.forward.len(), 1);
        assert_eq!(c.forward[0].kind, ForwardKind::Syslog);
        assert_eq!(c.remote_write.unwrap().interval, HumanDuration::secs(15));
        assert_eq!(normalise_serial("0A:1B").as_deref(), Some("a1b"));
        assert_eq!(token_digest(HASH).as_deref(), HASH.strip_prefix("sha256:"));
    }

    #[test]
    fn defaults_with_insecure_ingest() {
        let l = load(
            "[ingest]\nlisten = \"127.0.0.1:0\"\ninsecure = true\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        );
        assert_eq!(l.error_count(), 0, "{}", l.render());
        let c = l.config.unwrap();
        assert_eq!(c.agents.stale_after, HumanDuration::secs(300));
        assert_eq!(c.agents.forget_after, HumanDuration::secs(7 * 86_400));
        assert_eq!(c.agents.max_series_per_agent, 10_000);
        assert_eq!(
            c.storage.state_dir,
            PathBuf::from("/var/lib/infrawatch-collector")
        );
        assert!(c.forward.is_empty() && c.remote_write.is_none());
    }

    #[test]
    fn listeners_are_required() {
        let l = load("[agents]\n");
        let out = l.render();
        assert!(l.config.is_none());
        assert!(out.contains("`[ingest]` is missing"), "{out}");
        assert!(out.contains("`[metrics]` is missing"), "{out}");
        let l = load("[ingest]\ninsecure = true\n[metrics]\nlisten = \"localhost:9701\"\n");
        let out = l.render();
        assert!(
            out.contains("collector.toml:1:1: error: `[ingest]` needs `listen`"),
            "{out}"
        );
        assert!(
            out.contains("collector.toml:4:10: error: `localhost:9701` is not an address and port"),
            "{out}"
        );
    }

    #[test]
    fn tls_files_are_required_and_readable_unless_insecure() {
        let l = load(
            "[ingest]\nlisten = \"0.0.0.0:9700\"\nca = \"/nope/ca.pem\"\n[metrics]\nlisten = \"0.0.0.0:9701\"\ncert = \"/etc/infrawatch/collector.pem\"\n",
        );
        let out = l.render();
        assert!(
            out.contains("collector.toml:3:6: error: cannot read /nope/ca.pem"),
            "{out}"
        );
        assert!(out.contains("needs `cert` for mutual TLS"), "{out}");
        assert!(out.contains("needs `key` for mutual TLS"), "{out}");
        assert!(out.contains("needs both `cert` and `key`"), "{out}");
        assert_eq!(l.error_count(), 4, "{out}");
    }

    #[test]
    fn tokens_serials_and_hashes_are_checked() {
        let text = "[ingest]\nlisten = \"0.0.0.0:9700\"\ninsecure = true\nrevoked = [\"xyz\"]\ntokens = { a = \"plain\", \"b c\" = \"sha256:00\" }\n[metrics]\nlisten = \"0.0.0.0:9701\"\nbasic_auth = { p = \"secret\" }\n";
        let l = load(text);
        let out = l.render();
        assert!(
            out.contains("collector.toml:4:12: error: `xyz` is not a certificate serial"),
            "{out}"
        );
        assert!(
            out.contains("the token of `a` is not a sha256 hash"),
            "{out}"
        );
        assert!(out.contains("`b c` is not an agent id"), "{out}");
        assert!(
            out.contains("the token of `b c` is not a sha256 hash"),
            "{out}"
        );
        assert!(
            out.contains("collector.toml:8:20: error: the password of `p` is not a bcrypt hash"),
            "{out}"
        );
        assert_eq!(l.error_count(), 5, "{out}");
    }

    #[test]
    fn agents_storage_forward_and_remote_write_are_checked() {
        let text = "[ingest]\nlisten = \"0.0.0.0:9700\"\ninsecure = true\n[metrics]\nlisten = \"0.0.0.0:9701\"\n[agents]\nstale_after = \"10m\"\nforget_after = \"5m\"\nexpected = [\"a\", \"a\", \"no way\"]\nmax_series_per_agent = 0\n[storage]\nstate_dir = \"relative\"\nretention = \"10m\"\n[[forward]]\nkind = \"syslog\"\nurl = \"siem.site\"\n[[forward]]\nkind = \"csv\"\nurl = \"tcp://a:1\"\n[remote_write]\nurl = \"victoria:8428\"\ninterval = 15\n";
        let l = load(text);
        let out = l.render();
        assert!(
            out.contains("forget_after must be longer than stale_after"),
            "{out}"
        );
        assert!(out.contains("agent `a` is listed twice"), "{out}");
        assert!(out.contains("`no way` is not an agent id"), "{out}");
        assert!(
            out.contains("max_series_per_agent must be between"),
            "{out}"
        );
        assert!(out.contains("state_dir must be an absolute path"), "{out}");
        assert!(
            out.contains("storage retention must be at least 1h"),
            "{out}"
        );
        assert!(out.contains("[[forward]] #2: unknown value `csv`"), "{out}");
        assert!(
            out.contains("collector.toml:22:12: error: [remote_write]: a duration needs a unit"),
            "{out}"
        );
        assert!(l.config.is_none());
    }

    #[test]
    fn unknown_keys_and_sections_have_suggestions() {
        let l = load(
            "[ingest]\nlisten = \"0.0.0.0:9700\"\ninsecure = true\ntoken = {}\n[metrics]\nlisten = \"0.0.0.0:9701\"\n[agent]\n",
        );
        let out = l.render();
        assert!(
            out.contains("collector.toml:4:1: error: unknown key `token` in [ingest]"),
            "{out}"
        );
        assert!(out.contains("did you mean `tokens`?"), "{out}");
        assert!(out.contains("unknown section `[agent]`"), "{out}");
        assert!(out.contains("did you mean `agents`?"), "{out}");
    }
}
