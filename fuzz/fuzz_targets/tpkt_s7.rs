#![no_main]
//! ISO-on-TCP: TPKT/COTP framing and dissection as S7comm, S7comm-plus and MMS, and the
//! S7 dissectors on bare PDUs.
use infrawatch_agent::dissect::{Hint, Side, s7comm, tpkt};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::proto::Proto;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tpkt::probe(data, Hint { port: true, tcp: true, from_client: true });
    let _ = tpkt::frame(data);
    let mut pool = BufPool::new(2);
    let mut sink = NullSink::default();
    for proto in [Proto::S7comm, Proto::S7commplus, Proto::Mms, Proto::Rdp] {
        let mut state = tpkt::State::default();
        tpkt::dissect(data, Side::Client, false, proto, &mut state, &mut pool, &mut sink);
        tpkt::dissect(data, Side::Server, true, proto, &mut state, &mut pool, &mut sink);
        state.release(&mut pool);
    }
    s7comm::dissect_s7(data, Side::Client, false, &mut sink);
    s7comm::dissect_s7plus(data, Side::Server, false, &mut sink);
});
