//! Load generator of `bench/collector.sh`: N simulated agents × S series each, reporting
//! to one collector (`POST /api/v1/reports`, gzip'd JSON, as the agent sends it) or
//! pushing the same series to a Prometheus Pushgateway (`PUT
//! /metrics/job/infrawatch/agent/<id>`, gzip'd Prometheus text format), so both servers
//! hold identical series.
//!
//! The series are the agent's own: [`infrawatch_agent::metrics::samples`] for a host with
//! two capture interfaces and a site policy of 3 zones and 5 rules (packets and bytes
//! per interface × protocol, ICS commands per protocol × command × class, anomalies per
//! kind × severity, zone pairs, rule × class denials, …). A real agent reports each of
//! its ~500 ICS commands from the start, so it has about 750 series; to make S per agent
//! the commands are thinned evenly (S = 500 keeps about 210 of them). Counters are cumulative and
//! grow each round; values are drawn from a fixed hash, so every run and both targets
//! see the same numbers.
//!
//! Traffic goes only to the URL given, which must be on loopback; the number of requests
//! is bounded (agents × rounds) and so is the time (`--max-seconds`, and a timeout on
//! every connection). Every body is encoded before the first round, so the rounds time
//! the server, not the generator.
//!
//! Prints one JSON object on stdout; exits 1 when any request failed.
//!
//! ```text
//! cargo build --release -p infrawatch-collector --example load
//! target/release/examples/load --target collector --url http://127.0.0.1:9700 \
//!     --agents 1000 --series 500 --rounds 3 --interval 10
//! target/release/examples/load --list --series 500      # the series of one agent
//! ```

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use infrawatch_agent::detect::site::CompiledPolicy;
use infrawatch_agent::metrics::{InterfaceInput, MetricInputs, samples};
use infrawatch_collector::state::{escape_label_value, write_value};
use infrawatch_config::report::{REPORT_PATH, REPORT_VERSION, Report, Sample};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// infrawatch-collector: POST /api/v1/reports, gzip'd JSON.
    Collector,
    /// Prometheus Pushgateway: PUT /metrics/job/infrawatch/agent/<id>, gzip'd text.
    Pushgateway,
}

#[derive(Parser, Debug)]
#[command(
    about = "Simulated agents reporting to a collector or a Pushgateway (bench/collector.sh)"
)]
struct Args {
    /// Where to send.
    #[arg(long, value_enum, default_value = "collector")]
    target: Target,
    /// `http://127.0.0.1:PORT` (loopback only).
    #[arg(long, default_value = "")]
    url: String,
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Series per agent.
    #[arg(long, default_value_t = 500)]
    series: usize,
    /// Reports per agent.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// The first round's number: its `seq`, and how far the counters have grown (a
    /// later run of the generator carries on where an earlier one stopped).
    #[arg(long, default_value_t = 1)]
    first_round: u64,
    /// The wall clock of round 0, Unix seconds (timestamps in the gauges and reports);
    /// default now. Give both targets the same one, so they hold the same values.
    #[arg(long)]
    clock: Option<f64>,
    /// Seconds between rounds, the agents spread evenly over it (the agent's
    /// `[report] interval`); 0: rounds back to back, as fast as the server answers.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Give up (exit 1) when the rounds take longer than this.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
    /// Print one agent's series (and a count per metric name) and exit.
    #[arg(long)]
    list: bool,
}

/// Hard bounds on the load, whatever the arguments say.
const MAX_AGENTS: usize = 100_000;
const MAX_ROUNDS: u64 = 100;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// The site policy the simulated agents run: 3 zones and 5 rules, so the zone-pair and
/// rule × class series exist as on a real site.
const POLICY: &str = r#"
[policy]
name = "bench-site"
[zones]
control = ["10.10.0.0/24"]
scada = ["10.20.0.0/24"]
dmz = ["10.30.0.0/24"]
[[allow]]
name = "hmi polls plcs"
from = "zone:scada"
to = "zone:control"
protocol = "modbus"
functions = ["read_holding_registers", "read_input_registers"]
[[allow]]
name = "scada dnp3"
from = "zone:scada"
to = "zone:control"
protocol = "dnp3"
[[allow]]
name = "historian opcua"
from = "zone:dmz"
to = "zone:scada"
protocol = "opcua"
[[allow]]
name = "eng s7"
from = "zone:scada"
to = "zone:control"
protocol = "s7comm"
[[allow]]
name = "dns"
from = "any"
to = "zone:dmz"
protocol = "dns"
"#;

