//! `infrawatch-collector`: `run --config FILE` (the daemon) and `check --config FILE`
//! (the same validation as start-up; exit 0 when valid, 1 with every diagnostic).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use infrawatch_collector::server::{App, now_ms, serve};
use infrawatch_config::{RealEnvironment, load_collector_file};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

const DEFAULT_CONFIG: &str = "/etc/infrawatch/collector.toml";

#[derive(Parser)]
#[command(
    name = "infrawatch-collector",
    version,
    about = "infrawatch collector: receives agent reports, serves Prometheus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Run {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate collector.toml and exit (0: valid, 1: errors, printed with positions).
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => {
            init_logging();
            match run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("infrawatch-collector: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging() {
    let filter =
        EnvFilter::try_from_env("INFRAWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn check(path: &Path) -> ExitCode {
    let loaded = load_collector_file(path, &RealEnvironment);
    eprint!("{}", loaded.render());
    if loaded.config.is_some() {
        println!("{}: ok", path.display());
        ExitCode::SUCCESS
    } else {
        eprintln!("{}: {} error(s)", path.display(), loaded.error_count());
        ExitCode::FAILURE
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    let loaded = load_collector_file(path, &RealEnvironment);
    if !loaded.diagnostics.is_empty() {
        eprint!("{}", loaded.render());
    }
    let errors = loaded.error_count();
    let Some(cfg) = loaded.config else {
        bail!("{}: {errors} error(s)", path.display());
    };
    let (Some(ingest_addr), Some(metrics_addr)) =
        (cfg.ingest.listen_addr(), cfg.metrics.listen_addr())
    else {
        bail!("listen addresses missing");
    };
    let tls = match (&cfg.ingest.ca, &cfg.ingest.cert, &cfg.ingest.key) {
        (Some(ca), Some(cert), Some(key)) if !cfg.ingest.insecure => Some(
            infrawatch_collector::tls::server_config(ca, cert, key)
                .context("[ingest] mutual TLS")?,
        ),
        _ => None,
    };
    let metrics_tls = match (&cfg.metrics.cert, &cfg.metrics.key) {
        (Some(cert), Some(key)) => Some(
            infrawatch_collector::tls::plain_server_config(cert, key).context("[metrics] TLS")?,
        ),
        _ => None,
    };
    let app = App::open(cfg, now_ms()).context("opening the state directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let ingest = tokio::net::TcpListener::bind(ingest_addr)
            .await
            .with_context(|| format!("[ingest] listen {ingest_addr}"))?;
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("[metrics] listen {metrics_addr}"))?;
        tracing::info!("ingest listening on {}", ingest.local_addr()?);
        tracing::info!("metrics listening on {}", metrics.local_addr()?);
        serve(app, ingest, tls, metrics, metrics_tls, stop_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
