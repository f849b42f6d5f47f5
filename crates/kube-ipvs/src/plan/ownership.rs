//! Which kernel objects are ours to change or delete: one rule for the planner (the agent's
//! syncs) and for `kube-ipvs cleanup`.
//!
//! Stock kube-proxy deletes every virtual server it did not create this sync unless it is in
//! excludeCIDRs, which breaks keepalived and kube-vip (kubernetes#59507, #134147). We delete only
//! virtual servers on addresses we own: dummy-device addresses, service CIDRs we route, node
//! addresses with a port in the NodePort range, and those the agent published as a Service's.
//! Nothing in excludeCIDRs is ever ours; fwmark services never are.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;

use super::Ctx;
use crate::types::VsKey;

/// Why a virtual server is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its address is on the dummy device (or is to be).
    DummyAddress,
    /// Its address is in a service CIDR we route locally (or are to).
    LocalRoute,
    /// A node address with a port in the NodePort range.
    NodePort,
    /// The agent published it as a Service's (the owners file).
    Published,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::DummyAddress => "address on the dummy device",
            Why::LocalRoute => "address in a service CIDR routed locally",
            Why::NodePort => "node address, NodePort range",
            Why::Published => "published by the agent",
        })
    }
}

/// The configured part of the rule (`ipvs.excludeCIDRs`, `--service-node-port-range`).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Virtual servers on these addresses are never ours.
    pub exclude_cidrs: &'a [IpNet],
    /// Virtual servers on node addresses with a port here are NodePorts.
    pub node_port_range: &'a RangeInclusive<u16>,
}

/// What the node's state says about an address. The planner answers from the observed and the
/// desired state, cleanup from the observed state and the owners file.
pub trait Evidence {
    /// The address is on the dummy device.
    fn on_dummy(&self, addr: &IpAddr) -> bool;
    /// The address is inside a service CIDR with one of our `local` routes.
    fn routed(&self, addr: &IpAddr) -> bool;
    /// The address is one NodePorts listen on.
    fn node_address(&self, addr: &IpAddr) -> bool;
    /// The agent published this virtual server as a Service's.
    fn published(&self, key: &VsKey) -> bool;
}

/// Why `key` is ours, or `None` when it is foreign (left alone).
pub fn owned(key: &VsKey, rules: Rules<'_>, node: &impl Evidence) -> Option<Why> {
    let VsKey::Service { addr, port, .. } = key else {
        return None;
    };
    if rules.exclude_cidrs.iter().any(|c| c.contains(addr)) {
        None
    } else if node.on_dummy(addr) {
        Some(Why::DummyAddress)
    } else if node.routed(addr) {
        Some(Why::LocalRoute)
    } else if rules.node_port_range.contains(port) && node.node_address(addr) {
        Some(Why::NodePort)
    } else if node.published(key) {
        Some(Why::Published)
    } else {
        None
    }
}

/// The protocol our `local` routes carry: `RTPROT_STATIC` (what `nodenet::route` writes; a test
/// of the kernel layer checks the two agree, so this module needs no netlink crate).
pub const OUR_ROUTE_PROTOCOL: u8 = 4;

/// Whether a `local` prefix route of the local table is ours: `proto static` (the kernel's own
/// are `proto kernel`, `ip route add`'s default is `proto boot`) through `lo`, where the agent
/// puts it, or through the dummy device (earlier versions).
pub fn our_route(protocol: u8, ifindex: u32, lo: Option<u32>, dummy: Option<u32>) -> bool {
    protocol == OUR_ROUTE_PROTOCOL && (Some(ifindex) == lo || Some(ifindex) == dummy)
}

/// The planner's evidence: what the kernel holds and what this sync wants.
impl Evidence for Ctx<'_> {
    fn on_dummy(&self, addr: &IpAddr) -> bool {
        self.observed.bound().contains(addr) || self.desired.is_bound(addr)
    }

    fn routed(&self, addr: &IpAddr) -> bool {
        self.desired.routed(addr) || self.observed.routes().iter().any(|r| r.contains(addr))
    }

    fn node_address(&self, addr: &IpAddr) -> bool {
        self.cfg.node_addresses.contains(addr) || self.desired.node_port_ips().contains(addr)
    }

    /// The desired state is what the agent publishes; anything it wants is planned as desired,
    /// never through ownership.
    fn published(&self, _key: &VsKey) -> bool {
        false
    }
}

