//! The desired state of one Service: a pure function of the Service, its slices and the node.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{
    Categorized, PortEndpoint, Service, ServicePort, Slice, Topology, categorize, local_addresses,
    pick, port_endpoints,
};
use crate::planner_config::PlannerConfig;
use crate::types::{
    Family, IpsetEntry, IpsetName, Proto, RealServer, Scheduler, ServicePortName, SetKind, VsFlags,
    VsKey, VsSpec,
};

/// One desired virtual server with its real servers (sorted by address and port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DesiredVs {
    /// Identity.
    pub key: VsKey,
    /// Scheduler, flags, persistence.
    pub spec: VsSpec,
    /// `namespace/name:port` that wants it.
    pub owner: ServicePortName,
    /// Real servers, weight 1, sorted.
    pub reals: Box<[RealServer]>,
}

/// The healthCheckNodePort server of one Service (externalTrafficPolicy Local).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// The port to serve on.
    pub port: u16,
    /// Local endpoints usable now (the server answers 200 iff > 0).
    pub local_endpoints: u32,
}

/// Everything one Service contributes to the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceDesired {
    /// Virtual servers, sorted by key.
    pub vs: Vec<Arc<DesiredVs>>,
    /// Addresses to bind to the dummy device, sorted, unique.
    pub bound: Vec<IpAddr>,
    /// ipset members, sorted, unique.
    pub ipset: Vec<(IpsetName, IpsetEntry)>,
    /// Health-check server.
    pub health_check: Option<HealthCheck>,
}

/// Node-wide inputs of the per-Service computation (recomputed only on a full rebuild).
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    /// Service CIDRs made local by one route each (ClusterIPs inside need no binding).
    pub routed: Vec<IpNet>,
    /// Addresses NodePorts listen on.
    pub node_port_ips: Vec<IpAddr>,
    /// The node's zone.
    pub zone: Option<Arc<str>>,
    /// Primary node IPs (configured, else the Node's first InternalIP per family).
    pub primary_ips: Vec<IpAddr>,
}

impl NodeContext {
    fn covered(&self, ip: &IpAddr) -> bool {
        self.routed.iter().any(|c| c.contains(ip))
    }
}

fn resolve_spec(svc: &Service, cfg: &PlannerConfig, family: Family) -> VsSpec {
    let scheduler = svc.scheduler.scheduler.unwrap_or(cfg.scheduler);
    let flags = match svc.scheduler.flags {
        Some((s, f)) if s == scheduler => f,
        _ if scheduler == cfg.scheduler => cfg.scheduler_flags,
        _ if scheduler == Scheduler::Mh => VsFlags(VsFlags::SCHED2),
        _ => VsFlags::default(),
    };
    let mut spec = VsSpec {
        scheduler,
        flags,
        timeout: 0,
        netmask: family.host_prefix(),
    };
    if let Some(t) = svc.affinity_timeout {
        spec.flags.0 |= VsFlags::PERSISTENT;
        spec.timeout = t;
    }
    spec
}

struct Builder<'a> {
    out: ServiceDesired,
    ctx: &'a NodeContext,
    cfg: &'a PlannerConfig,
    family: Family,
}

