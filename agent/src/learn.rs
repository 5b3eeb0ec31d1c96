//! Learning: from observed traffic, a policy an operator can review (DESIGN.md,
//! "Command line": `learn`; "Policy file": `mode = "learn"`).
//!
//! STUB: API agreed with the engine; bodies to be written.

use crate::asset::Assets;
use crate::capture::Ts;
use crate::command::Cmd;
use crate::decode::Addr;
use crate::dissect::Pdu;
use crate::proto::Proto;

/// What an existing policy already allows (implemented by the compiled policy), so
/// `learn --policy old.toml` shows only what it would add.
pub trait Allows {
    /// Whether a flow client → server:port of `proto` matches a rule, and (when `cmd`
    /// is given) that rule allows the command.
    fn allows(&self, client: Addr, server: Addr, proto: Proto, port: u16, cmd: Option<Cmd>)
    -> bool;
    /// Whether the address or MAC is a declared asset.
    fn knows_asset(&self, ip: Option<Addr>, mac: Option<crate::decode::Mac>) -> bool;
}

/// Options of a rendering.
#[derive(Clone, Debug)]
pub struct LearnOptions {
    /// `[policy] name`.
    pub name: String,
    /// Cap on `[[allow]]` rules; past it conversations are merged more coarsely and the
    /// report says so.
    pub max_rules: usize,
    /// What the capture covered, for the header comment.
    pub source: String,
}

/// What a rendering did, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnReport {
    pub conversations: usize,
    pub rules: usize,
    /// Rules that stand for several conversations (zone or role rules).
    pub merged_rules: usize,
    pub zones: usize,
    pub assets: usize,
    /// Conversations dropped when the table was full.
    pub dropped: u64,
    /// The cap was reached and rules were merged further.
    pub capped: bool,
}

/// Observations of one learning run, bounded.
#[derive(Debug, Default)]
pub struct Learner {}

impl Learner {
    pub fn new(max_conversations: usize) -> Self {
        let _ = max_conversations;
        Learner {}
    }

    /// A flow of `proto` from `client` to `server:port` was seen (called when its
    /// protocol is decided, and when it ends).
    pub fn conversation(&mut self, now: Ts, client: Addr, server: Addr, proto: Proto, port: u16) {
        let _ = (now, client, server, proto, port);
    }

    /// A request on a flow: its command, unit, address ranges and time (poll
    /// intervals).
    pub fn request(&mut self, now: Ts, client: Addr, server: Addr, port: u16, pdu: &Pdu<'_>) {
        let _ = (now, client, server, port, pdu);
    }

    /// The policy TOML (valid, commented) and what was done.
    pub fn render(&self, assets: &Assets, opts: &LearnOptions) -> (String, LearnReport) {
        let _ = (assets, opts);
        (String::new(), LearnReport::default())
    }

    /// What the learnt traffic would add to `old`: a reviewable text (rules, assets,
    /// commands not allowed yet), empty when nothing.
    pub fn additions(&self, assets: &Assets, old: &dyn Allows, opts: &LearnOptions) -> String {
        let _ = (assets, old, opts);
        String::new()
    }
}
