//! Helpers for the end-to-end tests in `tests/tests/`.
//!
//! The Prometheus side of `deploy/`: where the rule files, their `promtool` tests and the
//! Grafana dashboard are, what alerts the rules define, which `infrawatch_*` metrics the
//! rules and the dashboard use, and the dashboard's queries with Grafana's variables
//! substituted so they can be sent to a real Prometheus. The end-to-end tests use these
//! to prove that every metric the rules and dashboard name exists in the collector's
//! `/metrics`, and that every dashboard query returns data.
//!
//! The public functions read files of this repository; a missing or broken file is a
//! failure of the test that called them, so they panic with a message naming the file
//! (the `try_*` variants return the error instead).

pub mod harness;
pub mod notify_socket;
pub mod tmpfs;
pub mod unit_file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `deploy/prometheus/`.
pub fn prometheus_dir() -> PathBuf {
    root().join("deploy/prometheus")
}

/// `deploy/prometheus/prometheus.yml`, the scrape configuration.
pub fn prometheus_config() -> PathBuf {
    prometheus_dir().join("prometheus.yml")
}

/// `deploy/grafana/infrawatch.json`.
pub fn dashboard_path() -> PathBuf {
    root().join("deploy/grafana/infrawatch.json")
}

/// `deploy/runbooks/`.
pub fn runbooks_dir() -> PathBuf {
    root().join("deploy/runbooks")
}

/// Where every `runbook_url` of the rules points: the repository of the workspace
/// `Cargo.toml`, then `blob/main/deploy/runbooks/`, then `<alertname>.md`.
pub const RUNBOOK_BASE: &str = "https://example.invalid/infrawatch/blob/main/deploy/runbooks/";

fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The alert rule files (`deploy/prometheus/*.rules.yml`), sorted.
pub fn try_rule_files() -> Result<Vec<PathBuf>, String> {
    let f = files_ending(&prometheus_dir(), ".rules.yml")?;
    if f.is_empty() {
        return Err(format!("no *.rules.yml in {}", prometheus_dir().display()));
    }
    Ok(f)
}

/// The alert rule files (`deploy/prometheus/*.rules.yml`), sorted; panics when none.
#[allow(clippy::panic)]
pub fn rule_files() -> Vec<PathBuf> {
    try_rule_files().unwrap_or_else(|e| panic!("{e}"))
}

/// The `promtool test rules` files (`deploy/prometheus/tests/*.yml`), sorted; panics
/// when none.
#[allow(clippy::panic)]
pub fn rule_test_files() -> Vec<PathBuf> {
    let dir = prometheus_dir().join("tests");
    match files_ending(&dir, ".yml") {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => panic!("no *.yml in {}", dir.display()),
        Err(e) => panic!("{e}"),
    }
}

fn read(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Parses a YAML file.
pub fn try_yaml(p: &Path) -> Result<serde_yaml_ng::Value, String> {
    serde_yaml_ng::from_str(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))
}

/// One alerting rule of the rule files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertRule {
    pub file: PathBuf,
    pub group: String,
    pub alert: String,
    pub expr: String,
    /// The `for:` duration as written (empty: none).
    pub for_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

fn str_map(v: Option<&serde_yaml_ng::Value>) -> BTreeMap<String, String> {
    v.and_then(|m| m.as_mapping())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        serde_yaml_ng::Value::String(s) => s.clone(),
                        serde_yaml_ng::Value::Number(n) => n.to_string(),
                        serde_yaml_ng::Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.as_str()?.to_string(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn get_str(v: &serde_yaml_ng::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_string)
}

/// Every rule of the rule files, in file order: (file, group name, the rule's YAML).
fn try_rules() -> Result<Vec<(PathBuf, String, serde_yaml_ng::Value)>, String> {
    let mut out = Vec::new();
    for f in try_rule_files()? {
        let y = try_yaml(&f)?;
        let groups = y
            .get("groups")
            .and_then(|g| g.as_sequence())
            .ok_or_else(|| format!("{}: no `groups:` list", f.display()))?;
        for g in groups {
            let group = get_str(g, "name").unwrap_or_default();
            for r in g
                .get("rules")
                .and_then(|r| r.as_sequence())
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                out.push((f.clone(), group.clone(), r.clone()));
            }
        }
    }
    Ok(out)
}

