//! `infrawatch-agent`: the command line of DESIGN.md ("Command line").

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use infrawatch_agent::engine::EngineConfig;
use infrawatch_agent::{logging, replay, run};
use infrawatch_config::{RealEnvironment, load_agent_file};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "infrawatch-agent",
    version,
    about = "Passive monitor of industrial networks: capture, classify to the ICS command, track flows and devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent: capture live (or replay `[capture] pcap`) as configured.
    Run {
        #[arg(long, default_value = "/etc/infrawatch/agent.toml")]
        config: PathBuf,
        /// On exit, write the run's counters as `replay --format json` does.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
    },
    /// Validate agent.toml and/or policy.toml as start-up and reload do; exit 1 if invalid.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Analyse capture files offline and print a report.
    Replay {
        /// Site policy to judge traffic against.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Classify only; run no detector.
        #[arg(long)]
        no_detect: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// pcap or pcapng files, read in this order as one capture.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Learn a policy from traffic.
    Learn {
        #[arg(long, num_args = 1..)]
        pcap: Vec<PathBuf>,
        #[arg(long)]
        interface: Option<String>,
        #[arg(long)]
        duration: Option<String>,
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            summary_json,
        } => {
            logging::init("info");
            match run::run(&config, summary_json.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("infrawatch-agent: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config, policy } => check(config, policy),
        Command::Replay {
            policy,
            no_detect,
            format,
            files,
        } => {
            logging::init("warn");
            let judge = match (no_detect, policy) {
                (true, _) => replay::Judge::Off,
                (false, None) => replay::Judge::NoPolicy,
                (false, Some(p)) => match infrawatch_agent::judge::load(&p, 0) {
                    Ok((compiled, warnings)) => {
                        eprint!("{warnings}");
                        replay::Judge::Policy(compiled)
                    }
                    Err(errors) => {
                        eprint!("{errors}");
                        eprintln!("infrawatch-agent: {}: invalid policy", p.display());
                        return ExitCode::FAILURE;
                    }
                },
            };
            match replay_cmd(&files, format, &judge) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("infrawatch-agent: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Learn {
            pcap,
            interface,
            duration,
            policy,
            output,
        } => {
            logging::init("warn");
            match learn_cmd(pcap, interface, duration, policy, output) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("infrawatch-agent: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn replay_cmd(
    files: &[PathBuf],
    format: Format,
    judge: &replay::Judge,
) -> anyhow::Result<ExitCode> {
    let out = replay::replay_with(files, &EngineConfig::default(), judge);
    for e in &out.summary.file_errors {
        eprintln!("infrawatch-agent: warning: {}", e.error);
    }
    match format {
        Format::Json => {
            let text = serde_json::to_string(&out.summary).context("serialising the report")?;
            println!("{text}");
        }
        Format::Table => print!("{}", out.summary.table()),
    }
    Ok(if out.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn learn_cmd(
    pcap: Vec<PathBuf>,
    interface: Option<String>,
    duration: Option<String>,
    policy: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use infrawatch_agent::learn_cmd::{Input, learn};
    let input = match (pcap.is_empty(), interface, duration) {
        (false, None, None) => Input::Files(pcap),
        (true, Some(name), Some(d)) => {
            let duration = infrawatch_config::units::parse_duration(&d)
                .map_err(|e| anyhow::anyhow!("--duration {d}: {e}"))?;
            Input::Interface { name, duration }
        }
        (true, Some(_), None) => anyhow::bail!("--interface needs --duration (e.g. --duration 1h)"),
        _ => anyhow::bail!("give either --pcap FILE... or --interface IF --duration D"),
    };
    let name = output.as_deref().and_then(|o| o.file_stem()).map_or_else(
        || "learnt".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let learnt = learn(&input, &name, policy.as_deref())?;
    let r = &learnt.report;
    eprintln!(
        "learnt: {} conversations → {} rules ({} merged), {} zones, {} assets{}{}",
        r.conversations,
        r.rules,
        r.merged_rules,
        r.zones,
        r.assets,
        if r.capped {
            "; rule cap reached, conversations merged further"
        } else {
            ""
        },
        if r.dropped > 0 {
            format!("; {} conversations dropped (table full)", r.dropped)
        } else {
            String::new()
        },
    );
    if let Some(add) = &learnt.additions {
        if add.is_empty() {
            eprintln!(
                "nothing to add to {}",
                policy
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        } else {
            print!("{add}");
        }
    }
    match output {
        Some(path) => {
            std::fs::write(&path, &learnt.policy)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {}; review it, then `infrawatch-agent check --policy {}`",
                path.display(),
                path.display()
            );
        }
        None if learnt.additions.is_none() => print!("{}", learnt.policy),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn check(config: Option<PathBuf>, policy: Option<PathBuf>) -> ExitCode {
    let config = match (&config, &policy) {
        (None, None) => Some(PathBuf::from("/etc/infrawatch/agent.toml")),
        _ => config,
    };
    let mut ok = true;
    let mut policy = policy;
    if let Some(path) = config {
        let loaded = load_agent_file(&path, &RealEnvironment);
        let mut errors = loaded.error_count();
        eprint!("{}", loaded.render());
        if let Some(cfg) = &loaded.config {
            // The policy the agent would load is checked too, unless another is given.
            if policy.is_none() {
                policy.clone_from(&cfg.agent.policy);
            }
            // A capture NIC should be receive-only: an address on it lets the host speak
            // on the monitored network. A warning, not an error (exit 0).
            for iface in &cfg.capture.interfaces {
                match infrawatch_agent::capture::addrs::interface_addresses(iface) {
                    Ok(addrs) if !addrs.is_empty() => {
                        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                        eprintln!(
                            "{}: warning: capture interface `{iface}` has an IP address ({})\nhelp: a capture NIC should be receive-only with no address: `ip addr flush dev {iface}`, IPv6 disabled on it, `ip link set dev {iface} arp off up` (README, \"Under systemd, and the capture NIC\")",
                            path.display(),
                            list.join(", ")
                        );
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!(
                        "{}: warning: cannot list the addresses of `{iface}`: {e}",
                        path.display()
                    ),
                }
            }
            for (i, expr) in cfg.capture.exclude.iter().enumerate() {
                if let Err(e) = run::compile_excludes(std::slice::from_ref(expr)) {
                    errors += 1;
                    eprintln!(
                        "{}: error: [capture] exclude #{}: {e}",
                        path.display(),
                        i + 1
                    );
                }
            }
        }
        if errors > 0 {
            ok = false;
            eprintln!("{}: {} error(s)", path.display(), errors);
        } else {
            println!("{}: ok", path.display());
        }
    }
    if let Some(path) = policy {
        // The same loader and vocabulary as start-up and reload.
        let vocab = infrawatch_agent::vocab::vocabulary();
        let loaded = infrawatch_config::load_policy_file(&path, &vocab);
        eprint!("{}", loaded.render());
        match &loaded.config {
            Some(p) => {
                let count = |n: usize, what: &str| match n {
                    1 => format!("1 {what}"),
                    n => format!("{n} {what}s"),
                };
                println!(
                    "{}: ok ({}, {}, {}, {})",
                    path.display(),
                    count(p.zones.len(), "zone"),
                    count(p.assets.len(), "asset"),
                    count(p.allow.len(), "rule"),
                    count(p.maintenance.len(), "maintenance window"),
                );
            }
            None => {
                ok = false;
                eprintln!("{}: {} error(s)", path.display(), loaded.error_count());
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
