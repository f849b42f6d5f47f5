//! The Service under examination, run through the planner as the agent would: its validated
//! form, its slices, and the desired state it gives this node (pure).

use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;

use super::inputs::{Cluster, Resolved};
use crate::Engine;
use crate::desired::{DesiredVs, NodeState};
use crate::model::{
    self, ClusterIndex, Converted, ObjectKind, Rejection, Service, SkipReason, Slice,
    convert_service,
};
use crate::owners::Owners;
use crate::planner_config::PlannerConfig;
use crate::types::{Proto, ServiceName, VsKey};

/// What kube-ipvs makes of the Service object.
#[derive(Clone, Debug)]
pub enum Conversion {
    /// Programmed.
    Programmed,
    /// Deliberately not programmed.
    Skipped(SkipReason),
    /// Invalid: the first bad field.
    Rejected(Rejection),
}

/// One Service with its planned state on this node.
#[derive(Debug)]
pub struct Subject {
    /// `namespace/name`.
    pub key: ServiceName,
    /// The object as read.
    pub raw: core::Service,
    /// What kube-ipvs makes of it.
    pub conversion: Conversion,
    /// An engine holding this Service, its slices, the Node and the ServiceCIDRs, planned.
    engine: Engine,
}

impl Subject {
    /// Plans the Service of `cluster` (`None` when the cluster has no Service).
    pub fn derive(cluster: &Cluster, cfg: &PlannerConfig) -> Option<Self> {
        let raw = cluster.service.clone()?;
        let key = ServiceName::new(
            raw.metadata.namespace.as_deref().unwrap_or_default(),
            raw.metadata.name.as_deref().unwrap_or_default(),
        );
        let conversion = match convert_service(&raw) {
            Ok(Converted::Service(_)) => Conversion::Programmed,
            Ok(Converted::Skip(r)) => Conversion::Skipped(r),
            Err(r) => Conversion::Rejected(r),
        };
        let mut engine = Engine::new(cfg.clone());
        if let Some(n) = &cluster.node {
            engine.apply_node(n);
        }
        for c in &cluster.service_cidrs {
            engine.apply_service_cidr(c);
        }
        engine.apply_service(&raw);
        for s in &cluster.slices {
            engine.apply_slice(s);
        }
        engine.plan_full(std::time::Duration::ZERO);
        Some(Self {
            key,
            raw,
            conversion,
            engine,
        })
    }

    /// The validated Service (absent when skipped or rejected).
    pub fn service(&self) -> Option<&Service> {
        self.engine.index().service(&self.key)
    }

    /// Its validated slices, in name order.
    pub fn slices(&self) -> impl Iterator<Item = &Slice> + Clone {
        self.engine.index().slices_of(&self.key)
    }

    /// The index (rejected slices, the Node).
    pub fn index(&self) -> &ClusterIndex {
        self.engine.index()
    }

    /// The desired state of this Service on this node.
    pub fn desired(&self) -> &NodeState {
        self.engine.desired()
    }

    /// The planner configuration.
    pub fn config(&self) -> &PlannerConfig {
        self.engine.config()
    }

    /// Its planned virtual servers.
    pub fn virtual_servers(&self) -> impl Iterator<Item = &DesiredVs> {
        self.desired().virtual_servers().values().map(|v| &**v)
    }

    /// Rejected slices of this Service: `(slice name, reason)`.
    pub fn rejected_slices(&self) -> Vec<(String, Rejection)> {
        self.index()
            .rejections()
            .into_iter()
            .filter(|(o, _)| o.kind == ObjectKind::EndpointSlice)
            .map(|(o, r)| (o.name, r))
            .collect()
    }

    /// The failure-file targets of everything this Service has on the node, spelled as
    /// [`crate::failures::target`] spells them.
    pub fn targets(&self) -> Vec<String> {
        let d = self.desired();
        let mut out: Vec<String> = d
            .virtual_servers()
            .keys()
            .map(ToString::to_string)
            .collect();
        out.extend(d.bound().map(ToString::to_string));
        for (set, members) in d.ipsets() {
            out.extend(members.map(|e| format!("{set} {e}")));
        }
        out.extend(d.routes().iter().map(|r| format!("route {r}")));
        out
    }
}

/// Splits `namespace/name:port` (an owner) into the Service key and port name.
pub fn parse_owner(owner: &str) -> Option<(ServiceName, &str)> {
    let (svc, port) = owner.rsplit_once(':')?;
    let (ns, name) = svc.split_once('/')?;
    Some((ServiceName::new(ns, name), port))
}

fn protos(proto: Option<Proto>) -> Vec<Proto> {
    proto.map_or_else(|| Proto::ALL.to_vec(), |p| vec![p])
}

/// The owner of `addr:port` in the agent's owners file.
pub fn resolve_by_owners(
    owners: &Owners,
    addr: IpAddr,
    port: u16,
    proto: Option<Proto>,
) -> Option<(ServiceName, Resolved)> {
    protos(proto).into_iter().find_map(|p| {
        let owner = owners.get(&VsKey::new(p, addr, port))?;
        let (key, _) = parse_owner(owner)?;
        Some((
            key,
            Resolved {
                owner: owner.to_string(),
                via: "the agent's owners file".into(),
            },
        ))
    })
}

/// The Service whose ClusterIP, external IP or load-balancer IP and port is `addr:port`, or
/// whose NodePort is `port` when `addr` is one of `node_addresses`.
pub fn resolve_by_services<'a>(
    services: impl IntoIterator<Item = &'a core::Service>,
    addr: IpAddr,
    port: u16,
    proto: Option<Proto>,
    node_addresses: &[IpAddr],
) -> Option<(ServiceName, Resolved)> {
    let on_node = node_addresses.contains(&addr);
    services.into_iter().find_map(|raw| {
        let Ok(Converted::Service(s)) = model::convert_service(raw) else {
            return None;
        };
        let ip_match = s
            .cluster_ips
            .iter()
            .chain(s.external_ips.iter())
            .chain(s.lb_ips.iter())
            .any(|ip| *ip == addr);
        let p = s.ports.iter().find(|p| {
            proto.is_none_or(|want| want == p.proto)
                && ((ip_match && p.port == port) || (on_node && p.node_port == Some(port)))
        })?;
        Some((
            s.key.clone(),
            Resolved {
                owner: format!("{}:{}", s.key, p.name),
                via: "the Services".into(),
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_split_into_service_and_port() {
        let (k, p) = parse_owner("shop/web:http").unwrap();
        assert_eq!((k.as_str(), p), ("shop/web", "http"));
        let (k, p) = parse_owner("shop/web:").unwrap();
        assert_eq!((k.as_str(), p), ("shop/web", ""));
        assert!(parse_owner("web").is_none());
    }
}
