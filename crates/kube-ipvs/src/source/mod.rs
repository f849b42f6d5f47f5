//! Cluster sources: what feeds the model, from the Kubernetes API (kube-rs watchers) or from YAML
//! files (`--source file:PATH`).
//!
//! # Event contract
//!
//! A source yields [`ClusterEvent`]s on one ordered channel, each typed by kind (Service,
//! EndpointSlice, the node's own Node, ServiceCIDR) and carrying a [`SourceEvent`]:
//!
//! - `ListStart`, then every current object as `Applied`, then `ListEnd`: a list, for the initial
//!   list and for every re-list (after a 410 Gone, a failed watch that could not resume, a changed
//!   file). It is a resync, not a flush: at `ListEnd`, objects delivered before but not since
//!   `ListStart` are gone, everything else is current. The consumer diffs it against what it holds;
//!   a re-list never arrives as a burst of deletions. A list streams object by object, so nothing
//!   holds a whole list of API objects (at 50,000 Services that alone was 236 MiB). A `ListStart`
//!   without its `ListEnd` (a list that failed part way) is superseded by the next `ListStart`.
//! - `Applied(obj)`: one object was added or changed.
//! - `Deleted(obj)`: one object was deleted (its last known state).
//! - `Invalid(ref, why)`: the object's latest version does not decode (file source only): the
//!   consumer keeps its last valid version and reports it as rejected.
//! - [`ClusterEvent::Synced`]: sent once, after every kind has delivered its initial `ListEnd`. The
//!   agent must program nothing before it; [`Sources::ready`] flips at the same moment for health.
//!
//! Objects are stripped ([`strip`]) before they are sent: no managedFields, no annotations other
//! than `kube-ipvs.io/*` (and the slices' `endpoints.kubernetes.io/last-change-trigger-time`), no
//! pod references. Services and EndpointSlices are selected with kube-proxy's label selector
//! ([`selector::STOCK_LABEL_SELECTOR`]); the Node with `metadata.name=NODE`.
//! ServiceCIDRs are optional: an API server that does not serve them (404, or 403 without RBAC) counts
//! as an empty, listed set. Watch errors are logged and retried with kube-runtime's default backoff.
//!
//! | module | what | replaces |
//! |---|---|---|
//! | [`kubernetes`] | kube-rs watchers for the four kinds | kube-proxy's informers |
//! | [`file`] | YAML/JSON files, reloaded on change | - |
//! | [`strip`] | dropping fields the model never reads | informer transform funcs |
//! | [`selector`] | the stock label/field selectors | kube-proxy's `labelSelector` |
//! | `readiness` | the initial-list gate | `Not syncing ipvs rules until ...` |
//! | [`freshness`], `activity` | each kind's last list page, event or bookmark (a kube client layer): staleness gauge and warning | - |

pub mod access;
mod activity;
mod error;
pub mod file;
pub mod freshness;
pub mod kubernetes;
mod readiness;
pub mod selector;
pub mod strip;

use std::path::PathBuf;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use error::SourceError;

use crate::model::{ObjectRef, Rejection};
pub use file::FileOptions;
pub use kubernetes::KubernetesOptions;

/// One change of one kind.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceEvent<K> {
    /// Added or modified (also each object of a list).
    Applied(K),
    /// Deleted; the object's last known state.
    Deleted(K),
    /// A list begins (initial list or re-list): the current objects follow as `Applied`.
    ListStart,
    /// The list is complete: objects not delivered since `ListStart` are gone. A resync, not a flush.
    ListEnd,
    /// The latest version of this object cannot be used at all (the file source could not
    /// decode it): its last valid version stays in effect, as for an object the model rejects,
    /// and inside a list it counts as delivered.
    Invalid(ObjectRef, Rejection),
}

