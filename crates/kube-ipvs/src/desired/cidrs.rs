//! Which service CIDRs one `local` route may make local.
//!
//! A route `local CIDR dev lo table local` makes every address of the CIDR, allocated or not,
//! an address of this node: the local table is consulted before any other, so anything the
//! node reaches inside the CIDR (its gateway, the API server, pods, a neighbour subnet) becomes
//! unreachable. Stock kube-proxy binds each allocated ClusterIP instead, which can only hide
//! the ClusterIPs themselves. So a CIDR is routed only if it is a plausible service range that
//! holds nothing else the node knows of; any other is refused (a Warning Event, the
//! `kube_ipvs_rejected_objects{reason="UnsafeServiceCIDR"}` gauge) and its ClusterIPs are bound
//! one by one, as stock does, which is always safe.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::planner_config::{NodeRoute, PlannerConfig};

/// The widest IPv4 service range routed: a /8. The largest private block (RFC 1918's
/// 10.0.0.0/8) is a /8, so any wider range holds public or special-purpose space the node may
/// need to reach; the API server's own allocator took at most 2^20 addresses (/12) until
/// ServiceCIDR objects, which it no longer bounds.
pub const MAX_WIDTH_V4: u8 = 8;
/// The widest IPv6 service range routed: a /64, one IPv6 subnet (RFC 4291); a wider range
/// spans subnets where other hosts live.
pub const MAX_WIDTH_V6: u8 = 64;

/// Ranges a service CIDR may not touch: what lives there is never a ClusterIP.
const SPECIAL: [(&str, &str); 11] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata servers)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
    ("::/128", "the unspecified address"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped (IPv4 addresses)"),
    ("64:ff9b::/96", "NAT64 (IPv4 destinations)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// Why one local route for a CIDR would be unsafe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsafe {
    /// Wider than [`MAX_WIDTH_V4`] / [`MAX_WIDTH_V6`].
    TooWide {
        /// The narrowest prefix length allowed for the family.
        bound: u8,
    },
    /// Overlaps a special-purpose range.
    Special {
        /// The range.
        range: IpNet,
        /// What it is.
        what: &'static str,
    },
    /// Holds an address of the node.
    NodeAddress(IpAddr),
    /// Overlaps the pod CIDR.
    PodCidr(IpNet),
    /// Overlaps the destination of one of the node's routes.
    Route(IpNet),
    /// Holds the gateway of one of the node's routes.
    Gateway {
        /// The gateway.
        via: IpAddr,
        /// The route's destination.
        dst: IpNet,
    },
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooWide { bound } => write!(
                f,
                "wider than /{bound}, the widest range routed (every address in it would become \
                 local, including addresses the node must reach)"
            ),
            Self::Special { range, what } => write!(f, "overlaps {range} ({what})"),
            Self::NodeAddress(a) => write!(f, "contains the node's address {a}"),
            Self::PodCidr(c) => write!(f, "overlaps the pod CIDR {c}"),
            Self::Route(r) => write!(f, "overlaps the node's route to {r}"),
            Self::Gateway { via, dst } => {
                write!(f, "contains the gateway {via} of the node's route to {dst}")
            }
        }
    }
}

/// Whether `a` and `b` share an address (one contains the other).
fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether a route bears on routing `cidr` (its destination overlaps, or its gateway is inside).
pub fn route_matters(cidr: &IpNet, r: &NodeRoute) -> bool {
    (r.dst.prefix_len() > 0 && overlap(cidr, &r.dst)) || r.via.is_some_and(|v| cidr.contains(&v))
}

