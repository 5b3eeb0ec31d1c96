#![no_main]
//! DNP3: probe, framing, stream and datagram dissection, with transport state kept
//! across the messages cut from one input.
use infrawatch_agent::dissect::{Hint, Side, dnp3};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dnp3::probe(data, Hint { port: true, tcp: true, from_client: true });
    let _ = dnp3::frame(data);
    let mut pool = BufPool::new(4);
    let mut state = dnp3::State::default();
    let mut sink = NullSink::default();
    for (i, chunk) in data.chunks(64).enumerate() {
        let side = if i % 2 == 0 { Side::Client } else { Side::Server };
        dnp3::dissect(chunk, side, i % 3 == 0, &mut state, &mut pool, &mut sink);
    }
    dnp3::dissect_datagram(data, Side::Client, &mut state, &mut pool, &mut sink);
    state.release(&mut pool);
    assert_eq!(pool.in_use(), 0, "blocks leaked");
});
