//! TCP reassembly of ICS messages, bounded and preallocated.
//!
//! Most ICS messages arrive one per segment; those are dissected in place, with no copy.
//! A message split across segments has its first part copied into a block of a
//! preallocated [`BufPool`] until the rest arrives; several messages in one segment are
//! split by the protocol's `frame` function. A message longer than a block keeps its
//! first [`BLOCK`] bytes (enough for every header we decode) and the rest is skipped, so
//! memory per flow is bounded whatever the peer sends. Sequence numbers are tracked per
//! direction: retransmitted bytes are dropped, a gap (lost segment) discards the partial
//! message and resynchronises on the next segment, counted, never guessed.

use crate::dissect::{FrameLen, Violation};

/// Size of one reassembly block: covers a whole Modbus ADU (260), IEC-104 APDU (255),
/// DNP3 link frame (292) and the headers of any S7 PDU.
pub const BLOCK: usize = 1024;

/// Index of a block in a [`BufPool`].
pub type BufId = u32;
pub const NO_BUF: BufId = u32::MAX;

/// A fixed set of [`BLOCK`]-byte buffers, allocated once.
#[derive(Debug)]
pub struct BufPool {
    storage: Vec<u8>,
    free: Vec<BufId>,
    /// Allocation failures (pool exhausted).
    pub exhausted: u64,
}

impl BufPool {
    pub fn new(blocks: usize) -> Self {
        BufPool {
            storage: vec![0; blocks * BLOCK],
            free: (0..blocks as u32).rev().collect(),
            exhausted: 0,
        }
    }

    pub fn alloc(&mut self) -> Option<BufId> {
        let id = self.free.pop();
        if id.is_none() {
            self.exhausted += 1;
        }
        id
    }

    pub fn release(&mut self, id: BufId) {
        if id != NO_BUF && (id as usize) < self.storage.len() / BLOCK {
            self.free.push(id);
        }
    }

    pub fn in_use(&self) -> usize {
        self.storage.len() / BLOCK - self.free.len()
    }

    pub fn block(&self, id: BufId) -> &[u8] {
        let start = id as usize * BLOCK;
        self.storage.get(start..start + BLOCK).unwrap_or(&[])
    }

    pub fn block_mut(&mut self, id: BufId) -> &mut [u8] {
        let start = id as usize * BLOCK;
        self.storage
            .get_mut(start..start + BLOCK)
            .unwrap_or(&mut [])
    }
}

/// Reassembly state of one direction of one TCP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirStream {
    /// Next expected sequence number, once known.
    pub next_seq: u32,
    pub seq_known: bool,
    /// Block holding the start of a partial message, or [`NO_BUF`].
    pub buf: BufId,
    /// Bytes held in `buf`.
    pub len: u16,
    /// Bytes still to skip of an oversized message whose prefix is in `buf`.
    pub skip: u32,
}

impl Default for DirStream {
    fn default() -> Self {
        DirStream {
            next_seq: 0,
            seq_known: false,
            buf: NO_BUF,
            len: 0,
            skip: 0,
        }
    }
}

/// Where [`DirStream::feed`] delivers messages and framing violations.
pub trait StreamSink {
    /// A whole message, or the first [`BLOCK`] bytes of an oversized one (`truncated`).
    fn message(&mut self, msg: &[u8], truncated: bool);
    fn violation(&mut self, v: Violation);
}

/// What reassembly noticed, for counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub gaps: u64,
    pub retransmitted_bytes: u64,
    pub out_of_buffers: u64,
}

impl DirStream {
    /// Drops any partial message (after a gap, or when the flow ends).
    pub fn reset(&mut self, pool: &mut BufPool) {
        pool.release(self.buf);
        self.buf = NO_BUF;
        self.len = 0;
        self.skip = 0;
    }

