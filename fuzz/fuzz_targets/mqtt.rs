#![no_main]
//! MQTT: probe, framing and dissection of a stream cut with `frame`, with the
//! connection's protocol level and roles kept across packets.
use infrawatch_agent::dissect::{FrameLen, Hint, Side, mqtt};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mqtt::probe(data, Hint::client(true, true));
    let _ = mqtt::probe(data, Hint::client(false, true));
    let mut pool = BufPool::new(2);
    let mut state = mqtt::State::default();
    let mut sink = NullSink::default();
    let mut rest = data;
    let mut side = Side::Client;
    while let FrameLen::Len(n) = mqtt::frame(rest) {
        let Some((msg, tail)) = rest.split_at_checked(n) else {
            mqtt::dissect(rest, side, true, &mut state, &mut pool, &mut sink);
            break;
        };
        mqtt::dissect(msg, side, false, &mut state, &mut pool, &mut sink);
        side = side.other();
        rest = tail;
    }
    mqtt::dissect(data, Side::Server, true, &mut state, &mut pool, &mut sink);
    state.release(&mut pool);
    assert_eq!(pool.in_use(), 0, "blocks leaked");
});
