//! A hash map that keeps its entries in exact least-recently-used order,
//! with no allocation per entry: what a shard stores its entries in.
//!
//! The entries live side by side in one `Vec` of nodes, linked into the
//! recency list by `u32` indices instead of pointers; the hash table holds
//! only a node's `u32` index (and its control byte). A linked hash map
//! with a heap node per entry pays for two pointers, a pointer in the table
//! and the allocator's header and rounding on every node; here an entry
//! costs its key, its value, eight bytes of links and the table's share.
//! `docs/performance.md` has the measured difference.
//!
//! A removal keeps the nodes dense by moving the last node into the hole,
//! which costs one more hash of that node's key to repoint its table entry.
//! That hash, like the rehashing when the table grows, calls the key's
//! `Hash` on a key that was hashed without panicking when it was stored;
//! the map relies on a key hashing the same way every time, as every hash
//! map does. Every other step that can run caller code (a key's `Eq`, the
//! closure given to [`retain`](LruTable::retain)) runs before anything is
//! changed, so a panic there leaves the map as it was.
//!
//! What this is not: a general-purpose map. It offers what a shard needs
//! (look up, move to the back, push a new key at the back, remove, walk in
//! order), takes the key's hash from the caller, and holds at most
//! `u32::MAX` entries (the next index is the list's end marker).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// The end of the recency list: no node.
const NIL: u32 = u32::MAX;

/// Entries of `K` to `T`, found by hash, ordered from least to most
/// recently used.
pub(crate) struct LruTable<K, T, S> {
    /// Indices into `nodes`, found by the hash of the node's key.
    table: HashTable<u32>,
    nodes: Vec<Node<K, T>>,
    /// The least recently used node, or [`NIL`] when empty.
    head: u32,
    /// The most recently used node, or [`NIL`] when empty.
    tail: u32,
    hasher: S,
    /// The most entries the indices can address.
    limit: usize,
}

struct Node<K, T> {
    key: K,
    value: T,
    /// The next less recently used node.
    prev: u32,
    /// The next more recently used node.
    next: u32,
}

