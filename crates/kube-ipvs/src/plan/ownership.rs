//! Which kernel virtual servers are ours to change or delete.
//!
//! Stock kube-proxy deletes every virtual server it did not create this sync unless it is in
//! excludeCIDRs, which breaks keepalived and kube-vip (kubernetes#59507, #134147). We delete only
//! virtual servers on addresses we own: dummy-device addresses, service CIDRs we route, and
//! node addresses with a port in the NodePort range. Fwmark services are never ours.

use super::Ctx;
use crate::types::VsKey;

pub(super) fn owned(ctx: &Ctx<'_>, key: &VsKey) -> bool {
    let VsKey::Service { addr, port, .. } = key else {
        return false;
    };
    if ctx.cfg.excluded(addr) {
        return false;
    }
    ctx.observed.bound().contains(addr)
        || ctx.desired.is_bound(addr)
        || ctx.desired.routed(addr)
        || ctx.observed.routes().iter().any(|r| r.contains(addr))
        || (ctx.cfg.node_port_range.contains(port)
            && (ctx.cfg.node_addresses.contains(addr)
                || ctx.desired.node_port_ips().contains(addr)))
}
