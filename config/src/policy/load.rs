//! The policy.toml loader: strict, every error at once, each with its position.
//!
//! The file is taken apart by [`Doc`] (syntax errors, unknown keys, wrong types, section by
//! section and entry by entry), then every value is checked against the rest of the file
//! (zone and asset references, duplicate names) and against the agent's [`Vocabulary`]
//! (protocol ids, command names). A rule that fails to parse still lends its name to the
//! duplicate check and an asset its name to references, so one mistake is not reported
//! twice under different names.

use super::{
    AddrSpan, AssetDecl, Cidr, Detectors, Endpoint, Learning, Level, Maintenance, Mode, Policy,
    Rule, Then, Vocabulary, Zone,
};
use crate::agent::Loaded;
use crate::diag::{Diagnostic, Source, nearest, suggest};
use crate::doc::Doc;
use crate::filter;
use crate::units::{HumanDuration, parse_duration};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;
use toml::de::DeValue;

type Span = Range<usize>;

/// The sections of policy.toml.
pub const POLICY_SECTIONS: &[&str] = &[
    "policy",
    "learning",
    "zones",
    "assets",
    "allow",
    "maintenance",
    "detectors",
];

/// The detector kinds of `[detectors.KIND]` (DESIGN.md, "Detection").
pub const DETECTOR_KINDS: &[&str] = &[
    "policy_violation",
    "ics_command",
    "new_asset",
    "new_conversation",
    "port_scan",
    "syn_flood",
    "arp_spoof",
    "rate_anomaly",
    "malformed",
    "goose",
    "silence",
    "capture",
];

/// Protocols whose rules may filter on `unit_ids`, with the largest id each allows:
/// Modbus unit identifier (1 byte), DNP3 destination address and IEC-104 common address
/// of ASDU (2 bytes).
const UNIT_ID_PROTOCOLS: &[(&str, i64)] = &[("modbus", 255), ("dnp3", 65_535), ("iec104", 65_535)];

const ENDPOINT_HELP: &str =
    "write `zone:NAME`, `asset:NAME`, a network such as \"10.10.0.0/24\", one IP address, or `any`";