/// Checks one service CIDR against the node: `Ok` if one local route for it is safe.
/// `pod_cidrs` adds the Node's `spec.podCIDRs` to the configured ones.
pub fn vet(cidr: &IpNet, cfg: &PlannerConfig, pod_cidrs: &[IpNet]) -> Result<(), Unsafe> {
    let bound = match cidr {
        IpNet::V4(_) => MAX_WIDTH_V4,
        IpNet::V6(_) => MAX_WIDTH_V6,
    };
    if cidr.prefix_len() < bound {
        return Err(Unsafe::TooWide { bound });
    }
    for (range, what) in SPECIAL {
        if let Ok(range) = range.parse::<IpNet>()
            && overlap(cidr, &range)
        {
            return Err(Unsafe::Special { range, what });
        }
    }
    if let Some(a) = cfg.node_addresses.iter().find(|a| cidr.contains(*a)) {
        return Err(Unsafe::NodeAddress(*a));
    }
    if let Some(p) = cfg
        .pod_cidrs
        .iter()
        .chain(pod_cidrs)
        .find(|p| overlap(cidr, p))
    {
        return Err(Unsafe::PodCidr(*p));
    }
    // A default route overlaps everything; only its gateway matters.
    match cfg.node_routes.iter().find(|r| route_matters(cidr, r)) {
        Some(r) if r.dst.prefix_len() > 0 && overlap(cidr, &r.dst) => Err(Unsafe::Route(r.dst)),
        Some(r) => Err(Unsafe::Gateway {
            via: r.via.unwrap_or(r.dst.addr()),
            dst: r.dst,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// A node on 192.168.10.5/24 with a default route through 192.168.10.1 and a CNI route for
    /// another node's pods: the layout of a kubeadm node.
    fn node() -> PlannerConfig {
        let mut c = PlannerConfig::new("n");
        c.node_addresses = vec!["192.168.10.5".parse().unwrap()];
        c.pod_cidrs = vec![net("10.244.0.0/16")];
        c.node_routes = vec![
            NodeRoute {
                dst: net("0.0.0.0/0"),
                via: Some("192.168.10.1".parse().unwrap()),
            },
            NodeRoute {
                dst: net("192.168.10.0/24"),
                via: None,
            },
            NodeRoute {
                dst: net("10.244.1.0/24"),
                via: Some("192.168.10.6".parse().unwrap()),
            },
        ];
        c
    }

    #[test]
    fn ordinary_service_ranges_are_routed() {
        let c = node();
        for ok in [
            "10.96.0.0/12",
            "172.16.0.0/12",
            "fd00:10:96::/108",
            "2001:db8::/64",
        ] {
            assert_eq!(vet(&net(ok), &c, &[]), Ok(()), "{ok}");
        }
        // The widest allowed, on a node that has nothing in it.
        assert_eq!(
            vet(&net("10.0.0.0/8"), &PlannerConfig::new("n"), &[]),
            Ok(())
        );
    }

    #[test]
    fn too_wide_ranges_are_refused_with_the_bound() {
        let c = node();
        for (bad, bound) in [
            ("0.0.0.0/0", 8),
            ("10.0.0.0/7", 8),
            ("::/0", 64),
            ("fd00::/48", 64),
        ] {
            assert_eq!(
                vet(&net(bad), &c, &[]),
                Err(Unsafe::TooWide { bound }),
                "{bad}"
            );
        }
        let msg = Unsafe::TooWide { bound: 8 }.to_string();
        assert!(msg.contains("wider than /8"), "{msg}");
    }

    #[test]
    fn ranges_holding_what_the_node_reaches_are_refused() {
        let c = node();
        let cases = [
            // The node's own subnet: its address, then (narrower) its connected route.
            (
                "192.168.0.0/16",
                Unsafe::NodeAddress("192.168.10.5".parse().unwrap()),
            ),
            ("192.168.10.128/25", Unsafe::Route(net("192.168.10.0/24"))),
            // The pod CIDR, configured or from the Node object.
            ("10.244.0.0/20", Unsafe::PodCidr(net("10.244.0.0/16"))),
            // Another node's pods, reached through a CNI route.
            ("10.244.1.128/25", Unsafe::PodCidr(net("10.244.0.0/16"))),
            // Special-purpose space.
            (
                "169.254.0.0/16",
                Unsafe::Special {
                    range: net("169.254.0.0/16"),
                    what: "link-local (cloud metadata servers)",
                },
            ),
            (
                "::ffff:10.96.0.0/112",
                Unsafe::Special {
                    range: net("::ffff:0:0/96"),
                    what: "IPv4-mapped (IPv4 addresses)",
                },
            ),
        ];
        for (cidr, want) in cases {
            assert_eq!(vet(&net(cidr), &c, &[]), Err(want), "{cidr}");
        }
        assert_eq!(
            vet(&net("172.16.0.0/16"), &c, &[net("172.16.3.0/24")]),
            Err(Unsafe::PodCidr(net("172.16.3.0/24")))
        );
    }

    #[test]
    fn the_desired_state_routes_only_safe_cidrs_and_binds_the_rest() {
        let mut index = crate::model::ClusterIndex::new("n");
        for (name, ip) in [("a", "10.96.0.10"), ("b", "192.168.10.77")] {
            let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(
                serde_json::json!({"metadata": {"name": name, "namespace": "d"},
                    "spec": {"clusterIP": ip, "ports": [{"port": 80, "protocol": "TCP"}]}}),
            )
            .unwrap();
            index.apply_service(&svc);
        }
        let everything: k8s_openapi::api::networking::v1::ServiceCIDR = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "everything"}, "spec": {"cidrs": ["0.0.0.0/0"]}}),
        )
        .unwrap();
        index.apply_service_cidr(&everything);
        let mut cfg = node();
        cfg.families = vec![crate::types::Family::V4];
        cfg.service_cidrs = vec![net("10.96.0.0/12"), net("192.168.10.0/24")];
        let st = crate::desired::NodeState::build(&index, &cfg);
        assert_eq!(
            st.routes().iter().copied().collect::<Vec<_>>(),
            [net("10.96.0.0/12")]
        );
        let bound: Vec<IpAddr> = st.bound().copied().collect();
        assert_eq!(bound, ["192.168.10.77".parse::<IpAddr>().unwrap()]);
        let refused: Vec<String> = st
            .refused_cidrs()
            .iter()
            .map(|(o, r)| format!("{o}: {r}"))
            .collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused
                .iter()
                .any(|r| r.starts_with("Node n: service CIDR 192.168.10.0/24")),
            "{refused:?}"
        );
        assert!(refused.iter().any(|r| r.starts_with("ServiceCidr everything: service CIDR 0.0.0.0/0 is not routed locally: wider than /8")), "{refused:?}");
    }

    #[test]
    fn a_gateway_without_a_connected_route_is_found() {
        // Point-to-point and cloud setups: the gateway is reached through an onlink route.
        let mut c = PlannerConfig::new("n");
        c.node_routes = vec![NodeRoute {
            dst: net("0.0.0.0/0"),
            via: Some("100.64.0.1".parse().unwrap()),
        }];
        assert_eq!(
            vet(&net("100.64.0.0/16"), &c, &[]),
            Err(Unsafe::Gateway {
                via: "100.64.0.1".parse().unwrap(),
                dst: net("0.0.0.0/0")
            })
        );
        assert_eq!(vet(&net("100.65.0.0/16"), &c, &[]), Ok(()));
    }
}