/// Whether the planner may change or delete `key` although no Service wants it.
pub(super) fn planner_owns(ctx: &Ctx<'_>, key: &VsKey) -> bool {
    let rules = Rules {
        exclude_cidrs: &ctx.cfg.exclude_cidrs,
        node_port_range: &ctx.cfg.node_port_range,
    };
    owned(key, rules, ctx).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Family, Proto};

    /// A node described by plain lists.
    #[derive(Default)]
    struct Node {
        dummy: Vec<IpAddr>,
        routes: Vec<IpNet>,
        addresses: Vec<IpAddr>,
        published: Vec<VsKey>,
    }

    impl Evidence for Node {
        fn on_dummy(&self, addr: &IpAddr) -> bool {
            self.dummy.contains(addr)
        }
        fn routed(&self, addr: &IpAddr) -> bool {
            self.routes.iter().any(|r| r.contains(addr))
        }
        fn node_address(&self, addr: &IpAddr) -> bool {
            self.addresses.contains(addr)
        }
        fn published(&self, key: &VsKey) -> bool {
            self.published.contains(key)
        }
    }

    fn tcp(addr: &str, port: u16) -> VsKey {
        VsKey::new(Proto::Tcp, addr.parse().unwrap(), port)
    }

    #[test]
    fn one_rule_table() {
        let node = Node {
            dummy: vec!["10.96.0.10".parse().unwrap(), "fd00::a".parse().unwrap()],
            routes: vec!["10.100.0.0/16".parse().unwrap()],
            addresses: vec!["192.168.1.10".parse().unwrap()],
            published: vec![tcp("198.51.100.1", 80), tcp("10.100.9.9", 80)],
        };
        let range = 30000..=32767;
        let none = Rules {
            exclude_cidrs: &[],
            node_port_range: &range,
        };
        let excluded: Vec<IpNet> = vec!["10.100.9.0/24".parse().unwrap()];
        let exclude = Rules {
            exclude_cidrs: &excluded,
            node_port_range: &range,
        };
        let fwmark = VsKey::Fwmark {
            family: Family::V4,
            mark: 1,
        };
        let cases: [(VsKey, Rules<'_>, Option<Why>); 12] = [
            (tcp("10.96.0.10", 80), none, Some(Why::DummyAddress)),
            (
                VsKey::new(Proto::Udp, "fd00::a".parse().unwrap(), 53),
                none,
                Some(Why::DummyAddress),
            ),
            (tcp("10.100.0.7", 443), none, Some(Why::LocalRoute)),
            (tcp("192.168.1.10", 30080), none, Some(Why::NodePort)),
            (tcp("192.168.1.10", 32767), none, Some(Why::NodePort)),
            // A node address outside the NodePort range: sshd, keepalived.
            (tcp("192.168.1.10", 22), none, None),
            (tcp("198.51.100.1", 80), none, Some(Why::Published)),
            (tcp("203.0.113.5", 80), none, None),
            (fwmark, none, None),
            // excludeCIDRs wins over every other reason, published included.
            (tcp("10.100.9.9", 80), none, Some(Why::LocalRoute)),
            (tcp("10.100.9.9", 80), exclude, None),
            (tcp("10.100.0.7", 443), exclude, Some(Why::LocalRoute)),
        ];
        for (key, rules, want) in cases {
            assert_eq!(owned(&key, rules, &node), want, "{key}");
        }
    }

    #[test]
    fn our_routes_are_proto_static_through_lo_or_the_dummy_device() {
        let (lo, dummy, stat) = (Some(1), Some(7), 4);
        assert!(our_route(stat, 1, lo, dummy));
        assert!(our_route(stat, 7, lo, dummy));
        // Another device's; the kernel's own (proto kernel = 2); `ip route add`'s (boot = 3);
        // the dummy device's when it is not the dummy device any more.
        assert!(!our_route(stat, 3, lo, dummy));
        assert!(!our_route(2, 1, lo, dummy));
        assert!(!our_route(3, 1, lo, dummy));
        assert!(!our_route(stat, 7, lo, None));
    }
}
