//! The node's own Node object and ServiceCIDR objects.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as networking;

use super::reject::Rejection;

/// Label with the node's zone, matched against EndpointSlice zone hints.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// The Cluster Autoscaler's taint on a node it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// Whether stock kube-proxy would call this node eligible: not being deleted and not tainted
/// `ToBeDeletedByClusterAutoscaler`.
pub fn node_eligible(node: &core::Node) -> bool {
    if node.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
    !tainted
}

/// What the proxier needs from its Node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<Arc<str>>,
    /// InternalIP addresses in status order (the first per family is the primary node IP).
    pub internal_ips: Vec<IpAddr>,
    /// ExternalIP addresses.
    pub external_ips: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`): a service CIDR overlapping them is never routed.
    pub pod_cidrs: Vec<IpNet>,
}

/// Converts the node's Node object. Unparsable addresses are ignored (the kubelet writes them).
pub fn convert_node(node: &core::Node) -> NodeInfo {
    let zone = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_ZONE))
        .filter(|z| !z.is_empty())
        .map(|z| Arc::from(z.as_str()));
    let mut info = NodeInfo {
        zone,
        ..NodeInfo::default()
    };
    let addrs = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    for a in addrs.into_iter().flatten() {
        let Ok(ip) = a.address.parse::<IpAddr>() else {
            continue;
        };
        match a.type_.as_str() {
            "InternalIP" => info.internal_ips.push(ip),
            "ExternalIP" => info.external_ips.push(ip),
            _ => {}
        }
    }
    let spec = node.spec.as_ref();
    let pod_cidrs = spec
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]));
    info.pod_cidrs = pod_cidrs
        .into_iter()
        .flatten()
        .filter_map(|c| c.parse::<IpNet>().ok())
        .map(|c| c.trunc())
        .collect();
    info
}

/// Converts a ServiceCIDR into its CIDRs.
pub fn convert_service_cidr(c: &networking::ServiceCIDR) -> Result<Vec<IpNet>, Rejection> {
    if c.metadata.name.is_none() {
        return Err(Rejection::MissingName);
    }
    let cidrs = c.spec.as_ref().and_then(|s| s.cidrs.as_ref());
    cidrs
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| Rejection::InvalidCidr {
                    field: format!("spec.cidrs[{i}]"),
                    value: s.clone(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_eligibility_like_stock() {
        use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let taint = |key: &str| Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let with_taints = |ts: Vec<Taint>| Node {
            spec: Some(NodeSpec {
                taints: Some(ts),
                ..NodeSpec::default()
            }),
            ..Node::default()
        };
        assert!(node_eligible(&Node::default()));
        assert!(node_eligible(&with_taints(vec![taint("other")])));
        assert!(!node_eligible(&with_taints(vec![
            taint("other"),
            taint(TO_BE_DELETED_TAINT)
        ])));
        let mut deleting = Node::default();
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(!node_eligible(&deleting));
    }
}
