//! A map keyed by instance id that finds each record of a read where the last read had it.
//!
//! Every node reads every instance record each heartbeat interval, and the table's queries
//! return them in the same order read after read. Looking each up in a `BTreeMap` compared a
//! dozen or more ids, each a string comparison; at 1,000 instances the lookups of a settled
//! fleet's reads were a tenth of level 1's time. Here the place of the `p`-th record of the
//! last read is kept, and a read's `p`-th record is checked there first (one id comparison).
//! A place is only a guess, checked before use, so entries may come and go without keeping
//! the places up to date.

use crate::ids::InstanceId;

/// Entries sorted by instance id, with where the last read's records were found.
#[derive(Clone, Debug)]
pub(crate) struct ById<V> {
    /// The entries, sorted by id, one per id.
    entries: Vec<(InstanceId, V)>,
    /// The place in `entries` of the last read's `p`-th record, as found then.
    places: Vec<u32>,
}

impl<V> Default for ById<V> {
    fn default() -> Self {
        ById {
            entries: Vec::new(),
            places: Vec::new(),
        }
    }
}

impl<V> ById<V> {
    /// Where `id`'s entry is, or would go.
    fn search(&self, id: &InstanceId) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(id))
    }

    /// The entry of `id`.
    pub fn get(&self, id: &InstanceId) -> Option<&V> {
        self.search(id).ok().map(|i| &self.entries[i].1)
    }

    /// The entry of `id`, to change.
    pub fn get_mut(&mut self, id: &InstanceId) -> Option<&mut V> {
        self.search(id).ok().map(|i| &mut self.entries[i].1)
    }

    /// The entry of `id`, the `p`-th record of a read: looked for first where the last read's
    /// `p`-th record was found, and inserted as `new()` if there is none. Returns it, and
    /// whether it was inserted.
    pub fn read_entry(
        &mut self,
        p: usize,
        id: &InstanceId,
        new: impl FnOnce() -> V,
    ) -> (&mut V, bool) {
        let hinted = self.places.get(p).map(|&at| at as usize);
        let hinted = hinted.filter(|&at| self.entries.get(at).is_some_and(|(k, _)| k == id));
        let (at, inserted) = match hinted.map_or_else(|| self.search(id), Ok) {
            Ok(at) => (at, false),
            Err(at) => {
                self.entries.insert(at, (id.clone(), new()));
                (at, true)
            }
        };
        if p >= self.places.len() {
            self.places.resize(p + 1, 0);
        }
        self.places[p] = at as u32;
        (&mut self.entries[at].1, inserted)
    }

    /// The entries' values, in id order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.entries.retain(|(_, v)| keep(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    proptest::proptest! {
        /// Whatever the order of the reads and whatever comes and goes between them, the map
        /// holds what a `BTreeMap` given the same calls holds, and finds the same entries.
        #[test]
        fn it_holds_what_a_btree_map_holds(
            reads in proptest::collection::vec(
                (proptest::collection::vec(0u8..12, 0..10), proptest::collection::vec(0u8..12, 0..3)),
                1..12,
            )
        ) {
            let id = |n: u8| InstanceId::new(&format!("i-{n}")).unwrap();
            let mut map: ById<u32> = ById::default();
            let mut model: BTreeMap<InstanceId, u32> = BTreeMap::new();
            for (round, (read, gone)) in reads.into_iter().enumerate() {
                for (p, n) in read.into_iter().enumerate() {
                    let fresh = !model.contains_key(&id(n));
                    let (v, inserted) = map.read_entry(p, &id(n), || round as u32);
                    proptest::prop_assert_eq!(inserted, fresh);
                    let want = model.entry(id(n)).or_insert(round as u32);
                    proptest::prop_assert_eq!(*v, *want);
                    *v += 1;
                    *want += 1;
                }
                map.retain(|v| v % 3 != 0 || !gone.is_empty());
                model.retain(|_, v| *v % 3 != 0 || !gone.is_empty());
                for n in gone {
                    proptest::prop_assert_eq!(map.get(&id(n)), model.get(&id(n)));
                    if let (Some(a), Some(b)) = (map.get_mut(&id(n)), model.get_mut(&id(n))) {
                        *a += 7;
                        *b += 7;
                    }
                }
                let got: Vec<(InstanceId, u32)> =
                    map.entries.iter().map(|(k, v)| (k.clone(), *v)).collect();
                let want: Vec<(InstanceId, u32)> =
                    model.iter().map(|(k, v)| (k.clone(), *v)).collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
