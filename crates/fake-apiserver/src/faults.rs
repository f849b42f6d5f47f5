//! Injectable faults and the request log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::resource::Kind;

/// The faults currently injected.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added before every response.
    pub delay: Duration,
    /// The next this-many requests fail with 500.
    pub fail_next: u32,
    /// Lists fail with 500 while set (watches still work). Not 503: kube-client retries those itself.
    pub refuse_lists: bool,
    /// Kinds answered with 404, as by an API server that does not serve them.
    pub unserved: BTreeSet<Kind>,
    /// Watch streams stalled by [`crate::FakeApiServer::stall_watches`] ignore their
    /// `timeoutSeconds` too: nothing ends them but the client.
    pub stalled: Arc<AtomicBool>,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Response status.
    pub status: u16,
    /// Whether it was a watch.
    pub watch: bool,
}

impl LoggedRequest {
    /// Whether this was a list (GET of a collection, not a watch) of `plural`.
    pub fn is_list_of(&self, plural: &str) -> bool {
        self.method == "GET" && !self.watch && self.path.ends_with(&format!("/{plural}"))
    }

    /// Whether this was a watch of `plural`.
    pub fn is_watch_of(&self, plural: &str) -> bool {
        self.watch && self.path.ends_with(&format!("/{plural}"))
    }
}
