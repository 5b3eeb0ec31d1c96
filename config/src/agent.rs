//! `agent.toml`: resources and wiring of one agent (DESIGN.md, "Agent and collector
//! files"). Judgement lives in the policy file, not here.
//!
//! [`load_agent`] is the one validation path: `infrawatch-agent check`, start-up and
//! reload all call it, with an [`Environment`] that answers questions about the host
//! (files, interfaces) so the checks stay testable.

use crate::diag::{Diagnostic, Source};
use crate::doc::{Doc, Seg};
use crate::filter;
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The sections of agent.toml.
pub const AGENT_SECTIONS: &[&str] = &["agent", "capture", "flows", "events", "report"];

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub capture: CaptureSection,
    #[serde(default)]
    pub flows: FlowsSection,
    #[serde(default)]
    pub events: EventsSection,
    /// Absent: the agent ships nothing and only logs.
    pub report: Option<ReportSection>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// Default: the host name.
    pub id: Option<String>,
    /// Absent: the agent runs in the no-policy mode.
    pub policy: Option<PathBuf>,
    pub state_dir: PathBuf,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            id: None,
            policy: None,
            state_dir: PathBuf::from("/var/lib/infrawatch"),
        }
    }
}

/// How a replayed file is paced.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As the packets' timestamps say.
    #[default]
    Recorded,
    /// As fast as possible.
    Max,
}

/// What `run` does when its replayed files end.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AtEnd {
    /// Keep running (and reporting).
    #[default]
    Stay,
    /// Send a last report and exit.
    Exit,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    pub interfaces: Vec<String>,
    pub pcap: Vec<PathBuf>,
    pub pace: Pace,
    pub at_end: AtEnd,
    /// tcpdump-style expressions of traffic to leave out, applied in the kernel.
    pub exclude: Vec<String>,
    /// Socket receive buffer per interface.
    pub buffer: ByteSize,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interfaces: Vec::new(),
            pcap: Vec::new(),
            pace: Pace::default(),
            at_end: AtEnd::default(),
            exclude: Vec::new(),
            buffer: ByteSize(32 << 20),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsSection {
    pub max_flows: u32,
    pub idle_timeout: HumanDuration,
}

/// Default flow-table capacity: with the agent's compact flow records this keeps the
/// whole agent under 64 MB resident even when every slot is in use.
pub const DEFAULT_MAX_FLOWS: u32 = 262_144;

