//! A bounded map with least-recently-used eviction, the shape of every table of the
//! agent (flows, assets, later the detectors' per-source state): a slab of entries
//! allocated once, an index of `u32` slots keyed by a randomly seeded hash (so that
//! crafted traffic cannot aim at collisions), and an intrusive doubly linked list in
//! order of last use. Reordering happens at most once per entry per *epoch* (the caller's
//! coarse clock, e.g. the packet time in seconds), so a busy entry costs no list work
//! per packet, and idle expiry walks from the oldest end only.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::{BuildHasher, Hash};

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Entry<K, V> {
    key: K,
    value: V,
    prev: u32,
    next: u32,
    epoch: u32,
    live: bool,
}

/// A bounded LRU map; see the module documentation.
#[derive(Debug)]
pub struct LruMap<K, V> {
    entries: Vec<Entry<K, V>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    head: u32,
    tail: u32,
    cap: usize,
    len: usize,
}

impl<K: Hash + Eq + Copy + Default, V: Default> LruMap<K, V> {
    /// A map holding at most `cap` entries (at least 1). Memory for the index is taken
    /// now; entries are added as used, never beyond `cap`.
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.clamp(1, u32::MAX as usize - 1);
        LruMap {
            entries: Vec::with_capacity(cap),
            free: Vec::new(),
            index: HashTable::with_capacity(cap),
            hasher: DefaultHashBuilder::default(),
            head: NIL,
            tail: NIL,
            cap,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot of `key`, if present.
    pub fn find(&self, key: &K) -> Option<u32> {
        let h = self.hash(key);
        let entries = &self.entries;
        self.index
            .find(h, |&i| {
                entries.get(i as usize).is_some_and(|e| e.key == *key)
            })
            .copied()
    }

    pub fn get(&self, slot: u32) -> Option<&V> {
        self.entries
            .get(slot as usize)
            .filter(|e| e.live)
            .map(|e| &e.value)
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut V> {
        self.entries
            .get_mut(slot as usize)
            .filter(|e| e.live)
            .map(|e| &mut e.value)
    }

    pub fn key(&self, slot: u32) -> Option<&K> {
        self.entries
            .get(slot as usize)
            .filter(|e| e.live)
            .map(|e| &e.key)
    }

    /// The epoch at which `slot` was last touched.
    pub fn epoch(&self, slot: u32) -> Option<u32> {
        self.entries
            .get(slot as usize)
            .filter(|e| e.live)
            .map(|e| e.epoch)
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = match self.entries.get(slot as usize) {
            Some(e) => (e.prev, e.next),
            None => return,
        };
        match self.entries.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.entries.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_back(&mut self, slot: u32) {
        let tail = self.tail;
        if let Some(e) = self.entries.get_mut(slot as usize) {
            e.prev = tail;
            e.next = NIL;
        }
        match self.entries.get_mut(tail as usize) {
            Some(t) => t.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
    }

    /// Marks `slot` used at `epoch`: it moves to the young end if the epoch changed.
    #[inline]
    pub fn touch(&mut self, slot: u32, epoch: u32) {
        let Some(e) = self.entries.get_mut(slot as usize) else {
            return;
        };
        if e.epoch == epoch || !e.live {
            return;
        }
        e.epoch = epoch;
        if self.tail != slot {
            self.unlink(slot);
            self.push_back(slot);
        }
    }

    /// The least recently used slot.
    pub fn oldest(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// Removes a slot, returning its key and value.
    pub fn remove(&mut self, slot: u32) -> Option<(K, V)> {
        let key = *self.key(slot)?;
        let h = self.hash(&key);
        if let Ok(entry) = self.index.find_entry(h, |&i| i == slot) {
            entry.remove();
        }
        self.unlink(slot);
        let e = self.entries.get_mut(slot as usize)?;
        e.live = false;
        let value = std::mem::take(&mut e.value);
        let key = std::mem::take(&mut e.key);
        self.free.push(slot);
        self.len -= 1;
        Some((key, value))
    }

    /// Inserts a new key (the caller checked it is absent). When full, the least
    /// recently used entry is evicted first and returned.
    pub fn insert(&mut self, key: K, value: V, epoch: u32) -> (u32, Option<(K, V)>) {
        let evicted = if self.len >= self.cap {
            self.oldest().and_then(|s| self.remove(s))
        } else {
            None
        };
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(e) = self.entries.get_mut(s as usize) {
                    e.key = key;
                    e.value = value;
                    e.epoch = epoch;
                    e.live = true;
                }
                s
            }
            None => {
                let s = self.entries.len() as u32;
                self.entries.push(Entry {
                    key,
                    value,
                    prev: NIL,
                    next: NIL,
                    epoch,
                    live: true,
                });
                s
            }
        };
        let h = self.hash(&key);
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.index.insert_unique(h, slot, |&i| {
            entries
                .get(i as usize)
                .map_or(0, |e| hasher.hash_one(e.key))
        });
        self.push_back(slot);
        self.len += 1;
        (slot, evicted)
    }

    /// Slots from oldest to youngest.
    pub fn iter_slots(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let s = cur;
            cur = self.entries.get(s as usize).map_or(NIL, |e| e.next);
            Some(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_stays_bounded() {
        let mut m: LruMap<u32, u64> = LruMap::with_capacity(3);
        let (a, _) = m.insert(1, 10, 0);
        m.insert(2, 20, 0);
        m.insert(3, 30, 0);
        m.touch(a, 1); // 1 is now the youngest
        let (_, ev) = m.insert(4, 40, 1);
        assert_eq!(ev, Some((2, 20)));
        assert_eq!(m.len(), 3);
        assert!(m.find(&2).is_none());
        assert_eq!(m.find(&1).and_then(|s| m.get(s)).copied(), Some(10));
        let order: Vec<u32> = m.iter_slots().filter_map(|s| m.key(s).copied()).collect();
        assert_eq!(order, vec![3, 1, 4]);
    }

    #[test]
    fn remove_and_reuse_slots() {
        let mut m: LruMap<u64, u8> = LruMap::with_capacity(100);
        for k in 0..100 {
            m.insert(k, 1, 0);
        }
        for k in 0..50 {
            let s = m.find(&k).unwrap();
            assert_eq!(m.remove(s), Some((k, 1)));
        }
        for k in 100..150 {
            m.insert(k, 2, 1);
        }
        assert_eq!(m.len(), 100);
        assert!(m.entries.len() <= 100, "slots are reused");
        for k in 50..150 {
            assert!(m.find(&k).is_some(), "{k}");
        }
    }

    #[test]
    fn a_flood_of_new_keys_never_grows_the_map() {
        let mut m: LruMap<u64, u8> = LruMap::with_capacity(64);
        let mut evicted = 0;
        for k in 0..10_000u64 {
            if m.insert(k, 0, (k / 100) as u32).1.is_some() {
                evicted += 1;
            }
        }
        assert_eq!(m.len(), 64);
        assert_eq!(evicted, 10_000 - 64);
        assert!(m.entries.len() <= 64);
    }
}
