//! Logging: tracing to stderr, or to the journal (with structured fields) when the
//! process runs under systemd (`JOURNAL_STREAM` set). The level comes from
//! `INFRAWATCH_LOG` (e.g. `debug`, `infrawatch_agent=trace`), else the caller's default.
//! Nothing on the packet path logs per packet: counters carry that.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_env("INFRAWATCH_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(journald.with_syslog_identifier("infrawatch-agent".into()))
            .try_init();
        return;
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour only for people at a terminal: log files and pipes get plain
                // `key=value` fields that tools can read.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .try_init();
}
