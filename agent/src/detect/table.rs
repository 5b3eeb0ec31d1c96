//! The building blocks of the detectors' bounded state.
//!
//! - [`Table`]: a map of fixed capacity with least-recently-used eviction. Every byte
//!   is allocated by [`Table::new`] (a slab of `cap` entries and an open-addressing index
//!   of at least `2 × cap` slots with backward-shift deletion, so it never holds
//!   tombstones and never rehashes); inserting into a full table evicts the least
//!   recently used entry and counts it. The hash is randomly seeded so crafted traffic
//!   cannot aim at collisions; what the table *does* (which entry is evicted) depends only
//!   on the order of use, so detection stays a pure function of its inputs.
//! - [`Ring`]: a sliding-window counter of ten sub-windows.
//! - [`Distinct`]: the distinct values seen within a sliding window, exactly, up to
//!   [`DISTINCT_CAP`].
//! - [`Episode`]: the "fire once, then report periodically" state of one finding key.

use crate::capture::Ts;
use hashbrown::DefaultHashBuilder;
use std::hash::{BuildHasher, Hash};

const NIL: u32 = u32::MAX;
const EMPTY: u64 = u64::MAX;

#[derive(Clone)]
struct Slot<K, V> {
    key: K,
    val: V,
    prev: u32,
    next: u32,
    live: bool,
}

/// A bounded LRU map; see the module documentation.
pub(crate) struct Table<K, V> {
    slots: Box<[Slot<K, V>]>,
    /// `hash low 32 bits << 32 | slot`, or [`EMPTY`].
    index: Box<[u64]>,
    mask: usize,
    hasher: DefaultHashBuilder,
    /// Least recently used end of the list.
    head: u32,
    tail: u32,
    /// Free slots, linked through `next`.
    free: u32,
    len: u32,
    /// One past the highest slot ever used: cursor sweeps stop there.
    high: u32,
    evictions: u64,
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("capacity", &self.slots.len())
            .field("evictions", &self.evictions)
            .finish()
    }
}