const RANGE_HELP: &str = "write \"0-99\", \"7\" or 7: wire (0-based) addresses, 0 to 65535";
const TIME_HELP: &str = "write an RFC 3339 time with its time zone, e.g. \"2026-12-01T02:00:00Z\" (Z is UTC) or \"2026-12-01T03:00:00+01:00\"";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHead {
    name: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLearning {
    duration: Option<Spanned<toml::Value>>,
    then: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsset {
    name: Option<Spanned<String>>,
    ip: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    description: Option<String>,
}

type List<T> = Option<Spanned<Vec<Spanned<T>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    ports: List<i64>,
    functions: List<String>,
    unit_ids: List<i64>,
    registers: List<toml::Value>,
    coils: List<toml::Value>,
    severity: Option<Spanned<String>>,
    silence_after: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    name: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    start: Option<Spanned<toml::Value>>,
    end: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortScan {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    distinct_ports: Option<Spanned<i64>>,
    distinct_hosts: Option<Spanned<i64>>,
    window: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSynFlood {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    half_open: Option<Spanned<i64>>,
    distinct_sources: Option<Spanned<i64>>,
    total_half_open: Option<Spanned<i64>>,
    window: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArpSpoof {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    gratuitous: Option<Spanned<i64>>,
    window: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateAnomaly {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    alpha: Option<Spanned<f64>>,
    k: Option<Spanned<f64>>,
    min_samples: Option<Spanned<i64>>,
    min_deviation: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    min_silence: Option<Spanned<toml::Value>>,
    factor: Option<Spanned<i64>>,
}

/// Reads and validates a policy.toml from disk.
pub fn load_policy_file(path: &Path, vocab: &Vocabulary) -> Loaded<Policy> {
    crate::agent::load_file(
        path,
        "give the path of a policy.toml with --policy",
        |p, t| load_policy(p, t, vocab),
    )
}

/// Parses and validates policy.toml text against the agent's vocabulary; `path` is used
/// in messages (and, without `[policy] name`, its file stem names the policy). The
/// config is `None` when there is any error; warnings leave it usable.
pub fn load_policy(path: &str, text: &str, vocab: &Vocabulary) -> Loaded<Policy> {
    let mut doc = Doc::parse(text);
    explain_duplicate_keys(&mut doc, text);
    doc.check_top_level(POLICY_SECTIONS);
    let mut cx = Cx { doc, text, vocab };
    let (name, mode) = cx.head(path);
    let learning = cx.learning();
    let zones = cx.zones();
    let (assets, asset_names) = cx.assets();
    let names = Names {
        zones: zones.iter().map(|z| z.name.clone()).collect(),
        assets: asset_names,
    };
    let allow = cx.rules(&names);
    let maintenance = cx.maintenance(&names);
    let detectors = cx.detectors();
    let policy = Policy {
        name,
        mode,
        learning,
        zones,
        assets,
        allow,
        maintenance,
        detectors,
        sha256: sha256_hex(text.as_bytes()),
    };
    let ok = !cx.doc.has_errors();
    Loaded {
        config: ok.then_some(policy),
        diagnostics: cx.doc.diagnostics,
        source: Source::new(path, text),
    }
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Names references may use: zones in file order, and every `[[assets]]` entry's name
/// (as written, even when the entry has errors), so indices match `Policy::assets`.
struct Names {
    zones: Vec<String>,
    assets: Vec<Option<String>>,
}

struct Cx<'a, 'i> {
    doc: Doc<'i>,
    text: &'a str,
    vocab: &'a Vocabulary,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |s| s.matches('\n').count()) + 1
}

/// The `name` string of a table entry, if it has one.
fn peek_name(v: &Spanned<DeValue<'_>>) -> Option<String> {
    v.get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|n| n.get_ref().as_str())
        .map(str::to_string)
}

/// How messages name an entry of an array of tables.
fn entry_context(section: &str, i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("[[{section}]] `{n}`"),
        None => format!("[[{section}]] #{}", i + 1),
    }
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`suggest`], plus an abbreviation (`crit` for `critical`) or a longer form (`learning`
/// for `learn`) when it fits only one word.
fn suggest_word(s: &str, valid: &[&str]) -> String {
    let lower = s.to_ascii_lowercase();
    let prefixed: Vec<&&str> = valid
        .iter()
        .filter(|v| v.starts_with(&lower) || lower.starts_with(**v))
        .collect();
    match prefixed.as_slice() {
        [one] if lower.len() >= 2 => {
            format!("did you mean `{one}`? valid: {}", backticked(valid))
        }
        _ => suggest(s, valid),
    }
}

fn value_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// The parser's "duplicate key" names neither the key nor the first one; say both.
fn explain_duplicate_keys(doc: &mut Doc<'_>, text: &str) {
    // Every key of the tree: name, span, and whether it is a zone (a key of `[zones]`).
    fn walk(v: &DeValue<'_>, in_zones: bool, out: &mut Vec<(String, Span, bool)>) {
        match v {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    out.push((k.get_ref().to_string(), k.span(), in_zones));
                    walk(v.get_ref(), false, out);
                }
            }
            DeValue::Array(a) => {
                for v in a.iter() {
                    walk(v.get_ref(), false, out);
                }
            }
            _ => {}
        }
    }
    let mut keys = Vec::new();
    for (k, v) in doc.root.get_ref().iter() {
        keys.push((k.get_ref().to_string(), k.span(), false));
        walk(v.get_ref(), k.get_ref().as_ref() == "zones", &mut keys);
    }
    for d in &mut doc.diagnostics {
        let Some(span) = d.span.clone() else { continue };
        if d.message != "duplicate key" {
            continue;
        }
        let written = text.get(span.clone()).unwrap_or("");
        let name = written.trim().trim_matches(|c| c == '"' || c == '\'');
        let first = keys
            .iter()
            .filter(|(k, s, _)| k == name && s.start < span.start)
            .max_by_key(|(_, s, _)| s.start);
        match first {
            Some((_, s, true)) => {
                d.message = format!("zone `{name}` is defined twice");
                d.help = Some(format!(
                    "the first `{name}` is on line {}; list all its networks there",
                    line_of(text, s.start)
                ));
            }
            Some((_, s, false)) => {
                d.message = format!("duplicate key `{name}`");
                d.help = Some(format!(
                    "`{name}` is first set on line {}",
                    line_of(text, s.start)
                ));
            }
            None if !name.is_empty() => d.message = format!("duplicate key `{name}`"),
            None => {}
        }
    }
}

/// A network or one address. Host bits must be zero.
fn parse_net(s: &str) -> Result<Cidr, (String, String)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        (
            format!("`{addr}` is not an IP address"),
            "write a network as ADDRESS/PREFIX, e.g. \"10.10.0.0/24\", or one address such as \"10.10.0.5\"".to_string(),
        )
    })?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= max && !p.starts_with('+'))
            .ok_or_else(|| {
                (
                    format!("`/{p}` is not a prefix length"),
                    format!(
                        "an {} prefix is 0 to {max}, e.g. \"10.10.0.0/24\"",
                        if max == 32 { "IPv4" } else { "IPv6" }
                    ),
                )
            })?,
    };
    let net = filter::mask(ip, prefix);
    if net != ip {
        return Err((
            format!("`{s}` has host bits set"),
            format!(
                "did you mean `{net}/{prefix}`? (the network of {ip}; write `{ip}` alone for that one host)"
            ),
        ));
    }
    Ok(Cidr { addr: ip, prefix })
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a date and time at a UTC offset (in minutes), the fields checked.
fn unix_seconds(
    (y, mo, d): (i64, i64, i64),
    (h, mi, s): (i64, i64, i64),
    offset_min: i64,
) -> Result<i64, String> {
    if !(1..=12).contains(&mo) {
        return Err(format!("month {mo} does not exist"));
    }
    if d < 1 || d > days_in_month(y, mo) {
        return Err(format!("{y:04}-{mo:02} has no day {d}"));
    }
    if h > 23 || mi > 59 || s > 60 {
        return Err(format!("{h:02}:{mi:02}:{s:02} is not a time of day"));
    }
    if offset_min.abs() >= 24 * 60 {
        return Err("the time zone offset is beyond ±23:59".to_string());
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + s - offset_min * 60)
}

/// Parses an RFC 3339 date-time (`2026-12-01T02:00:00Z`, `…+01:00`, fractions of a
/// second ignored) to unix seconds. The time zone is required.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    fn num(b: &[u8], range: Range<usize>) -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
        )
    }
    let bad = || format!("`{s}` is not an RFC 3339 date and time");
    let b = s.as_bytes();
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(bad());
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(b, 0..4),
        num(b, 5..7),
        num(b, 8..10),
        num(b, 11..13),
        num(b, 14..16),
        num(b, 17..19),
    ) else {
        return Err(bad());
    };
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let (Some(oh), Some(om)) = (num(b, i + 1..i + 3), num(b, i + 4..i + 6)) else {
                return Err(bad());
            };
            if om > 59 {
                return Err(bad());
            }
            let m = oh * 60 + om;
            if *c == b'-' { -m } else { m }
        }
        None => return Err(format!("`{s}` has no time zone")),
        _ => return Err(bad()),
    };
    unix_seconds((y, mo, d), (h, mi, sec), offset).map_err(|e| format!("`{s}`: {e}"))
}

