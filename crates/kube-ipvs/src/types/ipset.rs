//! The ipsets stock kube-proxy keeps (same names, so existing rules, tooling and dashboards work).

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use super::{Family, Proto, ip_cmp};

/// The kernel set type of a set (`ipset create NAME TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SetType {
    /// `hash:ip`.
    HashIp,
    /// `hash:ip,port`.
    HashIpPort,
    /// `hash:ip,port,ip`.
    HashIpPortIp,
    /// `hash:ip,port,net`.
    HashIpPortNet,
    /// `bitmap:port` (range 0-65535).
    BitmapPort,
}

impl SetType {
    /// As `ipset` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::HashIp => "hash:ip",
            Self::HashIpPort => "hash:ip,port",
            Self::HashIpPortIp => "hash:ip,port,ip",
            Self::HashIpPortNet => "hash:ip,port,net",
            Self::BitmapPort => "bitmap:port",
        }
    }
}

/// Which of kube-proxy's sets (pkg/proxy/ipvs/ipset.go).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// Local endpoint `ip,proto:port,ip`: hairpin traffic to masquerade.
    LoopBack,
    /// `clusterIP,proto:port`.
    ClusterIp,
    /// `externalIP,proto:port`.
    ExternalIp,
    /// externalIPs with externalTrafficPolicy=Local (no SNAT).
    ExternalIpLocal,
    /// `lbIngressIP,proto:port`.
    LoadBalancer,
    /// Load balancers with externalTrafficPolicy=Local.
    LoadBalancerLocal,
    /// Load balancers with loadBalancerSourceRanges.
    LoadBalancerFw,
    /// `lbIP,proto:port,sourceCIDR` allowed.
    LoadBalancerSourceCidr,
    /// `lbIP,proto:port,lbIP` when a source range contains the node IP.
    LoadBalancerSourceIp,
    /// TCP NodePorts.
    NodePortTcp,
    /// TCP NodePorts with externalTrafficPolicy=Local.
    NodePortLocalTcp,
    /// UDP NodePorts.
    NodePortUdp,
    /// UDP NodePorts with externalTrafficPolicy=Local.
    NodePortLocalUdp,
    /// SCTP NodePorts `nodeIP,sctp:port`.
    NodePortSctpHash,
    /// SCTP NodePorts with externalTrafficPolicy=Local.
    NodePortLocalSctpHash,
    /// healthCheckNodePorts.
    HealthCheckNodePort,
    /// Addresses bound to the dummy device.
    IpvsIps,
}

impl SetKind {
    /// Every set, in kube-proxy's order.
    pub const ALL: [SetKind; 17] = [
        Self::LoopBack,
        Self::ClusterIp,
        Self::ExternalIp,
        Self::ExternalIpLocal,
        Self::LoadBalancer,
        Self::LoadBalancerLocal,
        Self::LoadBalancerFw,
        Self::LoadBalancerSourceCidr,
        Self::LoadBalancerSourceIp,
        Self::NodePortTcp,
        Self::NodePortLocalTcp,
        Self::NodePortUdp,
        Self::NodePortLocalUdp,
        Self::NodePortSctpHash,
        Self::NodePortLocalSctpHash,
        Self::HealthCheckNodePort,
        Self::IpvsIps,
    ];

