//! infrawatch-config: what agents, collector and operators agree on.
//!
//! - [`agent`]: `agent.toml`, typed and strictly validated ([`agent::load_agent`] is the
//!   one path used by `check`, start-up and reload);
//! - [`collector`]: `collector.toml`, typed and strictly validated
//!   ([`collector::load_collector`] is the one path of `check` and start-up);
//! - [`diag`]: `PATH:LINE:COL: error: …` diagnostics with the snippet and a suggestion,
//!   shared by every operator-edited file;
//! - [`doc`]: the strict TOML loader that reports every error at once;
//! - [`filter`]: the tcpdump-style `exclude` expressions;
//! - [`policy`]: `policy.toml`, the operator's judgement, checked against the agent's
//!   [`policy::Vocabulary`] ([`policy::load_policy`] is the one path used by `check`,
//!   start-up and reload);
//! - [`units`]: durations and byte sizes;
//! - [`notify`]: the systemd notification socket (readiness, reload, watchdog) both
//!   daemons use.
//!
//! Nothing here but [`notify`] touches the network or the clock; the host is reached
//! only through [`agent::Environment`].

pub mod agent;
pub mod collector;
pub mod diag;
pub mod doc;
pub mod filter;
pub mod notify;
pub mod policy;
pub mod report;
#[cfg(test)]
mod testenv;
pub mod units;

pub use agent::{AgentConfig, Environment, Loaded, RealEnvironment, load_agent, load_agent_file};
pub use collector::{CollectorConfig, load_collector, load_collector_file};
pub use diag::{Diagnostic, Severity, Source};
pub use policy::{Policy, Vocabulary, load_policy, load_policy_file};
