//! The Prometheus side of `deploy/` (issue 6, parts 3 and 4): the scrape configuration,
//! the alert rules and their `promtool` unit tests, the runbooks, and the Grafana
//! dashboard. `promtool` (Debian `prometheus`, installed by scripts/setup-test-deps.sh)
//! checks the files; the rest is read here: every alert has its labels, annotations,
//! runbook and test cases, every alert the issue names exists, the dashboard has its
//! variables and panels, and every metric the rules and dashboard use is one the agent
//! or collector produces (so a typo fails here, not on a site at 3 a.m.).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use infrawatch_tests::{
    AlertRule, RUNBOOK_BASE, alert_rules, dashboard, dashboard_panels, dashboard_raw_queries,
    dashboard_variable_queries, metric_names_used, prometheus_config, prometheus_dir, root,
    rule_files, rule_test_files, runbooks_dir, substitute, try_metric_names_in_source, try_yaml,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The alerts issue 6 asks for, each with the rule(s) that answer it.
const ISSUE_ALERTS: &[(&str, &[&str])] = &[
    ("policy violation", &["InfrawatchPolicyViolation"]),
    (
        "ICS command (by class)",
        &[
            "InfrawatchIcsStateOrProgramCommand",
            "InfrawatchIcsControlOrConfigCommand",
            "InfrawatchIcsWriteCommand",
        ],
    ),
    ("scan", &["InfrawatchPortScan"]),
    ("flood", &["InfrawatchSynFlood"]),
    ("ARP spoofing", &["InfrawatchArpSpoofing"]),
    ("GOOSE anomaly", &["InfrawatchGooseAnomaly"]),
    ("new asset", &["InfrawatchNewAsset"]),
    ("silence", &["InfrawatchConversationSilent"]),
    (
        "blind sensor (interface down or silent)",
        &["InfrawatchBlindSensor"],
    ),
    ("capture drops", &["InfrawatchCaptureDrops"]),
    ("agent down", &["InfrawatchAgentDown"]),
    ("config reload failed", &["InfrawatchConfigReloadFailed"]),
];

/// The dashboard panels issue 6 asks for (titles).
const ISSUE_PANELS: &[&str] = &[
    "Traffic by protocol",
    "ICS commands by class",
    "Anomalies by kind",
    "Policy violations by zone pair",
    "Agent health",
    "Capture drops",
    "Blind interfaces",
];

const SEVERITIES: &[&str] = &["critical", "warning", "info"];

/// The alert's severity copied from the anomaly it is about.
const SEVERITY_FROM_METRIC: &str = "{{ $labels.severity }}";

fn promtool() -> bool {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            println!(
                "SKIP: promtool is not installed (Debian package `prometheus`; scripts/setup-test-deps.sh installs it)"
            );
            false
        }
    }
}

