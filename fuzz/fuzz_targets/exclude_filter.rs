#![no_main]
//! `[capture] exclude` expressions: parse arbitrary text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = infrawatch_config::filter::parse(text);
    }
});
