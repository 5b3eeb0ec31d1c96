//! Detection: the agent's judgement (DESIGN.md, "Detection").
//!
//! Detectors are plain state machines fed facts by the engine (a TCP attempt, an ARP
//! packet, a command, a violation, a tick of packet time) with an explicit time; they
//! never read a clock, so a capture replays to the same findings. Each holds bounded
//! state and counts what it evicted. A detector reports [`Finding`]s; the event layer
//! ([`crate::event`]) folds findings with the same (kind, key) into one event whose count
//! and last time update (a long scan is one event, not one per packet).
//!
//! - [`independent`]: the detectors that need no site knowledge (`port_scan`,
//!   `syn_flood`, `arp_spoof`, `rate_anomaly`, `malformed`, `goose`), one module each
//!   (`scan`, `flood` over the TCP `attempts`, `arp`, [`rate`], `malformed`, `goose`),
//!   all state in the fixed-capacity tables of `table`;
//! - [`site`]: the ones that judge against the policy (`policy_violation`,
//!   `ics_command`, `new_asset`, `new_conversation`, `silence`);
//! - `capture` is judged by the capture threads' supervisor (`run.rs`) with
//!   [`independent::CaptureWatch`].

mod arp;
mod attempts;
mod capture_watch;
mod flood;
mod goose;
pub mod independent;
mod malformed;
pub mod rate;
mod scan;
pub mod site;
mod table;
#[cfg(test)]
mod tests;

use crate::command::Cmd;
use crate::decode::{Addr, Mac};
use crate::dissect::Violation;
use crate::proto::Proto;
use infrawatch_config::policy::Level;

macro_rules! kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// An anomaly kind (the `kind` label; DESIGN.md's table).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Kind { $($variant),* }
        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];
            pub const COUNT: usize = Kind::ALL.len();
            pub const fn name(self) -> &'static str {
                match self { $(Kind::$variant => $name),* }
            }
            pub fn from_name(name: &str) -> Option<Kind> {
                match name { $($name => Some(Kind::$variant),)* _ => None }
            }
            pub const fn index(self) -> usize { self as usize }
        }
    };
}

kinds! {
    PolicyViolation => "policy_violation",
    IcsCommand => "ics_command",
    NewAsset => "new_asset",
    NewConversation => "new_conversation",
    PortScan => "port_scan",
    SynFlood => "syn_flood",
    ArpSpoof => "arp_spoof",
    RateAnomaly => "rate_anomaly",
    Malformed => "malformed",
    Goose => "goose",
    Silence => "silence",
    Capture => "capture",
}

impl Kind {
    /// DESIGN.md's default severity of a kind (`ics_command` depends on the class: see
    /// [`class_severity`]).
    pub const fn default_severity(self) -> Level {
        match self {
            Kind::ArpSpoof => Level::Critical,
            Kind::PolicyViolation
            | Kind::NewAsset
            | Kind::PortScan
            | Kind::SynFlood
            | Kind::Goose
            | Kind::Silence
            | Kind::Capture
            | Kind::IcsCommand => Level::Warning,
            Kind::NewConversation | Kind::RateAnomaly | Kind::Malformed => Level::Info,
        }
    }
}

/// Default severity of an `ics_command` anomaly by command class: state/program
/// critical, control/config warning, everything else info.
pub const fn class_severity(class: crate::command::Class) -> Level {
    use crate::command::Class;
    match class {
        Class::State | Class::Program => Level::Critical,
        Class::Control | Class::Config => Level::Warning,
        _ => Level::Info,
    }
}

/// What a detector found. Findings with the same `(kind, key)` while an event of that
/// key is open update that event (count += `count`, last time = `ts`); otherwise they
/// open a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    /// Aggregation key within the kind (e.g. a hash of the scanning source).
    pub key: u64,
    /// `None`: the kind's default, or the policy's override.
    pub severity: Option<Level>,
    pub ts: crate::capture::Ts,
    pub src: Option<Addr>,
    pub dst: Option<Addr>,
    pub src_mac: Option<Mac>,
    pub dst_mac: Option<Mac>,
    pub proto: Option<Proto>,
    pub cmd: Option<Cmd>,
    /// Index of the `[[allow]]` rule involved.
    pub rule: Option<u16>,
    pub violation: Option<Violation>,
    /// One line for people: what was seen and against which threshold.
    pub detail: String,
    /// Occurrences this finding stands for (probes, SYNs, ARPs…).
    pub count: u64,
}

impl Finding {
    pub fn new(kind: Kind, key: u64, ts: crate::capture::Ts) -> Self {
        Finding {
            kind,
            key,
            severity: None,
            ts,
            src: None,
            dst: None,
            src_mac: None,
            dst_mac: None,
            proto: None,
            cmd: None,
            rule: None,
            violation: None,
            detail: String::new(),
            count: 1,
        }
    }
}

/// A 64-bit key from parts: aggregation keys and table hashes. Eight bytes at a time
/// (a multiply-rotate mix per word, the part's length folded in), then a final
/// avalanche; not cryptographic, only well spread.
pub fn key_of(parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w.iter_mut().zip(rest).for_each(|(d, s)| *d = *s);
        h = (h ^ u64::from_le_bytes(w) ^ ((p.len() as u64) << 56))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Everything one engine judges with: the site-independent detectors, the site
/// detectors and the policy in force (if any), the learner (learning mode), and the
/// event layer the findings are folded into.
#[derive(Debug)]
pub struct Detection {
    pub independent: independent::Independent,
    pub site: site::Site,
    /// The policy in force; `None`: the no-policy mode.
    pub policy: Option<std::sync::Arc<site::CompiledPolicy>>,
    /// The learner of a learning run (shared by the capture threads of `run`).
    pub learner: Option<crate::learn_cmd::SharedLearner>,
    pub events: crate::event::Events,
    /// Findings of the packet being processed, folded after it.
    pub findings: Vec<Finding>,
}

impl Detection {
    pub fn new(
        policy: Option<std::sync::Arc<site::CompiledPolicy>>,
        ids: std::sync::Arc<crate::event::IdSource>,
        learner: Option<crate::learn_cmd::SharedLearner>,
    ) -> Self {
        // `set_policy` below configures them for the policy in force.
        let mut d = Detection {
            independent: independent::Independent::new(
                &infrawatch_config::policy::Detectors::default(),
            ),
            site: site::Site::new(),
            policy: None,
            learner,
            events: crate::event::Events::new(ids),
            findings: Vec::new(),
        };
        d.set_policy(policy);
        d
    }

    /// Swaps the policy in force (reload): thresholds change, state is kept, flows
    /// re-match their rule when they next carry a command.
    pub fn set_policy(&mut self, policy: Option<std::sync::Arc<site::CompiledPolicy>>) {
        let defaults = infrawatch_config::policy::Detectors::default();
        self.independent
            .configure(policy.as_ref().map_or(&defaults, |p| &p.policy.detectors));
        if let Some(p) = &policy {
            self.site.resize(p);
            for (ip, mac) in &p.inventory_bindings {
                self.independent.seed_binding(*ip, *mac, true);
            }
        }
        self.policy = policy;
    }

    /// The policy generation flows compare their cached rule against.
    pub fn generation(&self) -> u8 {
        self.policy.as_ref().map_or(0, |p| p.generation)
    }

    /// Folds the pending findings into events.
    pub fn fold(&mut self) {
        let Detection {
            findings,
            events,
            policy,
            ..
        } = self;
        for f in findings.drain(..) {
            match policy.as_deref() {
                Some(p) => events.fold(f, p),
                None => events.fold(f, &crate::event::NoPolicy),
            }
        }
    }
}
