//! The planner's configuration: plain values, mapped from `KubeProxyConfiguration` and flags by
//! the agent (see `config`), or from `kube-ipvs plan` flags.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::types::{Family, Scheduler, VsFlags};

/// Everything that shapes the desired state and the plan besides the cluster objects.
#[derive(Clone, Debug)]
pub struct PlannerConfig {
    /// This node's name: endpoints with this `nodeName` are local (`--hostname-override`).
    pub node_name: Arc<str>,
    /// Default scheduler (`ipvs.scheduler`, default `rr`).
    pub scheduler: Scheduler,
    /// Scheduler flags for services using the default scheduler; stock sets `mh-port` for `mh`.
    pub scheduler_flags: VsFlags,
    /// Families this node programs (dual-stack: both).
    pub families: Vec<Family>,
    /// Service CIDRs from configuration (`--service-cluster-ip-range`); ServiceCIDR objects add more.
    pub service_cidrs: Vec<IpNet>,
    /// Addresses whose virtual servers are never touched (`ipvs.excludeCIDRs`).
    pub exclude_cidrs: Vec<IpNet>,
    /// `nodePortAddresses`: NodePorts listen only on node addresses in these CIDRs; empty means
    /// every node address. `primary` is [`PlannerConfig::node_port_primary`].
    pub node_port_addresses: Vec<IpNet>,
    /// `nodePortAddresses: [primary]`: NodePorts only on the node's primary IPs.
    pub node_port_primary: bool,
    /// The node's addresses, as the agent lists them from the kernel (all links but the dummy
    /// device; loopback and IPv6 link-local are dropped here anyway).
    pub node_addresses: Vec<IpAddr>,
    /// The node's primary IPs (first InternalIP per family of the Node object, or configured);
    /// used for `primary` NodePorts and for load-balancer source ranges containing the node.
    pub primary_node_ips: Vec<IpAddr>,
    /// The pod CIDRs (`clusterCIDR`); with the Node's `spec.podCIDRs`, a service CIDR
    /// overlapping them is never routed locally.
    pub pod_cidrs: Vec<IpNet>,
    /// The node's routes as the kernel lists them (every table but `local`), for the service
    /// CIDR safety check: a CIDR overlapping a route's destination or holding its gateway is
    /// never routed locally.
    pub node_routes: Vec<NodeRoute>,
    /// Stock-compatible: bind every ClusterIP to the dummy device instead of one `local` route per
    /// service CIDR.
    pub bind_cluster_ips: bool,
    /// Traffic policy Local with no local endpoint drops instead of falling back to cluster
    /// endpoints (stock IPVS falls back; iptables mode drops).
    pub strict_local: bool,
    /// Honour EndpointSlice node hints (`hints.forNodes`; stock gates them behind
    /// `PreferSameTrafficDistribution`: beta and on by default in 1.34, GA in 1.35).
    pub topology_node_hints: bool,
    /// TCP/SCTP real servers at weight 0 are deleted after this long even with open connections
    /// (stock: no limit). `None`: wait for the connections to end.
    pub drain_limit: Option<Duration>,
    /// Whether the virtual servers of a deleted Service drain like removed endpoints (true) or go
    /// at once (stock).
    pub drain_deleted_services: bool,
    /// The NodePort range (`--service-node-port-range`): virtual servers on node addresses with a
    /// port here are ours even after their Service is gone.
    pub node_port_range: RangeInclusive<u16>,
}

/// One route of the node (any table but `local`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRoute {
    /// Destination prefix (`0.0.0.0/0`, `::/0` for default routes).
    pub dst: IpNet,
    /// Gateway, if any.
    pub via: Option<IpAddr>,
}

impl PlannerConfig {
    /// Defaults for a node, matching stock kube-proxy where it has a default.
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: Arc::from(node_name),
            scheduler: Scheduler::Rr,
            scheduler_flags: VsFlags::default(),
            families: Family::ALL.to_vec(),
            service_cidrs: Vec::new(),
            exclude_cidrs: Vec::new(),
            node_port_addresses: Vec::new(),
            node_port_primary: false,
            node_addresses: Vec::new(),
            primary_node_ips: Vec::new(),
            pod_cidrs: Vec::new(),
            node_routes: Vec::new(),
            bind_cluster_ips: false,
            strict_local: false,
            topology_node_hints: true,
            drain_limit: None,
            drain_deleted_services: true,
            node_port_range: 30000..=32767,
        }
    }

    /// Sets the default scheduler with stock's implied flags (`mh` gets `mh-port`).
    pub fn with_scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = scheduler;
        self.scheduler_flags = if scheduler == Scheduler::Mh {
            VsFlags(VsFlags::SCHED2)
        } else {
            VsFlags::default()
        };
        self
    }

    /// Whether the family is programmed.
    pub fn has_family(&self, family: Family) -> bool {
        self.families.contains(&family)
    }

    /// Whether an address is in `excludeCIDRs`.
    pub fn excluded(&self, addr: &IpAddr) -> bool {
        self.exclude_cidrs.iter().any(|c| c.contains(addr))
    }

    /// The node addresses NodePort virtual servers listen on, sorted and deduplicated.
    pub fn node_port_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .node_addresses
            .iter()
            .chain(self.primary_node_ips.iter())
            .copied()
            .filter(usable_node_address)
            .filter(|ip| {
                let by_cidr = self.node_port_addresses.iter().any(|c| c.contains(ip));
                let by_primary = self.node_port_primary && self.primary_node_ips.contains(ip);
                let all = self.node_port_addresses.is_empty() && !self.node_port_primary;
                all || by_cidr || by_primary
            })
            .filter(|ip| {
                // Primary IPs count only if the kernel has them too, unless no kernel view was given.
                self.node_addresses.is_empty() || self.node_addresses.contains(ip)
            })
            .collect();
        ips.sort_unstable();
        ips.dedup();
        ips
    }

    /// The primary node IP of a family.
    pub fn primary_ip(&self, family: Family) -> Option<IpAddr> {
        self.primary_node_ips
            .iter()
            .copied()
            .find(|ip| Family::of(ip) == family)
    }
}

/// Loopback and IPv6 link-local addresses never carry NodePorts (stock behaviour).
fn usable_node_address(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_unspecified(),
        IpAddr::V6(a) => {
            !a.is_loopback() && !a.is_unspecified() && (a.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}