/// One series of a simulated agent: counter or gauge, name, sorted labels.
struct SeriesDef {
    counter: bool,
    name: String,
    labels: Vec<(String, String)>,
}

/// The series every simulated agent reports, `n` of them: the agent's own metric set
/// for interfaces `eth1`, `eth2` (more when `n` needs them) with the ICS commands
/// thinned to make `n`.
fn series_set(n: usize) -> anyhow::Result<Vec<SeriesDef>> {
    let loaded = infrawatch_config::policy::load_policy(
        "bench-policy.toml",
        POLICY,
        &infrawatch_agent::vocab::vocabulary(),
    );
    let Some(policy) = loaded.config else {
        bail!("the bench policy does not load:\n{}", loaded.render());
    };
    let policy = CompiledPolicy::compile(policy, 0);
    let build = |interfaces: usize| {
        let m = MetricInputs {
            interfaces: (1..=interfaces)
                .map(|i| InterfaceInput {
                    interface: format!("eth{i}"),
                    ..InterfaceInput::default()
                })
                .collect(),
            policy: Some(&policy),
            reload_ok: true,
            ..MetricInputs::default()
        };
        let (c, g) = samples(&m);
        let mut out: Vec<SeriesDef> = Vec::new();
        let mut per_if: Vec<SeriesDef> = Vec::new();
        for (counter, s) in c
            .into_iter()
            .map(|s| (true, s))
            .chain(g.into_iter().map(|s| (false, s)))
        {
            let d = SeriesDef {
                counter,
                name: s.name,
                labels: s.labels,
            };
            if d.labels.iter().any(|(k, _)| k == "interface") {
                per_if.push(d);
            } else {
                out.push(d);
            }
        }
        // Interface by interface (the agent's order within each).
        per_if.sort_by_key(|d| {
            d.labels
                .iter()
                .find(|(k, _)| k == "interface")
                .and_then(|(_, v)| v.trim_start_matches("eth").parse::<usize>().ok())
                .unwrap_or(0)
        });
        out.extend(per_if);
        out
    };
    // A real agent reports every ICS command (about 500) at 0 from the start; at S
    // series per agent keep two interfaces' worth of everything else and thin the
    // commands evenly across protocols to fill S (more interfaces when S is larger).
    let is_cmd = |d: &SeriesDef| d.name == "infrawatch_ics_commands_total";
    let mut interfaces = 2;
    let mut set = build(interfaces);
    while set.len() < n {
        interfaces += 1;
        if interfaces > 1000 {
            bail!("cannot make {n} series per agent");
        }
        set = build(interfaces);
    }
    let (cmds, mut others): (Vec<SeriesDef>, Vec<SeriesDef>) = set.into_iter().partition(is_cmd);
    if others.len() >= n {
        // Very few series (the smoke run): the first n of the rest.
        others.truncate(n);
        return Ok(others);
    }
    let want = n - others.len();
    if cmds.len() <= want {
        // More interfaces than needed: the interface series at the end go.
        others.extend(cmds);
        others.truncate(n);
        return Ok(others);
    }
    let total = cmds.len();
    let mut picked: Vec<SeriesDef> = cmds
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i * want) / total != ((i + 1) * want) / total)
        .map(|(_, d)| d)
        .collect();
    picked.truncate(want);
    others.extend(picked);
    Ok(others)
}

/// SplitMix64: a fixed hash, so values are the same in every run and for both targets.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The value of series `i` of agent `a` at round `round` (from 1). Counters grow each
/// round (packets and bytes by a lot, commands by some, anomalies and denials mostly
/// stay 0, as on a quiet site); gauges are as an agent reports them.
fn value(d: &SeriesDef, a: usize, i: usize, round: u64, t0_s: f64) -> f64 {
    let h = mix(((a as u64) << 32) ^ i as u64);
    let h2 = mix(h);
    if d.counter {
        let (base, rate, quiet) = match d.name.as_str() {
            "infrawatch_bytes_total" => (h % 50_000_000_000, h2 % 20_000_000, h.is_multiple_of(4)),
            "infrawatch_packets_total" => (h % 100_000_000, h2 % 50_000, h.is_multiple_of(4)),
            "infrawatch_ics_commands_total" => (h % 10_000_000, h2 % 5_000, h.is_multiple_of(2)),
            _ => (h % 100, h2 % 3, !h.is_multiple_of(10)),
        };
        if quiet {
            0.0
        } else {
            (base + rate * round) as f64
        }
    } else {
        match d.name.as_str() {
            "infrawatch_capture_last_packet_timestamp_seconds" => {
                // Millisecond precision, as the agent's nanoseconds / 1e9 give.
                ((t0_s + round as f64 * 10.0) * 1000.0).round() / 1000.0
                    - (h % 1000) as f64 / 1000.0
            }
            "infrawatch_flows_active" | "infrawatch_assets_active" => (h % 5000) as f64,
            "infrawatch_event_store_bytes" => (h % 100_000_000) as f64,
            "infrawatch_event_store_records" => (h % 100_000) as f64,
            _ => 1.0,
        }
    }
}