/// Every expression (`expr:`) of the rule files, recording rules included, with the
/// rule's name (alert or record).
pub fn try_rule_exprs() -> Result<Vec<(String, String)>, String> {
    try_rules()?
        .into_iter()
        .map(|(f, _, r)| {
            let name = get_str(&r, "alert")
                .or_else(|| get_str(&r, "record"))
                .ok_or_else(|| format!("{}: a rule without alert/record", f.display()))?;
            let expr = get_str(&r, "expr")
                .ok_or_else(|| format!("{}: rule {name} has no expr", f.display()))?;
            Ok((name, expr))
        })
        .collect()
}

/// Every alerting rule of the rule files, in file order.
pub fn try_alert_rules() -> Result<Vec<AlertRule>, String> {
    Ok(try_rules()?
        .into_iter()
        .filter_map(|(file, group, r)| {
            let alert = get_str(&r, "alert")?;
            Some(AlertRule {
                file,
                group,
                expr: get_str(&r, "expr").unwrap_or_default(),
                for_: get_str(&r, "for").unwrap_or_default(),
                labels: str_map(r.get("labels")),
                annotations: str_map(r.get("annotations")),
                alert,
            })
        })
        .collect())
}

/// Every alerting rule of the rule files; panics when a file is missing or broken.
#[allow(clippy::panic)]
pub fn alert_rules() -> Vec<AlertRule> {
    try_alert_rules().unwrap_or_else(|e| panic!("{e}"))
}

/// The dashboard as JSON.
pub fn try_dashboard() -> Result<serde_json::Value, String> {
    let p = dashboard_path();
    serde_json::from_str(&read(&p)?).map_err(|e| format!("{}: {e}", p.display()))
}

/// The dashboard as JSON; panics when it is missing or not JSON.
#[allow(clippy::panic)]
pub fn dashboard() -> serde_json::Value {
    try_dashboard().unwrap_or_else(|e| panic!("{e}"))
}

/// Every panel, rows' collapsed panels included.
pub fn dashboard_panels(d: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for p in v.as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push(p);
            if let Some(inner) = p.get("panels") {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(p) = d.get("panels") {
        walk(p, &mut out);
    }
    out
}

/// Every panel query as written: (panel title, expression with Grafana variables).
pub fn dashboard_raw_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard_panels(d) {
        let title = p
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string();
        for t in p
            .get("targets")
            .and_then(|t| t.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(e) = t.get("expr").and_then(|e| e.as_str()) {
                out.push((title.clone(), e.to_string()));
            }
        }
    }
    out
}

/// The query of each query variable (e.g. `label_values(infrawatch_agent_up, agent)`).
pub fn dashboard_variable_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in d
        .pointer("/templating/list")
        .and_then(|l| l.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if v.get("type").and_then(|t| t.as_str()) != Some("query") {
            continue;
        }
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        // Grafana writes the query as a string, or as an object with `query` (10+).
        let q = v
            .get("query")
            .and_then(|q| {
                q.as_str()
                    .or_else(|| q.get("query").and_then(|q| q.as_str()))
            })
            .or_else(|| v.get("definition").and_then(|q| q.as_str()));
        if let Some(q) = q {
            out.push((name, q.to_string()));
        }
    }
    out
}

/// Replaces Grafana's variables in a query: `$agent` by `agent_regex`,
/// `$__rate_interval` by `1m`, `$datasource` by `prometheus` (both `$x` and `${x}`).
pub fn substitute(expr: &str, agent_regex: &str) -> String {
    let mut s = expr.to_string();
    for (var, val) in [
        ("__rate_interval", "1m"),
        ("datasource", "prometheus"),
        ("agent", agent_regex),
    ] {
        s = s.replace(&format!("${{{var}}}"), val);
        s = s.replace(&format!("${var}"), val);
    }
    s
}

/// Every dashboard panel query, ready for Prometheus: (panel title, PromQL) with
/// `$agent` replaced by `agent_regex` (use `.*` for all agents), `$__rate_interval` by
/// `1m` and `$datasource` by `prometheus`. Panics when the dashboard is missing or not
/// JSON.
pub fn dashboard_queries(agent_regex: &str) -> Vec<(String, String)> {
    dashboard_raw_queries(&dashboard())
        .into_iter()
        .map(|(t, e)| (t, substitute(&e, agent_regex)))
        .collect()
}

