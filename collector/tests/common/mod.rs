//! The real `infrawatch-collector` started by a test: on 127.0.0.1 with the ports it
//! says it bound (read from its log), killed (SIGKILL) and reaped on drop.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Collector {
    pub child: Child,
    /// `host:port` of the ingest and metrics listeners.
    pub ingest: String,
    pub metrics: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `infrawatch-collector run --config <config>`.
pub fn command(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infrawatch-collector"));
    cmd.args(["run", "--config"])
        .arg(config)
        .env("INFRAWATCH_LOG", "info");
    cmd
}

/// Starts `config` and waits for both listeners.
pub fn start(config: &Path) -> Collector {
    spawn(command(config))
}

/// Starts `cmd` (a [`command`], with what the test adds) and waits for both listeners;
/// the log is drained afterwards so the collector never blocks on a full pipe.
pub fn spawn(mut cmd: Command) -> Collector {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut ingest, mut metrics) = (None, None);
    let mut seen = Vec::new();
    while ingest.is_none() || metrics.is_none() {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the collector exited before listening: {seen:#?}"))
            .unwrap();
        seen.push(line.clone());
        let addr = line.rsplit(' ').next().unwrap().to_string();
        if line.contains("ingest listening on ") {
            ingest = Some(addr);
        } else if line.contains("metrics listening on ") {
            metrics = Some(addr);
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Collector {
        child,
        ingest: ingest.unwrap(),
        metrics: metrics.unwrap(),
    }
}
