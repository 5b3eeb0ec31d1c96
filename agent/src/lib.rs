//! infrawatch-agent: the packet path of the agent.
//!
//! Capture ([`capture`]) hands packets with their own timestamps to a sans-IO core:
//! decode ([`decode`]), classification by payload with bounded TCP reassembly
//! ([`classify`], [`stream`]) and one dissector per protocol ([`dissect`]), flows
//! ([`flow`]) and assets ([`asset`]), counted in per-thread [`stats`]. The [`engine`] ties
//! them together per capture thread; [`replay`] and [`run`] are the commands built on it.
//! Nothing in the core reads a clock, opens a socket or allocates per packet in the
//! steady state.
//!
//! State on disk, under `[agent] state_dir`: the event store ([`store`]), evidence pcaps
//! ([`evidence`]) and small atomic state files ([`statefile`]), checksummed with
//! [`crc32c`]; they too are given the time rather than reading it.

pub mod asset;
pub mod capture;
pub mod classify;
pub mod command;
pub mod crc32c;
pub mod decode;
pub mod detect;
pub mod dissect;
pub mod engine;
pub mod event;
pub mod evidence;
pub mod fault;
pub mod flow;
pub mod fuzzing;
pub mod judge;
pub mod learn;
pub mod learn_cmd;
pub mod logging;
pub mod lru;
pub mod metrics;
pub mod oui;
pub mod proto;
pub mod replay;
pub mod report;
pub mod run;
pub mod sink;
pub mod statefile;
pub mod stats;
pub mod store;
pub mod stream;
pub mod summary;
pub mod vocab;
