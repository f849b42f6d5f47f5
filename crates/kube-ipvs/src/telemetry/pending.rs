//! Changes received and not yet synced, by time: the source of `/healthz`'s "update queued for
//! too long" and of `kubeproxy_sync_proxy_rules_{service,endpoint}_changes_pending`.
//!
//! A sync covers what was queued up to its start, so [`PendingChanges::synced`] drops entries
//! queued at or before `started` and keeps later ones. This needs no agreement with the sync loop
//! on how it counts coalesced changes, and a change arriving during a sync keeps `/healthz` honest.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::agent::ChangeKind;

/// Distinct timestamps kept; past this, a new change is merged into the newest older entry (so it
/// counts as older than it is: `/healthz` can only turn unhealthy earlier, never later).
const MAX_ENTRIES: usize = 4096;

/// Pending changes by the time they were queued.
#[derive(Debug, Default, Clone)]
pub struct PendingChanges {
    by_time: BTreeMap<SystemTime, Counts>,
    total: Counts,
}

/// Pending Service and endpoint changes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Service (and node-wide) changes.
    pub services: u64,
    /// EndpointSlice changes.
    pub endpoints: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.services += other.services;
        self.endpoints += other.endpoints;
    }

    fn sub(&mut self, other: Counts) {
        self.services = self.services.saturating_sub(other.services);
        self.endpoints = self.endpoints.saturating_sub(other.endpoints);
    }

    fn one(kind: ChangeKind) -> Counts {
        match kind {
            ChangeKind::Service => Counts {
                services: 1,
                endpoints: 0,
            },
            ChangeKind::Endpoints => Counts {
                services: 0,
                endpoints: 1,
            },
        }
    }
}

impl PendingChanges {
    /// Records one change of `kind` received at `at`.
    pub fn queued(&mut self, kind: ChangeKind, at: SystemTime) {
        let one = Counts::one(kind);
        self.total.add(one);
        if let Some(c) = self.by_time.get_mut(&at) {
            c.add(one);
            return;
        }
        if self.by_time.len() >= MAX_ENTRIES {
            if let Some((_, c)) = self.by_time.range_mut(..at).next_back() {
                c.add(one);
                return;
            }
            // Older than everything kept: it becomes the oldest entry, absorbing the previous one.
            if let Some((_, c)) = self.by_time.pop_first() {
                let mut merged = c;
                merged.add(one);
                self.by_time.insert(at, merged);
                return;
            }
        }
        self.by_time.insert(at, one);
    }

    /// A sync that started at `started` covered every change queued at or before it.
    pub fn synced(&mut self, started: SystemTime) {
        let later = match started.checked_add(std::time::Duration::from_nanos(1)) {
            Some(after) => self.by_time.split_off(&after),
            None => BTreeMap::new(),
        };
        for c in self.by_time.values() {
            self.total.sub(*c);
        }
        self.by_time = later;
    }

    /// When the oldest pending change was queued.
    pub fn oldest(&self) -> Option<SystemTime> {
        self.by_time.keys().next().copied()
    }

    /// Pending changes by kind.
    pub fn counts(&self) -> Counts {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn sync_drops_what_it_covered_and_keeps_later_changes() {
        let mut p = PendingChanges::default();
        assert_eq!(p.oldest(), None);
        p.queued(ChangeKind::Service, t(10));
        p.queued(ChangeKind::Endpoints, t(10));
        p.queued(ChangeKind::Endpoints, t(12));
        p.queued(ChangeKind::Endpoints, t(15));
        assert_eq!(p.oldest(), Some(t(10)));
        assert_eq!(
            p.counts(),
            Counts {
                services: 1,
                endpoints: 3
            }
        );

        // A sync started at 12 covers 10 and 12, not 15.
        p.synced(t(12));
        assert_eq!(p.oldest(), Some(t(15)));
        assert_eq!(
            p.counts(),
            Counts {
                services: 0,
                endpoints: 1
            }
        );

        // A sync that started before everything still pending covers nothing.
        p.synced(t(14));
        assert_eq!(p.oldest(), Some(t(15)));
        p.synced(t(20));
        assert_eq!(p.oldest(), None);
        assert_eq!(p.counts(), Counts::default());
    }

    #[test]
    fn bounded_and_never_younger_than_the_truth() {
        let mut p = PendingChanges::default();
        let n = u64::try_from(MAX_ENTRIES).unwrap() + 100;
        for s in 0..n {
            p.queued(ChangeKind::Service, t(1000 + s));
        }
        assert_eq!(p.by_time.len(), MAX_ENTRIES);
        assert_eq!(p.counts().services, n);
        assert_eq!(p.oldest(), Some(t(1000)));
        // Something older than everything becomes the oldest.
        p.queued(ChangeKind::Endpoints, t(5));
        assert_eq!(p.oldest(), Some(t(5)));
        assert_eq!(p.by_time.len(), MAX_ENTRIES);
        p.synced(t(1000 + n));
        assert_eq!(p.counts(), Counts::default());
        assert_eq!(p.oldest(), None);
    }
}
