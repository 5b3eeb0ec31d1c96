//! infrawatch-collector: receives agent reports and serves them to Prometheus.
//!
//! Not built yet: the collector, its ingest API and exposition arrive with the
//! "Collector, the agent→collector link, and Prometheus" issue. This crate holds the
//! place in the workspace that DESIGN.md fixes.
