#![no_main]
//! The whole packet path: arbitrary bytes cut into frames of arbitrary link types, fed
//! through one engine (decode, flows, classification, reassembly, every dissector, and
//! the detectors: without a policy, or with the example policy and a learner).
use infrawatch_agent::capture::{LinkType, Packet, Ts};
use infrawatch_agent::detect::Detection;
use infrawatch_agent::detect::site::CompiledPolicy;
use infrawatch_agent::engine::{Engine, EngineConfig};
use infrawatch_agent::event::IdSource;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};

fn example_policy() -> Option<Arc<CompiledPolicy>> {
    static P: OnceLock<Option<Arc<CompiledPolicy>>> = OnceLock::new();
    P.get_or_init(|| {
        let text = include_str!("../../deploy/examples/policy.toml");
        let vocab = infrawatch_agent::vocab::vocabulary();
        infrawatch_config::policy::load_policy("policy.toml", text, &vocab)
            .config
            .map(|p| Arc::new(CompiledPolicy::compile(p, 1)))
    })
    .clone()
}

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
    let ids = IdSource::new("fuzz", "0");
    let mut engine = match data.first().map(|b| b % 3) {
        Some(0) => Engine::new(&cfg),
        Some(1) => Engine::with_detection(&cfg, Detection::new(None, ids, None)),
        _ => {
            let learner = infrawatch_agent::learn::Learner::new(64);
            Engine::with_detection(
                &cfg,
                Detection::new(example_policy(), ids, Some(Arc::new(Mutex::new(learner)))),
            )
        }
    };
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
    if let Some(d) = engine.detect.as_deref_mut()
        && let Some(l) = d.learner.take()
        && let Ok(l) = l.lock()
    {
        let opts = infrawatch_agent::learn::LearnOptions {
            name: "fuzz".into(),
            max_rules: 20,
            source: "fuzz".into(),
        };
        let _ = l.render(&engine.assets, &opts);
    }
});
