//! Counters of one packet-processing thread: plain integers in fixed arrays indexed by
//! protocol, command, layer and violation id, bumped on the packet path with no atomics
//! and no allocation, and published as a snapshot on a tick (STYLE rule 5). Snapshots
//! of several threads merge by addition.

use crate::command::Cmd;
use crate::decode::Layer;
use crate::dissect::Violation;
use crate::proto::Proto;

/// Per-protocol counters (DESIGN.md, `replay --format json` `protocols.X`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoCounters {
    /// Every frame of the protocol's flows (handshakes and ACKs included).
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    /// The protocol's messages.
    pub pdus: u64,
}

/// Everything one engine counts. Cumulative since the engine started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub protocols: [ProtoCounters; Proto::COUNT],
    pub decode_errors: [u64; Layer::COUNT],
    /// Requests by command (`ics_commands`).
    pub commands: [u64; Cmd::COUNT],
    /// Responses and reports by command (`ics_responses`).
    pub responses: [u64; Cmd::COUNT],
    /// Error answers, by protocol (`<protocol>/exception` in `ics_responses`).
    pub exceptions: [u64; Proto::COUNT],
    pub violations: [u64; Violation::COUNT],
    /// Frames shorter than on the wire (snap length).
    pub truncated_frames: u64,
    pub ip_fragments: u64,
    /// Later fragments whose datagram's first fragment was not seen.
    pub orphan_fragments: u64,
    pub flows_created: u64,
    pub flows_active: u64,
    pub flow_evictions: u64,
    pub flows_expired: u64,
    pub stream_gaps: u64,
    pub retransmitted_bytes: u64,
    /// Partial messages dropped because every reassembly block was in use.
    pub reassembly_exhausted: u64,
    /// ICS flows dissected without per-flow state because the session table was full.
    pub ics_sessions_exhausted: u64,
    pub assets_active: u64,
    pub asset_evictions: u64,
    /// Messages carrying a user name and password in clear text (MQTT CONNECT, …).
    pub cleartext_credentials: u64,
    /// Messages marked as tests or simulation (GOOSE/SV test bit, …).
    pub test_messages: u64,
    /// GOOSE publisher state changes (inputs of the `goose` detector).
    pub goose: GooseCounters,
    /// Frames with an HSR tag or a PRP trailer, and the duplicates (the copy from the
    /// other LAN or ring direction) discarded: those are in no other counter.
    pub redundancy_frames: u64,
    pub redundancy_duplicates: u64,
}

/// What GOOSE publishers did (IEC 61850-8-1 state and sequence numbers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GooseCounters {
    pub publishers: u64,
    pub new_publishers: u64,
    pub st_num_back: u64,
    pub st_num_jump: u64,
    pub sq_num_reset: u64,
    pub test: u64,
    pub publisher_evictions: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            packets: 0,
            bytes: 0,
            protocols: [ProtoCounters::default(); Proto::COUNT],
            decode_errors: [0; Layer::COUNT],
            commands: [0; Cmd::COUNT],
            responses: [0; Cmd::COUNT],
            exceptions: [0; Proto::COUNT],
            violations: [0; Violation::COUNT],
            truncated_frames: 0,
            ip_fragments: 0,
            orphan_fragments: 0,
            flows_created: 0,
            flows_active: 0,
            flow_evictions: 0,
            flows_expired: 0,
            stream_gaps: 0,
            retransmitted_bytes: 0,
            reassembly_exhausted: 0,
            ics_sessions_exhausted: 0,
            assets_active: 0,
            asset_evictions: 0,
            cleartext_credentials: 0,
            test_messages: 0,
            goose: GooseCounters::default(),
            redundancy_frames: 0,
            redundancy_duplicates: 0,
        }
    }
}

impl Counters {
    #[inline]
    #[allow(clippy::indexing_slicing)] // `Proto` is a dense `repr(u8)` enum: always < COUNT.
    pub fn proto(&mut self, p: Proto) -> &mut ProtoCounters {
        &mut self.protocols[p.index()]
    }

    pub fn proto_ref(&self, p: Proto) -> ProtoCounters {
        self.protocols.get(p.index()).copied().unwrap_or_default()
    }

    #[inline]
    pub fn bump(arr: &mut [u64], i: usize, n: u64) {
        if let Some(x) = arr.get_mut(i) {
            *x += n;
        }
    }

    /// Adds another thread's counters (gauges add too: they are per-thread shares).
    pub fn merge(&mut self, o: &Counters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        for (a, b) in self.protocols.iter_mut().zip(o.protocols.iter()) {
            a.packets += b.packets;
            a.bytes += b.bytes;
            a.flows += b.flows;
            a.pdus += b.pdus;
        }
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.decode_errors, &o.decode_errors);
        add(&mut self.commands, &o.commands);
        add(&mut self.responses, &o.responses);
        add(&mut self.exceptions, &o.exceptions);
        add(&mut self.violations, &o.violations);
        self.truncated_frames += o.truncated_frames;
        self.ip_fragments += o.ip_fragments;
        self.orphan_fragments += o.orphan_fragments;
        self.flows_created += o.flows_created;
        self.flows_active += o.flows_active;
        self.flow_evictions += o.flow_evictions;
        self.flows_expired += o.flows_expired;
        self.stream_gaps += o.stream_gaps;
        self.retransmitted_bytes += o.retransmitted_bytes;
        self.reassembly_exhausted += o.reassembly_exhausted;
        self.ics_sessions_exhausted += o.ics_sessions_exhausted;
        self.assets_active += o.assets_active;
        self.asset_evictions += o.asset_evictions;
        self.cleartext_credentials += o.cleartext_credentials;
        self.test_messages += o.test_messages;
        let (g, h) = (&mut self.goose, &o.goose);
        g.publishers += h.publishers;
        g.new_publishers += h.new_publishers;
        g.st_num_back += h.st_num_back;
        g.st_num_jump += h.st_num_jump;
        g.sq_num_reset += h.sq_num_reset;
        g.test += h.test;
        g.publisher_evictions += h.publisher_evictions;
        self.redundancy_frames += o.redundancy_frames;
        self.redundancy_duplicates += o.redundancy_duplicates;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Counters {
            packets: 2,
            ..Counters::default()
        };
        a.proto(Proto::Modbus).packets = 5;
        Counters::bump(&mut a.commands, Cmd::ModbusReadCoils.index(), 3);
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!(b.packets, 4);
        assert_eq!(b.proto_ref(Proto::Modbus).packets, 10);
        assert_eq!(b.commands[Cmd::ModbusReadCoils.index()], 6);
    }
}
