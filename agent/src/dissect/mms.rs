//! MMS dissector: placeholder with the agreed API (being written on its own branch).
use super::{PduSink, Side};

/// Decodes the user data of a COTP DT TPDU of an MMS flow (session, presentation,
/// ACSE and MMS layers).
pub fn dissect(_user_data: &[u8], _side: Side, _truncated: bool, _sink: &mut dyn PduSink) {}