impl Default for FlowsSection {
    fn default() -> Self {
        FlowsSection {
            max_flows: DEFAULT_MAX_FLOWS,
            idle_timeout: HumanDuration::secs(120),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    pub max_bytes: ByteSize,
    pub retention: HumanDuration,
    pub evidence: bool,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            max_bytes: ByteSize(1 << 30),
            retention: HumanDuration::secs(90 * 86_400),
            evidence: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    pub collectors: Vec<String>,
    pub interval: HumanDuration,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub insecure: bool,
}

impl Default for ReportSection {
    fn default() -> Self {
        ReportSection {
            collectors: Vec::new(),
            interval: HumanDuration::secs(10),
            ca: None,
            cert: None,
            key: None,
            insecure: false,
        }
    }
}

/// What validation may ask of the host it runs on.
pub trait Environment {
    /// `Err(reason)` when the file cannot be opened for reading.
    fn readable(&self, path: &Path) -> Result<(), String>;
    /// Whether a network interface of this name exists now.
    fn interface_exists(&self, name: &str) -> bool;
    /// An environment variable of the process (only `CREDENTIALS_DIRECTORY` is asked
    /// for, see [`resolve_credential`]).
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// The host as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealEnvironment;

impl Environment for RealEnvironment {
    fn readable(&self, path: &Path) -> Result<(), String> {
        std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn interface_exists(&self, name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// How a TLS file key (`[report] ca/cert/key`; the collector's `[ingest] ca/cert/key`,
/// `[metrics] cert/key`, `[[forward]] ca`) may name a systemd credential.
pub const CREDENTIALS_PREFIX: &str = "${CREDENTIALS_DIRECTORY}/";

/// A credential path [`resolve_credential`] could not resolve (and reported).
pub(crate) fn is_unresolved_credential(p: &Path) -> bool {
    p.to_str()
        .is_some_and(|s| s.starts_with(CREDENTIALS_PREFIX))
}

/// The one rule for TLS file paths: a value written `${CREDENTIALS_DIRECTORY}/NAME` is
/// the credential `NAME` that systemd's `LoadCredential=NAME:/etc/…` (systemd ≥ 247)
/// placed in the directory it names in `$CREDENTIALS_DIRECTORY` (systemd.exec(5),
/// "Credentials"); it resolves to `$CREDENTIALS_DIRECTORY/NAME` here, in the loader, so
/// `check` (run by `ExecStartPre=`/`ExecReload=`, which see the same directory),
/// start-up and reload agree. With the variable unset (older systemd, or a shell) that
/// is an error that says so: write the plain path instead. Every other value is a plain
/// path, used as written; no other variable is expanded.
pub(crate) fn resolve_credential(
    value: &mut Option<PathBuf>,
    at: &[Seg<'_>],
    doc: &mut Doc<'_>,
    env: &dyn Environment,
) {
    let Some(name) = value
        .as_deref()
        .and_then(Path::to_str)
        .and_then(|v| v.strip_prefix(CREDENTIALS_PREFIX))
        .map(str::to_string)
    else {
        return;
    };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        let span = doc.span_of(at);
        doc.push(
            Diagnostic::error(span, format!("`{name}` is not a credential name"))
                .with_help("write ${CREDENTIALS_DIRECTORY}/NAME with the NAME of the unit's LoadCredential=NAME:PATH"),
        );
        return;
    }
    match env.var("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Some(dir) => *value = Some(Path::new(&dir).join(name)),
        None => {
            let span = doc.span_of(at);
            doc.push(
                Diagnostic::error(
                    span,
                    format!("`{CREDENTIALS_PREFIX}{name}`: $CREDENTIALS_DIRECTORY is not set"),
                )
                .with_help("this path only resolves in a systemd unit with LoadCredential= (systemd 247 or later); elsewhere write the file's plain path, e.g. /etc/infrawatch/…"),
            );
        }
    }
}

/// A loaded file: the config if it is valid, and every diagnostic (warnings included).
#[derive(Debug)]
pub struct Loaded<T> {
    pub config: Option<T>,
    pub diagnostics: Vec<Diagnostic>,
    pub source: Source,
}

impl<T> Loaded<T> {
    pub fn render(&self) -> String {
        self.source.render_all(&self.diagnostics)
    }
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Reads an operator file and hands its text to `load`; a file that cannot be read is
/// one diagnostic whose help says which flag names the file (`help`).
pub fn load_file<T>(
    path: &Path,
    help: &str,
    load: impl FnOnce(&str, &str) -> Loaded<T>,
) -> Loaded<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => load(&path.display().to_string(), &text),
        Err(e) => Loaded {
            config: None,
            diagnostics: vec![
                Diagnostic::error(None, format!("cannot read the file: {e}")).with_help(help),
            ],
            source: Source::new(path.display().to_string(), String::new()),
        },
    }
}

/// Reads and validates an agent.toml from disk.
pub fn load_agent_file(path: &Path, env: &dyn Environment) -> Loaded<AgentConfig> {
    load_file(
        path,
        "give the path of an agent.toml with --config",
        |p, t| load_agent(p, t, env),
    )
}

/// Parses and validates agent.toml text; `path` is used in messages.
pub fn load_agent(path: &str, text: &str, env: &dyn Environment) -> Loaded<AgentConfig> {
    let mut doc = Doc::parse(text);
    doc.check_top_level(AGENT_SECTIONS);
    let agent = doc.section::<AgentSection>("agent");
    let capture = doc.section::<CaptureSection>("capture");
    let flows = doc.section::<FlowsSection>("flows");
    let events = doc.section::<EventsSection>("events");
    let mut report = match doc.get("report").cloned() {
        None => Some(None),
        Some(v) => doc.value::<ReportSection>(&v, "[report]").map(Some),
    };
    if let Some(Some(r)) = &mut report {
        for (key, value) in [
            ("ca", &mut r.ca),
            ("cert", &mut r.cert),
            ("key", &mut r.key),
        ] {
            resolve_credential(value, &[Seg::Key("report"), Seg::Key(key)], &mut doc, env);
        }
    }
    // Each section that parsed is checked, so every error shows at once.
    if let Some(a) = &agent {
        validate_agent(a, &mut doc, env);
    }
    if let Some(c) = &capture {
        validate_capture(c, &mut doc, env);
    }
    if let Some(f) = &flows {
        validate_flows(f, &mut doc);
    }
    if let Some(e) = &events {
        validate_events(e, &mut doc);
    }
    if let Some(Some(r)) = &report {
        validate_report(r, &mut doc, env);
    }
    let config = match (agent, capture, flows, events, report) {
        (Some(agent), Some(capture), Some(flows), Some(events), Some(report)) => {
            Some(AgentConfig {
                agent,
                capture,
                flows,
                events,
                report,
            })
        }
        _ => None,
    };
    let ok = !doc.has_errors();
    Loaded {
        config: config.filter(|_| ok),
        diagnostics: doc.diagnostics,
        source: Source::new(path, text),
    }
}

/// The byte offset of a string value's contents (after its opening quote), so that an
/// offset inside the string maps to the file.
fn inner_offset(
    doc_span: Option<std::ops::Range<usize>>,
    text_len: usize,
) -> Option<std::ops::Range<usize>> {
    doc_span.map(|s| {
        let start = s.start + 1;
        start..(start + text_len).min(s.end.saturating_sub(1)).max(start)
    })
}

/// An agent id becomes a Prometheus label value and a certificate DNS name.
pub fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn validate_agent(a: &AgentSection, doc: &mut Doc<'_>, env: &dyn Environment) {
    if let Some(id) = &a.id
        && !valid_agent_id(id)
    {
        let span = doc.span_of(&[Seg::Key("agent"), Seg::Key("id")]);
        doc.push(
                Diagnostic::error(span, format!("agent id `{id}` is not usable"))
                    .with_help("use 1 to 63 letters, digits, `-`, `_` or `.` (it becomes a metric label and the certificate's DNS name)"),
            );
    }
    if let Some(policy) = &a.policy
        && let Err(e) = env.readable(policy)
    {
        let span = doc.span_of(&[Seg::Key("agent"), Seg::Key("policy")]);
        doc.push(
            Diagnostic::error(
                span,
                format!("cannot read the policy file {}: {e}", policy.display()),
            )
            .with_help("fix the path, or remove `policy` to run without a policy"),
        );
    }
}

fn validate_capture(cap: &CaptureSection, doc: &mut Doc<'_>, env: &dyn Environment) {
    match (cap.interfaces.is_empty(), cap.pcap.is_empty()) {
        (true, true) => {
            let span = doc.span_of(&[Seg::Key("capture")]);
            doc.push(
                Diagnostic::error(span, "no packet source: `[capture]` needs `interfaces` or `pcap`")
                    .with_help("add `interfaces = [\"eth1\"]` to capture live, or `pcap = [\"trace.pcap\"]` to replay a file"),
            );
        }
        (false, false) => {
            let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("pcap")]);
            doc.push(
                Diagnostic::error(
                    span,
                    "`interfaces` and `pcap` are both set; an agent has one kind of source",
                )
                .with_help("remove one of them"),
            );
        }
        _ => {}
    }
    for (i, name) in cap.interfaces.iter().enumerate() {
        let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("interfaces"), Seg::Index(i)]);
        let valid = !name.is_empty()
            && name.len() <= 15
            && !name.contains(['/', ' ', '\t', ':'])
            && name != "."
            && name != "..";
        if !valid {
            doc.push(
                Diagnostic::error(span, format!("`{name}` is not a network interface name"))
                    .with_help(
                        "Linux interface names have 1 to 15 characters, without `/`, `:` or spaces",
                    ),
            );
        } else if !env.interface_exists(name) {
            doc.push(
                Diagnostic::warning(
                    span,
                    format!("interface `{name}` does not exist on this host now"),
                )
                .with_help("the agent waits for it and reports it down until it appears"),
            );
        }
        if cap.interfaces.iter().take(i).any(|n| n == name) {
            let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("interfaces"), Seg::Index(i)]);
            doc.push(Diagnostic::error(
                span,
                format!("interface `{name}` is listed twice"),
            ));
        }
    }
    for (i, file) in cap.pcap.iter().enumerate() {
        if let Err(e) = env.readable(file) {
            let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("pcap"), Seg::Index(i)]);
            doc.push(Diagnostic::error(
                span,
                format!("cannot read {}: {e}", file.display()),
            ));
        }
    }
    for (i, expr) in cap.exclude.iter().enumerate() {
        if let Err(e) = filter::parse(expr) {
            let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("exclude"), Seg::Index(i)]);
            let inner = inner_offset(span, expr.len()).map(|r| {
                let s = r.start + e.offset;
                s..(s + e.len.max(1)).min(r.end.max(s + 1))
            });
            doc.push(
                Diagnostic::error(inner, format!("exclude expression: {}", e.message))
                    .with_help("tcpdump-style: host ADDR, net CIDR, port N, portrange A-B, ether host MAC, ip, ip6, arp, tcp, udp, icmp, joined with and/or/not and parentheses"),
            );
        }
    }
    if cap.buffer.0 < (64 << 10) || cap.buffer.0 > (2 << 30) {
        let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("buffer")]);
        doc.push(
            Diagnostic::error(span, "capture buffer must be between 64KiB and 2GiB")
                .with_help("32MiB, the default, drops nothing on a busy gigabit link"),
        );
    }
}

