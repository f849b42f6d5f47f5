//! Domain values <-> the kernel clients' values: IPVS services and destinations (ipvs-netlink),
//! ipset names, types and members (nodenet).
//!
//! Total in both directions: what the kernel holds but the domain cannot express (a scheduler
//! module we do not know, a member of a protocol IPVS does not balance) converts to `None` and is
//! left out of the observed state; what the domain holds but the kernel cannot take (the Bypass
//! forwarding method) is an error naming the op.

use ipvs_netlink as ipvs;
use nodenet::AddressFamily;
use nodenet::ipset as nset;
use nodenet::iptables::KubeSet;

use crate::types::{
    Family, Forward, IpsetEntry, IpsetName, Proto, RealServer, RsKey, Scheduler, SetKind, SetType,
    VsFlags, VsKey, VsSpec,
};

/// Hash set options: stock kube-proxy's exactly (`hashsize 1024 maxelem 65536`). Stock ensures
/// its sets with `ipset create -exist`, which the kernel refuses (and stock then programs
/// nothing) when the existing set's `maxelem` differs: equal options let stock take a node back.
const HASHSIZE: u32 = 1024;
const STOCK_MAXELEM: u32 = 65_536;
/// What a set that fills up (~33,000 two-port Services overflow 65,536) is resized to in place
/// (`apply`). A hash set's memory follows its members, not this cap.
pub(super) const MAXELEM: u32 = 1 << 20;

