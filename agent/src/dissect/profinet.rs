//! PROFINET dissector: placeholder with the agreed API (being written on its own branch).
use super::{Hint, PduSink, Probe, Side};
use crate::decode::Mac;

pub fn dissect_frame(_payload: &[u8], _src: Mac, _dst: Mac, _sink: &mut dyn PduSink) {}
pub fn probe_udp(_payload: &[u8], _hint: Hint) -> Probe {
    Probe::No
}
pub fn dissect_datagram(_payload: &[u8], _side: Side, _sink: &mut dyn PduSink) {}
