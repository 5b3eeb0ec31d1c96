//! TPKT/COTP dissector: placeholder with the agreed API (being written on its own branch).
use super::{FrameLen, Hint, PduSink, Side};
use crate::proto::Proto;
use crate::stream::BufPool;

pub enum TpktProbe {
    No,
    Unsure,
    Match(Proto),
}
pub fn probe(_payload: &[u8], _hint: Hint) -> TpktProbe {
    TpktProbe::No
}
pub fn frame(buf: &[u8]) -> FrameLen {
    FrameLen::Len(buf.len().max(1))
}
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State;
impl State {
    pub fn release(&mut self, _pool: &mut BufPool) {}
}
#[allow(clippy::too_many_arguments)]
pub fn dissect(
    _msg: &[u8],
    _side: Side,
    _truncated: bool,
    _proto: Proto,
    _state: &mut State,
    _pool: &mut BufPool,
    _sink: &mut dyn PduSink,
) {
}
