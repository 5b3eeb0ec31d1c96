//! `infrawatch-agent replay`: capture files through one engine, in the order given, as
//! one continuous capture, then a report. A file that cannot be opened is an error; a
//! truncated or corrupt one ends where the damage starts, its packets still counted,
//! with a warning and an entry in `file_errors`.

use crate::capture::pcap::PcapFile;
use crate::capture::{Next, PacketSource};
use crate::detect::Detection;
use crate::detect::site::CompiledPolicy;
use crate::engine::{Engine, EngineConfig};
use crate::event::{Event, IdSource};
use crate::summary::{FileError, Summary};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a replay produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Some file could not be opened at all.
    pub failed: bool,
    /// The last version of every event, in the order they opened.
    pub events: Vec<Event>,
}

/// How a replay judges traffic (DESIGN.md, "Command line").
#[derive(Clone, Debug, Default)]
pub enum Judge {
    /// `--no-detect`: classify only.
    Off,
    /// No policy: the site-independent detectors and the no-policy rule for commands.
    #[default]
    NoPolicy,
    /// `--policy`: every detector.
    Policy(Arc<CompiledPolicy>),
}

/// The engine a replay (or learning run) uses for `judge`.
pub fn engine_for(
    cfg: &EngineConfig,
    judge: &Judge,
    learner: Option<crate::learn_cmd::SharedLearner>,
) -> Engine {
    let ids = IdSource::new("replay", "0");
    match judge {
        Judge::Off if learner.is_none() => Engine::new(cfg),
        Judge::Off | Judge::NoPolicy => {
            Engine::with_detection(cfg, Detection::new(None, ids, learner))
        }
        Judge::Policy(p) => {
            Engine::with_detection(cfg, Detection::new(Some(p.clone()), ids, learner))
        }
    }
}

/// Keeps the newest version of each event.
#[derive(Debug, Default)]
pub struct Latest {
    order: Vec<String>,
    latest: BTreeMap<String, Event>,
}

impl Latest {
    #[inline]
    pub fn take(&mut self, engine: &mut Engine) {
        let Some(d) = engine.detect.as_deref_mut() else {
            return;
        };
        if d.events.outbox.is_empty() {
            return;
        }
        for e in d.events.outbox.drain(..) {
            if !self.latest.contains_key(&e.id) {
                self.order.push(e.id.clone());
            }
            self.latest.insert(e.id.clone(), e);
        }
    }
    pub fn into_events(mut self) -> Vec<Event> {
        self.order
            .iter()
            .filter_map(|id| self.latest.remove(id))
            .collect()
    }
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
    replay_with(files, cfg, &Judge::Off)
}

/// Replays `files` through a fresh engine that judges as `judge` says.
pub fn replay_with(files: &[PathBuf], cfg: &EngineConfig, judge: &Judge) -> Outcome {
    let mut engine = engine_for(cfg, judge, None);
    let (summary, failed, events) = run_files(files, &mut engine);
    Outcome {
        summary,
        failed,
        events,
    }
}

/// Reads `files` through `engine` as one capture; the summary, whether a file failed to
/// open, and the events.
pub fn run_files(files: &[PathBuf], engine: &mut Engine) -> (Summary, bool, Vec<Event>) {
    let mut latest = Latest::default();
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
                    latest.take(engine);
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
    latest.take(engine);
    let elapsed = start.elapsed().as_secs_f64();
    let mut summary = Summary::build(
        &engine.counters,
        files.len(),
        engine.top_flows(),
        &engine.assets,
        errors,
        elapsed,
    );
    let events = latest.into_events();
    summary.set_events(&events);
    (summary, failed, events)
}