impl Builder<'_> {
    fn set(&mut self, kind: SetKind, entry: IpsetEntry) {
        self.out
            .ipset
            .push((IpsetName::new(kind, self.family), entry));
    }

    fn vs(
        &mut self,
        key: VsKey,
        spec: VsSpec,
        owner: &ServicePortName,
        reals: &[crate::types::RsKey],
    ) {
        let mut reals: Vec<RealServer> = reals
            .iter()
            .map(|k| RealServer::masq(k.addr, k.port))
            .collect();
        reals.sort_unstable_by_key(|r| r.key);
        self.out.vs.push(Arc::new(DesiredVs {
            key,
            spec,
            owner: owner.clone(),
            reals: reals.into(),
        }));
    }

    fn bind(&mut self, ip: IpAddr) {
        // An address already on another interface needs no binding (stock behaviour).
        if !self.cfg.node_addresses.contains(&ip) {
            self.out.bound.push(ip);
            self.set(SetKind::IpvsIps, IpsetEntry::Ip(ip));
        }
    }

    /// Adds one Service port.
    fn port(
        &mut self,
        svc: &Service,
        port: &ServicePort,
        eps: &[PortEndpoint<'_>],
        cluster_ip: IpAddr,
    ) {
        let owner = ServicePortName {
            service: svc.key.clone(),
            port: port.name.clone(),
        };
        let topo = Topology {
            zone: self.ctx.zone.as_deref(),
            node_hints: self.cfg.topology_node_hints,
        };
        let cat: Categorized = categorize(svc, eps, topo);
        let strict = self.cfg.strict_local;
        let internal = pick(&cat, svc.internal_local, strict);
        let external = pick(&cat, svc.external_local, strict);
        let spec = resolve_spec(svc, self.cfg, self.family);
        let (proto, p) = (port.proto, port.port);

        for (addr, ep_port) in local_addresses(eps) {
            self.set(
                SetKind::LoopBack,
                IpsetEntry::IpPortIp(addr, proto, ep_port, addr),
            );
        }
        self.vs(VsKey::new(proto, cluster_ip, p), spec, &owner, internal);
        self.set(SetKind::ClusterIp, IpsetEntry::IpPort(cluster_ip, proto, p));
        if self.cfg.bind_cluster_ips || !self.ctx.covered(&cluster_ip) {
            self.bind(cluster_ip);
        }
        let family = self.family;
        for ip in svc
            .external_ips
            .iter()
            .copied()
            .filter(|ip| Family::of(ip) == family)
        {
            self.vs(VsKey::new(proto, ip, p), spec, &owner, external);
            // One set or the other (stock): KUBE-EXTERNAL-IP members are masqueraded, which
            // would lose the client address externalTrafficPolicy Local keeps.
            let kind = if svc.external_local {
                SetKind::ExternalIpLocal
            } else {
                SetKind::ExternalIp
            };
            self.set(kind, IpsetEntry::IpPort(ip, proto, p));
            self.bind(ip);
        }
        for ip in svc
            .lb_ips
            .iter()
            .copied()
            .filter(|ip| Family::of(ip) == family)
        {
            self.vs(VsKey::new(proto, ip, p), spec, &owner, external);
            self.set(SetKind::LoadBalancer, IpsetEntry::IpPort(ip, proto, p));
            if svc.external_local {
                self.set(SetKind::LoadBalancerLocal, IpsetEntry::IpPort(ip, proto, p));
            }
            self.source_ranges(svc, ip, proto, p);
            self.bind(ip);
        }
        if let Some(np) = port.node_port {
            self.node_port(svc, proto, np, spec, &owner, external);
        }
    }

    fn source_ranges(&mut self, svc: &Service, ip: IpAddr, proto: Proto, p: u16) {
        let ranges: Vec<IpNet> = svc
            .lb_source_ranges
            .iter()
            .copied()
            .filter(|n| Family::of(&n.addr()) == self.family)
            .collect();
        if ranges.is_empty() {
            return;
        }
        self.set(SetKind::LoadBalancerFw, IpsetEntry::IpPort(ip, proto, p));
        let family = self.family;
        let node_ip = self
            .ctx
            .primary_ips
            .iter()
            .copied()
            .find(|ip| Family::of(ip) == family);
        let mut from_node = false;
        for net in ranges {
            self.set(
                SetKind::LoadBalancerSourceCidr,
                IpsetEntry::IpPortNet(ip, proto, p, net),
            );
            from_node |= node_ip.is_some_and(|n| net.contains(&n));
        }
        if from_node {
            self.set(
                SetKind::LoadBalancerSourceIp,
                IpsetEntry::IpPortIp(ip, proto, p, ip),
            );
        }
    }

    fn node_port(
        &mut self,
        svc: &Service,
        proto: Proto,
        np: u16,
        spec: VsSpec,
        owner: &ServicePortName,
        reals: &[crate::types::RsKey],
    ) {
        let family = self.family;
        let ips: Vec<IpAddr> = self
            .ctx
            .node_port_ips
            .iter()
            .copied()
            .filter(|ip| Family::of(ip) == family)
            .collect();
        for ip in &ips {
            self.vs(VsKey::new(proto, *ip, np), spec, owner, reals);
        }
        let local = svc.external_local;
        match proto {
            Proto::Tcp => {
                self.set(SetKind::NodePortTcp, IpsetEntry::Port(np));
                if local {
                    self.set(SetKind::NodePortLocalTcp, IpsetEntry::Port(np));
                }
            }
            Proto::Udp => {
                self.set(SetKind::NodePortUdp, IpsetEntry::Port(np));
                if local {
                    self.set(SetKind::NodePortLocalUdp, IpsetEntry::Port(np));
                }
            }
            Proto::Sctp => {
                for ip in ips {
                    self.set(SetKind::NodePortSctpHash, IpsetEntry::IpPort(ip, proto, np));
                    if local {
                        self.set(
                            SetKind::NodePortLocalSctpHash,
                            IpsetEntry::IpPort(ip, proto, np),
                        );
                    }
                }
            }
        }
    }
}

/// Computes what one Service wants on this node, for every configured family it has a ClusterIP of.
pub fn service_desired<'a>(
    svc: &Service,
    slices: impl Iterator<Item = &'a Slice> + Clone,
    ctx: &NodeContext,
    cfg: &PlannerConfig,
) -> ServiceDesired {
    let mut b = Builder {
        out: ServiceDesired::default(),
        ctx,
        cfg,
        family: Family::V4,
    };
    // The health check's count (stock `LocalReadyEndpoints`): local Ready endpoints, once per
    // IP over all ports; a node with only terminating local endpoints fails the check.
    let mut local_ready: BTreeSet<IpAddr> = BTreeSet::new();
    let mut programmed = false;
    // Resolved once: each lookup hashes the slice's name, and every port and family walks them.
    let slices: Vec<&Slice> = slices.collect();
    for family in Family::ALL {
        let Some(cluster_ip) = svc.cluster_ip(family).filter(|_| cfg.has_family(family)) else {
            continue;
        };
        b.family = family;
        for port in svc.ports.iter() {
            let eps = port_endpoints(slices.iter().copied(), port, family);
            local_ready.extend(
                eps.iter()
                    .filter(|e| e.ep.local && e.ep.ready)
                    .map(|e| e.key.addr),
            );
            b.port(svc, port, &eps, cluster_ip);
            programmed = true;
        }
        if let Some(hc) = svc.health_check_node_port {
            b.set(SetKind::HealthCheckNodePort, IpsetEntry::Port(hc));
        }
    }
    let mut out = b.out;
    out.health_check = svc
        .health_check_node_port
        .filter(|_| programmed)
        .map(|port| HealthCheck {
            port,
            local_endpoints: u32::try_from(local_ready.len()).unwrap_or(u32::MAX),
        });
    out.vs.sort_by_key(|v| v.key);
    out.vs.dedup_by_key(|v| v.key);
    out.bound.sort_unstable();
    out.bound.dedup();
    out.ipset.sort_unstable();
    out.ipset.dedup();
    // Exact: 50,000 of these stay live between rebuilds, and doubling left half of each unused.
    out.vs.shrink_to_fit();
    out.bound.shrink_to_fit();
    out.ipset.shrink_to_fit();
    out
}