fn validate_flows(f: &FlowsSection, doc: &mut Doc<'_>) {
    if f.max_flows < 1024 || f.max_flows > 16 << 20 {
        let span = doc.span_of(&[Seg::Key("flows"), Seg::Key("max_flows")]);
        doc.push(
            Diagnostic::error(span, format!("max_flows = {} is out of range", f.max_flows))
                .with_help("use 1024 to 16777216; each flow takes about 200 bytes"),
        );
    }
    if f.idle_timeout.0.as_secs() < 1 {
        let span = doc.span_of(&[Seg::Key("flows"), Seg::Key("idle_timeout")]);
        doc.push(Diagnostic::error(span, "idle_timeout must be at least 1s"));
    }
}

fn validate_events(e: &EventsSection, doc: &mut Doc<'_>) {
    if e.max_bytes.0 < (1 << 20) {
        let span = doc.span_of(&[Seg::Key("events"), Seg::Key("max_bytes")]);
        doc.push(Diagnostic::error(
            span,
            "events max_bytes must be at least 1MiB",
        ));
    }
    if e.retention.0.as_secs() < 3600 {
        let span = doc.span_of(&[Seg::Key("events"), Seg::Key("retention")]);
        doc.push(Diagnostic::error(
            span,
            "events retention must be at least 1h",
        ));
    }
}

