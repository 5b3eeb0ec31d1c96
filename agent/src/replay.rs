//! `infrawatch-agent replay`: capture files through one engine, in the order given, as
//! one continuous capture, then a report. A file that cannot be opened is an error; a
//! truncated or corrupt one ends where the damage starts, its packets still counted,
//! with a warning and an entry in `file_errors`.

use crate::capture::pcap::PcapFile;
use crate::capture::{Next, PacketSource};
use crate::engine::{Engine, EngineConfig};
use crate::summary::{FileError, Summary};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a replay produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Some file could not be opened at all.
    pub failed: bool,
}

/// A progress line on stderr for long files, when stderr is a terminal.
struct Progress {
    enabled: bool,
    last: Instant,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal() && total > 32 << 20,
            last: Instant::now(),
            total,
        }
    }
    fn update(&mut self, name: &str, pos: u64, packets: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let pct = (pos as f64 / self.total.max(1) as f64 * 100.0).min(100.0);
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        eprint!(
            "\r{name}: [{}{}] {pct:5.1}% {packets} packets",
            "#".repeat(filled),
            " ".repeat(width - filled.min(width))
        );
    }
    fn done(&self) {
        if self.enabled {
            eprint!("\r{}\r", " ".repeat(100));
        }
    }
}

/// Replays `files` through a fresh engine.
pub fn replay(files: &[PathBuf], cfg: &EngineConfig) -> Outcome {
    let mut engine = Engine::new(cfg);
    let mut errors = Vec::new();
    let mut failed = false;
    let start = Instant::now();
    for path in files {
        let name = path.display().to_string();
        let mut src = match PcapFile::open(path) {
            Ok(s) => s,
            Err(e) => {
                failed = true;
                errors.push(FileError {
                    file: name,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut progress = Progress::new(size);
        let mut n: u64 = 0;
        loop {
            match src.next() {
                Ok(Next::Packet(p)) => {
                    engine.process(&p);
                    n += 1;
                    if n & 0xffff == 0 {
                        let pos = src.position;
                        progress.update(&name, pos, n);
                    }
                }
                Ok(Next::Idle) => {}
                Ok(Next::End) => break,
                Err(e) => {
                    errors.push(FileError {
                        file: name.clone(),
                        error: e.to_string(),
                    });
                    failed = true;
                    break;
                }
            }
        }
        progress.done();
        if let Some(reason) = src.end_reason() {
            errors.push(FileError {
                file: name.clone(),
                error: format!("{name}: {reason}; {n} packets read before it"),
            });
        }
        if src.unsupported_records > 0 {
            errors.push(FileError {
                file: name.clone(),
                error: format!(
                    "{name}: {} packets of interfaces with an unsupported link type were skipped",
                    src.unsupported_records
                ),
            });
        }
    }
    engine.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let summary = Summary::build(
        &engine.counters,
        files.len(),
        engine.top_flows(),
        &engine.assets,
        errors,
        elapsed,
    );
    Outcome { summary, failed }
}