/// A TOML datetime (the unquoted form) to unix seconds; it must be a full offset
/// date-time.
fn datetime_seconds(dt: &toml::value::Datetime) -> Result<i64, String> {
    let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        return Err(format!(
            "`{dt}` is not a point in time: it needs a date, a time and a time zone"
        ));
    };
    let offset = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    unix_seconds(
        (
            i64::from(date.year),
            i64::from(date.month),
            i64::from(date.day),
        ),
        (
            i64::from(time.hour),
            i64::from(time.minute),
            i64::from(time.second.unwrap_or(0)),
        ),
        offset,
    )
    .map_err(|e| format!("`{dt}`: {e}"))
}

/// Whether an address range looks like Modicon numbering (a 1-based table prefix:
/// 0xxxx coils, 1xxxx discrete inputs, 3xxxx input registers, 4xxxx holding registers,
/// five or six digits); the help that says what to write instead.
fn modicon_help(first: i64, last: i64, coils: bool) -> Option<String> {
    let tables: &[(i64, i64, &str)] = if coils {
        &[
            (10_001, 19_999, "discrete input"),
            (100_001, 165_536, "discrete input"),
        ]
    } else {
        &[
            (30_001, 39_999, "input register"),
            (40_001, 49_999, "holding register"),
            (300_001, 365_536, "input register"),
            (400_001, 465_536, "holding register"),
        ]
    };
    let (base, _, what) = tables
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&first))?;
    let w1 = first - base;
    let w2 = last - base;
    Some(if first == last {
        format!("wire addresses are 0-based: {first} is {what} {w1} (write {w1})")
    } else {
        format!("wire addresses are 0-based: {first} is {what} {w1} (write \"{w1}-{w2}\")")
    })
}

