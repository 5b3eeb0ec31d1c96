#![no_main]
//! GOOSE and sampled values: frame decoding, then the GOOSE publisher table fed with
//! whatever decodes, its expiry scan included.
use infrawatch_agent::capture::Ts;
use infrawatch_agent::dissect::{goose, sv};
use infrawatch_agent::fuzzing::NullSink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = NullSink::default();
    let mut pubs = goose::Publishers::new(4);
    let src = [0, 1, 2, 3, 4, 5];
    if let Some(info) = goose::dissect_frame(data, src, &mut sink) {
        pubs.observe(src, &info, Ts(1));
        pubs.observe(src, &info, Ts(u64::MAX));
    }
    pubs.expired(Ts(u64::MAX), 8, &mut |_| {});
    sv::dissect_frame(data, src, &mut sink);
});
