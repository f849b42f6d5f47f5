//! What the cluster-wide report counts, kept current per Service as it changes, so the report
//! never walks the index: slices whose Service is unknown, and Services with a Local traffic
//! policy and no usable local endpoint while endpoints exist elsewhere
//! (`kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy}`). The walk it replaces
//! (every Service, once a second while changes arrive) stalled the loop up to ~70 ms at 50,000
//! Services in the lab, and a change waited behind it.

use std::collections::{BTreeSet, HashMap};

use super::{Service, ServiceName, Slice};

/// The per-Service facts of the report and their totals.
#[derive(Debug, Default)]
pub(super) struct Summary {
    /// Services named by slices but not (or not yet) known.
    orphans: BTreeSet<ServiceName>,
    /// Services lacking a local endpoint: (internal, external) policy is Local.
    no_local: HashMap<ServiceName, (bool, bool)>,
    /// Totals of `no_local`: (internal, external).
    counts: (u64, u64),
}

impl Summary {
    /// Recomputes one Service's facts from what the index now holds for it (`None`, no slices:
    /// it is gone).
    pub(super) fn update<'a>(
        &mut self,
        key: &ServiceName,
        service: Option<&Service>,
        slices: impl Iterator<Item = &'a Slice> + Clone,
    ) {
        if service.is_none() && slices.clone().next().is_some() {
            if !self.orphans.contains(key) {
                self.orphans.insert(key.clone());
            }
        } else if !self.orphans.is_empty() {
            self.orphans.remove(key);
        }
        let flags = service.map_or((false, false), |s| no_local(s, slices));
        let old = if flags == (false, false) {
            self.no_local.remove(key)
        } else {
            self.no_local.insert(key.clone(), flags)
        };
        let (old_i, old_e) = old.unwrap_or_default();
        let (i, e) = &mut self.counts;
        *i = (*i + u64::from(flags.0)).saturating_sub(u64::from(old_i));
        *e = (*e + u64::from(flags.1)).saturating_sub(u64::from(old_e));
    }

    /// Services named by slices but unknown, in name order.
    pub(super) fn orphans(&self) -> impl Iterator<Item = &ServiceName> {
        self.orphans.iter()
    }

    /// (internal, external): Services with that Local policy and no usable local endpoint.
    pub(super) fn no_local_endpoints(&self) -> (u64, u64) {
        self.counts
    }
}

/// Whether a Service with a Local policy has usable endpoints elsewhere but none here, per
/// policy (internal, external). Usable: ready, or serving while terminating (stock's fallback).
fn no_local<'a>(svc: &Service, slices: impl Iterator<Item = &'a Slice> + Clone) -> (bool, bool) {
    if !svc.internal_local && !svc.external_local {
        return (false, false);
    }
    let usable = |local_only: bool| {
        slices.clone().any(|sl| {
            sl.endpoints
                .iter()
                .any(|e| (!local_only || e.local) && (e.ready || (e.serving && e.terminating)))
        })
    };
    let lacking = usable(false) && !usable(true);
    (lacking && svc.internal_local, lacking && svc.external_local)
}
