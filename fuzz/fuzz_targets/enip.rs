#![no_main]
//! EtherNet/IP + CIP: probe (TCP and UDP), framing, stream dissection with the per-flow
//! state kept across the messages cut from one input, datagram dissection, and the
//! same bytes behind a valid SendRRData header so the CPF and CIP layers are reached.
use infrawatch_agent::dissect::{FrameLen, Hint, Side, enip};
use infrawatch_agent::fuzzing::NullSink;
use infrawatch_agent::stream::BufPool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for tcp in [true, false] {
        for from_client in [true, false] {
            let _ = enip::probe(data, Hint { port: true, tcp, from_client });
            let _ = enip::probe(data, Hint { port: false, tcp, from_client });
        }
    }
    let mut pool = BufPool::new(1);
    let mut state = enip::State::default();
    let mut sink = NullSink::default();
    // Split the input as the stream would, then dissect each message in turn.
    let mut rest = data;
    let mut side = Side::Client;
    while let FrameLen::Len(n) = enip::frame(rest) {
        let (msg, tail) = rest.split_at(n.min(rest.len()));
        enip::dissect(msg, side, msg.len() < n, &mut state, &mut pool, &mut sink);
        side = side.other();
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    enip::dissect(data, Side::Server, true, &mut state, &mut pool, &mut sink);
    enip::dissect_datagram(data, Side::Client, &mut sink);
    // A SendRRData header (session 1) and CPF items around the input.
    let mut rr = Vec::with_capacity(data.len() + 40);
    let len = (data.len() + 16).min(usize::from(u16::MAX)) as u16;
    rr.extend_from_slice(&[0x6f, 0x00]);
    rr.extend_from_slice(&len.to_le_bytes());
    rr.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    rr.extend_from_slice(&[0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0xb2, 0]);
    rr.extend_from_slice(&(data.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    rr.extend_from_slice(data);
    enip::dissect(&rr, Side::Client, false, &mut state, &mut pool, &mut sink);
    enip::dissect(&rr, Side::Server, false, &mut state, &mut pool, &mut sink);
    state.release(&mut pool);
    assert_eq!(pool.in_use(), 0, "blocks leaked");
});
