#![no_main]
//! MMS: the session / presentation / ACSE / MMS dissector on COTP DT user data, whole and
//! truncated, and the same bytes as a TPKT/COTP DT on an MMS flow (segmented or not).
use infrawatch_agent::dissect::{Side, mms, tpkt};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::proto::Proto;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = NullSink::default();
    mms::dissect(data, Side::Client, false, &mut sink);
    mms::dissect(data, Side::Server, true, &mut sink);
    // Exactly one PDU per DT, at most one violation.
    assert_eq!(sink.pdus, 2);
    assert!(sink.violations <= 2);

    let ud = data.get(..data.len().min(0xFFFF - 7)).unwrap_or(&[]);
    let len = (7 + ud.len()) as u16;
    let mut pool = BufPool::new(2);
    let mut state = tpkt::State::default();
    for eot in [0x80u8, 0x00, 0x80] {
        let mut msg = vec![3, 0, (len >> 8) as u8, len as u8, 2, 0xF0, eot];
        msg.extend_from_slice(ud);
        tpkt::dissect(&msg, Side::Client, false, Proto::Mms, &mut state, &mut pool, &mut sink);
        tpkt::dissect(&msg, Side::Server, true, Proto::Mms, &mut state, &mut pool, &mut sink);
    }
    state.release(&mut pool);
    assert_eq!(pool.in_use(), 0, "blocks leaked");
});