impl<'i> Cx<'_, 'i> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: Option<String>) {
        let d = Diagnostic::error(Some(span), message);
        self.doc.push(match help {
            Some(h) => d.with_help(h),
            None => d,
        });
    }

    fn warning(&mut self, span: Span, message: impl Into<String>, help: Option<String>) {
        let d = Diagnostic::warning(Some(span), message);
        self.doc.push(match help {
            Some(h) => d.with_help(h),
            None => d,
        });
    }

    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// One of a fixed set of words (`mode`, `then`, severities).
    fn choice<T: Copy>(
        &mut self,
        v: &Spanned<String>,
        what: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = v.get_ref();
        if let Some((_, t)) = options.iter().find(|(n, _)| n == s) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.error(
            v.span(),
            format!("unknown {what} `{s}`"),
            Some(suggest_word(s, &names)),
        );
        None
    }

    fn severity(&mut self, v: &Option<Spanned<String>>) -> Option<Level> {
        let v = v.as_ref()?;
        let options: Vec<(&str, Level)> = Level::ALL.iter().map(|l| (l.name(), *l)).collect();
        self.choice(v, "severity", &options)
    }

    /// A duration string of at least `min`.
    fn duration(&mut self, v: &Spanned<toml::Value>, key: &str, min: Duration) -> Option<Duration> {
        let span = v.span();
        match v.get_ref() {
            toml::Value::String(s) => match parse_duration(s) {
                Ok(d) if d >= min => Some(d),
                Ok(_) => {
                    self.error(
                        span,
                        format!("`{key}` must be at least {}", HumanDuration(min)),
                        None,
                    );
                    None
                }
                Err(e) => {
                    let (msg, help) = match e.split_once("; ") {
                        Some((m, h)) => (m.to_string(), Some(h.to_string())),
                        None => (e, None),
                    };
                    self.error(span, format!("`{key}`: {msg}"), help);
                    None
                }
            },
            toml::Value::Integer(i) => {
                self.error(
                    span,
                    format!("`{key}`: a duration needs a unit"),
                    Some(format!("write \"{i}s\" for {i} seconds")),
                );
                None
            }
            other => {
                self.error(
                    span,
                    format!(
                        "`{key}` must be a duration such as \"30s\", not {}",
                        value_type(other)
                    ),
                    None,
                );
                None
            }
        }
    }

    /// A count in `min..=u32::MAX`.
    fn count(&mut self, v: &Option<Spanned<i64>>, key: &str, min: i64, into: &mut u32) {
        let Some(v) = v else { return };
        match u32::try_from(*v.get_ref()) {
            Ok(n) if i64::from(n) >= min => *into = n,
            _ => self.error(
                v.span(),
                format!("`{key}` must be a whole number from {min} to {}", u32::MAX),
                None,
            ),
        }
    }

    /// A float within bounds (`lo` exclusive when `open`).
    fn float(
        &mut self,
        v: &Option<Spanned<f64>>,
        key: &str,
        (lo, open, hi): (f64, bool, Option<f64>),
        into: &mut f64,
    ) {
        let Some(v) = v else { return };
        let x = *v.get_ref();
        let above = if open { x > lo } else { x >= lo };
        if x.is_finite() && above && hi.is_none_or(|h| x <= h) {
            *into = x;
            return;
        }
        let range = match (open, hi) {
            (true, Some(h)) => format!("greater than {lo} and at most {h}"),
            (true, None) => format!("greater than {lo}"),
            (false, Some(h)) => format!("from {lo} to {h}"),
            (false, None) => format!("at least {lo}"),
        };
        self.error(v.span(), format!("`{key}` must be {range}"), None);
    }

    fn head(&mut self, path: &str) -> (String, Mode) {
        let raw = self.doc.section::<RawHead>("policy").unwrap_or_default();
        let name = match raw.name {
            Some(n) => {
                if n.get_ref().trim().is_empty() {
                    self.error(
                        n.span(),
                        "the policy name is empty",
                        Some("name the site, e.g. name = \"substation-7\"".to_string()),
                    );
                }
                n.into_inner()
            }
            None => Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("policy")
                .to_string(),
        };
        let mode = raw
            .mode
            .as_ref()
            .and_then(|m| {
                self.choice(
                    m,
                    "mode",
                    &[("monitor", Mode::Monitor), ("learn", Mode::Learn)],
                )
            })
            .unwrap_or_default();
        (name, mode)
    }

    fn learning(&mut self) -> Learning {
        let raw = self
            .doc
            .section::<RawLearning>("learning")
            .unwrap_or_default();
        let mut l = Learning::default();
        if let Some(d) = &raw.duration
            && let Some(d) = self.duration(d, "duration", Duration::from_secs(60))
        {
            l.duration = HumanDuration(d);
        }
        if let Some(t) = &raw.then
            && let Some(t) = self.choice(
                t,
                "`then` value",
                &[("monitor", Then::Monitor), ("stay", Then::Stay)],
            )
        {
            l.then = t;
        }
        l
    }

    fn zones(&mut self) -> Vec<Zone> {
        let Some(v) = self.doc.get("zones").cloned() else {
            return Vec::new();
        };
        let Some(table) = v.get_ref().as_table() else {
            self.error(
                v.span(),
                "`zones` must be a table of NAME = [\"CIDR\", ...]",
                Some(
                    "write [zones] and then one line per zone: control = [\"10.10.0.0/24\"]"
                        .to_string(),
                ),
            );
            return Vec::new();
        };
        // The parser's table is sorted by name; zones keep the file's order.
        let mut entries: Vec<_> = table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), k.span(), v.clone()))
            .collect();
        entries.sort_by_key(|(_, span, _)| span.start);
        let mut zones = Vec::new();
        for (name, key_span, v) in entries {
            if name.trim().is_empty() {
                self.error(key_span.clone(), "a zone needs a name", None);
            }
            let mut nets = Vec::new();
            match v.get_ref() {
                DeValue::Array(_) => {
                    let list = self
                        .doc
                        .value::<Vec<Spanned<String>>>(&v, &format!("zone `{name}`"));
                    for s in list.unwrap_or_default() {
                        match parse_net(s.get_ref()) {
                            Ok(c) => nets.push(c),
                            Err((m, h)) => self.error(s.span(), m, Some(h)),
                        }
                    }
                    if v.get_ref().as_array().is_some_and(|a| a.is_empty()) {
                        self.warning(
                            key_span,
                            format!("zone `{name}` lists no networks; it matches nothing"),
                            Some(
                                "add a network such as \"10.10.0.0/24\", or remove the zone"
                                    .to_string(),
                            ),
                        );
                    }
                }
                DeValue::String(s) => self.error(
                    v.span(),
                    format!("zone `{name}` must be a list of networks"),
                    Some(format!("write {name} = [\"{s}\"]")),
                ),
                _ => self.error(
                    v.span(),
                    format!("zone `{name}` must be a list of networks"),
                    Some(format!("write {name} = [\"10.10.0.0/24\", ...]")),
                ),
            }
            zones.push(Zone { name, nets });
        }
        zones
    }

    /// The entries of an array of tables (`[[assets]]`, `[[allow]]`, `[[maintenance]]`).
    fn entries(&mut self, key: &str) -> Vec<Spanned<DeValue<'i>>> {
        let Some(v) = self.doc.get(key).cloned() else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for e in a.iter() {
                    if e.get_ref().is_table() {
                        out.push(e.clone());
                    } else {
                        self.error(
                            e.span(),
                            format!("each `{key}` entry must be a table"),
                            Some(format!("write one [[{key}]] table per entry")),
                        );
                    }
                }
                out
            }
            DeValue::Table(_) => {
                self.error(
                    v.span(),
                    format!("`[{key}]` must be written `[[{key}]]`"),
                    Some(format!(
                        "each entry is its own [[{key}]] table (two brackets), repeated once per entry"
                    )),
                );
                Vec::new()
            }
            _ => {
                self.error(
                    v.span(),
                    format!("`{key}` must be a list of [[{key}]] tables"),
                    None,
                );
                Vec::new()
            }
        }
    }

    /// A required, unique, non-empty name.
    fn name(
        &mut self,
        raw: Option<Spanned<String>>,
        at: Span,
        (kind, example): (&str, &str),
        seen: &mut Vec<(String, Span)>,
    ) -> String {
        let Some(n) = raw else {
            self.error(
                at,
                format!("this {kind} has no `name`"),
                Some(format!("add name = \"{example}\"; names must be unique")),
            );
            return String::new();
        };
        let s = n.get_ref().clone();
        if s.trim().is_empty() {
            self.error(n.span(), format!("the {kind} name is empty"), None);
        } else if let Some((_, first)) = seen.iter().find(|(x, _)| *x == s) {
            let line = self.line(first.start);
            self.error(
                n.span(),
                format!("duplicate {kind} name `{s}`"),
                Some(format!(
                    "the first {kind} named `{s}` is on line {line}; names must be unique"
                )),
            );
        }
        seen.push((s.clone(), n.span()));
        s
    }

    fn assets(&mut self) -> (Vec<AssetDecl>, Vec<Option<String>>) {
        let entries = self.entries("assets");
        let names: Vec<Option<String>> = entries.iter().map(peek_name).collect();
        let mut seen = Vec::new();
        let mut assets = Vec::new();
        for (i, v) in entries.iter().enumerate() {
            let peek = names.get(i).cloned().flatten();
            let ctx = entry_context("assets", i, peek.as_deref());
            let Some(raw) = self.doc.value::<RawAsset>(v, &ctx) else {
                continue;
            };
            let name_span = raw.name.as_ref().map_or(v.span(), Spanned::span);
            let name = self.name(raw.name, v.span(), ("asset", "plc-1"), &mut seen);
            let ip = raw.ip.as_ref().and_then(|ip| {
                let s = ip.get_ref();
                match s.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        let help = if s.contains('/') {
                            "an asset has one address; networks belong in [zones]"
                        } else {
                            "write one IPv4 or IPv6 address, e.g. \"10.10.0.5\""
                        };
                        self.error(
                            ip.span(),
                            format!("`{s}` is not an IP address"),
                            Some(help.to_string()),
                        );
                        None
                    }
                }
            });
            let mac = raw.mac.as_ref().and_then(|m| {
                let s = m.get_ref();
                let parsed = filter::parse_mac(s);
                if parsed.is_none() {
                    self.error(
                        m.span(),
                        format!("`{s}` is not a MAC address"),
                        Some(
                            "write six hex bytes separated by `:`, e.g. \"00:1d:9c:aa:bb:cc\""
                                .to_string(),
                        ),
                    );
                }
                parsed
            });
            if raw.ip.is_none() && raw.mac.is_none() {
                self.error(
                    name_span,
                    format!("asset `{name}` has neither `ip` nor `mac`"),
                    Some(
                        "give its address: ip = \"10.10.0.5\" and/or mac = \"00:1d:9c:aa:bb:cc\""
                            .to_string(),
                    ),
                );
            }
            assets.push(AssetDecl {
                name,
                ip,
                mac,
                description: raw.description,
            });
        }
        (assets, names)
    }

    /// `zone:NAME | asset:NAME | CIDR | IP | any`.
    fn endpoint(&mut self, v: &Spanned<String>, names: &Names) -> Option<Endpoint> {
        let s = v.get_ref().as_str();
        let span = v.span();
        if s == "any" {
            return Some(Endpoint::Any);
        }
        if let Some(zone) = s.strip_prefix("zone:") {
            if let Some(i) = names.zones.iter().position(|z| z == zone) {
                return Some(Endpoint::Zone(i));
            }
            let help = match nearest(zone, names.zones.iter().map(String::as_str)) {
                Some(n) => format!("did you mean `zone:{n}`?"),
                None if names.zones.is_empty() => {
                    format!("define it under [zones]: {zone} = [\"10.10.0.0/24\"]")
                }
                None => format!(
                    "zones defined: {}",
                    backticked(&names.zones.iter().map(String::as_str).collect::<Vec<_>>())
                ),
            };
            self.error(span, format!("no zone named `{zone}`"), Some(help));
            return None;
        }
        if let Some(asset) = s.strip_prefix("asset:") {
            if let Some(i) = names
                .assets
                .iter()
                .position(|a| a.as_deref() == Some(asset))
            {
                return Some(Endpoint::Asset(i));
            }
            let known: Vec<&str> = names.assets.iter().flatten().map(String::as_str).collect();
            let help = match nearest(asset, known.iter().copied()) {
                Some(n) => format!("did you mean `asset:{n}`?"),
                None if known.is_empty() => {
                    "declare it in an [[assets]] table with its name and ip or mac".to_string()
                }
                None => format!("assets declared: {}", backticked(&known)),
            };
            self.error(span, format!("no asset named `{asset}`"), Some(help));
            return None;
        }
        // Digits first (IPv4), or only hex digits, `:`, `.` and `/` (IPv6).
        let looks_like_address = s.chars().next().is_some_and(|c| c.is_ascii_digit())
            || (s.contains(':')
                && s.chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/')));
        if looks_like_address {
            return match parse_net(s) {
                Ok(c) => Some(Endpoint::Net(c)),
                Err((m, h)) => {
                    self.error(span, m, Some(h));
                    None
                }
            };
        }
        // A misspelt prefix: `zones:scada`, `Asset:plc-1`.
        let prefixed = s.split_once(':').and_then(|(prefix, rest)| {
            nearest(prefix, ["zone", "asset"]).map(|p| format!("did you mean `{p}:{rest}`?"))
        });
        let help = if let Some(h) = prefixed {
            h
        } else if names.zones.iter().any(|z| z == s) {
            format!("did you mean `zone:{s}`?")
        } else if names.assets.iter().any(|a| a.as_deref() == Some(s)) {
            format!("did you mean `asset:{s}`?")
        } else if s.eq_ignore_ascii_case("any") {
            "did you mean `any`?".to_string()
        } else {
            ENDPOINT_HELP.to_string()
        };
        self.error(span, format!("`{s}` is not an endpoint"), Some(help));
        None
    }

    fn required_endpoint(
        &mut self,
        v: Option<&Spanned<String>>,
        key: &str,
        at: Span,
        ctx: &str,
        names: &Names,
    ) -> Endpoint {
        match v {
            Some(v) => self.endpoint(v, names).unwrap_or(Endpoint::Any),
            None => {
                let example = if key == "from" {
                    "from = \"zone:scada\""
                } else {
                    "to = \"zone:control\""
                };
                self.error(
                    at,
                    format!("{ctx} has no `{key}`"),
                    Some(format!("add {example} (or \"any\"); {ENDPOINT_HELP}")),
                );
                Endpoint::Any
            }
        }
    }

    fn protocol(&mut self, p: &Spanned<String>) -> Option<String> {
        let s = p.get_ref();
        if self.vocab.protocols.iter().any(|x| x == s) {
            return Some(s.clone());
        }
        let help = match nearest(s, self.vocab.protocols.iter().copied()) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("protocol ids: {}", backticked(&self.vocab.protocols)),
        };
        self.error(p.span(), format!("unknown protocol `{s}`"), Some(help));
        None
    }

    /// The protocols that have commands, for messages.
    fn command_protocols(&self) -> String {
        let with: Vec<&str> = self
            .vocab
            .commands
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, _)| *p)
            .collect();
        backticked(&with)
    }

    fn functions(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        protocol: Result<Option<&str>, ()>,
    ) -> Vec<String> {
        let names: Vec<String> = list.get_ref().iter().map(|f| f.get_ref().clone()).collect();
        match protocol {
            Err(()) => {}
            Ok(None) => {
                // Which protocol has every command listed?
                let owner = self.vocab.commands.iter().find(|(_, cmds)| {
                    !names.is_empty() && names.iter().all(|n| cmds.iter().any(|c| c == n))
                });
                let help = match owner {
                    Some((p, _)) => format!("these are `{p}` commands: add protocol = \"{p}\""),
                    None => format!(
                        "add the protocol these commands belong to, one of {}",
                        self.command_protocols()
                    ),
                };
                self.error(list.span(), "`functions` needs a `protocol`", Some(help));
            }
            Ok(Some(p)) => {
                let cmds = self.vocab.commands.get(p).cloned().unwrap_or_default();
                if cmds.is_empty() {
                    let help = format!(
                        "remove `functions` (it lists ICS commands); protocols with commands: {}",
                        self.command_protocols()
                    );
                    self.error(
                        list.span(),
                        format!("protocol `{p}` has no commands to list in `functions`"),
                        Some(help),
                    );
                    return names;
                }
                for (i, f) in list.get_ref().iter().enumerate() {
                    let name = f.get_ref();
                    if !cmds.iter().any(|c| c == name) {
                        let help = match nearest(name, cmds.iter().copied()) {
                            Some(n) => format!("did you mean `{n}`?"),
                            None => format!("`{p}` commands: {}", backticked(&cmds)),
                        };
                        self.error(
                            f.span(),
                            format!("`{p}` has no command `{name}`"),
                            Some(help),
                        );
                    } else if names.iter().take(i).any(|n| n == name) {
                        self.warning(f.span(), format!("`{name}` is listed twice"), None);
                    }
                }
            }
        }
        names
    }

    fn unit_ids(
        &mut self,
        list: &Spanned<Vec<Spanned<i64>>>,
        protocol: Result<Option<&str>, ()>,
    ) -> Vec<u32> {
        let max = match protocol {
            Err(()) => None,
            Ok(None) => {
                self.error(
                    list.span(),
                    "`unit_ids` needs a `protocol`",
                    Some("add protocol = \"modbus\", \"dnp3\" or \"iec104\"".to_string()),
                );
                None
            }
            Ok(Some(p)) => match UNIT_ID_PROTOCOLS.iter().find(|(x, _)| *x == p) {
                Some((_, max)) => Some((p, *max)),
                None => {
                    self.error(
                        list.span(),
                        format!("`unit_ids` do not apply to `{p}`"),
                        Some("unit_ids are Modbus unit ids, DNP3 destination addresses and IEC-104 common addresses; remove it".to_string()),
                    );
                    None
                }
            },
        };
        let mut out = Vec::new();
        for u in list.get_ref() {
            let v = *u.get_ref();
            let limit = max.map_or(65_535, |(_, m)| m);
            match u32::try_from(v) {
                Ok(n) if v <= limit => out.push(n),
                _ => {
                    let what = max.map_or(String::new(), |(p, _)| format!(" for `{p}`"));
                    self.error(
                        u.span(),
                        format!("unit id {v} is out of range{what}"),
                        Some(format!("use 0 to {limit}")),
                    );
                }
            }
        }
        out
    }

    fn addr_spans(
        &mut self,
        list: &Spanned<Vec<Spanned<toml::Value>>>,
        key: &str,
        protocol: Result<Option<&str>, ()>,
    ) -> Vec<AddrSpan> {
        match protocol {
            Ok(Some("modbus")) | Err(()) => {}
            Ok(None) => self.error(
                list.span(),
                format!("`{key}` needs protocol = \"modbus\""),
                Some(format!(
                    "{key} are Modbus addresses; add protocol = \"modbus\""
                )),
            ),
            Ok(Some(p)) => self.error(
                list.span(),
                format!("`{key}` apply to Modbus only, not `{p}`"),
                Some(format!(
                    "remove `{key}`, or make this a protocol = \"modbus\" rule"
                )),
            ),
        }
        let coils = key == "coils";
        let mut out = Vec::new();
        for v in list.get_ref() {
            if let Some(s) = self.addr_span(v, key, coils) {
                out.push(s);
            }
        }
        out
    }

    fn addr_span(&mut self, v: &Spanned<toml::Value>, key: &str, coils: bool) -> Option<AddrSpan> {
        let span = v.span();
        let (text, first, last) = match v.get_ref() {
            toml::Value::Integer(i) => (i.to_string(), *i, *i),
            toml::Value::String(s) => {
                let number = |t: &str| -> Option<i64> {
                    let t = t.trim();
                    (!t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| t.parse().ok())
                        .flatten()
                };
                let parsed = match s.split_once('-') {
                    Some((a, b)) => number(a).zip(number(b)),
                    None => number(s).map(|n| (n, n)),
                };
                let Some((a, b)) = parsed else {
                    self.error(
                        span,
                        format!("`{s}` is not an address range"),
                        Some(RANGE_HELP.to_string()),
                    );
                    return None;
                };
                (s.clone(), a, b)
            }
            other => {
                self.error(
                    span,
                    format!(
                        "`{key}` entries must be strings such as \"0-99\" or integers, not {}",
                        value_type(other)
                    ),
                    Some(RANGE_HELP.to_string()),
                );
                return None;
            }
        };
        let modicon = modicon_help(first, last, coils);
        if !(0..=65_535).contains(&first) || !(0..=65_535).contains(&last) {
            self.error(
                span,
                format!("`{text}` is outside the wire address range 0-65535"),
                Some(modicon.unwrap_or_else(|| RANGE_HELP.to_string())),
            );
            return None;
        }
        if first > last {
            self.error(
                span,
                format!("`{text}`: the first address is greater than the last"),
                Some(format!("write \"{last}-{first}\"")),
            );
            return None;
        }
        if let Some(help) = modicon {
            let table = if coils { "discrete input" } else { "register" };
            self.warning(
                span,
                format!("`{text}` looks like a Modicon {table} number, not a wire address"),
                Some(help),
            );
        }
        Some(AddrSpan {
            first: first as u16,
            last: last as u16,
        })
    }

    fn rules(&mut self, names: &Names) -> Vec<Rule> {
        let entries = self.entries("allow");
        let mut seen = Vec::new();
        let mut rules = Vec::new();
        for (i, v) in entries.iter().enumerate() {
            let peek = peek_name(v);
            let ctx = entry_context("allow", i, peek.as_deref());
            let Some(raw) = self.doc.value::<RawRule>(v, &ctx) else {
                if let Some(p) = peek {
                    seen.push((p, v.span()));
                }
                continue;
            };
            let name = self.name(raw.name, v.span(), ("rule", "hmi polls plcs"), &mut seen);
            let from = self.required_endpoint(raw.from.as_ref(), "from", v.span(), &ctx, names);
            let to = self.required_endpoint(raw.to.as_ref(), "to", v.span(), &ctx, names);
            // Ok(None): no protocol given; Err(()): given but unknown (already reported).
            let protocol = match &raw.protocol {
                None => Ok(None),
                Some(p) => self.protocol(p).map(Some).ok_or(()),
            };
            let proto = protocol.as_ref().map(|p| p.as_deref()).map_err(|_| ());
            let mut ports = Vec::new();
            for p in raw
                .ports
                .as_ref()
                .map(|l| l.get_ref().as_slice())
                .unwrap_or(&[])
            {
                match u16::try_from(*p.get_ref()) {
                    Ok(n) if n > 0 => ports.push(n),
                    _ => self.error(
                        p.span(),
                        format!("port {} is out of range", p.get_ref()),
                        Some("ports are 1 to 65535".to_string()),
                    ),
                }
            }
            let functions = raw.functions.as_ref().map(|f| self.functions(f, proto));
            let unit_ids = raw.unit_ids.as_ref().map(|u| self.unit_ids(u, proto));
            let registers = raw
                .registers
                .as_ref()
                .map(|r| self.addr_spans(r, "registers", proto));
            let coils = raw
                .coils
                .as_ref()
                .map(|c| self.addr_spans(c, "coils", proto));
            let severity = self.severity(&raw.severity);
            let silence_after = raw
                .silence_after
                .as_ref()
                .and_then(|d| self.duration(d, "silence_after", Duration::from_secs(1)));
            rules.push(Rule {
                name,
                from,
                to,
                protocol: protocol.ok().flatten(),
                ports,
                functions,
                unit_ids,
                registers,
                coils,
                severity,
                silence_after,
            });
        }
        rules
    }

    /// `start` / `end` of a maintenance window: an RFC 3339 string or a TOML datetime.
    fn time(&mut self, v: &Spanned<toml::Value>, key: &str) -> Option<i64> {
        let r = match v.get_ref() {
            toml::Value::String(s) => parse_rfc3339(s),
            toml::Value::Datetime(d) => datetime_seconds(d),
            other => Err(format!(
                "`{key}` must be a date and time, not {}",
                value_type(other)
            )),
        };
        r.map_err(|e| self.error(v.span(), e, Some(TIME_HELP.to_string())))
            .ok()
    }

    fn maintenance(&mut self, names: &Names) -> Vec<Maintenance> {
        let entries = self.entries("maintenance");
        let mut seen = Vec::new();
        let mut windows = Vec::new();
        for (i, v) in entries.iter().enumerate() {
            let peek = peek_name(v);
            let ctx = entry_context("maintenance", i, peek.as_deref());
            let Some(raw) = self.doc.value::<RawWindow>(v, &ctx) else {
                if let Some(p) = peek {
                    seen.push((p, v.span()));
                }
                continue;
            };
            let name = self.name(
                raw.name,
                v.span(),
                ("maintenance window", "firmware update"),
                &mut seen,
            );
            let from = match &raw.from {
                Some(f) => self.endpoint(f, names).unwrap_or(Endpoint::Any),
                None => {
                    self.error(
                        v.span(),
                        format!("{ctx} has no `from`"),
                        Some("say whose commands are authorized: from = \"asset:eng-ws\" (or \"any\")".to_string()),
                    );
                    Endpoint::Any
                }
            };
            let to = match &raw.to {
                Some(t) => self.endpoint(t, names).unwrap_or(Endpoint::Any),
                None => Endpoint::Any,
            };
            let bound = |this: &mut Self, t: &Option<Spanned<toml::Value>>, key: &str| match t {
                Some(t) => this.time(t, key),
                None => {
                    this.error(
                        v.span(),
                        format!("{ctx} has no `{key}`"),
                        Some(format!("add {key} = \"2026-12-01T02:00:00Z\"")),
                    );
                    None
                }
            };
            let start = bound(self, &raw.start, "start");
            let end = bound(self, &raw.end, "end");
            if let (Some(s), Some(e), Some(end_v), Some(start_v)) =
                (start, end, raw.end.as_ref(), raw.start.as_ref())
                && e <= s
            {
                let line = self.line(start_v.span().start);
                self.error(
                    end_v.span(),
                    format!("maintenance window `{name}` ends before it starts"),
                    Some(format!("`end` must be later than `start` (line {line})")),
                );
            }
            windows.push(Maintenance {
                name,
                from,
                to,
                start: start.unwrap_or(0),
                end: end.unwrap_or(0),
            });
        }
        windows
    }

    fn detectors(&mut self) -> Detectors {
        let mut d = Detectors::default();
        let Some(v) = self.doc.get("detectors").cloned() else {
            return d;
        };
        let Some(table) = v.get_ref().as_table() else {
            self.error(
                v.span(),
                "`detectors` must be a table of [detectors.KIND] sections",
                Some("write e.g. [detectors.port_scan] and its keys below".to_string()),
            );
            return d;
        };
        let mut entries: Vec<_> = table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), k.span(), v.clone()))
            .collect();
        entries.sort_by_key(|(_, span, _)| span.start);
        let window = Duration::from_millis(100);
        for (kind, key_span, v) in entries {
            let ctx = format!("[detectors.{kind}]");
            let basic = match kind.as_str() {
                "policy_violation" => Some(&mut d.policy_violation),
                "ics_command" => Some(&mut d.ics_command),
                "new_asset" => Some(&mut d.new_asset),
                "new_conversation" => Some(&mut d.new_conversation),
                "malformed" => Some(&mut d.malformed),
                "goose" => Some(&mut d.goose),
                "silence" => Some(&mut d.silence),
                _ => None,
            };
            if let Some(b) = basic {
                if let Some(r) = self.doc.value::<RawBasic>(&v, &ctx) {
                    b.enabled = r.enabled.unwrap_or(b.enabled);
                    b.severity = self.severity(&r.severity).or(b.severity);
                }
                continue;
            }
            match kind.as_str() {
                "port_scan" => {
                    let Some(r) = self.doc.value::<RawPortScan>(&v, &ctx) else {
                        continue;
                    };
                    let t = &mut d.port_scan;
                    t.enabled = r.enabled.unwrap_or(t.enabled);
                    t.severity = self.severity(&r.severity).or(t.severity);
                    self.count(
                        &r.distinct_ports,
                        "distinct_ports",
                        2,
                        &mut t.distinct_ports,
                    );
                    self.count(
                        &r.distinct_hosts,
                        "distinct_hosts",
                        2,
                        &mut t.distinct_hosts,
                    );
                    if let Some(w) = &r.window {
                        t.window = self.duration(w, "window", window).unwrap_or(t.window);
                    }
                }
                "syn_flood" => {
                    let Some(r) = self.doc.value::<RawSynFlood>(&v, &ctx) else {
                        continue;
                    };
                    let t = &mut d.syn_flood;
                    t.enabled = r.enabled.unwrap_or(t.enabled);
                    t.severity = self.severity(&r.severity).or(t.severity);
                    self.count(&r.half_open, "half_open", 1, &mut t.half_open);
                    self.count(
                        &r.distinct_sources,
                        "distinct_sources",
                        1,
                        &mut t.distinct_sources,
                    );
                    self.count(
                        &r.total_half_open,
                        "total_half_open",
                        1,
                        &mut t.total_half_open,
                    );
                    if let Some(w) = &r.window {
                        t.window = self.duration(w, "window", window).unwrap_or(t.window);
                    }
                }
                "arp_spoof" => {
                    let Some(r) = self.doc.value::<RawArpSpoof>(&v, &ctx) else {
                        continue;
                    };
                    let t = &mut d.arp_spoof;
                    t.enabled = r.enabled.unwrap_or(t.enabled);
                    t.severity = self.severity(&r.severity).or(t.severity);
                    self.count(&r.gratuitous, "gratuitous", 1, &mut t.gratuitous);
                    if let Some(w) = &r.window {
                        t.window = self.duration(w, "window", window).unwrap_or(t.window);
                    }
                }
                "rate_anomaly" => {
                    let Some(r) = self.doc.value::<RawRateAnomaly>(&v, &ctx) else {
                        continue;
                    };
                    let t = &mut d.rate_anomaly;
                    t.enabled = r.enabled.unwrap_or(t.enabled);
                    t.severity = self.severity(&r.severity).or(t.severity);
                    self.float(&r.alpha, "alpha", (0.0, true, Some(1.0)), &mut t.alpha);
                    self.float(&r.k, "k", (0.0, true, None), &mut t.k);
                    self.count(&r.min_samples, "min_samples", 1, &mut t.min_samples);
                    self.float(
                        &r.min_deviation,
                        "min_deviation",
                        (0.0, false, None),
                        &mut t.min_deviation,
                    );
                }
                "capture" => {
                    let Some(r) = self.doc.value::<RawCapture>(&v, &ctx) else {
                        continue;
                    };
                    let t = &mut d.capture;
                    t.enabled = r.enabled.unwrap_or(t.enabled);
                    t.severity = self.severity(&r.severity).or(t.severity);
                    if let Some(w) = &r.min_silence {
                        t.min_silence = self
                            .duration(w, "min_silence", Duration::from_secs(1))
                            .unwrap_or(t.min_silence);
                    }
                    self.count(&r.factor, "factor", 1, &mut t.factor);
                }
                _ => self.error(
                    key_span,
                    format!("unknown detector `{ctx}`"),
                    Some(suggest(&kind, DETECTOR_KINDS)),
                ),
            }
        }
        d
    }
}
