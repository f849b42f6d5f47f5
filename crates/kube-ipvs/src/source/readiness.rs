//! "Every source has completed its initial list": the gate the agent waits on before programming.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use tokio::sync::{mpsc, watch};

use super::{ClusterEvent, SourceKind};

/// Tracks which sources still owe their initial `ListEnd`.
#[derive(Debug)]
pub(crate) struct Gate {
    pending: Mutex<BTreeSet<SourceKind>>,
    ready: watch::Sender<bool>,
}

impl Gate {
    /// A gate waiting for `kinds`.
    pub(crate) fn new(
        kinds: impl IntoIterator<Item = SourceKind>,
    ) -> (Self, watch::Receiver<bool>) {
        let (ready, rx) = watch::channel(false);
        (
            Self {
                pending: Mutex::new(kinds.into_iter().collect()),
                ready,
            },
            rx,
        )
    }

    /// Marks `kind` listed, after its initial `ListEnd` was sent on `tx`. The last one sends
    /// [`ClusterEvent::Synced`] on the same channel, so it follows every initial `ListEnd`, then
    /// flips the ready flag. Returns false when the consumer is gone.
    pub(crate) async fn listed(&self, kind: SourceKind, tx: &mpsc::Sender<ClusterEvent>) -> bool {
        let last = {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            p.remove(&kind) && p.is_empty()
        };
        if last {
            if tx.send(ClusterEvent::Synced).await.is_err() {
                return false;
            }
            self.ready.send_replace(true);
            tracing::info!("all cluster sources completed their initial list");
        }
        true
    }
}
