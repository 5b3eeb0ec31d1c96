#![no_main]
//! agent.toml loading (syntax, keys, types, semantic checks) on arbitrary text.
use infrawatch_config::agent::{Environment, load_agent};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

struct NoHost;
impl Environment for NoHost {
    fn readable(&self, _: &Path) -> Result<(), String> {
        Ok(())
    }
    fn interface_exists(&self, _: &str) -> bool {
        true
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let loaded = load_agent("agent.toml", text, &NoHost);
        let _ = loaded.render();
    }
});
