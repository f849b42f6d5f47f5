//! A set's members as last programmed plus the changes not yet applied, so a sync costs
//! O(change), not O(set): no full diff, no kernel dump.

use std::collections::BTreeSet;

use super::client::{IpsetClient, SyncStats};
use super::entry::Entry;
use super::error::IpsetError;

/// Members of one kernel set as this process programmed them, and pending changes.
///
/// Start it from a kernel listing ([`IpsetClient::members`]) or an empty set you just
/// created; [`TrackedSet::apply`] programs only what changed since the last apply. Run
/// [`IpsetClient::sync`] now and then as the repair path against the kernel itself.
#[derive(Debug, Clone, Default)]
pub struct TrackedSet {
    name: String,
    applied: BTreeSet<Entry>,
    to_add: BTreeSet<Entry>,
    to_del: BTreeSet<Entry>,
}

impl TrackedSet {
    /// `applied`: what the kernel set holds now.
    pub fn new(name: impl Into<String>, applied: BTreeSet<Entry>) -> Self {
        TrackedSet {
            name: name.into(),
            applied,
            to_add: BTreeSet::new(),
            to_del: BTreeSet::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wants `entry` in the set. O(log n).
    pub fn insert(&mut self, entry: Entry) {
        let entry = entry.normalized();
        self.to_del.remove(&entry);
        if !self.applied.contains(&entry) {
            self.to_add.insert(entry);
        }
    }

    /// Wants `entry` out of the set. O(log n).
    pub fn remove(&mut self, entry: &Entry) {
        let entry = entry.normalized();
        self.to_add.remove(&entry);
        if self.applied.contains(&entry) {
            self.to_del.insert(entry);
        }
    }

    /// Wants exactly `wanted` (a full diff, O(set)).
    pub fn set_wanted(&mut self, wanted: &BTreeSet<Entry>) {
        let wanted: BTreeSet<Entry> = wanted.iter().map(|e| e.normalized()).collect();
        self.to_add = wanted.difference(&self.applied).copied().collect();
        self.to_del = self.applied.difference(&wanted).copied().collect();
    }

    /// Whether the wanted members include `entry`.
    pub fn contains(&self, entry: &Entry) -> bool {
        let entry = entry.normalized();
        self.to_add.contains(&entry)
            || (self.applied.contains(&entry) && !self.to_del.contains(&entry))
    }

    /// (entries to add, entries to delete) not yet applied.
    pub fn pending(&self) -> (usize, usize) {
        (self.to_add.len(), self.to_del.len())
    }

    /// The members as last applied.
    pub fn applied(&self) -> &BTreeSet<Entry> {
        &self.applied
    }

    /// Programs the pending changes in batches (deletes first). On error nothing is marked
    /// applied: batches are idempotent, so the next apply retries them safely.
    pub async fn apply(&mut self, client: &mut IpsetClient) -> Result<SyncStats, IpsetError> {
        let stats = client
            .update(&self.name, &self.to_del, &self.to_add)
            .await?;
        for entry in std::mem::take(&mut self.to_del) {
            self.applied.remove(&entry);
        }
        // Insert one by one: `append` would rebuild the whole tree, O(set).
        for entry in std::mem::take(&mut self.to_add) {
            self.applied.insert(entry);
        }
        Ok(stats)
    }
}