impl<K, T, S> LruTable<K, T, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// An empty map that hashes keys with `hasher` when it must rehash them.
    pub(crate) fn with_hasher(hasher: S) -> Self {
        Self::with_limit(hasher, NIL as usize)
    }

    /// An empty map that holds at most `limit` entries (at most the
    /// indices can address).
    pub(crate) fn with_limit(hasher: S, limit: usize) -> Self {
        Self {
            table: HashTable::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            hasher,
            limit: limit.min(NIL as usize),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the map holds as many entries as it can: a new key needs
    /// another removed first.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.nodes.len() >= self.limit
    }

    /// Where the entry for `key` is, if there is one; `hash` is the key's
    /// hash under this map's hasher.
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let nodes = &self.nodes;
        self.table.find(hash, |&i| nodes[i as usize].key.borrow() == key).map(|&i| i as usize)
    }

    /// The entry at `at`.
    ///
    /// # Panics
    ///
    /// If `at` holds no entry.
    #[inline]
    pub(crate) fn get(&self, at: usize) -> (&K, &T) {
        let node = &self.nodes[at];
        (&node.key, &node.value)
    }

    /// The value at `at`, to change in place.
    ///
    /// # Panics
    ///
    /// If `at` holds no entry.
    #[inline]
    pub(crate) fn get_mut(&mut self, at: usize) -> &mut T {
        &mut self.nodes[at].value
    }

    /// The least recently used entry's place.
    #[inline]
    pub(crate) fn front(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head as usize)
    }

    /// The most recently used entry's place.
    #[inline]
    pub(crate) fn back(&self) -> Option<usize> {
        (self.tail != NIL).then_some(self.tail as usize)
    }

    /// Makes the entry at `at` the most recently used.
    #[inline]
    pub(crate) fn touch(&mut self, at: usize) {
        if self.tail as usize != at {
            self.unlink(at);
            self.link_back(at);
        }
    }

    /// Stores a key the map does not hold as the most recently used entry;
    /// returns its place. `hash` is the key's hash under this map's hasher.
    ///
    /// The caller has looked the key up and found it absent, and checked
    /// that the map [is not full](Self::is_full).
    #[inline]
    pub(crate) fn push_back(&mut self, hash: u64, key: K, value: T) -> usize {
        debug_assert!(!self.is_full(), "checked by the caller");
        let at = self.nodes.len();
        #[expect(clippy::cast_possible_truncation, reason = "the limit keeps every index below NIL")]
        let index = at as u32;
        let Self { table, nodes, hasher, .. } = self;
        // Grow the table before the node is pushed, so that its rehash sees
        // only nodes the table already indexes.
        table.reserve(1, |&i| hasher.hash_one(&nodes[i as usize].key));
        nodes.push(Node { key, value, prev: NIL, next: NIL });
        table.insert_unique(hash, index, |&i| hasher.hash_one(&nodes[i as usize].key));
        self.link_back(at);
        at
    }

    /// Takes out the entry at `at`, whose key's hash is `hash`; `None`, and
    /// nothing changed, if the map holds no entry there under that hash.
    #[inline]
    pub(crate) fn remove(&mut self, hash: u64, at: usize) -> Option<(K, T)> {
        let last = self.nodes.len().checked_sub(1)?;
        // Hashed first: the only caller code in a removal, run before
        // anything changes.
        let moved_hash = (at != last).then(|| self.hasher.hash_one(&self.nodes[last].key));
        let Ok(entry) = self.table.find_entry(hash, |&i| i as usize == at) else {
            return None;
        };
        entry.remove();
        self.unlink(at);
        if let Some(moved_hash) = moved_hash {
            // The last node moves into the hole: repoint what points at it.
            #[expect(clippy::cast_possible_truncation, reason = "an index the map handed out")]
            let index = at as u32;
            if let Some(slot) = self.table.find_mut(moved_hash, |&i| i as usize == last) {
                *slot = index;
            }
            let Node { prev, next, .. } = self.nodes[last];
            self.set_next(prev, index);
            self.set_prev(next, index);
        }
        let node = self.nodes.swap_remove(at);
        Some((node.key, node.value))
    }

    /// Takes out the least recently used entry.
    #[inline]
    pub(crate) fn remove_front(&mut self) -> Option<(K, T)> {
        let at = self.front()?;
        let hash = self.hasher.hash_one(&self.nodes[at].key);
        self.remove(hash, at)
    }

    /// Visits entries from least to most recently used, taking out each one
    /// for which `keep` says no and dropping it before `keep` sees the next.
    /// A panic in `keep` leaves the entries it has not yet answered for.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut T) -> bool) {
        let mut at = self.head;
        while at != NIL {
            let i = at as usize;
            let next = self.nodes[i].next;
            // Hashed before `keep`, so that once `keep` has said no (and
            // booked the entry as gone) no caller code runs until it is.
            let hash = self.hasher.hash_one(&self.nodes[i].key);
            let node = &mut self.nodes[i];
            if keep(&node.key, &mut node.value) {
                at = next;
                continue;
            }
            let last = self.nodes.len() - 1;
            drop(self.remove(hash, i));
            // The node that was last now sits where this one was.
            at = if next as usize == last { at } else { next };
        }
    }

    /// Every value, in no particular order, to change in place.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.nodes.iter_mut().map(|node| &mut node.value)
    }

    /// Entries from least to most recently used.
    pub(crate) fn iter(&self) -> Iter<'_, K, T> {
        Iter { nodes: &self.nodes, at: self.head }
    }

    #[inline]
    fn unlink(&mut self, at: usize) {
        let Node { prev, next, .. } = self.nodes[at];
        self.set_next(prev, next);
        self.set_prev(next, prev);
    }

    #[inline]
    fn link_back(&mut self, at: usize) {
        #[expect(clippy::cast_possible_truncation, reason = "an index the map handed out")]
        let index = at as u32;
        let node = &mut self.nodes[at];
        node.prev = self.tail;
        node.next = NIL;
        self.set_next(self.tail, index);
        self.tail = index;
    }

    /// Points `node`'s next link at `to`; the list's head if `node` is NIL.
    #[inline]
    fn set_next(&mut self, node: u32, to: u32) {
        if node == NIL {
            self.head = to;
        } else {
            self.nodes[node as usize].next = to;
        }
    }

    /// Points `node`'s previous link at `to`; the list's tail if `node` is
    /// NIL.
    #[inline]
    fn set_prev(&mut self, node: u32, to: u32) {
        if node == NIL {
            self.tail = to;
        } else {
            self.nodes[node as usize].prev = to;
        }
    }
}

/// Entries from least to most recently used; see [`LruTable::iter`].
pub(crate) struct Iter<'a, K, T> {
    nodes: &'a [Node<K, T>],
    at: u32,
}

