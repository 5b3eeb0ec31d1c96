#![no_main]
//! policy.toml loading (syntax, keys, types, references, vocabulary, addresses, times) on
//! arbitrary text, against the agent's real vocabulary: must never panic.
use infrawatch_agent::vocab::vocabulary;
use infrawatch_config::policy::{Vocabulary, load_policy};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static VOCAB: OnceLock<Vocabulary> = OnceLock::new();
    let vocab = VOCAB.get_or_init(vocabulary);
    if let Ok(text) = std::str::from_utf8(data) {
        let loaded = load_policy("policy.toml", text, vocab);
        let _ = loaded.render();
    }
});
