#![no_main]
//! Modbus/TCP: probe, framing and dissection of arbitrary bytes, both directions.
use infrawatch_agent::dissect::{Hint, Side, modbus};
use infrawatch_agent::fuzzing::NullSink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = modbus::probe(data, Hint { port: true, tcp: true, from_client: true });
    let _ = modbus::frame(data);
    let mut sink = NullSink::default();
    modbus::dissect(data, Side::Client, false, &mut sink);
    modbus::dissect(data, Side::Server, true, &mut sink);
});
