#![no_main]
//! BACnet/IP: probe (on and off the port) and dissection of arbitrary UDP payloads, both
//! sides, plus the tag walker on its own.
use infrawatch_agent::dissect::{Hint, Side, bacnet};
use infrawatch_agent::fuzzing::NullSink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bacnet::probe(data, Hint { port: true, tcp: false, from_client: true });
    let _ = bacnet::probe(data, Hint { port: false, tcp: false, from_client: false });
    let _ = bacnet::check_tags(data);
    let mut sink = NullSink::default();
    bacnet::dissect_datagram(data, Side::Client, &mut sink);
    bacnet::dissect_datagram(data, Side::Server, &mut sink);
    assert!(sink.pdus <= 2 && sink.identities <= 2);
});
