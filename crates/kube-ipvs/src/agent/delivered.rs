//! Which objects of one kind were delivered, so that a streamed list (`ListStart`, `Applied`..,
//! `ListEnd`) can tell at its end which objects are gone without anyone holding the whole list.

use std::collections::BTreeSet;

/// The keys of the objects of one kind delivered so far, and those seen by the list under way.
#[derive(Debug)]
pub(crate) struct Delivered<Q> {
    keys: BTreeSet<Q>,
    /// Keys applied since the last `ListStart`, while a list is under way.
    listing: Option<BTreeSet<Q>>,
}

impl<Q> Default for Delivered<Q> {
    fn default() -> Self {
        Self {
            keys: BTreeSet::new(),
            listing: None,
        }
    }
}

impl<Q: Ord + Clone> Delivered<Q> {
    /// A list begins; one that was under way (failed part way) is superseded.
    pub(crate) fn start(&mut self) {
        self.listing = Some(BTreeSet::new());
    }

    /// An object was applied (by a list or a watch event).
    pub(crate) fn applied(&mut self, key: Q) {
        if let Some(l) = &mut self.listing {
            l.insert(key.clone());
        }
        self.keys.insert(key);
    }

    /// An object was deleted.
    pub(crate) fn deleted(&mut self, key: &Q) {
        if let Some(l) = &mut self.listing {
            l.remove(key);
        }
        self.keys.remove(key);
    }

    /// The list is complete: the keys delivered before it but not by it, now forgotten. Without a
    /// list under way, nothing is gone.
    pub(crate) fn end(&mut self) -> Vec<Q> {
        let Some(listed) = self.listing.take() else {
            return Vec::new();
        };
        let gone = self.keys.difference(&listed).cloned().collect();
        self.keys = listed;
        gone
    }

    /// Whether no object is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_removes_only_what_it_did_not_deliver() {
        let mut d = Delivered::default();
        d.start();
        d.applied("a");
        d.applied("b");
        assert!(d.end().is_empty(), "a first list removes nothing");
        // A watch event, then a re-list that has a and c but not b.
        d.applied("c");
        d.start();
        d.applied("a");
        d.applied("c");
        assert_eq!(d.end(), ["b"]);
        assert!(
            d.end().is_empty(),
            "ListEnd without ListStart removes nothing"
        );
    }

    #[test]
    fn a_list_that_failed_part_way_is_superseded() {
        let mut d = Delivered::default();
        for k in ["a", "b", "c"] {
            d.applied(k);
        }
        d.start();
        d.applied("a");
        // The list failed after one page; the watcher starts over.
        d.start();
        d.applied("b");
        d.applied("c");
        assert_eq!(d.end(), ["a"]);
    }

    #[test]
    fn deletions_during_a_list_count() {
        let mut d = Delivered::default();
        d.applied("a");
        d.start();
        d.applied("a");
        d.deleted(&"a");
        assert!(d.end().is_empty(), "already deleted, not gone twice");
        assert!(d.is_empty());
    }
}