fn run_promtool(args: &[&str], path: &Path) {
    let o = Command::new("promtool")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool {} {} failed:\n{}{}",
        args.join(" "),
        path.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn promtool_accepts_the_scrape_config_and_the_rules() {
    if !promtool() {
        return;
    }
    run_promtool(&["check", "config"], &prometheus_config());
    for f in rule_files() {
        run_promtool(&["check", "rules"], &f);
    }
}

#[test]
fn the_commented_tls_and_basic_auth_variant_is_valid_too() {
    if !promtool() {
        return;
    }
    // Uncomment the variant (its lines are `    # key: …` at the job's indentation) and
    // point its files at real ones.
    let text = std::fs::read_to_string(prometheus_config()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut out = String::new();
    let mut in_variant = false;
    let mut uncommented = 0;
    for line in text.lines() {
        if line.trim_start().starts_with("# scheme: https") {
            in_variant = true;
        }
        if in_variant && let Some(rest) = line.strip_prefix("    # ") {
            out.push_str("    ");
            out.push_str(rest);
            uncommented += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(
        uncommented >= 6,
        "the TLS/basic_auth variant was not found in prometheus.yml"
    );
    for f in [
        "/etc/prometheus/infrawatch-ca.pem",
        "/etc/prometheus/infrawatch-collector.password",
    ] {
        assert!(out.contains(f), "the variant names {f}");
        let local = tmp.path().join(Path::new(f).file_name().unwrap());
        std::fs::write(&local, "x\n").unwrap();
        out = out.replace(f, &local.display().to_string());
    }
    assert!(out.contains("\n    scheme: https\n"), "{out}");
    assert!(out.contains("\n    basic_auth:\n"), "{out}");
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(&cfg, out).unwrap();
    for f in rule_files() {
        std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    run_promtool(&["check", "config"], &cfg);
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    if !promtool() {
        return;
    }
    for f in rule_test_files() {
        run_promtool(&["test", "rules"], &f);
    }
}

#[test]
fn the_scrape_config_scrapes_the_collector_and_loads_the_rules() {
    let y = try_yaml(&prometheus_config()).unwrap();
    let jobs = y["scrape_configs"].as_sequence().unwrap();
    assert!(
        jobs.iter()
            .any(|j| j["job_name"].as_str() == Some("infrawatch")),
        "a scrape job named infrawatch (the rules' up{{job=\"infrawatch\"}})"
    );
    let loaded: Vec<&str> = y["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for f in rule_files() {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(loaded.contains(&name), "prometheus.yml loads {name}");
    }
}

fn check_alert(a: &AlertRule, problems: &mut Vec<String>) {
    let name = &a.alert;
    match a.labels.get("severity").map(String::as_str) {
        Some(s) if SEVERITIES.contains(&s) => {}
        Some(SEVERITY_FROM_METRIC) => {
            // Copied from the anomaly: the expression must keep that label.
            if !a.expr.contains("severity)") && !a.expr.contains("severity,") {
                problems.push(format!(
                    "{name}: severity is taken from the metric but the expression does not keep `severity`"
                ));
            }
            if !a.expr.contains("infrawatch_anomalies_total") {
                problems.push(format!(
                    "{name}: severity is taken from the metric but infrawatch_anomalies_total is not used"
                ));
            }
        }
        other => problems.push(format!(
            "{name}: severity label {other:?} is not one of {SEVERITIES:?}"
        )),
    }
    for k in ["summary", "description", "runbook_url"] {
        if a.annotations.get(k).is_none_or(|v| v.trim().is_empty()) {
            problems.push(format!("{name}: no `{k}` annotation"));
        }
    }
    let want = format!("{RUNBOOK_BASE}{name}.md");
    match a.annotations.get("runbook_url") {
        Some(u) if *u == want => {}
        other => problems.push(format!("{name}: runbook_url {other:?}, want {want}")),
    }
    let rb = runbooks_dir().join(format!("{name}.md"));
    match std::fs::read_to_string(&rb) {
        Err(e) => problems.push(format!("{name}: runbook {}: {e}", rb.display())),
        Ok(text) => {
            if !text.starts_with(&format!("# {name}")) {
                problems.push(format!("{}: does not start with `# {name}`", rb.display()));
            }
            for section in ["## What it means", "## What to check first", "## Silencing"] {
                if !text.contains(section) {
                    problems.push(format!("{}: no `{section}` section", rb.display()));
                }
            }
        }
    }
    // Templates name labels the expression can have, and render nothing else by
    // accident (a misspelt `$label.x` is an empty string at run time).
    for (k, v) in a.annotations.iter().chain(a.labels.iter()) {
        if v.contains("$label.") || v.contains("$labels.}") {
            problems.push(format!("{name}: {k} has a broken template: {v}"));
        }
    }
}

#[test]
fn every_alert_has_severity_annotations_and_a_runbook() {
    let alerts = alert_rules();
    assert!(!alerts.is_empty());
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for a in &alerts {
        if !seen.insert(a.alert.clone()) {
            problems.push(format!("{}: defined twice", a.alert));
        }
        check_alert(a, &mut problems);
    }
    // A runbook for an alert that no longer exists is stale.
    for e in std::fs::read_dir(runbooks_dir()).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
        if p.extension().is_some_and(|x| x == "md") && stem != "README" && !seen.contains(&stem) {
            problems.push(format!("{}: no alert of that name", p.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_and_ics_command_alerts_fire_on_the_first_increase() {
    // The operator test gives them 15 s with 1 s scrapes and evaluation: no `for:`.
    let alerts = alert_rules();
    for name in [
        "InfrawatchPortScan",
        "InfrawatchIcsStateOrProgramCommand",
        "InfrawatchIcsControlOrConfigCommand",
        "InfrawatchIcsWriteCommand",
    ] {
        let a = alerts.iter().find(|a| a.alert == name).unwrap();
        assert!(
            a.for_.is_empty() || a.for_ == "0s" || a.for_ == "0m",
            "{name} has for: {}",
            a.for_
        );
        assert!(a.expr.contains("increase("), "{name}: {}", a.expr);
    }
}

/// Alert names with (firing, not firing) test cases in the promtool test files.
fn tested_alerts() -> BTreeMap<String, (bool, bool)> {
    let mut out: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for f in rule_test_files() {
        let y = try_yaml(&f).unwrap();
        let files: Vec<String> = y["rule_files"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{}: no rule_files", f.display()))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        // The tests must load the shipped rules, not a copy.
        for r in &files {
            let p = f.parent().unwrap().join(r);
            assert!(
                rule_files()
                    .iter()
                    .any(|s| s.canonicalize().ok() == p.canonicalize().ok()),
                "{}: rule file {r} is not one of deploy/prometheus/*.rules.yml",
                f.display()
            );
        }
        for t in y["tests"].as_sequence().unwrap() {
            for c in t["alert_rule_test"]
                .as_sequence()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let name = c["alertname"].as_str().unwrap().to_string();
                let fires = c["exp_alerts"].as_sequence().is_some_and(|s| !s.is_empty());
                let e = out.entry(name).or_default();
                if fires {
                    e.0 = true;
                } else {
                    e.1 = true;
                }
            }
        }
    }
    out
}

#[test]
fn every_alert_the_issue_names_has_a_rule_and_every_rule_has_test_cases() {
    let alerts = alert_rules();
    let names: BTreeSet<&str> = alerts.iter().map(|a| a.alert.as_str()).collect();
    let tested = tested_alerts();
    let mut problems = Vec::new();
    for (what, rules) in ISSUE_ALERTS {
        for r in *rules {
            if !names.contains(r) {
                problems.push(format!("issue alert `{what}`: no rule {r}"));
            }
        }
    }
    for n in &names {
        match tested.get(*n) {
            Some((true, true)) => {}
            Some((f, nf)) => problems.push(format!(
                "{n}: promtool test cases: firing {f}, not firing {nf} (both needed)"
            )),
            None => problems.push(format!("{n}: no promtool test case")),
        }
    }
    for n in tested.keys() {
        if !names.contains(n.as_str()) {
            problems.push(format!("promtool tests name {n}, which is no rule"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_dashboard_has_its_variables_panels_and_rate_intervals() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "schemaVersion {}",
        d["schemaVersion"]
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |n: &str| {
        vars.iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("no `{n}` variable"))
    };
    let ds = var("datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let agent = var("agent");
    assert_eq!(agent["type"], "query");
    assert_eq!(agent["multi"], true);
    assert_eq!(agent["includeAll"], true);
    assert_eq!(agent["datasource"]["uid"], "${datasource}");
    let vq = dashboard_variable_queries(&d);
    assert!(
        vq.iter()
            .any(|(n, q)| n == "agent" && q == "label_values(infrawatch_agent_up, agent)"),
        "{vq:?}"
    );

    let titles: BTreeSet<&str> = dashboard_panels(&d)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for t in ISSUE_PANELS {
        assert!(titles.contains(t), "no panel `{t}` (have {titles:?})");
    }

    let mut problems = Vec::new();
    for p in dashboard_panels(&d) {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or_default();
        if p["datasource"]["uid"] != "${datasource}" {
            problems.push(format!("{title}: panel datasource is not ${{datasource}}"));
        }
        for t in p["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if t.get("datasource").is_some() && t["datasource"]["uid"] != "${datasource}" {
                problems.push(format!(
                    "{title}: a target's datasource is not ${{datasource}}"
                ));
            }
        }
    }
    for (title, e) in dashboard_raw_queries(&d) {
        // Every range selector is $__rate_interval, so rate()/increase() always cover
        // at least four scrapes whatever the zoom (Grafana's documented rule).
        let mut rest = e.as_str();
        while let Some(i) = rest.find('[') {
            let after = &rest[i + 1..];
            let j = after.find(']').unwrap();
            if &after[..j] != "$__rate_interval" {
                problems.push(format!("{title}: range [{}] in {e}", &after[..j]));
            }
            rest = &after[j..];
        }
        if (e.contains("rate(") || e.contains("increase(")) && !e.contains("[$__rate_interval]") {
            problems.push(format!(
                "{title}: rate/increase without $__rate_interval: {e}"
            ));
        }
        if !e.contains("agent=~\"$agent\"") {
            problems.push(format!("{title}: not filtered by $agent: {e}"));
        }
        let s = substitute(&e, ".*");
        if s.contains('$') {
            problems.push(format!("{title}: unknown variable left in {s}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    if !promtool() {
        return;
    }
    // promtool parses rule expressions: one recording rule per query.
    let mut y = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, e)) in infrawatch_tests::dashboard_queries("a|b")
        .iter()
        .enumerate()
    {
        y.push_str(&format!(
            "      # {title}\n      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("dashboard.rules.yml");
    std::fs::write(&f, y).unwrap();
    run_promtool(&["check", "rules"], &f);
}

#[test]
fn every_metric_used_is_one_the_project_produces() {
    let used = metric_names_used();
    let produced = try_metric_names_in_source().unwrap();
    // Sanity: the scan found the agent's and the collector's names.
    for n in [
        "infrawatch_packets_total",
        "infrawatch_agent_up",
        "infrawatch_collector_rejected_reports_total",
    ] {
        assert!(
            produced.contains(n),
            "{n} not found in agent/collector source"
        );
    }
    let unknown: Vec<&String> = used.difference(&produced).collect();
    assert!(
        unknown.is_empty(),
        "metrics used by the rules or the dashboard that no agent/collector source names: {unknown:?}"
    );
    // The ones the issue's alerts and panels cannot do without.
    for n in [
        "infrawatch_anomalies_total",
        "infrawatch_ics_command_denials_total",
        "infrawatch_ics_commands_total",
        "infrawatch_policy_violations_total",
        "infrawatch_capture_drops_total",
        "infrawatch_capture_interface_up",
        "infrawatch_capture_last_packet_timestamp_seconds",
        "infrawatch_agent_up",
        "infrawatch_agent_last_report_timestamp_seconds",
        "infrawatch_config_last_reload_successful",
        "infrawatch_packets_total",
    ] {
        assert!(used.contains(n), "{n} is not used");
    }
}

#[test]
fn the_deploy_files_are_where_the_docs_say() {
    for p in [
        prometheus_dir().join("prometheus.yml"),
        prometheus_dir().join("infrawatch.rules.yml"),
        root().join("deploy/grafana/infrawatch.json"),
    ] {
        assert!(p.is_file(), "{} is missing", p.display());
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("deploy/prometheus/prometheus.yml")
            && readme.contains("deploy/grafana/infrawatch.json"),
        "README says how to load the rules and the dashboard"
    );
    // The runbook base follows the workspace's repository.
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let repo = cargo
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(
        RUNBOOK_BASE,
        format!("{repo}/blob/main/deploy/runbooks/"),
        "runbook_url base and Cargo.toml's repository disagree"
    );
}
