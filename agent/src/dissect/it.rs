//! IT protocol recognisers: placeholder with the agreed API (being written on its own branch).
use crate::proto::Proto;

pub enum ItProbe {
    Match(Proto),
    Unsure,
    No,
}
pub fn probe_tcp(_payload: &[u8], _cport: u16, _sport: u16, _from_client: bool) -> ItProbe {
    ItProbe::No
}
pub fn probe_udp(_payload: &[u8], _src_port: u16, _dst_port: u16) -> ItProbe {
    ItProbe::No
}