fn agent_id(a: usize) -> String {
    format!("bench-agent-{a:05}")
}

fn samples_of(set: &[SeriesDef], a: usize, round: u64, t0_s: f64, counter: bool) -> Vec<Sample> {
    set.iter()
        .enumerate()
        .filter(|(_, d)| d.counter == counter)
        .map(|(i, d)| Sample {
            name: d.name.clone(),
            labels: d.labels.clone(),
            value: value(d, a, i, round, t0_s),
        })
        .collect()
}

/// The collector's body: the agent's report, gzip'd JSON.
fn report_body(set: &[SeriesDef], a: usize, round: u64, t0_s: f64) -> anyhow::Result<Vec<u8>> {
    let r = Report {
        version: REPORT_VERSION,
        agent: agent_id(a),
        boot: "bench-boot".into(),
        seq: round,
        sent_unix_ms: ((t0_s + round as f64 * 10.0) * 1000.0) as u64,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        counters: samples_of(set, a, round, t0_s, true),
        gauges: samples_of(set, a, round, t0_s, false),
        assets: Vec::new(),
        events: Vec::new(),
    };
    // As the agent encodes (agent/src/report.rs `encode`): the JSON whole, then gzip in
    // one write (serialising straight into the encoder costs ~10x more CPU).
    let json = serde_json::to_vec(&r)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json)?;
    Ok(gz.finish()?)
}

/// The Pushgateway's body: the same series in the text format (one `# TYPE` per name;
/// the `agent` label comes from the grouping key in the URL), gzip'd at the level the
/// agent uses.
fn push_body(set: &[SeriesDef], a: usize, round: u64, t0_s: f64) -> anyhow::Result<Vec<u8>> {
    let mut groups: BTreeMap<&str, (bool, Vec<usize>)> = BTreeMap::new();
    for (i, d) in set.iter().enumerate() {
        groups
            .entry(&d.name)
            .or_insert((d.counter, Vec::new()))
            .1
            .push(i);
    }
    let mut text = Vec::new();
    for (name, (counter, idx)) in groups {
        let _ = write!(
            text,
            "# HELP {name} Reported by the agents (see the metric reference).\n# TYPE {name} {}\n",
            if counter { "counter" } else { "gauge" }
        );
        for i in idx {
            let Some(d) = set.get(i) else { continue };
            text.extend_from_slice(name.as_bytes());
            if !d.labels.is_empty() {
                text.push(b'{');
                for (n, (k, v)) in d.labels.iter().enumerate() {
                    if n > 0 {
                        text.push(b',');
                    }
                    text.extend_from_slice(k.as_bytes());
                    text.extend_from_slice(b"=\"");
                    escape_label_value(&mut text, v);
                    text.push(b'"');
                }
                text.push(b'}');
            }
            text.push(b' ');
            write_value(&mut text, value(d, a, i, round, t0_s));
            text.push(b'\n');
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text)?;
    Ok(gz.finish()?)
}

/// `http://HOST:PORT` on loopback only.
fn loopback(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must be http://127.0.0.1:PORT")?;
    let hostport = rest.trim_end_matches('/');
    let addr: SocketAddr = hostport
        .parse()
        .with_context(|| format!("--url `{url}`: give an IP address and a port"))?;
    if !addr.ip().is_loopback() {
        bail!("--url `{url}`: the load goes to loopback only (127.0.0.0/8, [::1])");
    }
    Ok(addr)
}

/// One request on its own connection (as the agent does); the status code.
fn send(addr: SocketAddr, head: &str, body: &[u8]) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    let mut req = Vec::with_capacity(head.len() + body.len());
    req.extend_from_slice(head.as_bytes());
    req.extend_from_slice(body);
    s.write_all(&req)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
    let status = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP answer: {}", String::from_utf8_lossy(line)))?;
    Ok(status)
}

