//! Per-agent state: the latest cumulative counters and gauges of each agent, its assets,
//! when it last reported, and the rendering of all of it in the Prometheus text format.
//!
//! Sans-IO: time is passed in (ms since 1970), nothing here touches a socket or a file.
//! Each series is escaped once, when a report is applied, into the agent's byte arena
//! (`name{agent="id",label="value"} `); a scrape only copies those bytes and formats
//! the value into a reused buffer.

use infrawatch_config::report::{AssetRecord, EventRecord, Report, Sample};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

/// Limits from `[agents]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub stale_after_ms: u64,
    pub forget_after_ms: u64,
    pub max_series_per_agent: usize,
    pub max_agents: usize,
}

/// Whether a series is a counter or a gauge (its `# TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One stored series: its name, its pre-escaped line prefix in the agent's arena, and
/// its value.
#[derive(Clone, Debug)]
struct Series {
    kind: Kind,
    name_len: u32,
    start: u32,
    end: u32,
    /// Its sample's position in the report (counters, then gauges).
    src: u32,
    value: f64,
}

/// What the collector knows of one agent.
#[derive(Debug, Default)]
pub struct AgentState {
    pub version: String,
    pub boot: String,
    pub seq: u64,
    /// 0: never reported (an `expected` agent).
    pub last_seen_ms: u64,
    arena: Vec<u8>,
    series: Vec<Series>,
    /// Duplicate series dropped from the last report applied.
    duplicates: usize,
    /// Assets by key (MAC, else first IP).
    pub assets: BTreeMap<String, AssetRecord>,
}

impl AgentState {
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Each series as its pre-escaped prefix (`name{agent="id",…} `) and value.
    pub fn series_prefixes(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.series.iter().filter_map(|s| {
            self.arena
                .get(s.start as usize..s.end as usize)
                .map(|p| (p, s.value))
        })
    }
}

/// What persists of an agent across collector restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnownAgent {
    pub id: String,
    pub last_seen_ms: u64,
    pub version: String,
}

/// A report as the ingest path reads it: the same document as [`Report`] (same fields,
/// unknown ones refused), but names, labels and ids borrowed from the JSON text where it
/// has no escapes. A report of 500 series has some 3,000 strings; owning each was a
/// third of the CPU of an ingest (bench/README.md, "Collector").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportView<'a> {
    pub version: u32,
    #[serde(borrow)]
    pub agent: Cow<'a, str>,
    #[serde(borrow)]
    pub boot: Cow<'a, str>,
    pub seq: u64,
    pub sent_unix_ms: u64,
    #[serde(borrow)]
    pub agent_version: Cow<'a, str>,
    #[serde(borrow)]
    pub counters: Vec<SampleView<'a>>,
    #[serde(borrow)]
    pub gauges: Vec<SampleView<'a>>,
    pub assets: Vec<AssetRecord>,
    pub events: Vec<EventRecord>,
}

/// A [`Sample`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleView<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub labels: Vec<(Text<'a>, Text<'a>)>,
    pub value: f64,
}

/// A string borrowed from the JSON text when it has no escapes (serde borrows a `Cow`
/// only as a field of its own, not inside a tuple).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl<'a> ReportView<'a> {
    /// The view of an owned report (what [`State::apply`] takes).
    pub fn of(r: &'a Report) -> ReportView<'a> {
        let samples = |v: &'a [Sample]| {
            v.iter()
                .map(|s| SampleView {
                    name: Cow::Borrowed(&s.name),
                    labels: s
                        .labels
                        .iter()
                        .map(|(k, v)| (Text(Cow::Borrowed(k)), Text(Cow::Borrowed(v))))
                        .collect(),
                    value: s.value,
                })
                .collect()
        };
        ReportView {
            version: r.version,
            agent: Cow::Borrowed(&r.agent),
            boot: Cow::Borrowed(&r.boot),
            seq: r.seq,
            sent_unix_ms: r.sent_unix_ms,
            agent_version: Cow::Borrowed(&r.agent_version),
            counters: samples(&r.counters),
            gauges: samples(&r.gauges),
            assets: r.assets.clone(),
            events: r.events.clone(),
        }
    }
}

