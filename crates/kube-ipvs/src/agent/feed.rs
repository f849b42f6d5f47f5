//! Where the sync loop reads cluster events from: the running [`Sources`], or a plain channel
//! (tests that script events under a paused clock).

use std::future::Future;

use tokio::sync::mpsc;

use crate::source::{ClusterEvent, Sources};

/// An ordered stream of [`ClusterEvent`]s following the source contract (a list per kind,
/// then `Synced` once).
pub trait EventFeed: Send {
    /// The next event; `None` when the feed ended for good.
    fn recv(&mut self) -> impl Future<Output = Option<ClusterEvent>> + Send;

    /// The next event if one is queued now.
    fn try_recv(&mut self) -> Option<ClusterEvent>;
}

impl EventFeed for Sources {
    fn recv(&mut self) -> impl Future<Output = Option<ClusterEvent>> + Send {
        Sources::recv(self)
    }

    fn try_recv(&mut self) -> Option<ClusterEvent> {
        Sources::try_recv(self)
    }
}

impl EventFeed for mpsc::Receiver<ClusterEvent> {
    fn recv(&mut self) -> impl Future<Output = Option<ClusterEvent>> + Send {
        mpsc::Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<ClusterEvent> {
        mpsc::Receiver::try_recv(self).ok()
    }
}