fn head(target: Target, addr: SocketAddr, a: usize, len: usize) -> String {
    match target {
        Target::Collector => format!(
            "POST {REPORT_PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: infrawatch-bench\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        ),
        Target::Pushgateway => format!(
            "PUT /metrics/job/infrawatch/agent/{} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: infrawatch-bench\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            agent_id(a)
        ),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agents == 0 || args.agents > MAX_AGENTS {
        bail!("--agents: 1 to {MAX_AGENTS}");
    }
    if args.rounds == 0 || args.rounds > MAX_ROUNDS {
        bail!("--rounds: 1 to {MAX_ROUNDS}");
    }
    if args.first_round == 0 || args.first_round > 1_000_000 {
        bail!("--first-round: 1 to 1000000");
    }
    if !(0.0..=3600.0).contains(&args.interval) {
        bail!("--interval: 0 to 3600 s");
    }
    let set = series_set(args.series)?;
    if args.list {
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &set {
            *per.entry(&d.name).or_default() += 1;
            let labels: Vec<String> = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "{} {} {{{}}}",
                if d.counter { "counter" } else { "gauge  " },
                d.name,
                labels.join(",")
            );
        }
        for (n, c) in per {
            println!("# {c:5} {n}");
        }
        println!("# {} series per agent", set.len());
        return Ok(());
    }
    let addr = loopback(&args.url)?;
    let t0_s = args.clock.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });

    // Every body, before the first round: the generator's own cost stays out of them.
    let t = Instant::now();
    let mut bodies: Vec<Vec<Vec<u8>>> = Vec::new();
    for round in args.first_round..args.first_round + args.rounds {
        let mut v = Vec::with_capacity(args.agents);
        for a in 0..args.agents {
            v.push(match args.target {
                Target::Collector => report_body(&set, a, round, t0_s)?,
                Target::Pushgateway => push_body(&set, a, round, t0_s)?,
            });
        }
        bodies.push(v);
    }
    let encode_s = t.elapsed().as_secs_f64();
    let body_bytes: usize = bodies.iter().flatten().map(Vec::len).sum();

    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let failed = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(None::<String>);
    let latency_us_max = AtomicU64::new(0);
    let latency_us_sum = AtomicU64::new(0);
    let mut round_wall = Vec::new();
    let threads = args.threads.clamp(1, 64);
    let start = Instant::now();
    for (r, round_bodies) in bodies.iter().enumerate() {
        // Paced: round r starts at r × interval; agent a at a × interval / agents in it.
        let round_start = start + Duration::from_secs_f64(args.interval * r as f64);
        if let Some(wait) = round_start.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let a = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = round_bodies.get(a) else {
                            break;
                        };
                        if Instant::now() > deadline {
                            failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if args.interval > 0.0 {
                            let at = round_start
                                + Duration::from_secs_f64(
                                    args.interval * a as f64 / args.agents as f64,
                                );
                            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let sent = Instant::now();
                        let result = send(addr, &head(args.target, addr, a, body.len()), body);
                        let us = sent.elapsed().as_micros() as u64;
                        latency_us_max.fetch_max(us, Ordering::Relaxed);
                        latency_us_sum.fetch_add(us, Ordering::Relaxed);
                        let problem = match result {
                            Ok(code) if (200..300).contains(&code) => None,
                            Ok(code) => Some(format!("{}: HTTP {code}", agent_id(a))),
                            Err(e) => Some(format!("{}: {e:#}", agent_id(a))),
                        };
                        if let Some(p) = problem {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut first = first_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            first.get_or_insert(p);
                        }
                    }
                });
            }
        });
        round_wall.push(t.elapsed().as_secs_f64());
    }
    let total_s = start.elapsed().as_secs_f64();
    let reports = args.agents as u64 * args.rounds;
    let failed = failed.load(Ordering::Relaxed);
    let first_error = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = serde_json::json!({
        "target": format!("{:?}", args.target).to_lowercase(),
        "agents": args.agents,
        "series_per_agent": set.len(),
        "rounds": args.rounds,
        "first_round": args.first_round,
        "interval_s": args.interval,
        "threads": threads,
        "reports": reports,
        "failed": failed,
        "first_error": first_error,
        "body_bytes_total": body_bytes,
        "body_bytes_per_report": body_bytes as f64 / reports as f64,
        "encode_s": encode_s,
        "round_wall_s": round_wall,
        "total_s": total_s,
        "latency_ms_mean": latency_us_sum.load(Ordering::Relaxed) as f64 / reports as f64 / 1000.0,
        "latency_ms_max": latency_us_max.load(Ordering::Relaxed) as f64 / 1000.0,
    });
    println!("{out}");
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