    /// Holds `data` (at most one block) as the start of the direction's stream, e.g.
    /// while the classifier waits for more bytes. Replaces what was held.
    pub fn hold(&mut self, data: &[u8], pool: &mut BufPool) {
        self.reset(pool);
        if data.is_empty() {
            return;
        }
        let Some(id) = pool.alloc() else {
            return;
        };
        let n = data.len().min(BLOCK);
        if let (Some(dst), Some(src)) = (pool.block_mut(id).get_mut(..n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.buf = id;
        self.len = n as u16;
    }

    /// Trims `payload` (a segment starting at `seq`) to the bytes not seen before.
    /// Returns `None` when nothing new remains. A gap resets the partial message.
    pub fn accept<'a>(
        &mut self,
        seq: u32,
        payload: &'a [u8],
        pool: &mut BufPool,
        stats: &mut StreamStats,
    ) -> Option<&'a [u8]> {
        let len = payload.len() as u32;
        if !self.seq_known {
            self.seq_known = true;
            self.next_seq = seq.wrapping_add(len);
            return Some(payload);
        }
        let delta = seq.wrapping_sub(self.next_seq) as i32;
        if delta == 0 {
            self.next_seq = seq.wrapping_add(len);
            Some(payload)
        } else if delta > 0 {
            // Bytes missing between what we have and this segment.
            stats.gaps += 1;
            self.reset(pool);
            self.next_seq = seq.wrapping_add(len);
            Some(payload)
        } else {
            let old = delta.unsigned_abs();
            if old >= len {
                stats.retransmitted_bytes += u64::from(len);
                return None;
            }
            stats.retransmitted_bytes += u64::from(old);
            self.next_seq = seq.wrapping_add(len);
            payload.get(old as usize..)
        }
    }

