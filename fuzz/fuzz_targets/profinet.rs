#![no_main]
//! PROFINET: RT frames (cyclic, alarms, DCP) of EtherType 0x8892, and IO-CM datagrams
//! (DCE/RPC) through the UDP probe and dissector, from both sides.
use infrawatch_agent::dissect::{Hint, Side, profinet};
use infrawatch_agent::fuzzing::NullSink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = NullSink::default();
    let (a, b) = ([0, 0x1b, 0x1b, 1, 2, 3], [1, 0x0e, 0xcf, 0, 0, 0]);
    profinet::dissect_frame(data, a, b, &mut sink);
    let _ = profinet::probe_udp(data, Hint::client(true, false));
    profinet::dissect_datagram(data, Side::Client, &mut sink);
    profinet::dissect_datagram(data, Side::Server, &mut sink);
});
