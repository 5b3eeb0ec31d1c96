//! GOOSE dissector: placeholder with the agreed API (being written on its own branch).
use super::PduSink;
use crate::capture::Ts;
use crate::decode::Mac;

/// What one GOOSE message says about its publisher's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GooseInfo<'a> {
    pub appid: u16,
    pub gocb_ref: &'a [u8],
    pub dat_set: &'a [u8],
    pub go_id: &'a [u8],
    pub st_num: u32,
    pub sq_num: u32,
    pub time_allowed_to_live_ms: u32,
    pub test: bool,
    pub nds_com: bool,
    pub conf_rev: u32,
}

pub fn dissect_frame<'a>(
    _payload: &'a [u8],
    _src: Mac,
    _sink: &mut dyn PduSink,
) -> Option<GooseInfo<'a>> {
    None
}

/// What a message changed in its publisher's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    pub new_publisher: bool,
    pub st_num_back: bool,
    pub st_num_jump: bool,
    pub sq_num_reset: bool,
    pub test: bool,
}

/// Bounded per-publisher state.
#[derive(Debug, Default)]
pub struct Publishers {
    pub evictions: u64,
}

impl Publishers {
    pub fn new(_cap: usize) -> Self {
        Publishers::default()
    }
    pub fn observe(&mut self, _src: Mac, _info: &GooseInfo<'_>, _now: Ts) -> Observation {
        Observation::default()
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}
