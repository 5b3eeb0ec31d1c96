//! infrawatch-agent: the packet path of the agent.
//!
//! Capture ([`capture`]) hands packets with their own timestamps to a sans-IO core:
//! decode ([`decode`]), classification by payload with bounded TCP reassembly
//! ([`classify`], [`stream`]) and one dissector per protocol ([`dissect`]), flows
//! ([`flow`]) and assets ([`asset`]), counted in per-thread [`stats`]. The [`engine`] ties
//! them together per capture thread; [`replay`] and [`run`] are the commands built on it.
//! Nothing in the core reads a clock, opens a socket or allocates per packet in the
//! steady state.

pub mod capture;
pub mod command;
pub mod dissect;
pub mod proto;
pub mod stream;
pub mod decode;
pub mod asset;
pub mod flow;
pub mod lru;
pub mod oui;
pub mod stats;