fn validate_report(r: &ReportSection, doc: &mut Doc<'_>, env: &dyn Environment) {
    if r.collectors.is_empty() {
        let span = doc.span_of(&[Seg::Key("report")]);
        doc.push(
            Diagnostic::error(span, "`[report]` has no `collectors`")
                .with_help("add `collectors = [\"https://collector.site:9700\"]`, or remove `[report]` to ship nothing"),
        );
    }
    for (i, url) in r.collectors.iter().enumerate() {
        let span = doc.span_of(&[Seg::Key("report"), Seg::Key("collectors"), Seg::Index(i)]);
        match parse_collector_url(url) {
            Err(e) => doc.push(
                Diagnostic::error(span, format!("collector `{url}`: {e}"))
                    .with_help("write https://HOST:PORT (http:// only with `insecure = true`)"),
            ),
            Ok(u) if !u.tls && !r.insecure => doc.push(
                Diagnostic::error(span, format!("collector `{url}` is plain HTTP"))
                    .with_help("use https://, or set `insecure = true` to send reports unencrypted and unauthenticated"),
            ),
            Ok(_) => {}
        }
    }
    if r.interval.0.as_millis() < 1000 {
        let span = doc.span_of(&[Seg::Key("report"), Seg::Key("interval")]);
        doc.push(Diagnostic::error(
            span,
            "report interval must be at least 1s",
        ));
    }
    if !r.insecure {
        for (key, value) in [("ca", &r.ca), ("cert", &r.cert), ("key", &r.key)] {
            match value {
                None => {
                    let span = doc.span_of(&[Seg::Key("report")]);
                    doc.push(
                        Diagnostic::error(span, format!("`[report]` needs `{key}` for mutual TLS"))
                            .with_help("give the CA, certificate and key files (deploy/pki.sh makes them), or set `insecure = true`"),
                    );
                }
                // Reported already by `resolve_credential`.
                Some(p) if is_unresolved_credential(p) => {}
                Some(p) => {
                    if let Err(e) = env.readable(p) {
                        let span = doc.span_of(&[Seg::Key("report"), Seg::Key(key)]);
                        doc.push(Diagnostic::error(
                            span,
                            format!("cannot read {}: {e}", p.display()),
                        ));
                    }
                }
            }
        }
    }
}