impl<K: Hash + Eq + Copy + Default, V: Default> Table<K, V> {
    /// A table of `cap` entries (at least 1), all memory taken now.
    pub fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, (u32::MAX / 4) as usize);
        let slots: Vec<Slot<K, V>> = (0..cap)
            .map(|i| Slot {
                key: K::default(),
                val: V::default(),
                prev: NIL,
                next: if i + 1 < cap { i as u32 + 1 } else { NIL },
                live: false,
            })
            .collect();
        let buckets = (cap * 2).next_power_of_two();
        Table {
            slots: slots.into_boxed_slice(),
            index: vec![EMPTY; buckets].into_boxed_slice(),
            mask: buckets - 1,
            hasher: DefaultHashBuilder::default(),
            head: NIL,
            tail: NIL,
            free: 0,
            len: 0,
            high: 0,
            evictions: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[cfg(test)]
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// One past the highest slot ever used.
    pub fn high(&self) -> u32 {
        self.high
    }

    /// Bytes of the table: fixed at [`Table::new`].
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.slots.len() * std::mem::size_of::<Slot<K, V>>()
            + self.index.len() * std::mem::size_of::<u64>()
    }

    pub fn stats(&self) -> super::independent::TableStats {
        super::independent::TableStats {
            entries: u64::from(self.len),
            capacity: self.slots.len() as u64,
            evictions: self.evictions,
        }
    }

    #[inline]
    fn tag(&self, key: &K) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// The slot of `key`, if present.
    pub fn find(&self, key: &K) -> Option<u32> {
        let tag = self.tag(key);
        let mut i = tag as usize & self.mask;
        loop {
            let e = *self.index.get(i)?;
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == tag {
                let s = e as u32;
                if self.slots.get(s as usize).is_some_and(|x| x.key == *key) {
                    return Some(s);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn get(&self, slot: u32) -> Option<&V> {
        self.slots
            .get(slot as usize)
            .filter(|s| s.live)
            .map(|s| &s.val)
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut V> {
        self.slots
            .get_mut(slot as usize)
            .filter(|s| s.live)
            .map(|s| &mut s.val)
    }

    /// Key and value of a live slot.
    pub fn entry_mut(&mut self, slot: u32) -> Option<(&K, &mut V)> {
        self.slots
            .get_mut(slot as usize)
            .filter(|s| s.live)
            .map(|s| (&s.key, &mut s.val))
    }

    pub fn key(&self, slot: u32) -> Option<&K> {
        self.slots
            .get(slot as usize)
            .filter(|s| s.live)
            .map(|s| &s.key)
    }

    fn unlink(&mut self, slot: u32) {
        let Some(s) = self.slots.get(slot as usize) else {
            return;
        };
        let (prev, next) = (s.prev, s.next);
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_back(&mut self, slot: u32) {
        let tail = self.tail;
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.prev = tail;
            s.next = NIL;
        }
        match self.slots.get_mut(tail as usize) {
            Some(t) => t.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
    }

    /// Marks `slot` as just used.
    #[inline]
    pub fn touch(&mut self, slot: u32) {
        if self.tail != slot && self.slots.get(slot as usize).is_some_and(|s| s.live) {
            self.unlink(slot);
            self.push_back(slot);
        }
    }

    /// Removes a live slot.
    pub fn remove(&mut self, slot: u32) {
        let Some(key) = self.key(slot).copied() else {
            return;
        };
        // Find the slot's place in the index, then shift the run after it back over it.
        let tag = self.tag(&key);
        let mut i = tag as usize & self.mask;
        loop {
            match self.index.get(i).copied() {
                None | Some(EMPTY) => break,
                Some(e) if e as u32 == slot => {
                    self.shift_back(i);
                    break;
                }
                Some(_) => i = (i + 1) & self.mask,
            }
        }
        self.unlink(slot);
        let free = self.free;
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.live = false;
            s.next = free;
            s.prev = NIL;
        }
        self.free = slot;
        self.len -= 1;
    }

    /// Backward-shift deletion at index position `hole` (linear probing).
    fn shift_back(&mut self, mut hole: usize) {
        let mask = self.mask;
        let mut j = (hole + 1) & mask;
        loop {
            let e = match self.index.get(j).copied() {
                None | Some(EMPTY) => break,
                Some(e) => e,
            };
            let home = (e >> 32) as usize & mask;
            // `e` may fill the hole if the hole lies between its home and `j`.
            if (j.wrapping_sub(hole) & mask) <= (j.wrapping_sub(home) & mask) {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = EMPTY;
        }
    }

    /// Inserts `key` (the caller checked it is absent), evicting the least recently used
    /// entry when full. Returns the new slot.
    pub fn insert(&mut self, key: K, val: V) -> u32 {
        self.insert_with(key, |v| *v = val)
    }

    /// [`Table::insert`], the value set up in place by `init` (from whatever the slot
    /// held: large values need not be built and copied).
    pub fn insert_with(&mut self, key: K, init: impl FnOnce(&mut V)) -> u32 {
        if self.free == NIL {
            let oldest = self.head;
            self.remove(oldest);
            self.evictions += 1;
        }
        self.insert_free(key, init).unwrap_or(NIL)
    }

    /// Inserts `key` if there is room, without evicting.
    pub fn try_insert(&mut self, key: K, val: V) -> Option<u32> {
        self.insert_free(key, |v| *v = val)
    }

    fn insert_free(&mut self, key: K, init: impl FnOnce(&mut V)) -> Option<u32> {
        let slot = self.free;
        let s = self.slots.get_mut(slot as usize)?;
        self.free = s.next;
        s.key = key;
        init(&mut s.val);
        s.live = true;
        self.push_back(slot);
        let tag = self.tag(&key);
        let mut i = tag as usize & self.mask;
        while let Some(e) = self.index.get_mut(i) {
            if *e == EMPTY {
                *e = (u64::from(tag) << 32) | u64::from(slot);
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.len += 1;
        self.high = self.high.max(slot + 1);
        Some(slot)
    }

    /// The slot of `key`, inserted with `V::default()` if absent (evicting when full),
    /// marked as used. The flag says whether it was inserted.
    pub fn upsert(&mut self, key: K) -> (u32, bool) {
        self.upsert_with(key, |v| *v = V::default())
    }

    /// [`Table::upsert`], a new value set up in place by `init`.
    pub fn upsert_with(&mut self, key: K, init: impl FnOnce(&mut V)) -> (u32, bool) {
        match self.find(&key) {
            Some(s) => {
                self.touch(s);
                (s, false)
            }
            None => (self.insert_with(key, init), true),
        }
    }

    /// The next `budget` slots from `*cursor` on (wrapping at [`Table::high`]): the
    /// slots a bounded sweep looks at this time.
    pub fn sweep_slots(
        &self,
        cursor: &mut u32,
        budget: usize,
    ) -> impl Iterator<Item = u32> + use<K, V> {
        let high = self.high;
        // An empty table has nothing to sweep.
        let n = if self.len == 0 {
            0
        } else {
            budget.min(high as usize)
        };
        let start = if *cursor >= high { 0 } else { *cursor };
        *cursor = if high == 0 {
            0
        } else {
            ((u64::from(start) + n as u64) % u64::from(high)) as u32
        };
        (0..n as u64).map(move |i| ((u64::from(start) + i) % u64::from(high.max(1))) as u32)
    }

    /// Live slots, least recently used first.
    #[cfg(test)]
    pub fn iter_slots(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            let s = cur;
            cur = self.slots.get(s as usize)?.next;
            Some(s)
        })
    }
}

/// Sub-windows of a [`Ring`].
pub(crate) const RING: usize = 10;

/// A count over a sliding window, in [`RING`] sub-windows of `window / RING` each (the
/// window slides by a tenth).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ring {
    width: u64,
    epochs: [u64; RING],
    counts: [u32; RING],
}

impl Ring {
    fn epoch(&mut self, now: Ts, window_ns: u64) -> u64 {
        let width = (window_ns / RING as u64).max(1);
        if width != self.width {
            // The window changed (a reload): start counting afresh.
            *self = Ring {
                width,
                ..Ring::default()
            };
        }
        now.0 / width
    }

    /// Adds `n` at `now`; returns the count within the window ending at `now`.
    pub fn add(&mut self, now: Ts, window_ns: u64, n: u32) -> u32 {
        let e = self.epoch(now, window_ns);
        let i = (e % RING as u64) as usize;
        if let (Some(ep), Some(c)) = (self.epochs.get_mut(i), self.counts.get_mut(i)) {
            if *ep != e {
                *ep = e;
                *c = 0;
            }
            *c = c.saturating_add(n);
        }
        self.sum_at(e)
    }

    /// Takes back `n` added at `then` (if its sub-window is still held).
    pub fn sub(&mut self, then: Ts, window_ns: u64, n: u32) {
        let e = self.epoch(then, window_ns);
        let i = (e % RING as u64) as usize;
        if let (Some(ep), Some(c)) = (self.epochs.get(i), self.counts.get_mut(i))
            && *ep == e
        {
            *c = c.saturating_sub(n);
        }
    }

    fn sum_at(&self, e: u64) -> u32 {
        let mut sum = 0u32;
        for (ep, c) in self.epochs.iter().zip(&self.counts) {
            if e.wrapping_sub(*ep) < RING as u64 {
                sum = sum.saturating_add(*c);
            }
        }
        sum
    }

    /// The count within the window ending at `now`.
    #[cfg(test)]
    pub fn sum(&mut self, now: Ts, window_ns: u64) -> u32 {
        let e = self.epoch(now, window_ns);
        self.sum_at(e)
    }
}

/// How many distinct values a [`Distinct`] holds exactly: thresholds above it act as
/// this value.
pub(crate) const DISTINCT_CAP: usize = 64;

/// Time in a [`Distinct`]: centiseconds, wrapping (the set is cleared when its newest
/// value is older than the window, so wrapping never compares values years apart).
fn centis(t: Ts) -> u32 {
    (t.0 / 10_000_000) as u32
}

/// The distinct 32-bit values (ports, address hashes) seen within a sliding window, each
/// with the last time it was seen. Exact up to [`DISTINCT_CAP`] values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Distinct {
    last: Ts,
    n: u8,
    vals: [u32; DISTINCT_CAP],
    times: [u32; DISTINCT_CAP],
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct {
            last: Ts(0),
            n: 0,
            vals: [0; DISTINCT_CAP],
            times: [0; DISTINCT_CAP],
        }
    }
}

impl Distinct {
    /// Empties the set in place.
    pub fn clear(&mut self) {
        self.n = 0;
        self.last = Ts(0);
    }

    /// Records `v` seen at `now` and returns how many distinct values were seen within
    /// `window_ns` up to `now` (`v` included; [`DISTINCT_CAP`] when the set is full).
    pub fn insert(&mut self, v: u32, now: Ts, window_ns: u64) -> u32 {
        if now.saturating_sub(self.last) > window_ns {
            self.n = 0;
        }
        self.last = self.last.max(now);
        let t = centis(now);
        let w = (window_ns / 10_000_000) as u32;
        let n = usize::from(self.n);
        let mut live = 0u32;
        let mut reuse = None;
        let mut found = false;
        for (i, (val, time)) in self
            .vals
            .iter()
            .zip(self.times.iter_mut())
            .take(n)
            .enumerate()
        {
            if *val == v {
                *time = t;
                found = true;
                live += 1;
            } else if t.wrapping_sub(*time) <= w {
                live += 1;
            } else if reuse.is_none() {
                reuse = Some(i);
            }
        }
        if found {
            return live;
        }
        // A new value: into an expired place, or at the end, or the set is full.
        let at = match reuse {
            Some(i) => i,
            None if n < DISTINCT_CAP => {
                self.n += 1;
                n
            }
            None => return DISTINCT_CAP as u32,
        };
        if let (Some(val), Some(time)) = (self.vals.get_mut(at), self.times.get_mut(at)) {
            *val = v;
            *time = t;
        }
        live + 1
    }

    /// Forgets `v`.
    pub fn remove(&mut self, v: u32) {
        let n = usize::from(self.n);
        if let Some(i) = self.vals.iter().take(n).position(|x| *x == v) {
            let last = n - 1;
            self.vals.swap(i, last);
            self.times.swap(i, last);
            self.n -= 1;
        }
    }
}

/// Findings of an ongoing event come at most this often after the first.
pub(crate) const REPORT_EVERY_NS: u64 = 10_000_000_000;

/// An event ends (the next occurrence must cross the threshold again, and is a new
/// event) after this long without occurrences.
pub(crate) const QUIET_NS: u64 = 60_000_000_000;

/// The reporting state of one finding key: the first finding when the threshold is
/// crossed, then at most one per [`REPORT_EVERY_NS`] carrying the occurrences since the
/// last one; the remainder is flushed when the event goes quiet.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Episode {
    pub active: bool,
    last_report: Ts,
    last_hit: Ts,
    pending: u64,
}

impl Episode {
    /// The threshold was crossed at `now`: the first finding is being emitted.
    pub fn start(&mut self, now: Ts) {
        *self = Episode {
            active: true,
            last_report: now,
            last_hit: now,
            pending: 0,
        };
    }

    /// Whether the event is ongoing at `now` (active and not quiet for [`QUIET_NS`]).
    pub fn ongoing(&self, now: Ts) -> bool {
        self.active && now.saturating_sub(self.last_hit) < QUIET_NS
    }

    /// `n` more occurrences at `now`; `Some(count)` when a periodic finding is due.
    pub fn add(&mut self, now: Ts, n: u64) -> Option<u64> {
        self.pending = self.pending.saturating_add(n);
        self.last_hit = self.last_hit.max(now);
        self.due(now)
    }

    fn due(&mut self, now: Ts) -> Option<u64> {
        if self.pending > 0 && now.saturating_sub(self.last_report) >= REPORT_EVERY_NS {
            let p = self.pending;
            self.pending = 0;
            self.last_report = now;
            Some(p)
        } else {
            None
        }
    }

    /// A sweep at `now`: the periodic finding if due, or the remainder when the event
    /// went quiet (it ends then).
    pub fn tick(&mut self, now: Ts) -> Option<u64> {
        if !self.active {
            return None;
        }
        if now.saturating_sub(self.last_hit) >= QUIET_NS {
            self.active = false;
            let p = self.pending;
            self.pending = 0;
            return (p > 0).then_some(p);
        }
        self.due(now)
    }

    /// Ends the event (the caller reports the returned remainder, if any).
    pub fn end(&mut self) -> Option<u64> {
        let p = self.pending;
        *self = Episode::default();
        (p > 0).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_evicts_lru_and_never_grows() {
        let mut t: Table<u64, u32> = Table::new(3);
        let mem = t.memory_bytes();
        let a = t.insert(1, 10);
        t.insert(2, 20);
        t.insert(3, 30);
        t.touch(a);
        t.insert(4, 40); // evicts 2
        assert_eq!(t.evictions(), 1);
        assert!(t.find(&2).is_none());
        assert_eq!(t.find(&1).and_then(|s| t.get(s)).copied(), Some(10));
        let order: Vec<u64> = t.iter_slots().filter_map(|s| t.key(s).copied()).collect();
        assert_eq!(order, vec![3, 1, 4]);
        for k in 0..100_000u64 {
            if t.find(&k).is_none() {
                t.insert(k, 0);
            }
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.memory_bytes(), mem);
    }

    #[test]
    fn table_remove_keeps_the_index_consistent() {
        // Many collisions in a small index: remove every other key, then check the rest.
        let mut t: Table<u32, u32> = Table::new(512);
        for k in 0..512 {
            t.insert(k, k * 2);
        }
        for k in (0..512).step_by(2) {
            let s = t.find(&k).unwrap();
            t.remove(s);
        }
        for k in 0..512 {
            let got = t.find(&k).and_then(|s| t.get(s)).copied();
            assert_eq!(got, (k % 2 == 1).then_some(k * 2), "{k}");
        }
        for k in 1000..1256 {
            t.insert(k, 1);
        }
        assert_eq!(t.len(), 512);
        assert_eq!(t.evictions(), 0);
        for k in (1..512).step_by(2).chain(1000..1256) {
            assert!(t.find(&k).is_some(), "{k}");
        }
    }

    #[test]
    fn sweep_wraps_and_is_bounded() {
        let mut t: Table<u32, u32> = Table::new(10);
        for k in 0..4 {
            t.insert(k, k);
        }
        let mut c = 0;
        let a: Vec<u32> = t.sweep_slots(&mut c, 3).collect();
        let b: Vec<u32> = t.sweep_slots(&mut c, 3).collect();
        assert_eq!(a, vec![0, 1, 2]);
        assert_eq!(b, vec![3, 0, 1]);
    }

    #[test]
    fn ring_slides() {
        let w = 1_000_000_000;
        let mut r = Ring::default();
        assert_eq!(r.add(Ts(0), w, 5), 5);
        assert_eq!(r.add(Ts(500_000_000), w, 5), 10);
        assert_eq!(r.sum(Ts(999_000_000), w), 10);
        assert_eq!(r.sum(Ts(1_050_000_000), w), 5);
        r.sub(Ts(500_000_000), w, 2);
        assert_eq!(r.sum(Ts(1_050_000_000), w), 3);
        assert_eq!(r.sum(Ts(1_600_000_000), w), 0);
    }

    #[test]
    fn distinct_is_exact_and_slides() {
        let w = 60_000_000_000;
        let mut d = Distinct::default();
        for p in 0..19u32 {
            assert_eq!(d.insert(p, Ts::from_secs(u64::from(p)), w), p + 1);
        }
        assert_eq!(d.insert(5, Ts::from_secs(30), w), 19, "a repeat is not new");
        // At 70 s, values seen at 0..=9 s have left the window (5 was seen again at 30 s).
        assert_eq!(d.insert(100, Ts::from_secs(70), w), 11);
        for v in 0..200 {
            d.insert(1000 + v, Ts::from_secs(80), w);
        }
        assert_eq!(d.insert(5000, Ts::from_secs(80), w), DISTINCT_CAP as u32);
        d.remove(1000);
        assert_eq!(d.insert(5001, Ts::from_secs(80), w), DISTINCT_CAP as u32);
        assert_eq!(d.insert(7, Ts::from_secs(200), w), 1, "all expired");
    }

    #[test]
    fn episode_reports_periodically_and_flushes_when_quiet() {
        let mut e = Episode::default();
        e.start(Ts::from_secs(0));
        assert_eq!(e.add(Ts::from_secs(1), 1), None);
        assert_eq!(e.add(Ts::from_secs(5), 1), None);
        assert_eq!(e.add(Ts::from_secs(10), 1), Some(3));
        assert_eq!(e.add(Ts::from_secs(11), 1), None);
        assert_eq!(e.tick(Ts::from_secs(15)), None);
        assert_eq!(e.tick(Ts::from_secs(21)), Some(1));
        e.add(Ts::from_secs(22), 4);
        assert!(e.ongoing(Ts::from_secs(60)));
        assert_eq!(e.tick(Ts::from_secs(82)), Some(4));
        assert!(!e.active);
    }
}