/// The events of one complete list of `objects`: `ListStart`, each object `Applied`, `ListEnd`.
pub fn list_events<K>(
    wrap: fn(SourceEvent<K>) -> ClusterEvent,
    objects: impl IntoIterator<Item = K>,
) -> impl Iterator<Item = ClusterEvent> {
    std::iter::once(SourceEvent::ListStart)
        .chain(objects.into_iter().map(SourceEvent::Applied))
        .chain(std::iter::once(SourceEvent::ListEnd))
        .map(wrap)
}

/// A change from a cluster source, typed by kind.
// Moved once through a channel; boxing the Node would cost an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterEvent {
    /// Services (stock selector applied).
    Service(SourceEvent<Service>),
    /// EndpointSlices (stock selector applied).
    Slice(SourceEvent<EndpointSlice>),
    /// The node's own Node (0 or 1 object).
    Node(SourceEvent<Node>),
    /// ServiceCIDRs (an empty set where the API server does not serve them).
    ServiceCidr(SourceEvent<ServiceCIDR>),
    /// Every kind has delivered its initial `ListEnd`; sent once.
    Synced,
}

/// The kinds a source delivers, for readiness and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// Services.
    Services,
    /// EndpointSlices.
    EndpointSlices,
    /// The node's Node.
    Node,
    /// ServiceCIDRs.
    ServiceCidrs,
}

impl SourceKind {
    /// Every kind.
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Services,
        SourceKind::EndpointSlices,
        SourceKind::Node,
        SourceKind::ServiceCidrs,
    ];

    /// Lower-case name for logs.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Services => "services",
            SourceKind::EndpointSlices => "endpointslices",
            SourceKind::Node => "node",
            SourceKind::ServiceCidrs => "servicecidrs",
        }
    }
}

/// `--source`: where cluster state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// The Kubernetes API (`kubernetes`, the default).
    Kubernetes,
    /// YAML/JSON files: one file or a directory (`file:PATH`).
    File(PathBuf),
}

impl FromStr for SourceSpec {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kubernetes" | "k8s" => Ok(SourceSpec::Kubernetes),
            _ => match s.strip_prefix("file:") {
                Some("") => Err(SourceError::BadSpec {
                    value: s.to_owned(),
                    reason: "file: needs a path",
                }),
                Some(p) => Ok(SourceSpec::File(PathBuf::from(p))),
                None => Err(SourceError::BadSpec {
                    value: s.to_owned(),
                    reason: "expected `kubernetes` or `file:PATH`",
                }),
            },
        }
    }
}

/// Running sources: the event channel, the readiness flag, the tasks (aborted on drop) and, for
/// the Kubernetes source, the freshness of each kind.
#[derive(Debug)]
pub struct Sources {
    events: mpsc::Receiver<ClusterEvent>,
    ready: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
    freshness: Option<freshness::Freshness>,
}

impl Drop for Sources {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Sources {
    /// The next event; `None` only if every source task ended.
    pub async fn recv(&mut self) -> Option<ClusterEvent> {
        self.events.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<ClusterEvent> {
        self.events.try_recv().ok()
    }

    /// A readiness flag: true once every source completed its initial list (for /healthz).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// Whether every source completed its initial list.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// How fresh each watched kind is (the Kubernetes source; `None` for files).
    pub fn freshness(&self) -> Option<freshness::Freshness> {
        self.freshness.clone()
    }
}

/// Default capacity of the event channel: sources wait (and the API server's TCP buffers the watch)
/// when the agent falls this far behind.
pub const DEFAULT_CAPACITY: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_spec_parses() {
        assert_eq!(
            "kubernetes".parse::<SourceSpec>().unwrap(),
            SourceSpec::Kubernetes
        );
        assert_eq!(
            "file:/a/b.yaml".parse::<SourceSpec>().unwrap(),
            SourceSpec::File("/a/b.yaml".into())
        );
        assert!("file:".parse::<SourceSpec>().is_err());
        assert!(
            "etcd"
                .parse::<SourceSpec>()
                .unwrap_err()
                .to_string()
                .contains("etcd")
        );
    }
}

#[cfg(test)]
mod tests_file;
#[cfg(test)]
mod tests_kubernetes;
#[cfg(test)]
mod tests_support;
