//! BACnet/IP dissector: placeholder with the agreed API (being written on its own branch).
use super::{Hint, PduSink, Probe, Side};

pub fn probe(_payload: &[u8], _hint: Hint) -> Probe {
    Probe::No
}
pub fn dissect_datagram(_payload: &[u8], _side: Side, _sink: &mut dyn PduSink) {}