impl<'a, K, T> Iterator for Iter<'a, K, T> {
    type Item = (&'a K, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        let node = self.nodes.get(self.at as usize)?;
        self.at = node.next;
        Some((&node.key, &node.value))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasherDefault;
    use std::hash::DefaultHasher;

    use super::*;

    type Table = LruTable<u32, u32, BuildHasherDefault<DefaultHasher>>;

    fn hash(table: &Table, key: u32) -> u64 {
        table.hasher.hash_one(key)
    }

    fn push(table: &mut Table, key: u32) {
        let h = hash(table, key);
        assert!(table.find(h, &key).is_none());
        table.push_back(h, key, key * 10);
    }

    fn keys(table: &Table) -> Vec<u32> {
        let forward: Vec<u32> = table.iter().map(|(k, _)| *k).collect();
        // The links agree both ways, and the table finds every node.
        let mut backward = Vec::new();
        let mut at = table.tail;
        while at != NIL {
            backward.push(table.nodes[at as usize].key);
            at = table.nodes[at as usize].prev;
        }
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), table.len());
        for &k in &forward {
            let at = table.find(hash(table, k), &k).expect("indexed");
            assert_eq!(table.get(at), (&k, &(k * 10)));
        }
        forward
    }

    fn remove(table: &mut Table, key: u32) -> Option<(u32, u32)> {
        let h = hash(table, key);
        let at = table.find(h, &key)?;
        table.remove(h, at)
    }

    #[test]
    fn keeps_entries_in_recency_order_through_moves_and_removals() {
        let mut table = Table::with_hasher(BuildHasherDefault::default());
        for k in 0..6 {
            push(&mut table, k);
        }
        assert_eq!(keys(&table), [0, 1, 2, 3, 4, 5]);
        let at = table.find(hash(&table, 2), &2).expect("held");
        table.touch(at);
        assert_eq!(keys(&table), [0, 1, 3, 4, 5, 2]);
        // Removing from the middle moves the last node into the hole.
        assert_eq!(remove(&mut table, 1), Some((1, 10)));
        assert_eq!(keys(&table), [0, 3, 4, 5, 2]);
        assert_eq!(table.remove_front(), Some((0, 0)));
        assert_eq!(keys(&table), [3, 4, 5, 2]);
        assert_eq!(remove(&mut table, 2), Some((2, 20)));
        assert_eq!(keys(&table), [3, 4, 5]);
        assert_eq!(table.back().map(|at| *table.get(at).0), Some(5));
        assert_eq!(remove(&mut table, 9), None);
        for k in [3, 5, 4] {
            assert!(remove(&mut table, k).is_some());
        }
        assert_eq!(keys(&table), []);
        assert_eq!((table.front(), table.back()), (None, None));
        push(&mut table, 7);
        assert_eq!(keys(&table), [7]);
    }

    #[test]
    fn a_removal_under_the_wrong_hash_changes_nothing() {
        let mut table = Table::with_hasher(BuildHasherDefault::default());
        push(&mut table, 1);
        push(&mut table, 2);
        let at = table.find(hash(&table, 1), &1).expect("held");
        assert_eq!(table.remove(hash(&table, 2), at), None);
        assert_eq!(keys(&table), [1, 2]);
    }

    #[test]
    fn retain_visits_in_order_and_removes_as_it_goes() {
        let mut table = Table::with_hasher(BuildHasherDefault::default());
        for k in 0..10 {
            push(&mut table, k);
        }
        let mut seen = Vec::new();
        table.retain(|k, _| {
            seen.push(*k);
            k % 3 == 0
        });
        assert_eq!(seen, (0..10).collect::<Vec<_>>(), "each entry once, least recently used first");
        assert_eq!(keys(&table), [0, 3, 6, 9]);
        table.retain(|_, _| false);
        assert_eq!(keys(&table), []);
    }

    #[test]
    fn a_panic_in_retain_leaves_what_it_has_not_answered_for() {
        let mut table = Table::with_hasher(BuildHasherDefault::default());
        for k in 0..10 {
            push(&mut table, k);
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            table.retain(|k, _| {
                assert!(*k != 6, "fails on 6");
                *k % 2 == 1
            });
        }));
        assert!(outcome.is_err());
        assert_eq!(keys(&table), [1, 3, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn many_entries_survive_growth_and_churn() {
        let mut table = Table::with_hasher(BuildHasherDefault::default());
        for k in 0..5_000 {
            push(&mut table, k);
            if k % 3 == 0 {
                assert!(table.remove_front().is_some());
            }
        }
        let held = keys(&table);
        assert_eq!(held.len(), 5_000 - 1_667);
        assert!(held.windows(2).all(|w| w[0] < w[1]), "insertion order kept");
    }

    #[test]
    fn the_limit_says_when_the_map_is_full() {
        let mut table = Table::with_limit(BuildHasherDefault::default(), 2);
        push(&mut table, 1);
        assert!(!table.is_full());
        push(&mut table, 2);
        assert!(table.is_full());
        assert!(table.remove_front().is_some());
        assert!(!table.is_full());
        // Every index a full map hands out stays below the end marker.
        assert_eq!(Table::with_limit(BuildHasherDefault::default(), usize::MAX).limit, NIL as usize);
    }

    #[test]
    fn an_entry_costs_its_key_its_value_and_two_indices() {
        assert_eq!(size_of::<Node<u64, (u64, u64)>>(), 8 + 16 + 8);
    }
}
