//! infrawatch-collector: receives agent reports and serves them to Prometheus
//! (DESIGN.md, "Collector").
//!
//! - [`state`]: per-agent counters, gauges, assets and last-seen; the Prometheus
//!   rendering of the agent series (sans-IO, time passed in);
//! - [`events`]: the durable event store (JSON lines under `state_dir`, upsert by id and
//!   version, fsync before the `Ack`);
//! - [`server`]: the two listeners (ingest; metrics and the API) over axum.

pub mod events;
pub mod forward;
pub mod remote_write;
pub mod server;
pub mod state;
pub mod tls;