/// A collector address: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// Parses `https://host:port` (path `/` at most); the default port is 9700.
pub fn parse_collector_url(url: &str) -> Result<CollectorUrl, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("the scheme must be https:// or http://".into());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('@') || authority.contains('?') {
        return Err("give only scheme, host and port".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("unclosed `[` in an IPv6 address")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port"))?,
            None if after.is_empty() => 9700,
            None => return Err("unexpected text after the address".into()),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("`{p}` is not a port"))?,
            ),
            None => (authority.to_string(), 9700),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(CollectorUrl { tls, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct FakeEnv {
        files: HashSet<PathBuf>,
        ifaces: HashSet<String>,
    }
    impl Environment for FakeEnv {
        fn readable(&self, path: &Path) -> Result<(), String> {
            if self.files.contains(path) {
                Ok(())
            } else {
                Err("No such file or directory (os error 2)".into())
            }
        }
        fn interface_exists(&self, name: &str) -> bool {
            self.ifaces.contains(name)
        }
    }
    fn env() -> FakeEnv {
        FakeEnv {
            files: [
                "/etc/infrawatch/ca.pem",
                "/etc/infrawatch/agent.pem",
                "/etc/infrawatch/agent.key",
                "/tmp/t.pcap",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            ifaces: ["eth1".to_string()].into_iter().collect(),
        }
    }

    use crate::testenv::CredEnv;

    #[test]
    fn report_tls_files_may_name_systemd_credentials() {
        let text = "[capture]\npcap = [\"/tmp/t.pcap\"]\n[report]\ncollectors = [\"https://c:9700\"]\nca = \"/etc/infrawatch/ca.pem\"\ncert = \"${CREDENTIALS_DIRECTORY}/agent.pem\"\nkey = \"${CREDENTIALS_DIRECTORY}/agent.key\"\n";
        let dir = "/run/credentials/infrawatch-agent.service";
        let mut e = env();
        e.files.insert(PathBuf::from(dir).join("agent.pem"));
        e.files.insert(PathBuf::from(dir).join("agent.key"));
        let l = load_agent("agent.toml", text, &CredEnv(e, Some(dir)));
        assert_eq!(l.error_count(), 0, "{}", l.render());
        let r = l.config.unwrap().report.unwrap();
        assert_eq!(r.cert.unwrap(), PathBuf::from(dir).join("agent.pem"));
        assert_eq!(r.ca.unwrap(), PathBuf::from("/etc/infrawatch/ca.pem"));
        let l = load_agent("agent.toml", text, &CredEnv(env(), None));
        let out = l.render();
        assert_eq!(l.error_count(), 2, "{out}");
        assert!(
            out.contains("agent.toml:7:7: error: `${CREDENTIALS_DIRECTORY}/agent.key`: $CREDENTIALS_DIRECTORY is not set"),
            "{out}"
        );
        // A name, not a path below the directory.
        let bad = text.replace("/agent.key", "/../agent.key");
        let l = load_agent("agent.toml", &bad, &CredEnv(env(), Some(dir)));
        assert!(
            l.render().contains("is not a credential name"),
            "{}",
            l.render()
        );
    }

    #[test]
    fn design_example_is_valid() {
        let text = r#"
[agent]
id = "substation-7-a"
state_dir = "/var/lib/infrawatch"
[capture]
interfaces = ["eth1"]
exclude = ["host 10.0.0.9", "port 9700"]
[flows]
max_flows = 262144
idle_timeout = "120s"
[events]
max_bytes = "1GiB"
retention = "90d"
evidence = false
[report]
collectors = ["https://collector.site:9700"]
interval = "10s"
ca = "/etc/infrawatch/ca.pem"
cert = "/etc/infrawatch/agent.pem"
key = "/etc/infrawatch/agent.key"
"#;
        let l = load_agent("agent.toml", text, &env());
        assert_eq!(l.error_count(), 0, "{}", l.render());
        let c = l.config.unwrap_or_default();
        assert_eq!(c.agent.id.as_deref(), Some("substation-7-a"));
        assert_eq!(c.flows.max_flows, 262_144);
        assert_eq!(c.events.retention, HumanDuration::secs(90 * 86_400));
        assert_eq!(c.capture.exclude.len(), 2);
    }

    #[test]
    fn every_mistake_is_reported_with_position_and_help() {
        let text = "[agent]\nidd = \"a\"\n[capture]\nintefaces = [\"eth1\"]\npcap = [\"/tmp/t.pcap\"]\npace = \"fast\"\nexclude = [\"port 9700\", \"hots 10.0.0.1\"]\n[flows]\nidle_timeout = 120\n[reports]\n";
        let l = load_agent("agent.toml", text, &env());
        let out = l.render();
        assert!(l.config.is_none());
        assert!(
            out.contains("agent.toml:2:1: error: unknown key `idd` in [agent]"),
            "{out}"
        );
        assert!(out.contains("help: did you mean `id`?"), "{out}");
        assert!(
            out.contains("agent.toml:4:1: error: unknown key `intefaces` in [capture]"),
            "{out}"
        );
        assert!(out.contains("did you mean `interfaces`?"), "{out}");
        assert!(
            out.contains("agent.toml:6:8: error: [capture]: unknown value `fast`"),
            "{out}"
        );
        assert!(
            out.contains("agent.toml:9:16: error: [flows]: a duration needs a unit"),
            "{out}"
        );
        assert!(
            out.contains("agent.toml:10:2: error: unknown section `[reports]`"),
            "{out}"
        );
        assert!(out.contains("did you mean `report`?"), "{out}");
        assert_eq!(l.error_count(), 5, "{out}");
    }

    #[test]
    fn semantic_errors_point_at_values() {
        let text = "[capture]\npcap = [\"/tmp/t.pcap\", \"/nope.pcap\"]\nexclude = [\"port 9700\", \"host 10.0.0.300\"]\n[report]\ncollectors = [\"http://c:9700\"]\n";
        let l = load_agent("a.toml", text, &env());
        let out = l.render();
        assert!(
            out.contains("a.toml:2:24: error: cannot read /nope.pcap"),
            "{out}"
        );
        assert!(
            out.contains("a.toml:3:31: error: exclude expression: not an IP address"),
            "{out}"
        );
        assert!(
            out.contains("a.toml:5:15: error: collector `http://c:9700` is plain HTTP"),
            "{out}"
        );
        assert!(out.contains("needs `ca` for mutual TLS"), "{out}");
    }

    #[test]
    fn a_packet_source_is_required_and_unique() {
        let l = load_agent("a.toml", "[agent]\nid = \"x\"\n", &env());
        assert!(l.render().contains("no packet source"));
        let l = load_agent(
            "a.toml",
            "[capture]\ninterfaces=[\"eth1\"]\npcap=[\"/tmp/t.pcap\"]\n",
            &env(),
        );
        assert!(l.render().contains("both set"));
    }

    #[test]
    fn missing_interface_is_only_a_warning() {
        let l = load_agent("a.toml", "[capture]\ninterfaces=[\"eth9\"]\n", &env());
        assert_eq!(l.error_count(), 0);
        assert!(l.config.is_some());
        assert!(
            l.render()
                .contains("warning: interface `eth9` does not exist")
        );
    }

    #[test]
    fn collector_urls() {
        assert_eq!(
            parse_collector_url("https://c.site:9700"),
            Ok(CollectorUrl {
                tls: true,
                host: "c.site".into(),
                port: 9700
            })
        );
        assert_eq!(
            parse_collector_url("http://[::1]:80/"),
            Ok(CollectorUrl {
                tls: false,
                host: "::1".into(),
                port: 80
            })
        );
        assert!(parse_collector_url("ftp://x").is_err());
        assert!(parse_collector_url("https://x:99999").is_err());
        assert!(parse_collector_url("https://x/api").is_err());
    }
}
