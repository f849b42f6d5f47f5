//! Services with a Local traffic policy and no usable local endpoint while endpoints exist
//! elsewhere (`kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy}`).

use crate::model::ClusterIndex;

/// (internal, external) counts over the index.
pub fn no_local_endpoints(index: &ClusterIndex) -> (u64, u64) {
    let (mut internal, mut external) = (0u64, 0u64);
    for svc in index
        .services()
        .filter(|s| s.internal_local || s.external_local)
    {
        let usable = |local_only: bool| {
            index.slices_of(&svc.key).any(|sl| {
                sl.endpoints
                    .iter()
                    .any(|e| (!local_only || e.local) && (e.ready || (e.serving && e.terminating)))
            })
        };
        if !usable(false) || usable(true) {
            continue;
        }
        internal += u64::from(svc.internal_local);
        external += u64::from(svc.external_local);
    }
    (internal, external)
}
