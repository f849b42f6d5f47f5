//! TrackedSet bookkeeping (no kernel): pending changes follow inserts and removes.

use std::collections::BTreeSet;

use crate::ipset::{Entry, TrackedSet};

fn port(p: u16) -> Entry {
    Entry::Port(p)
}

#[test]
fn pending_changes_follow_inserts_and_removes() {
    let mut t = TrackedSet::new("S", [port(1), port(2)].into());
    assert_eq!(t.pending(), (0, 0));
    t.insert(port(1)); // already applied: nothing to do
    assert_eq!(t.pending(), (0, 0));
    t.insert(port(3));
    t.remove(&port(2));
    assert_eq!(t.pending(), (1, 1));
    assert!(t.contains(&port(3)) && t.contains(&port(1)) && !t.contains(&port(2)));
    t.remove(&port(3)); // cancels the pending add
    t.insert(port(2)); // cancels the pending delete
    assert_eq!(t.pending(), (0, 0));
    t.remove(&port(9)); // never there
    assert_eq!(t.pending(), (0, 0));
}

#[test]
fn set_wanted_is_a_full_diff_and_normalizes() {
    let mut t = TrackedSet::new("S", [Entry::Net("10.0.0.0/8".parse().unwrap())].into());
    let wanted: BTreeSet<Entry> = [
        Entry::Net("10.1.2.3/8".parse().unwrap()),
        Entry::Net("192.168.1.1/24".parse().unwrap()),
    ]
    .into();
    t.set_wanted(&wanted);
    // 10.1.2.3/8 is 10.0.0.0/8 as the kernel stores it: only the /24 is new.
    assert_eq!(t.pending(), (1, 0));
    assert!(t.contains(&Entry::Net("192.168.1.0/24".parse().unwrap())));
}
