//! The agent's state as metric samples (DESIGN.md, "Metrics"): what a report carries in
//! `counters` and `gauges`.
//!
//! Pure: [`samples`] turns a [`MetricInputs`] snapshot (counters published by the capture
//! threads, the detectors' counts, the policy in force, the event store's statistics)
//! into [`Sample`]s. Names follow Prometheus rules (`infrawatch_` prefix, base units,
//! `_total` counters); labels are sorted by name and every value comes from a bounded
//! set (interface names from the config, protocol ids, commands and classes, layers,
//! kinds, severities, zone and rule names of the policy). There is no `agent` label: the
//! collector adds it. Every series that can appear is present from the start at 0 (each
//! kind × severity, each protocol and command, each zone pair and rule of the policy).

use crate::command::{Class, Cmd};
use crate::decode::Layer;
use crate::detect::Kind;
use crate::detect::site::{CompiledPolicy, SiteCounts};
use crate::event::AnomalyCounts;
use crate::proto::Proto;
use crate::sink::SinkStats;
use crate::stats::Counters;
use crate::store::StoreStats;
use infrawatch_config::policy::Level;
use infrawatch_config::report::Sample;

/// Label value for "no zone" / "no rule".
pub const NONE: &str = "none";

/// One capture source's published state.
#[derive(Clone, Debug, Default)]
pub struct InterfaceInput {
    /// `eth1`, or `pcap` for replayed files.
    pub interface: String,
    pub counters: Counters,
    pub kernel_drops: u64,
    /// ns since 1970 (0: no packet yet).
    pub last_packet_ns: u64,
    /// `None`: unknown (replayed files: reported up).
    pub up: Option<bool>,
}

/// Everything the metrics are computed from.
#[derive(Clone, Debug, Default)]
pub struct MetricInputs<'a> {
    pub interfaces: Vec<InterfaceInput>,
    /// Every engine's and the supervisor's anomaly counts, added.
    pub anomalies: AnomalyCounts,
    /// Every engine's site counts, added (see [`merge_site`]).
    pub site: SiteCounts,
    pub policy: Option<&'a CompiledPolicy>,
    pub reload_ok: bool,
    pub store: Option<StoreStats>,
    pub sink: SinkStats,
    pub report_failures: u64,
    pub reports_sent: u64,
}

/// Adds one engine's site counts to `into` (element-wise; an engine still sized for an
/// older policy adds into the rows both have).
pub fn merge_site(into: &mut SiteCounts, o: &SiteCounts) {
    if into.violations.len() < o.violations.len() {
        into.violations.resize(o.violations.len(), 0);
    }
    for (a, b) in into.violations.iter_mut().zip(&o.violations) {
        *a += b;
    }
    if into.denials.len() < o.denials.len() {
        into.denials.resize(o.denials.len(), [0; 8]);
    }
    for (a, b) in into.denials.iter_mut().zip(&o.denials) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
    into.silence_evictions += o.silence_evictions;
    into.baseline_full += o.baseline_full;
}

