//! The full IPVS table as read over netlink (`ipvsadm -Ln --stats --exact`).

use std::collections::BTreeMap;

use crate::destination::Destination;
use crate::service::{Service, VirtualServiceKey};

/// A service with its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableService {
    /// The service (with stats).
    pub service: Service,
    /// Its destinations in kernel order (with connection counts and stats).
    pub destinations: Vec<Destination>,
}

/// Every service of a namespace, ordered by key so that output and diffs are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Services by key.
    pub services: BTreeMap<VirtualServiceKey, TableService>,
}