/// The `infrawatch_*` metric names in a PromQL expression (or a Grafana
/// `label_values(...)` query): identifiers outside string literals.
pub fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut prev_ident = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // A string literal: skip to its closing quote (backslash escapes, not in
                // raw backtick strings).
                let mut esc = false;
                for (_, d) in chars.by_ref() {
                    if esc {
                        esc = false;
                    } else if d == '\\' && c != '`' {
                        esc = true;
                    } else if d == c {
                        break;
                    }
                }
                prev_ident = false;
            }
            '#' => {
                // A comment runs to the end of the line.
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                prev_ident = false;
            }
            c if ident_start(c) && !prev_ident => {
                let mut end = i + c.len_utf8();
                while let Some((j, d)) = chars.peek().copied() {
                    if !ident(d) {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                if let Some(w) = expr.get(i..end)
                    && w.starts_with("infrawatch_")
                {
                    out.insert(w.to_string());
                }
                prev_ident = false;
            }
            c => prev_ident = ident(c),
        }
    }
    out
}

/// Every `infrawatch_*` metric name used by the alert rules (and any recording rules)
/// and by the dashboard (panel queries and variable queries). Panics when a file is
/// missing or broken.
#[allow(clippy::panic)]
pub fn metric_names_used() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, e) in try_rule_exprs().unwrap_or_else(|e| panic!("{e}")) {
        out.extend(metric_names_in(&e));
    }
    let d = dashboard();
    for (_, e) in dashboard_raw_queries(&d)
        .into_iter()
        .chain(dashboard_variable_queries(&d))
    {
        out.extend(metric_names_in(&e));
    }
    out
}

/// The metric names the project produces, as far as its source says: every string
/// literal `"infrawatch_…"` (a whole name: letters, digits, `_`, `:`) in `agent/src`
/// and `collector/src`.
pub fn try_metric_names_in_source() -> Result<BTreeSet<String>, String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) -> Result<(), String> {
        let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = read(&p)?;
                let mut rest = text.as_str();
                while let Some(at) = rest.find("\"infrawatch_") {
                    let after = rest.get(at + 1..).unwrap_or_default();
                    let len = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(after.len());
                    // A name ending in `_` is a prefix (`"infrawatch_collector_"`).
                    if after.get(len..).is_some_and(|t| t.starts_with('"'))
                        && let Some(name) = after.get(..len)
                        && !name.ends_with('_')
                    {
                        out.insert(name.to_string());
                    }
                    rest = after;
                }
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    walk(&root().join("agent/src"), &mut out)?;
    walk(&root().join("collector/src"), &mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metric_names_are_identifiers_outside_strings_and_comments() {
        let e = r#"sum by (agent) (increase(infrawatch_anomalies_total{kind="infrawatch_not_a_metric"}[5m])) > 0
          unless on (agent) infrawatch_policy_info # infrawatch_in_a_comment
          or label_replace(up, "x", 'infrawatch_q', "", "") or xinfrawatch_suffix"#;
        assert_eq!(
            metric_names_in(e),
            set(&["infrawatch_anomalies_total", "infrawatch_policy_info"])
        );
        assert_eq!(
            metric_names_in("label_values(infrawatch_agent_up, agent)"),
            set(&["infrawatch_agent_up"])
        );
    }

    #[test]
    fn substitution_replaces_every_form_of_the_variables() {
        assert_eq!(
            substitute(
                r#"rate(x{agent=~"$agent",b=~"${agent}"}[$__rate_interval]) + rate(y[${__rate_interval}])"#,
                "a|b"
            ),
            r#"rate(x{agent=~"a|b",b=~"a|b"}[1m]) + rate(y[1m])"#
        );
    }

    #[test]
    fn the_source_scan_finds_whole_names_only() {
        let names = try_metric_names_in_source().unwrap();
        assert!(names.contains("infrawatch_anomalies_total"), "{names:?}");
        assert!(names.contains("infrawatch_agent_up"), "{names:?}");
        // Prefixes and format strings are not names.
        assert!(!names.contains("infrawatch_collector_"), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with('_')), "{names:?}");
    }
}
