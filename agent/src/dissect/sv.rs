//! Sampled values dissector: placeholder with the agreed API (being written on its own branch).
use super::PduSink;
use crate::decode::Mac;

pub fn dissect_frame(_payload: &[u8], _src: Mac, _sink: &mut dyn PduSink) {}
