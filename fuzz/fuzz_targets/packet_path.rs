#![no_main]
//! The whole packet path: arbitrary bytes cut into frames of arbitrary link types, fed
//! through one engine (decode, flows, classification, reassembly, every dissector).
use infrawatch_agent::capture::{LinkType, Packet, Ts};
use infrawatch_agent::engine::{Engine, EngineConfig};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

fuzz_target!(|data: &[u8]| {
    let cfg = EngineConfig {
        max_flows: 64,
        max_assets: 64,
        ics_sessions: 8,
        stream_blocks: 8,
        app_blocks: 8,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(&cfg);
    let mut rest = data;
    let mut ts = 1_600_000_000_000_000_000u64;
    // Each frame: 1 byte link type, 2 bytes length, the bytes.
    while let (Some(&l), Some(&hi), Some(&lo)) = (rest.first(), rest.get(1), rest.get(2)) {
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len().saturating_sub(3));
        let Some(frame) = rest.get(3..3 + len) else { break };
        let link = LINKS[usize::from(l) % LINKS.len()];
        ts += u64::from(l) * 10_000_000;
        engine.process(&Packet { ts: Ts(ts), data: frame, orig_len: len as u32, link });
        rest = rest.get(3 + len..).unwrap_or(&[]);
    }
    engine.finish();
});
