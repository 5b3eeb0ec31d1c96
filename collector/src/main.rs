//! `infrawatch-collector`: `run --config FILE` (the daemon) and `check --config FILE`
//! (the same validation as start-up; exit 0 when valid, 1 with every diagnostic).
//! Under systemd (`Type=notify`) `run` reports readiness, reloads and stops on the
//! notification socket and feeds the watchdog; SIGHUP re-reads the file
//! ([`App::reload`] says what a reload may change).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use infrawatch_collector::server::{App, now_ms, serve};
use infrawatch_config::notify::Notifier;
use infrawatch_config::{RealEnvironment, load_collector_file};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
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
    let notifier = Arc::new(Notifier::from_env());
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
        // Before READY: a SIGHUP without its handler would end the process.
        let hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        tokio::spawn(supervise(
            app.clone(),
            path.to_path_buf(),
            notifier.clone(),
            hup,
        ));
        // Both listeners are bound and the state directory is loaded.
        notifier.ready(&app.status_line(now_ms()));
        let n = notifier.clone();
        let stop = async move {
            stop_signal().await;
            n.stopping();
        };
        serve(app, ingest, tls, metrics, metrics_tls, stop)
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGHUP reloads collector.toml; `WATCHDOG=1` while the runtime, its blocking pool
/// and the state lock all answer; `STATUS=` every 10 s.
async fn supervise(
    app: Arc<App>,
    path: PathBuf,
    notifier: Arc<Notifier>,
    mut hup: tokio::signal::unix::Signal,
) {
    let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);
    let probe_limit = notifier.watchdog_interval().unwrap_or_default();
    let mut status = tokio::time::interval(Duration::from_secs(10));
    let mut wedged = false;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notifier.reloading();
                reload(&app, &path).await;
                notifier.ready(&app.status_line(now_ms()));
            }
            _ = async {
                match watchdog.as_mut() {
                    Some(w) => { w.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                // This task ran, so the runtime is responsive; the probe proves that a
                // blocking task runs and that ingest is not wedged on the state lock.
                let a = app.clone();
                let probe = tokio::task::spawn_blocking(move || a.probe());
                match tokio::time::timeout(probe_limit, probe).await {
                    Ok(Ok(())) => {
                        if std::mem::take(&mut wedged) {
                            tracing::warn!("the state answers again: watchdog pings resume");
                        }
                        notifier.watchdog();
                    }
                    _ => {
                        if !wedged {
                            tracing::error!("the state lock or the blocking pool does not answer: watchdog pings withheld");
                        }
                        wedged = true;
                    }
                }
            }
            _ = status.tick() => notifier.status(&app.status_line(now_ms())),
        }
    }
}

/// Re-reads collector.toml with the same loader as `check` and start-up, and applies it
/// (see [`App::reload`]); a file that does not load or changes what needs a restart is
/// refused, and the running configuration stays.
async fn reload(app: &Arc<App>, path: &Path) {
    let p = path.to_path_buf();
    let Ok(loaded) =
        tokio::task::spawn_blocking(move || load_collector_file(&p, &RealEnvironment)).await
    else {
        app.reload_refused();
        return;
    };
    let Some(cfg) = loaded.config.clone() else {
        tracing::error!(
            "reload refused, the running configuration stays (infrawatch_collector_config_last_reload_successful 0):\n{}",
            loaded.render()
        );
        app.reload_refused();
        return;
    };
    if !loaded.diagnostics.is_empty() {
        eprint!("{}", loaded.render());
    }
    match app.reload(cfg) {
        Ok(changed) if changed.is_empty() => tracing::info!("reload: nothing changed"),
        Ok(changed) => tracing::info!("reload applied: {}", changed.join(", ")),
        Err(e) => tracing::error!(
            "reload refused, the running configuration stays (infrawatch_collector_config_last_reload_successful 0): {e}"
        ),
    }
}

async fn stop_signal() {
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
