//! Endpoint selection for one Service port and family (pkg/proxy `CategorizeEndpoints` and
//! topology.go), plus the traffic-policy choice of pkg/proxy/ipvs `syncEndpoint`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::service::{Service, ServicePort};
use super::slice::{Endpoint, Slice};
use crate::types::{Family, RsKey};

/// One endpoint of a Service port: address, target port and conditions.
#[derive(Clone, Copy, Debug)]
pub struct PortEndpoint<'a> {
    /// Address and target port.
    pub key: RsKey,
    /// The endpoint's conditions and hints.
    pub ep: &'a Endpoint,
}

/// Up to this many endpoints, duplicates are found by a linear scan (no allocation; the common
/// Service has a handful); past it, by a hash map of positions, so a Service of 100,000 endpoints costs
/// O(n), not O(n^2) (40,000 endpoints took 14 s per change with the scan alone).
const LINEAR_DEDUP: usize = 32;

/// Joins the slices of a Service for one port and family: the slice port with the same name and
/// protocol, the first address of each endpoint, duplicates across slices dropped: a
/// non-terminating copy wins over a terminating one (a reused pod IP, as stock
/// `EndpointSliceCache.addEndpoints`), else the first slice in name order.
pub fn port_endpoints<'a>(
    slices: impl Iterator<Item = &'a Slice>,
    port: &ServicePort,
    family: Family,
) -> Vec<PortEndpoint<'a>> {
    let mut out: Vec<PortEndpoint<'a>> = Vec::new();
    let mut seen: Option<HashMap<RsKey, usize>> = None;
    for slice in slices.filter(|s| s.family == family) {
        let Some(sp) = slice
            .ports
            .iter()
            .find(|p| p.proto == port.proto && same_name(&p.name, &port.name))
        else {
            continue;
        };
        for ep in slice.endpoints.iter() {
            let key = RsKey {
                addr: ep.addr,
                port: sp.port,
            };
            // Where an earlier copy of this endpoint is, if any.
            let at = match &mut seen {
                Some(index) => index.get(&key).copied(),
                None if out.len() < LINEAR_DEDUP => out.iter().position(|e| e.key == key),
                None => {
                    let index: HashMap<RsKey, usize> =
                        out.iter().enumerate().map(|(i, e)| (e.key, i)).collect();
                    let at = index.get(&key).copied();
                    seen = Some(index);
                    at
                }
            };
            match at.and_then(|i| out.get_mut(i)) {
                None => {
                    if let Some(index) = &mut seen {
                        index.insert(key, out.len());
                    }
                    out.push(PortEndpoint { key, ep });
                }
                Some(e) if e.ep.terminating && !ep.terminating => e.ep = ep,
                Some(_) => {}
            }
        }
    }
    out
}

/// Port names are interned by the index, so equal names are usually the same allocation.
fn same_name(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// Inputs of topology-aware routing for this node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Topology<'a> {
    /// The node's zone label.
    pub zone: Option<&'a str>,
    /// Whether node hints are honoured.
    pub node_hints: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopologyMode {
    None,
    SameNode,
    SameZone,
}

fn topology_mode(eps: &[PortEndpoint<'_>], topo: Topology<'_>) -> TopologyMode {
    let ready = || eps.iter().filter(|e| e.ep.ready);
    if topo.node_hints
        && ready().all(|e| e.ep.has_node_hints)
        && ready().any(|e| e.ep.node_hint_here)
    {
        return TopologyMode::SameNode;
    }
    let zone = topo.zone.unwrap_or("");
    if ready().all(|e| !e.ep.zone_hints.is_empty())
        && !zone.is_empty()
        && ready().any(|e| e.ep.zone_hints.iter().any(|z| &**z == zone))
    {
        return TopologyMode::SameZone;
    }
    TopologyMode::None
}

fn topology_allows(ep: &Endpoint, mode: TopologyMode, topo: Topology<'_>) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::SameNode => ep.node_hint_here,
        TopologyMode::SameZone => ep.zone_hints.iter().any(|z| Some(&**z) == topo.zone),
    }
}

/// Endpoints split the way stock kube-proxy splits them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Categorized {
    /// Ready endpoints (topology-filtered), else serving+terminating ones; empty when the
    /// Service does not use cluster endpoints.
    pub cluster: Vec<RsKey>,
    /// Local ready endpoints, else local serving+terminating ones.
    pub local: Vec<RsKey>,
    /// Whether any usable endpoint exists anywhere.
    pub has_any: bool,
}

