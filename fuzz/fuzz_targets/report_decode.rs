#![no_main]
//! Collector ingest: a report body (gzip or plain) through `report::decode`, with a
//! small bound so decompression bombs are exercised too.
use infrawatch_config::report::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&first, body)) = data.split_first() {
        let _ = decode(body, first & 1 == 1, 64 << 10);
    }
});