/// `infrawatch_build_info{version, revision}` values.
pub fn build_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
pub fn build_revision() -> &'static str {
    option_env!("INFRAWATCH_REVISION").unwrap_or("unknown")
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    labels.sort();
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Counters (`_total`) and gauges, in a stable order.
pub fn samples(m: &MetricInputs<'_>) -> (Vec<Sample>, Vec<Sample>) {
    let mut c = Vec::new();
    let mut g = Vec::new();
    let mut total = Counters::default();
    for i in &m.interfaces {
        let ifc = i.interface.as_str();
        for p in Proto::ALL {
            let pc = i.counters.proto_ref(*p);
            let l = [("interface", ifc), ("protocol", p.name())];
            c.push(sample("infrawatch_packets_total", &l, pc.packets as f64));
            c.push(sample("infrawatch_bytes_total", &l, pc.bytes as f64));
        }
        c.push(sample(
            "infrawatch_capture_drops_total",
            &[("interface", ifc)],
            i.kernel_drops as f64,
        ));
        g.push(sample(
            "infrawatch_capture_last_packet_timestamp_seconds",
            &[("interface", ifc)],
            i.last_packet_ns as f64 / 1e9,
        ));
        g.push(sample(
            "infrawatch_capture_interface_up",
            &[("interface", ifc)],
            if i.up.unwrap_or(true) { 1.0 } else { 0.0 },
        ));
        total.merge(&i.counters);
    }
    for (l, n) in Layer::ALL.iter().zip(total.decode_errors.iter()) {
        c.push(sample(
            "infrawatch_decode_errors_total",
            &[("layer", l.name())],
            *n as f64,
        ));
    }
    g.push(sample(
        "infrawatch_flows_active",
        &[],
        total.flows_active as f64,
    ));
    c.push(sample(
        "infrawatch_flow_evictions_total",
        &[],
        total.flow_evictions as f64,
    ));
    g.push(sample(
        "infrawatch_assets_active",
        &[],
        total.assets_active as f64,
    ));
    c.push(sample(
        "infrawatch_asset_evictions_total",
        &[],
        total.asset_evictions as f64,
    ));
    for (cmd, n) in Cmd::ALL.iter().zip(total.commands.iter()) {
        c.push(sample(
            "infrawatch_ics_commands_total",
            &[
                ("protocol", cmd.proto().name()),
                ("command", cmd.name()),
                ("class", cmd.class().name()),
            ],
            *n as f64,
        ));
    }
    for k in Kind::ALL {
        for lv in Level::ALL {
            c.push(sample(
                "infrawatch_anomalies_total",
                &[("kind", k.name()), ("severity", lv.name())],
                m.anomalies.get(*k, lv) as f64,
            ));
        }
    }
    if let Some(p) = m.policy {
        let zones: Vec<&str> = p
            .policy
            .zones
            .iter()
            .map(|z| z.name.as_str())
            .chain(std::iter::once(NONE))
            .collect();
        let z = zones.len();
        for (a, src) in zones.iter().enumerate() {
            for (b, dst) in zones.iter().enumerate() {
                let n = m.site.violations.get(a * z + b).copied().unwrap_or(0);
                c.push(sample(
                    "infrawatch_policy_violations_total",
                    &[("src_zone", src), ("dst_zone", dst)],
                    n as f64,
                ));
            }
        }
        let rules = p
            .policy
            .allow
            .iter()
            .map(|r| r.name.as_str())
            .chain(std::iter::once(NONE));
        for (i, rule) in rules.enumerate() {
            let row = m.site.denials.get(i).copied().unwrap_or([0; 8]);
            for (class, n) in Class::ALL.iter().zip(row.iter()) {
                c.push(sample(
                    "infrawatch_ics_command_denials_total",
                    &[("rule", rule), ("class", class.name())],
                    *n as f64,
                ));
            }
        }
        g.push(sample(
            "infrawatch_policy_info",
            &[("name", &p.policy.name), ("sha256", &p.policy.sha256)],
            1.0,
        ));
    }
    g.push(sample(
        "infrawatch_config_last_reload_successful",
        &[],
        if m.reload_ok { 1.0 } else { 0.0 },
    ));
    g.push(sample(
        "infrawatch_build_info",
        &[("version", build_version()), ("revision", build_revision())],
        1.0,
    ));
    let st = m.store.unwrap_or_default();
    g.push(sample("infrawatch_event_store_bytes", &[], st.bytes as f64));
    g.push(sample(
        "infrawatch_event_store_records",
        &[],
        st.records as f64,
    ));
    c.push(sample(
        "infrawatch_event_store_dropped_records_total",
        &[],
        st.dropped_records_total as f64,
    ));
    c.push(sample(
        "infrawatch_event_store_write_errors_total",
        &[],
        (st.write_errors_total + m.sink.store_errors) as f64,
    ));
    c.push(sample("infrawatch_events_total", &[], m.sink.events as f64));
    c.push(sample(
        "infrawatch_agent_reports_total",
        &[],
        m.reports_sent as f64,
    ));
    c.push(sample(
        "infrawatch_agent_report_failures_total",
        &[],
        m.report_failures as f64,
    ));
    (c, g)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn valid_name(n: &str) -> bool {
        let mut b = n.bytes();
        b.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == b'_' || f == b':')
            && b.all(|x| x.is_ascii_alphanumeric() || x == b'_' || x == b':')
    }

    fn policy() -> CompiledPolicy {
        let text = "[policy]\nname = \"lab\"\n[zones]\nlab = [\"192.168.60.0/24\"]\nplant = [\"10.0.0.0/8\"]\n[[allow]]\nname = \"dnp3 reads\"\nfrom = \"zone:lab\"\nto = \"zone:lab\"\nprotocol = \"dnp3\"\nfunctions = [\"read\"]\n";
        let loaded =
            infrawatch_config::policy::load_policy("p.toml", text, &crate::vocab::vocabulary());
        CompiledPolicy::compile(loaded.config.unwrap(), 0)
    }

    fn inputs(p: &CompiledPolicy) -> MetricInputs<'_> {
        let mut counters = Counters::default();
        counters.proto(Proto::Dnp3).packets = 7;
        Counters::bump(&mut counters.commands, Cmd::ALL[3].index(), 2);
        let site = SiteCounts {
            violations: vec![0, 1, 0, 0, 0, 0, 0, 0, 3],
            denials: vec![[1, 0, 0, 0, 0, 0, 0, 0], [0; 8]],
            ..SiteCounts::default()
        };
        MetricInputs {
            interfaces: vec![
                InterfaceInput {
                    interface: "eth1".into(),
                    counters: counters.clone(),
                    kernel_drops: 4,
                    last_packet_ns: 1_500_000_000,
                    up: Some(false),
                },
                InterfaceInput {
                    interface: "pcap".into(),
                    counters,
                    ..InterfaceInput::default()
                },
            ],
            site,
            policy: Some(p),
            reload_ok: true,
            ..MetricInputs::default()
        }
    }

    #[test]
    fn names_and_labels_follow_the_rules_and_bounded_sets() {
        let p = policy();
        let m = inputs(&p);
        let (counters, gauges) = samples(&m);
        let mut bounded: HashMap<&str, HashSet<String>> = HashMap::new();
        let mut add = |k: &'static str, vals: Vec<String>| {
            bounded.entry(k).or_default().extend(vals);
        };
        add("interface", vec!["eth1".into(), "pcap".into()]);
        add(
            "protocol",
            Proto::ALL.iter().map(|p| p.name().into()).collect(),
        );
        add(
            "command",
            Cmd::ALL.iter().map(|c| c.name().into()).collect(),
        );
        add(
            "class",
            Class::ALL.iter().map(|c| c.name().into()).collect(),
        );
        add(
            "layer",
            Layer::ALL.iter().map(|l| l.name().into()).collect(),
        );
        add("kind", Kind::ALL.iter().map(|k| k.name().into()).collect());
        add(
            "severity",
            Level::ALL.iter().map(|l| l.name().into()).collect(),
        );
        let zones = vec!["lab".into(), "plant".into(), NONE.into()];
        add("src_zone", zones.clone());
        add("dst_zone", zones);
        add("rule", vec!["dnp3 reads".into(), NONE.into()]);
        add("name", vec!["lab".into()]);
        add("sha256", vec![p.policy.sha256.clone()]);
        add("version", vec![build_version().into()]);
        add("revision", vec![build_revision().into()]);
        let mut seen = HashSet::new();
        for s in counters.iter().chain(&gauges) {
            assert!(valid_name(&s.name), "{}", s.name);
            assert!(s.name.starts_with("infrawatch_"), "{}", s.name);
            for (k, v) in &s.labels {
                assert!(valid_name(k) && !k.starts_with("__"), "{k}");
                assert_ne!(k, "agent");
                assert!(bounded[k.as_str()].contains(v), "{}{{{k}={v}}}", s.name);
            }
            let mut sorted = s.labels.clone();
            sorted.sort();
            sorted.dedup_by(|a, b| a.0 == b.0);
            assert_eq!(sorted, s.labels, "labels sorted, unique");
            assert!(seen.insert((s.name.clone(), s.labels.clone())), "{s:?}");
        }
        for s in &counters {
            assert!(s.name.ends_with("_total"), "{}", s.name);
        }
        for s in &gauges {
            assert!(!s.name.ends_with("_total"), "{}", s.name);
        }
    }

    fn value(v: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        want.sort();
        v.iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    #[test]
    fn every_anomaly_series_exists_at_zero_and_values_are_carried() {
        let p = policy();
        let mut m = inputs(&p);
        let (c, g) = samples(&MetricInputs::default());
        for k in Kind::ALL {
            for lv in Level::ALL {
                assert_eq!(
                    value(
                        &c,
                        "infrawatch_anomalies_total",
                        &[("kind", k.name()), ("severity", lv.name())]
                    ),
                    Some(0.0)
                );
            }
        }
        assert_eq!(value(&g, "infrawatch_flows_active", &[]), Some(0.0));
        m.anomalies.bump(Kind::IcsCommand, Level::Critical);
        let (c, g) = samples(&m);
        assert_eq!(
            value(
                &c,
                "infrawatch_anomalies_total",
                &[("kind", "ics_command"), ("severity", "critical")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &c,
                "infrawatch_packets_total",
                &[("interface", "eth1"), ("protocol", "dnp3")]
            ),
            Some(7.0)
        );
        let cmd = Cmd::ALL[3];
        assert_eq!(
            value(
                &c,
                "infrawatch_ics_commands_total",
                &[
                    ("protocol", cmd.proto().name()),
                    ("command", cmd.name()),
                    ("class", cmd.class().name())
                ]
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &c,
                "infrawatch_policy_violations_total",
                &[("src_zone", "lab"), ("dst_zone", "plant")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &c,
                "infrawatch_policy_violations_total",
                &[("src_zone", "none"), ("dst_zone", "none")]
            ),
            Some(3.0)
        );
        assert_eq!(
            value(
                &c,
                "infrawatch_ics_command_denials_total",
                &[("rule", "dnp3 reads"), ("class", Class::ALL[0].name())]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &c,
                "infrawatch_capture_drops_total",
                &[("interface", "eth1")]
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &g,
                "infrawatch_capture_interface_up",
                &[("interface", "eth1")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &g,
                "infrawatch_capture_last_packet_timestamp_seconds",
                &[("interface", "eth1")]
            ),
            Some(1.5)
        );
        assert_eq!(
            value(
                &g,
                "infrawatch_policy_info",
                &[("name", "lab"), ("sha256", &p.policy.sha256)]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn site_counts_merge_elementwise() {
        let mut a = SiteCounts::default();
        let b = SiteCounts {
            violations: vec![1, 2],
            denials: vec![[1; 8]],
            silence_evictions: 1,
            baseline_full: 0,
        };
        merge_site(&mut a, &b);
        merge_site(&mut a, &b);
        assert_eq!(a.violations, vec![2, 4]);
        assert_eq!(a.denials, vec![[2; 8]]);
    }
}