/// `CategorizeEndpoints`.
pub fn categorize(svc: &Service, eps: &[PortEndpoint<'_>], topo: Topology<'_>) -> Categorized {
    let mut out = Categorized::default();
    let keys = |f: &dyn Fn(&Endpoint) -> bool| -> Vec<RsKey> {
        eps.iter().filter(|e| f(e.ep)).map(|e| e.key).collect()
    };
    if svc.uses_cluster_endpoints() {
        let mode = topology_mode(eps, topo);
        out.cluster = keys(&|e| e.ready && topology_allows(e, mode, topo));
        if out.cluster.is_empty() {
            out.cluster = keys(&|e| e.serving && e.terminating);
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !(svc.internal_local || svc.external_local) {
        return out;
    }
    let usable = |e: &Endpoint| e.ready || (e.serving && e.terminating);
    out.has_any |= eps.iter().any(|e| usable(e.ep));
    out.local = keys(&|e| e.local && e.ready);
    if out.local.is_empty() {
        out.local = keys(&|e| e.local && e.serving && e.terminating);
    }
    out
}

/// The real servers of one virtual server: local endpoints under a Local policy, falling back to
/// the cluster list when there is no local one (stock IPVS, kubernetes#97081) unless `strict`.
pub fn pick(cat: &Categorized, only_local: bool, strict: bool) -> &[RsKey] {
    if !only_local {
        &cat.cluster
    } else if !cat.local.is_empty() || strict {
        &cat.local
    } else {
        &cat.cluster
    }
}

/// Local endpoints of any condition, for the hairpin set (`KUBE-LOOP-BACK`).
pub fn local_addresses<'a>(
    eps: &'a [PortEndpoint<'_>],
) -> impl Iterator<Item = (IpAddr, u16)> + 'a {
    eps.iter()
        .filter(|e| e.ep.local)
        .map(|e| (e.key.addr, e.key.port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::slice::SlicePort;
    use crate::types::{Proto, ServiceName};

    fn ep(addr: IpAddr, local: bool) -> Endpoint {
        Endpoint {
            addr,
            local,
            ready: true,
            serving: true,
            terminating: false,
            zone_hints: Box::new([]),
            has_node_hints: false,
            node_hint_here: false,
        }
    }

    fn slice(addrs: &[u32], local: bool) -> Slice {
        Slice {
            service: ServiceName::new("d", "big"),
            family: Family::V4,
            ports: Box::new([SlicePort {
                name: Arc::from("http"),
                proto: Proto::Tcp,
                port: 8080,
            }]),
            endpoints: addrs
                .iter()
                .map(|a| ep(IpAddr::from(a.to_be_bytes()), local))
                .collect(),
        }
    }

    /// Past the linear scan's size the join still drops every duplicate and keeps the first
    /// slice's copy, in slice order.
    #[test]
    fn duplicates_across_many_slices_keep_the_first_in_order() {
        let port = ServicePort {
            name: Arc::from("http"),
            proto: Proto::Tcp,
            port: 80,
            node_port: None,
        };
        let a: Vec<u32> = (0..100).collect();
        let b: Vec<u32> = (50..150).collect();
        let c: Vec<u32> = (0..10).chain(140..160).collect();
        let slices = [slice(&a, true), slice(&b, false), slice(&c, false)];
        let eps = port_endpoints(slices.iter(), &port, Family::V4);
        let got: Vec<u32> = eps
            .iter()
            .map(|e| match e.key.addr {
                IpAddr::V4(v) => u32::from(v),
                IpAddr::V6(_) => u32::MAX,
            })
            .collect();
        assert_eq!(got, (0..160).collect::<Vec<u32>>());
        assert!(
            eps.iter().take(100).all(|e| e.ep.local),
            "first slice's copy kept"
        );
        assert!(eps.iter().skip(100).all(|e| !e.ep.local));
    }
}