    /// The IPv4 name; IPv6 sets insert `6-` after `KUBE-`.
    pub fn base_name(self) -> &'static str {
        match self {
            Self::LoopBack => "KUBE-LOOP-BACK",
            Self::ClusterIp => "KUBE-CLUSTER-IP",
            Self::ExternalIp => "KUBE-EXTERNAL-IP",
            Self::ExternalIpLocal => "KUBE-EXTERNAL-IP-LOCAL",
            Self::LoadBalancer => "KUBE-LOAD-BALANCER",
            Self::LoadBalancerLocal => "KUBE-LOAD-BALANCER-LOCAL",
            Self::LoadBalancerFw => "KUBE-LOAD-BALANCER-FW",
            Self::LoadBalancerSourceCidr => "KUBE-LOAD-BALANCER-SOURCE-CIDR",
            Self::LoadBalancerSourceIp => "KUBE-LOAD-BALANCER-SOURCE-IP",
            Self::NodePortTcp => "KUBE-NODE-PORT-TCP",
            Self::NodePortLocalTcp => "KUBE-NODE-PORT-LOCAL-TCP",
            Self::NodePortUdp => "KUBE-NODE-PORT-UDP",
            Self::NodePortLocalUdp => "KUBE-NODE-PORT-LOCAL-UDP",
            Self::NodePortSctpHash => "KUBE-NODE-PORT-SCTP-HASH",
            Self::NodePortLocalSctpHash => "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
            Self::HealthCheckNodePort => "KUBE-HEALTH-CHECK-NODE-PORT",
            Self::IpvsIps => "KUBE-IPVS-IPS",
        }
    }

    /// The kernel set type.
    pub fn set_type(self) -> SetType {
        match self {
            Self::LoopBack | Self::LoadBalancerSourceIp => SetType::HashIpPortIp,
            Self::LoadBalancerSourceCidr => SetType::HashIpPortNet,
            Self::NodePortTcp
            | Self::NodePortLocalTcp
            | Self::NodePortUdp
            | Self::NodePortLocalUdp
            | Self::HealthCheckNodePort => SetType::BitmapPort,
            Self::IpvsIps => SetType::HashIp,
            Self::ClusterIp
            | Self::ExternalIp
            | Self::ExternalIpLocal
            | Self::LoadBalancer
            | Self::LoadBalancerLocal
            | Self::LoadBalancerFw
            | Self::NodePortSctpHash
            | Self::NodePortLocalSctpHash => SetType::HashIpPort,
        }
    }

    /// kube-proxy's comment on the set (shown by `ipset list` as the set's purpose).
    pub fn comment(self) -> &'static str {
        match self {
            Self::LoopBack => {
                "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"
            }
            Self::ClusterIp => "Kubernetes service cluster ip + port for masquerade purpose",
            Self::ExternalIp => {
                "Kubernetes service external ip + port for masquerade and filter purpose"
            }
            Self::ExternalIpLocal => {
                "Kubernetes service external ip + port with externalTrafficPolicy=local"
            }
            Self::LoadBalancer => "Kubernetes service lb portal",
            Self::LoadBalancerLocal => {
                "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"
            }
            Self::LoadBalancerFw => {
                "Kubernetes service load balancer ip + port for load balancer with sourceRange"
            }
            Self::LoadBalancerSourceCidr => {
                "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"
            }
            Self::LoadBalancerSourceIp => {
                "Kubernetes service load balancer ip + port + source IP for packet filter purpose"
            }
            Self::NodePortTcp => "Kubernetes nodeport TCP port for masquerade purpose",
            Self::NodePortLocalTcp => {
                "Kubernetes nodeport TCP port with externalTrafficPolicy=local"
            }
            Self::NodePortUdp => "Kubernetes nodeport UDP port for masquerade purpose",
            Self::NodePortLocalUdp => {
                "Kubernetes nodeport UDP port with externalTrafficPolicy=local"
            }
            Self::NodePortSctpHash => {
                "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"
            }
            Self::NodePortLocalSctpHash => {
                "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"
            }
            Self::HealthCheckNodePort => "Kubernetes health check node port",
            Self::IpvsIps => "Kubernetes service IP on kube-ipvs0 for filter purpose",
        }
    }
}

/// One set of one family: `KUBE-CLUSTER-IP` or `KUBE-6-CLUSTER-IP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpsetName {
    /// Family (IPv4 sets sort first).
    pub family: Family,
    /// Which set.
    pub kind: SetKind,
}

impl IpsetName {
    /// A set of a family.
    pub fn new(kind: SetKind, family: Family) -> Self {
        Self { family, kind }
    }
}

impl fmt::Display for IpsetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self.kind.base_name();
        match self.family {
            Family::V4 => f.write_str(base),
            Family::V6 => write!(f, "KUBE-6-{}", base.trim_start_matches("KUBE-")),
        }
    }
}

impl Serialize for IpsetName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One set member, printed as `ipset list` prints it. Orders by variant (in declaration order),
/// then field by field, as a derived order would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpsetEntry {
    /// `hash:ip`.
    Ip(IpAddr),
    /// `hash:ip,port`: `10.0.0.1,tcp:80`.
    IpPort(IpAddr, Proto, u16),
    /// `hash:ip,port,ip`: `10.0.0.1,tcp:80,10.0.0.1`.
    IpPortIp(IpAddr, Proto, u16, IpAddr),
    /// `hash:ip,port,net`: `10.0.0.1,tcp:80,192.168.0.0/16`.
    IpPortNet(IpAddr, Proto, u16, IpNet),
    /// `bitmap:port`: `30080`.
    Port(u16),
}

impl IpsetEntry {
    fn variant(&self) -> u8 {
        match self {
            Self::Ip(..) => 0,
            Self::IpPort(..) => 1,
            Self::IpPortIp(..) => 2,
            Self::IpPortNet(..) => 3,
            Self::Port(..) => 4,
        }
    }
}

impl Ord for IpsetEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Ip(a), Self::Ip(b)) => ip_cmp(a, b),
            (Self::IpPort(a, p, n), Self::IpPort(b, q, m)) => {
                ip_cmp(a, b).then(p.cmp(q)).then(n.cmp(m))
            }
            (Self::IpPortIp(a, p, n, x), Self::IpPortIp(b, q, m, y)) => ip_cmp(a, b)
                .then(p.cmp(q))
                .then(n.cmp(m))
                .then_with(|| ip_cmp(x, y)),
            (Self::IpPortNet(a, p, n, x), Self::IpPortNet(b, q, m, y)) => ip_cmp(a, b)
                .then(p.cmp(q))
                .then(n.cmp(m))
                .then_with(|| x.cmp(y)),
            (Self::Port(a), Self::Port(b)) => a.cmp(b),
            _ => self.variant().cmp(&other.variant()),
        }
    }
}

impl PartialOrd for IpsetEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for IpsetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::IpPort(ip, p, port) => write!(f, "{ip},{}:{port}", p.lower()),
            Self::IpPortIp(ip, p, port, ip2) => write!(f, "{ip},{}:{port},{ip2}", p.lower()),
            Self::IpPortNet(ip, p, port, net) => write!(f, "{ip},{}:{port},{net}", p.lower()),
            Self::Port(port) => write!(f, "{port}"),
        }
    }
}

impl Serialize for IpsetEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