    /// Splits `data` (new in-order stream bytes) into messages with `frame` and hands
    /// each to `sink`. A framing error is reported to `sink` and the rest of the segment
    /// is dropped (the next segment is assumed to start a message).
    pub fn feed(
        &mut self,
        mut data: &[u8],
        pool: &mut BufPool,
        stats: &mut StreamStats,
        frame: impl Fn(&[u8]) -> FrameLen,
        sink: &mut dyn StreamSink,
    ) {
        // Finish skipping an oversized message.
        if self.skip > 0 {
            let n = (self.skip as usize).min(data.len());
            self.skip -= n as u32;
            data = data.get(n..).unwrap_or(&[]);
            if self.skip > 0 {
                return;
            }
            if self.buf != NO_BUF {
                let held = usize::from(self.len);
                sink.message(pool.block(self.buf).get(..held).unwrap_or(&[]), true);
            }
            self.reset(pool);
        }
        // Complete a partial message held in a block.
        while self.buf != NO_BUF && !data.is_empty() {
            let held = usize::from(self.len);
            let (want, whole) = match frame(pool.block(self.buf).get(..held).unwrap_or(&[])) {
                FrameLen::Need(n) => (n, false),
                FrameLen::Len(total) => (total, true),
                FrameLen::Invalid(v) => {
                    sink.violation(v);
                    self.reset(pool);
                    return;
                }
            };
            if want <= held {
                // The block already holds a whole message: bytes kept by `hold` while the
                // flow's protocol was undecided (a COTP connection confirm, say). Deliver
                // it and keep the rest, instead of dropping the new data with it.
                if whole && want > 0 {
                    sink.message(pool.block(self.buf).get(..want).unwrap_or(&[]), false);
                    if let Some(b) = pool.block_mut(self.buf).get_mut(..held) {
                        b.copy_within(want.., 0);
                    }
                    self.len = (held - want) as u16;
                    if self.len == 0 {
                        self.reset(pool);
                    }
                    continue;
                }
                // Cannot happen with a consistent `frame`; resynchronise rather than loop.
                self.reset(pool);
                return;
            }
            let room = BLOCK.saturating_sub(held);
            let n = (want - held).min(data.len()).min(room);
            if n == 0 {
                // A full block whose framing still asks for more: give up on it.
                self.reset(pool);
                return;
            }
            if let (Some(src), Some(dst)) = (
                data.get(..n),
                pool.block_mut(self.buf).get_mut(held..held + n),
            ) {
                dst.copy_from_slice(src);
            }
            self.len += n as u16;
            data = data.get(n..).unwrap_or(&[]);
            let held = usize::from(self.len);
            if held >= BLOCK
                && want > BLOCK
                && let FrameLen::Len(total) = frame(pool.block(self.buf).get(..held).unwrap_or(&[]))
            {
                // Oversized: keep the prefix, skip the rest of the message.
                let rest = total - held;
                let n = rest.min(data.len());
                data = data.get(n..).unwrap_or(&[]);
                self.skip = (rest - n) as u32;
                sink.violation(Violation::ReassemblyOverflow);
                if self.skip > 0 {
                    return;
                }
                sink.message(pool.block(self.buf).get(..held).unwrap_or(&[]), true);
                self.reset(pool);
                continue;
            }
            if let FrameLen::Len(total) = frame(pool.block(self.buf).get(..held).unwrap_or(&[]))
                && held == total
            {
                sink.message(pool.block(self.buf).get(..held).unwrap_or(&[]), false);
                self.reset(pool);
            }
        }
        // Whole messages straight from the segment, the rest into a block.
        while !data.is_empty() {
            match frame(data) {
                FrameLen::Len(total) if total <= data.len() => {
                    let (msg, rest) = data.split_at(total);
                    sink.message(msg, false);
                    data = rest;
                }
                FrameLen::Len(total) => {
                    let Some(id) = pool.alloc() else {
                        stats.out_of_buffers += 1;
                        return;
                    };
                    let n = data.len().min(BLOCK);
                    if let (Some(src), Some(dst)) = (data.get(..n), pool.block_mut(id).get_mut(..n))
                    {
                        dst.copy_from_slice(src);
                    }
                    self.buf = id;
                    self.len = n as u16;
                    if total > BLOCK && n == BLOCK {
                        sink.violation(Violation::ReassemblyOverflow);
                        self.skip = (total - data.len()) as u32;
                        if self.skip == 0 {
                            sink.message(pool.block(id).get(..n).unwrap_or(&[]), true);
                            self.reset(pool);
                        }
                    }
                    return;
                }
                FrameLen::Need(_) => {
                    let Some(id) = pool.alloc() else {
                        stats.out_of_buffers += 1;
                        return;
                    };
                    let n = data.len().min(BLOCK);
                    if let (Some(src), Some(dst)) = (data.get(..n), pool.block_mut(id).get_mut(..n))
                    {
                        dst.copy_from_slice(src);
                    }
                    self.buf = id;
                    self.len = n as u16;
                    return;
                }
                FrameLen::Invalid(v) => {
                    sink.violation(v);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A toy framing: first byte is the total length (>= 2), 0 is invalid.
    fn frame(b: &[u8]) -> FrameLen {
        match b.first() {
            None => FrameLen::Need(1),
            Some(0) | Some(1) => FrameLen::Invalid(Violation::ModbusBadLength),
            Some(&n) => FrameLen::Len(usize::from(n)),
        }
    }

    #[derive(Default)]
    pub(crate) struct Collect {
        pub msgs: Vec<(Vec<u8>, bool)>,
        pub viol: Vec<Violation>,
    }
    impl StreamSink for Collect {
        fn message(&mut self, msg: &[u8], truncated: bool) {
            self.msgs.push((msg.to_vec(), truncated));
        }
        fn violation(&mut self, v: Violation) {
            self.viol.push(v);
        }
    }

    fn run(
        dir: &mut DirStream,
        pool: &mut BufPool,
        data: &[u8],
    ) -> (Vec<(Vec<u8>, bool)>, Vec<Violation>) {
        let mut c = Collect::default();
        let mut stats = StreamStats::default();
        dir.feed(data, pool, &mut stats, frame, &mut c);
        (c.msgs, c.viol)
    }

    #[test]
    fn splits_coalesced_messages() {
        let mut pool = BufPool::new(4);
        let mut d = DirStream::default();
        let (m, v) = run(&mut d, &mut pool, &[3, 1, 1, 2, 9, 4, 0, 0, 0]);
        assert_eq!(
            m,
            vec![
                (vec![3, 1, 1], false),
                (vec![2, 9], false),
                (vec![4, 0, 0, 0], false)
            ]
        );
        assert!(v.is_empty());
        assert_eq!(pool.in_use(), 0);
    }

    /// Regression: whole messages held by `hold` (kept while the flow was being classified,
    /// e.g. a COTP CC before the client's CONNECT decided MMS) were dropped together with
    /// the next segment of that direction (the MMS initiate response).
    #[test]
    fn whole_messages_held_before_the_decision_are_delivered() {
        let mut pool = BufPool::new(4);
        let mut d = DirStream::default();
        d.hold(&[2, 7, 3, 1, 1, 4, 9], &mut pool);
        let (m, v) = run(&mut d, &mut pool, &[5, 5, 3, 8, 8, 8]);
        assert_eq!(
            m,
            vec![
                (vec![2, 7], false),
                (vec![3, 1, 1], false),
                (vec![4, 9, 5, 5], false),
                (vec![3, 8, 8], false),
            ]
        );
        assert!(v.is_empty());
        // The last byte starts a message still held.
        assert_eq!(pool.in_use(), 1);
        d.reset(&mut pool);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn joins_split_messages_across_segments() {
        let mut pool = BufPool::new(4);
        let mut d = DirStream::default();
        let (m, _) = run(&mut d, &mut pool, &[5, 1]);
        assert!(m.is_empty());
        assert_eq!(pool.in_use(), 1);
        let (m, _) = run(&mut d, &mut pool, &[2]);
        assert!(m.is_empty());
        let (m, _) = run(&mut d, &mut pool, &[3, 4, 3, 7]);
        assert_eq!(m, vec![(vec![5, 1, 2, 3, 4], false)]);
        assert_eq!(pool.in_use(), 1, "the next partial message is held");
        let (m, _) = run(&mut d, &mut pool, &[7, 2, 1]);
        assert_eq!(m, vec![(vec![3, 7, 7], false), (vec![2, 1], false)]);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn oversized_messages_keep_a_prefix_and_stay_bounded() {
        // A framing whose messages are 3000 bytes: longer than a block.
        let big = |b: &[u8]| {
            if b.first() == Some(&0xAA) {
                FrameLen::Len(3000)
            } else {
                FrameLen::Invalid(Violation::ModbusBadLength)
            }
        };
        let mut pool = BufPool::new(2);
        let mut d = DirStream::default();
        let mut stats = StreamStats::default();
        let mut c = Collect::default();
        let mut seg = vec![0xAAu8; 1400];
        seg[1] = 1;
        d.feed(&seg, &mut pool, &mut stats, big, &mut c);
        d.feed(&[0u8; 1400], &mut pool, &mut stats, big, &mut c);
        assert!(c.msgs.is_empty());
        let mut last = vec![0u8; 200];
        last.extend_from_slice(&[0xAA; 10]);
        d.feed(&last, &mut pool, &mut stats, big, &mut c);
        let lens: Vec<(usize, bool)> = c.msgs.iter().map(|(m, t)| (m.len(), *t)).collect();
        assert_eq!(lens, vec![(BLOCK, true)]);
        assert_eq!(c.viol, vec![Violation::ReassemblyOverflow]);
        assert_eq!(pool.in_use(), 1, "the next message's start is held");
    }

    #[test]
    fn invalid_framing_is_a_violation_and_drops_the_segment() {
        let mut pool = BufPool::new(2);
        let mut d = DirStream::default();
        let (m, v) = run(&mut d, &mut pool, &[2, 5, 0, 9, 9]);
        assert_eq!(m, vec![(vec![2, 5], false)]);
        assert_eq!(v, vec![Violation::ModbusBadLength]);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn sequence_tracking_drops_retransmissions_and_counts_gaps() {
        let mut pool = BufPool::new(2);
        let mut d = DirStream::default();
        let mut st = StreamStats::default();
        assert_eq!(
            d.accept(1000, &[1, 2, 3], &mut pool, &mut st),
            Some(&[1u8, 2, 3][..])
        );
        assert_eq!(d.accept(1000, &[1, 2, 3], &mut pool, &mut st), None);
        assert_eq!(
            d.accept(1002, &[3, 4], &mut pool, &mut st),
            Some(&[4u8][..])
        );
        assert_eq!(st.retransmitted_bytes, 4);
        assert_eq!(d.accept(1010, &[9], &mut pool, &mut st), Some(&[9u8][..]));
        assert_eq!(st.gaps, 1);
        // Wrap-around of the sequence space.
        let mut d = DirStream::default();
        assert!(
            d.accept(u32::MAX - 1, &[1, 2, 3], &mut pool, &mut st)
                .is_some()
        );
        assert_eq!(d.accept(1, &[4], &mut pool, &mut st), Some(&[4u8][..]));
    }

    #[test]
    fn pool_exhaustion_is_counted_not_fatal() {
        let mut pool = BufPool::new(1);
        let mut a = DirStream::default();
        let mut b = DirStream::default();
        run(&mut a, &mut pool, &[9, 1]);
        let mut stats = StreamStats::default();
        b.feed(
            &[9, 1],
            &mut pool,
            &mut stats,
            frame,
            &mut Collect::default(),
        );
        assert_eq!(stats.out_of_buffers, 1);
        a.reset(&mut pool);
        assert_eq!(pool.in_use(), 0);
    }
}
