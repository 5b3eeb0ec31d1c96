#![no_main]
//! IEC 60870-5-104: probe, framing and dissection with sequence state across messages.
use infrawatch_agent::dissect::{FrameLen, Hint, Side, iec104};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = iec104::probe(data, Hint { port: false, tcp: true, from_client: false });
    let mut pool = BufPool::new(2);
    let mut state = iec104::State::default();
    let mut sink = NullSink::default();
    let mut rest = data;
    let mut side = Side::Client;
    while let FrameLen::Len(n) = iec104::frame(rest) {
        let Some((msg, tail)) = rest.split_at_checked(n) else { break };
        iec104::dissect(msg, side, false, &mut state, &mut pool, &mut sink);
        side = side.other();
        rest = tail;
    }
    iec104::dissect(data, Side::Server, true, &mut state, &mut pool, &mut sink);
});