/// A domain value the kernel cannot take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// The kernel clients' family (IPVS, ipset, conntrack, iptables: one type) of a domain family.
impl From<Family> for AddressFamily {
    fn from(f: Family) -> Self {
        match f {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }
}

impl From<AddressFamily> for Family {
    fn from(f: AddressFamily) -> Self {
        match f {
            AddressFamily::Inet => Family::V4,
            AddressFamily::Inet6 => Family::V6,
        }
    }
}

fn ipvs_proto(p: Proto) -> ipvs::Protocol {
    match p {
        Proto::Tcp => ipvs::Protocol::Tcp,
        Proto::Udp => ipvs::Protocol::Udp,
        Proto::Sctp => ipvs::Protocol::Sctp,
    }
}

fn proto_of(p: ipvs::Protocol) -> Proto {
    match p {
        ipvs::Protocol::Tcp => Proto::Tcp,
        ipvs::Protocol::Udp => Proto::Udp,
        ipvs::Protocol::Sctp => Proto::Sctp,
    }
}

/// The IPVS identity of a virtual server.
pub fn virtual_service_key(key: &VsKey) -> ipvs::VirtualServiceKey {
    match *key {
        VsKey::Service { proto, addr, port } => ipvs::VirtualServiceKey::Inet {
            protocol: ipvs_proto(proto),
            addr,
            port,
        },
        VsKey::Fwmark { family, mark } => ipvs::VirtualServiceKey::Fwmark {
            family: family.into(),
            mark,
        },
    }
}

/// The domain identity of an IPVS service.
pub fn vs_key(key: &ipvs::VirtualServiceKey) -> VsKey {
    match *key {
        ipvs::VirtualServiceKey::Inet {
            protocol,
            addr,
            port,
        } => VsKey::Service {
            proto: proto_of(protocol),
            addr,
            port,
        },
        ipvs::VirtualServiceKey::Fwmark { family, mark } => VsKey::Fwmark {
            family: family.into(),
            mark,
        },
    }
}

/// The `ipvsadm -A/-E` request of a virtual server.
pub fn service(key: &VsKey, spec: &VsSpec) -> Result<ipvs::Service, Unsupported> {
    let scheduler = ipvs::SchedulerName::new(spec.scheduler.name())
        .map_err(|e| Unsupported(format!("scheduler: {e}")))?;
    let mut s = ipvs::Service::new(virtual_service_key(key), scheduler);
    s.flags = ipvs::ServiceFlags::from_bits(spec.flags.0);
    s.timeout = spec.timeout;
    s.netmask = spec.netmask;
    Ok(s)
}

/// The domain view of a service read from the kernel; `None` for a scheduler the domain does not know (the
/// kernel reports `none` for a service whose scheduler module went away).
pub fn vs_spec(s: &ipvs::Service) -> Option<VsSpec> {
    Some(VsSpec {
        scheduler: Scheduler::parse(s.scheduler.as_str())?,
        flags: VsFlags(s.flags.bits()),
        timeout: s.timeout,
        netmask: s.netmask,
    })
}

fn forward_method(f: Forward) -> Result<ipvs::ForwardMethod, Unsupported> {
    Ok(match f {
        Forward::Masq => ipvs::ForwardMethod::Masquerade,
        Forward::Local => ipvs::ForwardMethod::Local,
        Forward::Tunnel => ipvs::ForwardMethod::IPIP,
        Forward::Route => ipvs::ForwardMethod::DirectRoute,
        Forward::Bypass => {
            return Err(Unsupported(
                "forwarding method Bypass cannot be set on a real server".into(),
            ));
        }
    })
}

fn forward_of(f: &ipvs::ForwardMethod) -> Forward {
    match f {
        ipvs::ForwardMethod::Masquerade => Forward::Masq,
        ipvs::ForwardMethod::Local => Forward::Local,
        ipvs::ForwardMethod::Tunnel { .. } => Forward::Tunnel,
        ipvs::ForwardMethod::DirectRoute => Forward::Route,
    }
}

/// The `ipvsadm -a/-e` request of a real server.
pub fn destination(rs: &RealServer) -> Result<ipvs::Destination, Unsupported> {
    Ok(ipvs::Destination::new(
        rs.key.addr,
        rs.key.port,
        forward_method(rs.forward)?,
        rs.weight,
    ))
}

/// The domain view of a destination read from the kernel, with its connection counters.
pub fn real_server(d: &ipvs::Destination) -> RealServer {
    RealServer {
        key: RsKey {
            addr: d.addr,
            port: d.port,
        },
        weight: d.weight,
        forward: forward_of(&d.forward),
        active: d.active_conns,
        inactive: d.inactive_conns,
    }
}

/// The IPVS request of a plan op; `None` for ops that are not IPVS changes.
pub fn ipvs_op(op: &crate::plan::Op) -> Option<Result<ipvs::IpvsOp, Unsupported>> {
    use crate::plan::Op;
    Some(match op {
        Op::AddVs { key, spec, .. } => service(key, spec).map(ipvs::IpvsOp::AddService),
        Op::UpdateVs { key, spec } => service(key, spec).map(ipvs::IpvsOp::UpdateService),
        Op::DelVs { key } => Ok(ipvs::IpvsOp::DeleteService(virtual_service_key(key))),
        Op::AddRs { vs, rs } => {
            destination(rs).map(|d| ipvs::IpvsOp::AddDestination(virtual_service_key(vs), d))
        }
        Op::UpdateRs { vs, rs } => {
            destination(rs).map(|d| ipvs::IpvsOp::UpdateDestination(virtual_service_key(vs), d))
        }
        Op::DelRs { vs, rs } => Ok(ipvs::IpvsOp::DeleteDestination {
            service: virtual_service_key(vs),
            addr: rs.addr,
            port: rs.port,
        }),
        _ => return None,
    })
}

/// The set as the iptables rules reference it.
pub fn kube_set(kind: SetKind) -> KubeSet {
    match kind {
        SetKind::LoopBack => KubeSet::LoopBack,
        SetKind::ClusterIp => KubeSet::ClusterIp,
        SetKind::ExternalIp => KubeSet::ExternalIp,
        SetKind::ExternalIpLocal => KubeSet::ExternalIpLocal,
        SetKind::LoadBalancer => KubeSet::LoadBalancer,
        SetKind::LoadBalancerLocal => KubeSet::LoadBalancerLocal,
        SetKind::LoadBalancerFw => KubeSet::LoadBalancerFw,
        SetKind::LoadBalancerSourceCidr => KubeSet::LoadBalancerSourceCidr,
        SetKind::LoadBalancerSourceIp => KubeSet::LoadBalancerSourceIp,
        SetKind::NodePortTcp => KubeSet::NodePortTcp,
        SetKind::NodePortLocalTcp => KubeSet::NodePortLocalTcp,
        SetKind::NodePortUdp => KubeSet::NodePortUdp,
        SetKind::NodePortLocalUdp => KubeSet::NodePortLocalUdp,
        SetKind::NodePortSctpHash => KubeSet::NodePortSctp,
        SetKind::NodePortLocalSctpHash => KubeSet::NodePortLocalSctp,
        SetKind::HealthCheckNodePort => KubeSet::HealthCheckNodePort,
        SetKind::IpvsIps => KubeSet::IpvsIps,
    }
}

/// A protocol as the iptables rules name it.
pub fn rules_protocol(p: Proto) -> nodenet::iptables::Protocol {
    match p {
        Proto::Tcp => nodenet::iptables::Protocol::Tcp,
        Proto::Udp => nodenet::iptables::Protocol::Udp,
        Proto::Sctp => nodenet::iptables::Protocol::Sctp,
    }
}

/// The kernel name of a set: the one the iptables rules match (`KUBE-6-...` cut to ipset's 31
/// characters, as kube-proxy names them).
pub fn set_name(name: &IpsetName) -> String {
    kube_set(name.kind).name(name.family.into())
}

/// Every set of the families, by kernel name.
pub fn our_sets(families: &[Family]) -> Vec<(String, IpsetName)> {
    families
        .iter()
        .flat_map(|f| SetKind::ALL.iter().map(|k| IpsetName::new(*k, *f)))
        .map(|n| (set_name(&n), n))
        .collect()
}

fn nset_type(t: SetType) -> nset::SetType {
    match t {
        SetType::HashIp => nset::SetType::HashIp,
        SetType::HashIpPort => nset::SetType::HashIpPort,
        SetType::HashIpPortIp => nset::SetType::HashIpPortIp,
        SetType::HashIpPortNet => nset::SetType::HashIpPortNet,
        SetType::BitmapPort => nset::SetType::BitmapPort,
    }
}

/// `ipset create` of a set as stock kube-proxy creates it.
pub fn create_spec(name: &IpsetName) -> nset::CreateSpec {
    let kernel_name = set_name(name);
    match name.kind.set_type() {
        SetType::BitmapPort => nset::CreateSpec::bitmap_port(kernel_name, 0, u16::MAX),
        t => {
            let mut spec = nset::CreateSpec::hash(kernel_name, nset_type(t), name.family.into());
            spec.hashsize = Some(HASHSIZE);
            spec.maxelem = Some(STOCK_MAXELEM);
            spec
        }
    }
}

fn nset_proto(p: Proto) -> nset::Protocol {
    match p {
        Proto::Tcp => nset::Protocol::Tcp,
        Proto::Udp => nset::Protocol::Udp,
        Proto::Sctp => nset::Protocol::Sctp,
    }
}

fn proto_of_nset(p: nset::Protocol) -> Option<Proto> {
    match p {
        nset::Protocol::Tcp => Some(Proto::Tcp),
        nset::Protocol::Udp => Some(Proto::Udp),
        nset::Protocol::Sctp => Some(Proto::Sctp),
        nset::Protocol::Other(_) => None,
    }
}

/// The nodenet member of a domain member.
pub fn entry(e: &IpsetEntry) -> nset::Entry {
    match *e {
        IpsetEntry::Ip(ip) => nset::Entry::Ip(ip),
        IpsetEntry::IpPort(ip, p, port) => nset::Entry::IpPort {
            ip,
            proto: nset_proto(p),
            port,
        },
        IpsetEntry::IpPortIp(ip, p, port, ip2) => nset::Entry::IpPortIp {
            ip,
            proto: nset_proto(p),
            port,
            ip2,
        },
        IpsetEntry::IpPortNet(ip, p, port, net) => nset::Entry::IpPortNet {
            ip,
            proto: nset_proto(p),
            port,
            net,
        },
        IpsetEntry::Port(port) => nset::Entry::Port(port),
    }
}

/// The domain member of a listed member; `None` for what our sets never hold (hash:net
/// members, protocols other than TCP/UDP/SCTP).
pub fn ipset_entry(e: &nset::Entry) -> Option<IpsetEntry> {
    Some(match *e {
        nset::Entry::Ip(ip) => IpsetEntry::Ip(ip),
        nset::Entry::IpPort { ip, proto, port } => {
            IpsetEntry::IpPort(ip, proto_of_nset(proto)?, port)
        }
        nset::Entry::IpPortIp {
            ip,
            proto,
            port,
            ip2,
        } => IpsetEntry::IpPortIp(ip, proto_of_nset(proto)?, port, ip2),
        nset::Entry::IpPortNet {
            ip,
            proto,
            port,
            net,
        } => IpsetEntry::IpPortNet(ip, proto_of_nset(proto)?, port, net),
        nset::Entry::Port(port) => IpsetEntry::Port(port),
        nset::Entry::Net(_) => return None,
    })
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
