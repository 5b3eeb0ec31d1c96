//! Helpers for the fuzz targets in `fuzz/` (and anyone who needs a sink that discards).

use crate::dissect::{Identity, Pdu, PduSink, Side, Violation};

/// A [`PduSink`] that counts what it is told and keeps nothing.
#[derive(Debug, Default)]
pub struct NullSink {
    pub pdus: u64,
    pub violations: u64,
    pub identities: u64,
}

impl PduSink for NullSink {
    fn pdu(&mut self, _side: Side, _pdu: &Pdu<'_>) {
        self.pdus += 1;
    }
    fn violation(&mut self, _v: Violation) {
        self.violations += 1;
    }
    fn identity(&mut self, _side: Side, _id: &Identity<'_>) {
        self.identities += 1;
    }
}
