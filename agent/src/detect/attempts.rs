//! The TCP connection attempts the engine reports, per (client, server, port): how many
//! are half-open (no handshake yet), how many of those are unanswered, how many are
//! established. `port_scan` takes its probes from here (refused, ended without payload,
//! unanswered for [`UNANSWERED_NS`]); `syn_flood` its half-open connections.
//!
//! Bounds: [`ATTEMPTS`] entries, least recently used evicted (counted). An entry leaves
//! when nothing of it is left: its attempts refused, timed out or ended. A fact about a
//! connection no longer held (evicted, or already counted as a probe) changes nothing,
//! except a refusal, which is a probe whatever we remember.

use super::table::Table;
use crate::capture::Ts;
use crate::decode::{Addr, Mac};

/// Attempts tracked at once.
pub(crate) const ATTEMPTS: usize = 8192;

/// An attempt not answered within this long is a probe (found by the tick's sweep, so
/// within this plus two ticks).
pub(crate) const UNANSWERED_NS: u64 = 3_000_000_000;

/// Slots looked at per tick: the whole table every two ticks.
const SWEEP: usize = ATTEMPTS / 2;

/// A connection's identity as the engine reports it (no client port: parallel attempts
/// of one client to one service share an entry and are counted in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Conn {
    pub client: Addr,
    pub server: Addr,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, Default)]
struct Attempt {
    /// The latest attempt.
    ts: Ts,
    half_open: u16,
    unanswered: u16,
    established: u16,
    mac: Option<Mac>,
}

/// A half-open attempt that stopped being one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed {
    /// When it was made (the latest attempt of its entry).
    pub ts: Ts,
    /// No half-open attempt of this client to this service is left.
    pub last: bool,
}

/// What a fact meant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub closed: Option<Closed>,
    /// It is a probe for `port_scan`.
    pub probe: bool,
    pub mac: Option<Mac>,
}

#[derive(Debug)]
pub(crate) struct Attempts {
    map: Table<Conn, Attempt>,
    cursor: u32,
}

impl Attempts {
    pub fn new() -> Self {
        Attempts {
            map: Table::new(ATTEMPTS),
            cursor: 0,
        }
    }

    pub fn attempt(&mut self, now: Ts, c: Conn, mac: Option<Mac>) {
        let (s, _) = self.map.upsert(c);
        if let Some(a) = self.map.get_mut(s) {
            a.ts = now;
            a.half_open = a.half_open.saturating_add(1);
            a.unanswered = a.unanswered.saturating_add(1);
            if mac.is_some() {
                a.mac = mac;
            }
        }
    }

    pub fn answered(&mut self, c: Conn) {
        if let Some(a) = self.map.find(&c).and_then(|s| self.map.get_mut(s)) {
            a.unanswered = a.unanswered.saturating_sub(1);
        }
    }

    /// Takes one half-open attempt out of the slot's entry.
    fn close_one(a: &mut Attempt) -> Option<Closed> {
        if a.half_open == 0 {
            return None;
        }
        a.half_open -= 1;
        a.unanswered = a.unanswered.min(a.half_open);
        Some(Closed {
            ts: a.ts,
            last: a.half_open == 0,
        })
    }

    fn release(&mut self, slot: u32) {
        if self
            .map
            .get(slot)
            .is_some_and(|a| a.half_open == 0 && a.established == 0)
        {
            self.map.remove(slot);
        }
    }

    pub fn established(&mut self, c: Conn) -> Outcome {
        let Some(s) = self.map.find(&c) else {
            return Outcome::default();
        };
        self.map.touch(s);
        let Some(a) = self.map.get_mut(s) else {
            return Outcome::default();
        };
        let closed = Attempts::close_one(a);
        if closed.is_some() {
            a.established = a.established.saturating_add(1);
        }
        Outcome {
            closed,
            probe: false,
            mac: a.mac,
        }
    }

    pub fn refused(&mut self, c: Conn) -> Outcome {
        let Some(s) = self.map.find(&c) else {
            return Outcome {
                probe: true,
                ..Outcome::default()
            };
        };
        let Some(a) = self.map.get_mut(s) else {
            return Outcome::default();
        };
        let out = Outcome {
            closed: Attempts::close_one(a),
            probe: true,
            mac: a.mac,
        };
        self.release(s);
        out
    }

    pub fn ended(&mut self, c: Conn, payload: bool) -> Outcome {
        let Some(s) = self.map.find(&c) else {
            return Outcome::default();
        };
        let Some(a) = self.map.get_mut(s) else {
            return Outcome::default();
        };
        let mac = a.mac;
        let out = if a.established > 0 {
            a.established -= 1;
            Outcome {
                closed: None,
                probe: !payload,
                mac,
            }
        } else {
            let closed = Attempts::close_one(a);
            Outcome {
                probe: closed.is_some() && !payload,
                closed,
                mac,
            }
        };
        self.release(s);
        out
    }

    /// Attempts unanswered for [`UNANSWERED_NS`], each entry once (its unanswered
    /// attempts stop counting as such; they stay half-open for `syn_flood`).
    pub fn sweep(&mut self, now: Ts, mut probe: impl FnMut(Conn, Option<Mac>)) {
        for slot in self.map.sweep_slots(&mut self.cursor, SWEEP) {
            let Some((c, a)) = self.map.entry_mut(slot) else {
                continue;
            };
            if a.unanswered == 0 || now.saturating_sub(a.ts) < UNANSWERED_NS {
                continue;
            }
            let c = *c;
            a.half_open -= a.unanswered.min(a.half_open);
            a.unanswered = 0;
            let mac = a.mac;
            self.release(slot);
            probe(c, mac);
        }
    }

    pub fn stats(&self) -> super::independent::TableStats {
        self.map.stats()
    }

    pub fn memory_bytes(&self) -> usize {
        self.map.memory_bytes()
    }
}
