#![no_main]
//! OPC UA binary: probe, framing and dissection of a stream cut with `frame`, with the
//! secure channel state (security mode, sequence numbers, chunks) kept across messages.
use infrawatch_agent::dissect::{FrameLen, Hint, Side, opcua};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = opcua::probe(data, Hint::client(true, true));
    let _ = opcua::probe(
        data,
        Hint {
            from_client: false,
            ..Hint::client(false, true)
        },
    );
    let mut pool = BufPool::new(2);
    let mut state = opcua::State::default();
    let mut sink = NullSink::default();
    let mut rest = data;
    let mut side = Side::Client;
    while let FrameLen::Len(n) = opcua::frame(rest) {
        let Some((msg, tail)) = rest.split_at_checked(n) else {
            // The last message cut short, as reassembly hands over an oversized one.
            opcua::dissect(rest, side, true, &mut state, &mut pool, &mut sink);
            break;
        };
        opcua::dissect(msg, side, false, &mut state, &mut pool, &mut sink);
        side = side.other();
        rest = tail;
    }
    opcua::dissect(data, Side::Server, true, &mut state, &mut pool, &mut sink);
    state.release(&mut pool);
    assert_eq!(pool.in_use(), 0, "blocks leaked");
});