/// Why a report was refused by the state (after decoding and authentication).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("agent id `{0}` is not usable (1 to 63 letters, digits, `-`, `_`, `.`)")]
    BadAgentId(String),
    #[error("already {0} agents known; raise [agents] max_agents")]
    TooManyAgents(usize),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadAgentId(_) => "bad_agent_id",
            Refusal::TooManyAgents(_) => "too_many_agents",
        }
    }
}

/// What applying a report did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The agent was not known before.
    pub new_agent: bool,
    /// Series dropped: over the cap, or with an invalid name or label.
    pub series_refused: u64,
    /// The samples were older than what is held (an earlier report of the same boot).
    pub stale_samples: bool,
}

/// Every agent.
#[derive(Debug)]
pub struct State {
    pub limits: Limits,
    pub agents: BTreeMap<String, AgentState>,
    /// Ids from `[agents] expected`: never forgotten.
    expected: Vec<String>,
    /// Where a report's series are escaped before they replace an agent's (reused).
    scratch_arena: Vec<u8>,
    scratch_series: Vec<Series>,
}

fn valid_metric_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn valid_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && n != "agent"
        && !n.starts_with("__")
}

/// Escapes a label value per the text exposition format: `\`, `"` and newline.
pub fn escape_label_value(out: &mut Vec<u8>, v: &str) {
    for b in v.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Formats a sample value as the exposition format wants it.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn asset_key(a: &AssetRecord) -> Option<String> {
    a.mac
        .clone()
        .or_else(|| a.ips.first().map(|ip| format!("ip:{ip}")))
}

/// The cap on assets kept per agent.
pub const MAX_ASSETS_PER_AGENT: usize = 65_536;

impl State {
    pub fn new(limits: Limits, expected: &[String], known: &[KnownAgent]) -> State {
        let mut agents = BTreeMap::new();
        for k in known {
            agents.insert(
                k.id.clone(),
                AgentState {
                    last_seen_ms: k.last_seen_ms,
                    version: k.version.clone(),
                    ..AgentState::default()
                },
            );
        }
        for e in expected {
            agents.entry(e.clone()).or_insert_with(AgentState::default);
        }
        State {
            limits,
            agents,
            expected: expected.to_vec(),
            scratch_arena: Vec::new(),
            scratch_series: Vec::new(),
        }
    }

    /// Whether a report of `agent` would be applied (checked before its events are
    /// stored).
    pub fn admit(&self, agent: &str) -> Result<(), Refusal> {
        if !infrawatch_config::agent::valid_agent_id(agent) {
            return Err(Refusal::BadAgentId(agent.to_string()));
        }
        if !self.agents.contains_key(agent) && self.agents.len() >= self.limits.max_agents {
            return Err(Refusal::TooManyAgents(self.agents.len()));
        }
        Ok(())
    }

    /// Applies an authenticated report received at `now_ms`.
    pub fn apply(&mut self, r: &Report, now_ms: u64) -> Result<Applied, Refusal> {
        self.apply_view(&ReportView::of(r), now_ms)
    }

    /// [`State::apply`] of a borrowed report (the ingest path).
    pub fn apply_view(&mut self, r: &ReportView<'_>, now_ms: u64) -> Result<Applied, Refusal> {
        self.admit(&r.agent)?;
        let new_agent = !self.agents.contains_key(&*r.agent);
        let max_series = self.limits.max_series_per_agent;
        let a = match self.agents.get_mut(&*r.agent) {
            Some(a) => a,
            None => self.agents.entry(r.agent.to_string()).or_default(),
        };
        let mut applied = Applied {
            new_agent,
            ..Applied::default()
        };
        a.last_seen_ms = a.last_seen_ms.max(now_ms);
        if a.version != r.agent_version {
            a.version = r.agent_version.to_string();
        }
        // Counters are cumulative per boot: the latest report of a boot replaces the
        // samples; an older one (a retry overtaken by a newer report) does not.
        if a.boot == r.boot && r.seq < a.seq {
            applied.stale_samples = true;
        } else {
            if a.boot != r.boot {
                a.boot = r.boot.to_string();
            }
            a.seq = r.seq;
            let (arena, fresh) = (&mut self.scratch_arena, &mut self.scratch_series);
            arena.clear();
            fresh.clear();
            let samples = r
                .counters
                .iter()
                .map(|s| (Kind::Counter, s))
                .chain(r.gauges.iter().map(|s| (Kind::Gauge, s)));
            for (src, (kind, s)) in samples.enumerate() {
                if fresh.len() >= max_series || !push_series(arena, fresh, &r.agent, kind, s, src) {
                    applied.series_refused += 1;
                }
            }
            // An agent reports the same series in the same order every interval: then
            // the bytes are those held, and the sorted order too; only values change.
            // Exact: with no duplicate last time, the held series name every sample
            // position once, and each is checked.
            let same = a.duplicates == 0
                && fresh.len() == a.series.len()
                && *arena == a.arena
                && a.series.iter().all(|s| {
                    fresh
                        .get(s.src as usize)
                        .is_some_and(|f| f.start == s.start && f.end == s.end && f.kind == s.kind)
                });
            if same {
                for s in &mut a.series {
                    if let Some(f) = fresh.get(s.src as usize) {
                        s.value = f.value;
                    }
                }
            } else {
                std::mem::swap(&mut a.arena, arena);
                std::mem::swap(&mut a.series, fresh);
                // Grouped by name at scrape time: sort once here (stable, so of two
                // samples of the same series the first is kept: a duplicate would break
                // the scrape).
                let arena = &a.arena;
                let key = |x: &Series| arena.get(x.start as usize..x.end as usize);
                a.series.sort_by(|x, y| key(x).cmp(&key(y)));
                let before = a.series.len();
                a.series.dedup_by(|later, first| key(later) == key(first));
                a.duplicates = before - a.series.len();
                applied.series_refused += a.duplicates as u64;
            }
        }
        for asset in &r.assets {
            if let Some(key) = asset_key(asset) {
                if a.assets.len() >= MAX_ASSETS_PER_AGENT && !a.assets.contains_key(&key) {
                    continue;
                }
                let entry = a.assets.entry(key).or_insert_with(|| asset.clone());
                merge_asset(entry, asset);
            }
        }
        Ok(applied)
    }

    /// Drops agents silent for longer than `forget_after` (not the expected ones, which
    /// stay down). Returns the ids forgotten.
    pub fn forget(&mut self, now_ms: u64) -> Vec<String> {
        let limit = self.limits.forget_after_ms;
        let gone: Vec<String> = self
            .agents
            .iter()
            .filter(|(id, a)| {
                a.last_seen_ms != 0
                    && now_ms.saturating_sub(a.last_seen_ms) > limit
                    && !self.expected.contains(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.agents.remove(id);
        }
        gone
    }

    /// A reload's `[agents]`: new limits (for the next report and tick) and expected
    /// agents (a new one is down until it reports; one no longer expected is forgotten
    /// like any other once silent for `forget_after`).
    pub fn reconfigure(&mut self, limits: Limits, expected: &[String]) {
        self.limits = limits;
        for e in expected {
            self.agents.entry(e.clone()).or_default();
        }
        self.expected = expected.to_vec();
    }

    pub fn up(&self, a: &AgentState, now_ms: u64) -> bool {
        a.last_seen_ms != 0 && now_ms.saturating_sub(a.last_seen_ms) <= self.limits.stale_after_ms
    }

    pub fn known(&self) -> Vec<KnownAgent> {
        self.agents
            .iter()
            .filter(|(_, a)| a.last_seen_ms != 0)
            .map(|(id, a)| KnownAgent {
                id: id.clone(),
                last_seen_ms: a.last_seen_ms,
                version: a.version.clone(),
            })
            .collect()
    }

    pub fn series_total(&self) -> usize {
        self.agents.values().map(AgentState::series_count).sum()
    }

    /// Renders every agent series, grouped by metric name with one `# TYPE` each, then
    /// `infrawatch_agent_up` and `infrawatch_agent_last_report_timestamp_seconds`.
    pub fn render(&self, now_ms: u64, out: &mut Vec<u8>) {
        // (name, agent arena, series) runs, one per agent per name.
        let mut groups: Vec<(&[u8], &AgentState, usize, usize)> = Vec::new();
        for a in self.agents.values() {
            let mut i = 0;
            while let Some(s) = a.series.get(i) {
                let name = series_name(a, s);
                let mut j = i + 1;
                while a.series.get(j).is_some_and(|t| series_name(a, t) == name) {
                    j += 1;
                }
                groups.push((name, a, i, j));
                i = j;
            }
        }
        groups.sort_by(|x, y| x.0.cmp(y.0));
        let mut last: &[u8] = b"";
        for (name, a, i, j) in groups {
            if name != last {
                let kind = a.series.get(i).map_or(Kind::Gauge, |s| s.kind);
                out.extend_from_slice(b"# HELP ");
                out.extend_from_slice(name);
                out.extend_from_slice(b" Reported by the agents (see the metric reference).\n");
                out.extend_from_slice(b"# TYPE ");
                out.extend_from_slice(name);
                out.extend_from_slice(match kind {
                    Kind::Counter => b" counter\n",
                    Kind::Gauge => b" gauge\n",
                });
                last = name;
            }
            for s in a.series.get(i..j).unwrap_or_default() {
                if let Some(prefix) = a.arena.get(s.start as usize..s.end as usize) {
                    out.extend_from_slice(prefix);
                    write_value(out, s.value);
                    out.push(b'\n');
                }
            }
        }
        out.extend_from_slice(
            b"# HELP infrawatch_agent_up 1 if the agent reported within [agents] stale_after.\n# TYPE infrawatch_agent_up gauge\n",
        );
        for (id, a) in &self.agents {
            out.extend_from_slice(b"infrawatch_agent_up{agent=\"");
            escape_label_value(out, id);
            out.extend_from_slice(if self.up(a, now_ms) {
                b"\"} 1\n"
            } else {
                b"\"} 0\n"
            });
        }
        out.extend_from_slice(
            b"# HELP infrawatch_agent_last_report_timestamp_seconds When the agent's last report arrived.\n# TYPE infrawatch_agent_last_report_timestamp_seconds gauge\n",
        );
        for (id, a) in &self.agents {
            if a.last_seen_ms == 0 {
                continue;
            }
            out.extend_from_slice(b"infrawatch_agent_last_report_timestamp_seconds{agent=\"");
            escape_label_value(out, id);
            out.extend_from_slice(b"\"} ");
            write_value(out, a.last_seen_ms as f64 / 1000.0);
            out.push(b'\n');
        }
    }
}

fn series_name<'a>(a: &'a AgentState, s: &Series) -> &'a [u8] {
    a.arena
        .get(s.start as usize..(s.start + s.name_len) as usize)
        .unwrap_or_default()
}

/// Names the collector renders itself: an agent series of such a name is refused, so
/// the exposition never has two groups of one name.
fn reserved_name(n: &str) -> bool {
    n == "infrawatch_agent_up"
        || n == "infrawatch_agent_last_report_timestamp_seconds"
        || n.starts_with("infrawatch_collector_")
        || n.starts_with("process_")
}

/// Escapes sample `src` of a report into `arena` and lists it in `series`; false
/// (nothing kept) when a name is invalid.
fn push_series(
    arena: &mut Vec<u8>,
    series: &mut Vec<Series>,
    agent: &str,
    kind: Kind,
    s: &SampleView<'_>,
    src: usize,
) -> bool {
    if !valid_metric_name(&s.name)
        || reserved_name(&s.name)
        || !s.labels.iter().all(|(k, _)| valid_label_name(&k.0))
    {
        return false;
    }
    let start = arena.len();
    arena.extend_from_slice(s.name.as_bytes());
    arena.extend_from_slice(b"{agent=\"");
    escape_label_value(arena, agent);
    arena.push(b'"');
    for (k, v) in &s.labels {
        arena.push(b',');
        arena.extend_from_slice(k.0.as_bytes());
        arena.extend_from_slice(b"=\"");
        escape_label_value(arena, &v.0);
        arena.push(b'"');
    }
    arena.extend_from_slice(b"} ");
    let (Ok(start32), Ok(end), Ok(name_len), Ok(src)) = (
        u32::try_from(start),
        u32::try_from(arena.len()),
        u32::try_from(s.name.len()),
        u32::try_from(src),
    ) else {
        arena.truncate(start);
        return false;
    };
    series.push(Series {
        kind,
        name_len,
        start: start32,
        end,
        src,
        value: s.value,
    });
    true
}

fn merge_asset(into: &mut AssetRecord, from: &AssetRecord) {
    for ip in &from.ips {
        if !into.ips.contains(ip) && into.ips.len() < 64 {
            into.ips.push(ip.clone());
        }
    }
    for role in &from.roles {
        if !into.roles.contains(role) && into.roles.len() < 32 {
            into.roles.push(role.clone());
        }
    }
    for (dst, src) in [
        (&mut into.mac, &from.mac),
        (&mut into.oui_vendor, &from.oui_vendor),
        (&mut into.vendor, &from.vendor),
        (&mut into.model, &from.model),
        (&mut into.firmware, &from.firmware),
        (&mut into.serial, &from.serial),
        (&mut into.name, &from.name),
        (&mut into.zone, &from.zone),
    ] {
        if src.is_some() {
            dst.clone_from(src);
        }
    }
    // RFC 3339 in UTC compares as text.
    if from.first_seen < into.first_seen && !from.first_seen.is_empty() {
        into.first_seen.clone_from(&from.first_seen);
    }
    if from.last_seen > into.last_seen {
        into.last_seen.clone_from(&from.last_seen);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            stale_after_ms: 1_000,
            forget_after_ms: 10_000,
            max_series_per_agent: 3,
            max_agents: 2,
        }
    }
    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }
    fn report(agent: &str, seq: u64, packets: f64) -> Report {
        Report {
            version: 1,
            agent: agent.into(),
            boot: "b".into(),
            seq,
            agent_version: "0.1.0".into(),
            counters: vec![sample(
                "infrawatch_packets_total",
                &[("interface", "eth1"), ("protocol", "modbus")],
                packets,
            )],
            gauges: vec![sample("infrawatch_flows_active", &[], 2.0)],
            ..Report::default()
        }
    }
    fn render(s: &State, now: u64) -> String {
        let mut out = Vec::new();
        s.render(now, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn latest_counters_are_rendered_grouped_by_name() {
        let mut s = State::new(
            Limits {
                max_agents: 3,
                ..limits()
            },
            &["c".into()],
            &[],
        );
        s.apply(&report("a", 1, 5.0), 1_000).unwrap();
        s.apply(&report("b", 1, 7.0), 1_000).unwrap();
        s.apply(&report("a", 2, 9.0), 1_500).unwrap();
        // An older report of the same boot does not go back in time.
        assert!(s.apply(&report("a", 1, 5.0), 1_600).unwrap().stale_samples);
        let out = render(&s, 2_000);
        let expected = "# HELP infrawatch_flows_active Reported by the agents (see the metric reference).\n\
# TYPE infrawatch_flows_active gauge\n\
infrawatch_flows_active{agent=\"a\"} 2\n\
infrawatch_flows_active{agent=\"b\"} 2\n\
# HELP infrawatch_packets_total Reported by the agents (see the metric reference).\n\
# TYPE infrawatch_packets_total counter\n\
infrawatch_packets_total{agent=\"a\",interface=\"eth1\",protocol=\"modbus\"} 9\n\
infrawatch_packets_total{agent=\"b\",interface=\"eth1\",protocol=\"modbus\"} 7\n";
        assert!(out.starts_with(expected), "{out}");
        // a reported 500 ms ago (up), b 1000 ms ago (up), c never (down).
        assert!(
            out.contains("infrawatch_agent_up{agent=\"a\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("infrawatch_agent_up{agent=\"b\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("infrawatch_agent_up{agent=\"c\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("infrawatch_agent_last_report_timestamp_seconds{agent=\"a\"} 1.6\n"),
            "{out}"
        );
        // Staleness on an injected clock.
        let out = render(&s, 2_601);
        assert!(
            out.contains("infrawatch_agent_up{agent=\"a\"} 0\n"),
            "{out}"
        );
    }

    #[test]
    fn labels_are_escaped_and_invalid_series_refused() {
        let mut s = State::new(limits(), &[], &[]);
        let mut r = report("a", 1, 1.0);
        r.counters = vec![
            sample("x_total", &[("l", "a\"b\\c\nd")], f64::INFINITY),
            sample("bad name", &[], 1.0),
            sample("y_total", &[("agent", "spoof")], 1.0),
            sample("z_total", &[], f64::NAN),
            sample("infrawatch_agent_up", &[], 1.0),
            sample("process_cpu_seconds_total", &[], 1.0),
            sample("z_total", &[], 5.0),
        ];
        r.gauges.clear();
        let applied = s.apply(&r, 0).unwrap();
        assert_eq!(applied.series_refused, 5);
        let out = render(&s, 0);
        assert!(
            out.contains("x_total{agent=\"a\",l=\"a\\\"b\\\\c\\nd\"} +Inf\n"),
            "{out}"
        );
        assert!(out.contains("z_total{agent=\"a\"} NaN\n"), "{out}");
    }

    #[test]
    fn the_borrowed_view_reads_what_decode_reads() {
        // Escaped strings (owned in the view) and plain ones (borrowed) render alike,
        // and the view refuses what the report type refuses.
        let mut r = report("a", 1, 1.0);
        r.counters = vec![
            sample("x_total", &[("l", "a\"b\\c\nd")], 3.0),
            sample("y_total", &[("m", "plain")], 4.0),
        ];
        let json = serde_json::to_vec(&r).unwrap();
        let view: ReportView<'_> = serde_json::from_slice(&json).unwrap();
        assert!(matches!(view.agent, Cow::Borrowed(_)));
        assert!(matches!(view.counters[0].labels[0].1.0, Cow::Owned(_)));
        assert!(matches!(view.counters[1].labels[0].1.0, Cow::Borrowed(_)));
        let (mut s1, mut s2) = (
            State::new(limits(), &[], &[]),
            State::new(limits(), &[], &[]),
        );
        s1.apply_view(&view, 0).unwrap();
        s2.apply(&r, 0).unwrap();
        let out = render(&s1, 0);
        assert_eq!(out, render(&s2, 0));
        assert!(
            out.contains("x_total{agent=\"a\",l=\"a\\\"b\\\\c\\nd\"} 3\n"),
            "{out}"
        );
        let text = String::from_utf8(json).unwrap();
        let unknown = text.replace("\"value\":3.0", "\"value\":3.0,\"unit\":\"x\"");
        assert_ne!(unknown, text);
        assert!(serde_json::from_str::<ReportView<'_>>(&unknown).is_err());
        assert!(serde_json::from_str::<Report>(&unknown).is_err());
    }

    #[test]
    fn a_report_of_the_same_series_updates_values_and_a_changed_one_resorts() {
        let mut s = State::new(limits(), &[], &[]);
        let mut r = report("a", 1, 1.0);
        r.counters = vec![
            sample("b_total", &[], 1.0),
            sample("a_total", &[], 2.0),
            sample("bad name", &[], 9.0),
        ];
        r.gauges = vec![sample("c", &[], 3.0)];
        assert_eq!(s.apply(&r, 0).unwrap().series_refused, 1);
        let first = render(&s, 0);
        // Same series, same order, new values: the held order, the new values.
        r.seq = 2;
        r.counters[0].value = 10.0;
        r.counters[1].value = 20.0;
        r.gauges[0].value = 30.0;
        assert_eq!(s.apply(&r, 0).unwrap().series_refused, 1);
        let out = render(&s, 0);
        assert_eq!(
            out,
            first
                .replace("a_total{agent=\"a\"} 2\n", "a_total{agent=\"a\"} 20\n")
                .replace("b_total{agent=\"a\"} 1\n", "b_total{agent=\"a\"} 10\n")
                .replace("c{agent=\"a\"} 3\n", "c{agent=\"a\"} 30\n")
        );
        // The invalid sample moves: the same bytes held, but other positions.
        r.seq = 3;
        r.counters.swap(1, 2);
        r.counters[2].value = 21.0;
        s.apply(&r, 0).unwrap();
        assert!(render(&s, 0).contains("a_total{agent=\"a\"} 21\n"));
        // Another series set: sorted anew.
        r.seq = 4;
        r.counters = vec![sample("z_total", &[], 5.0), sample("a_total", &[], 6.0)];
        s.apply(&r, 0).unwrap();
        let out = render(&s, 0);
        let (a, z) = (out.find("a_total{").unwrap(), out.find("z_total{").unwrap());
        assert!(a < z && !out.contains("b_total{"), "{out}");
        // Duplicates are dropped and counted on every report, not only the first.
        r.seq = 5;
        r.counters = vec![sample("d_total", &[], 1.0), sample("d_total", &[], 2.0)];
        assert_eq!(s.apply(&r, 0).unwrap().series_refused, 1);
        r.seq = 6;
        assert_eq!(s.apply(&r, 0).unwrap().series_refused, 1);
        assert!(render(&s, 0).contains("d_total{agent=\"a\"} 1\n"));
        assert_eq!(s.series_total(), 2);
    }

    #[test]
    fn caps_on_series_and_agents() {
        let mut s = State::new(limits(), &[], &[]);
        let mut r = report("a", 1, 1.0);
        r.counters = (0..5)
            .map(|i| sample(&format!("m{i}_total"), &[], 1.0))
            .collect();
        assert_eq!(s.apply(&r, 0).unwrap().series_refused, 3);
        assert_eq!(s.series_total(), 3);
        s.apply(&report("b", 1, 1.0), 0).unwrap();
        assert_eq!(
            s.apply(&report("c", 1, 1.0), 0),
            Err(Refusal::TooManyAgents(2))
        );
        assert_eq!(
            s.apply(&report("no way", 1, 1.0), 0).unwrap_err().reason(),
            "bad_agent_id"
        );
    }

    #[test]
    fn a_new_boot_replaces_counters_and_known_agents_survive() {
        let mut s = State::new(limits(), &[], &[]);
        s.apply(&report("a", 9, 100.0), 0).unwrap();
        let mut r = report("a", 1, 3.0);
        r.boot = "b2".into();
        s.apply(&r, 10).unwrap();
        assert!(render(&s, 10).contains("protocol=\"modbus\"} 3\n"));
        let known = s.known();
        let s2 = State::new(limits(), &[], &known);
        assert!(render(&s2, 10).contains("infrawatch_agent_up{agent=\"a\"} 1\n"));
        assert!(render(&s2, 5_000).contains("infrawatch_agent_up{agent=\"a\"} 0\n"));
    }

    #[test]
    fn an_agent_is_down_after_stale_after_and_up_when_it_reports_again() {
        let mut s = State::new(limits(), &["e".into()], &[]);
        // Expected, never reported: down from the start.
        assert!(render(&s, 0).contains("infrawatch_agent_up{agent=\"e\"} 0\n"));
        s.apply(&report("a", 1, 1.0), 10_000).unwrap();
        // stale_after is 1 s: up through it, down just past it.
        assert!(render(&s, 11_000).contains("infrawatch_agent_up{agent=\"a\"} 1\n"));
        assert!(render(&s, 11_001).contains("infrawatch_agent_up{agent=\"a\"} 0\n"));
        // Its last values stay (Prometheus sees the counters, not a gap) while down.
        assert!(render(&s, 11_001).contains("protocol=\"modbus\"} 1\n"));
        s.apply(&report("a", 2, 2.0), 12_000).unwrap();
        assert!(render(&s, 12_000).contains("infrawatch_agent_up{agent=\"a\"} 1\n"));
        assert!(render(&s, 12_000).contains("infrawatch_agent_up{agent=\"e\"} 0\n"));
    }

    #[test]
    fn silent_agents_are_forgotten_but_expected_ones_stay() {
        let mut s = State::new(limits(), &["e".into()], &[]);
        s.apply(&report("a", 1, 1.0), 1).unwrap();
        s.apply(&report("e", 1, 1.0), 1).unwrap();
        assert!(s.forget(5_000).is_empty());
        assert_eq!(s.forget(20_000), vec!["a".to_string()]);
        assert!(s.agents.contains_key("e"));
    }

    #[test]
    fn assets_are_merged() {
        let mut s = State::new(limits(), &[], &[]);
        let mut r = report("a", 1, 1.0);
        r.assets = vec![AssetRecord {
            mac: Some("00:11:22:33:44:55".into()),
            ips: vec!["10.0.0.5".into()],
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            ..AssetRecord::default()
        }];
        s.apply(&r, 0).unwrap();
        r.assets[0].vendor = Some("Schneider".into());
        r.assets[0].ips = vec!["10.0.0.6".into()];
        r.assets[0].last_seen = "2026-01-02T00:00:00Z".into();
        s.apply(&r, 0).unwrap();
        let a = &s.agents["a"].assets["00:11:22:33:44:55"];
        assert_eq!(a.ips, vec!["10.0.0.5".to_string(), "10.0.0.6".to_string()]);
        assert_eq!(a.vendor.as_deref(), Some("Schneider"));
        assert_eq!(a.last_seen, "2026-01-02T00:00:00Z");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::print_stdout)] // test code
mod scale {
    use super::*;

    /// 1,000 agents × 500 series: apply every report, then render once (run with
    /// `--ignored --nocapture`; prints the times, asserts only the output).
    #[test]
    #[ignore]
    fn thousand_agents_of_500_series() {
        let limits = Limits {
            stale_after_ms: 300_000,
            forget_after_ms: 600_000,
            max_series_per_agent: 10_000,
            max_agents: 1_000,
        };
        let mut s = State::new(limits, &[], &[]);
        let counters: Vec<Sample> = (0..500)
            .map(|i| Sample {
                name: format!("infrawatch_m{}_total", i % 25),
                labels: vec![
                    ("interface".into(), "eth1".into()),
                    ("protocol".into(), format!("p{i}")),
                ],
                value: i as f64,
            })
            .collect();
        let t = std::time::Instant::now();
        for a in 0..1_000 {
            let r = Report {
                version: 1,
                agent: format!("agent-{a}"),
                boot: "b".into(),
                seq: 1,
                counters: counters.clone(),
                ..Report::default()
            };
            s.apply(&r, 1).unwrap();
        }
        let apply = t.elapsed();
        let mut out = Vec::new();
        let t = std::time::Instant::now();
        s.render(2, &mut out);
        let render = t.elapsed();
        println!(
            "apply 1000 reports: {apply:?} ({:?}/report); render {} series: {render:?}, {} bytes",
            apply / 1_000,
            s.series_total(),
            out.len()
        );
        assert_eq!(s.series_total(), 500_000);
    }
}
