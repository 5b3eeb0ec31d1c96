//! `infrawatch-agent learn`: traffic (capture files, or an interface for a while)
//! through an engine with a [`Learner`], then the policy it proposes — checked with the
//! same loader as `check` before it is written — or, with `--policy old.toml`, what it
//! would add to that policy.

use crate::capture::live::{LiveOptions, LiveSource};
use crate::capture::{Next, PacketSource};
use crate::engine::{Engine, EngineConfig};
use crate::learn::{LearnOptions, LearnReport, Learner};
use crate::replay::{Judge, engine_for, run_files};
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A learner shared by the capture threads of one agent.
pub type SharedLearner = Arc<Mutex<Learner>>;

/// Conversations a learning run keeps, at most.
pub const MAX_CONVERSATIONS: usize = 65_536;
/// `[[allow]]` rules a learnt policy has, at most (conversations are merged further past
/// it).
pub const MAX_RULES: usize = 200;

/// Where a learning run reads traffic.
#[derive(Debug, Clone)]
pub enum Input {
    Files(Vec<PathBuf>),
    Interface { name: String, duration: Duration },
}

/// What a learning run produced.
#[derive(Debug)]
pub struct Learnt {
    /// The proposed policy (valid: it went through the loader).
    pub policy: String,
    pub report: LearnReport,
    /// With an old policy: what the traffic would add to it ("" when nothing).
    pub additions: Option<String>,
}

fn learning_engine() -> Engine {
    engine_for(
        &EngineConfig::default(),
        &Judge::Off,
        Some(Arc::new(Mutex::new(Learner::new(MAX_CONVERSATIONS)))),
    )
}

fn read_interface(engine: &mut Engine, name: &str, duration: Duration) -> anyhow::Result<()> {
    let (mut src, info) = LiveSource::open(name, &LiveOptions::default())
        .with_context(|| format!("opening interface {name}"))?;
    tracing::info!("{info}");
    let until = Instant::now() + duration;
    while Instant::now() < until {
        match src.next() {
            Ok(Next::Packet(p)) => engine.process(&p),
            Ok(Next::Idle) => engine.advance(crate::run::wall_now()),
            Ok(Next::End) => break,
            Err(e) => bail!("reading {name}: {e}"),
        }
    }
    Ok(())
}

/// Runs the traffic through a learner and renders the policy named `name`.
pub fn learn(input: &Input, name: &str, old: Option<&Path>) -> anyhow::Result<Learnt> {
    let old = match old {
        None => None,
        Some(p) => match crate::judge::load(p, 0) {
            Ok((c, _)) => Some(c),
            Err(errors) => bail!("{}: invalid policy:\n{errors}", p.display()),
        },
    };
    let mut engine = learning_engine();
    let source = match input {
        Input::Files(files) => {
            let (summary, failed, _) = run_files(files, &mut engine);
            for e in &summary.file_errors {
                tracing::warn!("{}", e.error);
            }
            if failed {
                bail!("a capture file could not be read");
            }
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
        Input::Interface { name, duration } => {
            read_interface(&mut engine, name, *duration)?;
            engine.finish();
            format!("interface {name} for {} s", duration.as_secs())
        }
    };
    let shared: SharedLearner = engine
        .detect
        .as_deref_mut()
        .and_then(|d| d.learner.take())
        .context("internal error: the learning engine has no learner")?;
    let learner = Arc::try_unwrap(shared)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .context("internal error: the learner is still shared")?;
    let opts = LearnOptions {
        name: name.to_string(),
        max_rules: MAX_RULES,
        source,
    };
    let (policy, report) = learner.render(&engine.assets, &opts);
    // What we propose must load as the operator's file will.
    let loaded = infrawatch_config::policy::load_policy(
        "learnt policy",
        &policy,
        &crate::vocab::vocabulary(),
    );
    if loaded.error_count() > 0 {
        bail!(
            "internal error: the learnt policy does not load:\n{}",
            loaded.render()
        );
    }
    let additions = old
        .as_deref()
        .map(|o| learner.additions(&engine.assets, o, &opts));
    Ok(Learnt {
        policy,
        report,
        additions,
    })
}
