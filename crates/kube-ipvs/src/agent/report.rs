//! What the sync loop tells the rest of the agent: the [`Observer`] hooks (metrics, health,
//! Events, health-check servers implement them) and the [`SyncReport`] of each sync.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::desired::HealthCheck;
use crate::model::{ObjectRef, Rejection};
use crate::plan::Op;
use crate::types::ServiceName;

/// Which kind of object changed (kube-proxy counts Service and endpoint changes apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// A Service (or a ServiceCIDR / the Node: node-wide inputs count here too).
    Service,
    /// An EndpointSlice.
    Endpoints,
}

/// Which path a sync took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncKind {
    /// Full kernel read + full plan (start-up, and every `syncPeriod` for a small table).
    Full,
    /// The periodic verification of a large table: one slice of it read afresh, what differs
    /// repaired (every `syncPeriod`; every entry within `verify_slices` periods).
    Verify,
    /// Only the Services changed since the last sync, against the cached kernel view.
    Incremental,
    /// The graceful-termination drain timer: only virtual servers with draining real servers.
    Drain,
    /// A batch of address changes a route makes moot (stock's bound ClusterIPs after a
    /// takeover): see `plan::retire`.
    Retire,
}

impl SyncKind {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Verify => "verify",
            Self::Incremental => "incremental",
            Self::Drain => "drain",
            Self::Retire => "retire",
        }
    }

    /// Whether the sync applies queued changes (a timer's sync does not: it is no proxy-rules
    /// sync in stock's sense, and it does not make `/healthz` fresh).
    pub fn syncs_changes(self) -> bool {
        matches!(self, Self::Full | Self::Incremental)
    }
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// The path taken.
    pub kind: SyncKind,
    /// When the sync started (wall clock, for `*_last_timestamp_seconds`).
    pub started: SystemTime,
    /// How long planning + applying took.
    pub duration: Duration,
    /// Ops the kernel accepted, by [`crate::plan::Op::kind`].
    pub applied: BTreeMap<&'static str, u64>,
    /// Ops the kernel refused (retried next sync), by kind.
    pub failed: BTreeMap<&'static str, u64>,
    /// The refused ops with the kernel's error, at most [`crate::failures::MAX_LISTED`] (for the
    /// failures file `kube-ipvs explain` reads).
    pub refused: Vec<(Op, String)>,
    /// The iptables rules were rewritten by this sync.
    pub rules_written: bool,
    /// Writing the iptables rules failed (`kubeproxy_sync_proxy_rules_iptables_restore_failures_total`).
    pub rules_failed: bool,
    /// Service changes this sync included.
    pub service_changes: u64,
    /// Endpoint changes this sync included.
    pub endpoint_changes: u64,
    /// For each included change: time from receiving it (or from the EndpointSlice's
    /// `endpoints.kubernetes.io/last-change-trigger-time`) to the kernel being updated
    /// (`kubeproxy_network_programming_duration_seconds`).
    pub programming_latencies: Vec<Duration>,
    /// Services with desired state after the sync.
    pub services: usize,
    /// Real servers draining after the sync.
    pub drain_backlog: usize,
}

/// Hooks the sync loop calls; implementations must not block (hand work to their own tasks).
pub trait Observer: Send + Sync {
    /// A change was received and is waiting for a sync (`*_changes_pending`, `last_queued`, health).
    fn queued(&self, kind: ChangeKind, at: SystemTime);

    /// A sync finished (successfully or with failed ops: see the report).
    fn synced(&self, report: &SyncReport);

    /// Cluster-wide figures, after syncs but at most about once a second (computing them walks
    /// every Service): every object currently rejected (an Event is due for new entries only),
    /// and the Services with traffic policy Local and no local endpoint, by policy
    /// (`internal`, `external`) (`kubeproxy_sync_proxy_rules_no_local_endpoints_total`).
    fn cluster(&self, rejections: &BTreeMap<ObjectRef, Rejection>, no_local_endpoints: (u64, u64));

    /// The health-check servers wanted now (externalTrafficPolicy Local), after each sync that
    /// changed them.
    fn health_checks(&self, wanted: &BTreeMap<ServiceName, HealthCheck>);

    /// The node's own Node changed: whether it is eligible for traffic (not being deleted, not
    /// tainted `ToBeDeletedByClusterAutoscaler`), for `/healthz`.
    fn node_eligible(&self, _eligible: bool) {}

    /// A sync of `kind` has applied `done` of its `planned` ops (after each chunk of a plan:
    /// initial programming of a large node takes tens of seconds).
    fn progress(&self, _kind: SyncKind, _done: usize, _planned: usize) {}
}

/// An observer that ignores everything (tests, `plan`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {
    fn queued(&self, _: ChangeKind, _: SystemTime) {}
    fn synced(&self, _: &SyncReport) {}
    fn cluster(&self, _: &BTreeMap<ObjectRef, Rejection>, _: (u64, u64)) {}
    fn health_checks(&self, _: &BTreeMap<ServiceName, HealthCheck>) {}
}
