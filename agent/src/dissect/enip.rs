//! EtherNet/IP + CIP dissector: placeholder with the agreed API (being written on its own branch).
use super::{FrameLen, Hint, PduSink, Probe, Side};
use crate::stream::BufPool;

pub fn probe(_payload: &[u8], _hint: Hint) -> Probe {
    Probe::No
}
pub fn frame(buf: &[u8]) -> FrameLen {
    FrameLen::Len(buf.len().max(1))
}
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State(u8);
impl State {
    pub fn release(&mut self, _pool: &mut BufPool) {}
}
pub fn dissect(
    _msg: &[u8],
    _side: Side,
    _truncated: bool,
    _state: &mut State,
    _pool: &mut BufPool,
    _sink: &mut dyn PduSink,
) {
}
pub fn dissect_datagram(_payload: &[u8], _side: Side, _sink: &mut dyn PduSink) {}
