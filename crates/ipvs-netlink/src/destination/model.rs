//! The `Destination` value: one real server line of `ipvsadm -Ln`.

use std::net::IpAddr;

use crate::AddressFamily;
use crate::destination::{DestinationAttribute, ForwardMethod};
use crate::error::DecodeError;
use crate::nla::RawAddr;
use crate::stats::Stats;

const OBJ: &str = "destination";

/// A real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Address; its family may differ from the service's only for tunnels.
    pub addr: IpAddr,
    /// Port (host order); ignored by the kernel for DR/tunnel (it uses the service port).
    pub port: u16,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Weight (`-w`); 0 drains: no new connections. Must not exceed `i32::MAX`.
    pub weight: u32,
    /// Upper connection threshold (`-x`, 0 = unlimited).
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`).
    pub lower_threshold: u32,
    /// Active connections (reply only; `ActiveConn`).
    pub active_conns: u32,
    /// Inactive connections (reply only; `InActConn`).
    pub inactive_conns: u32,
    /// Persistence templates pointing here (reply only; `--persistent-conn` PersistConn).
    pub persistent_conns: u32,
    /// Counters and rates (reply only; prefers `STATS64`).
    pub stats: Option<Stats>,
}

impl Destination {
    /// A destination with no thresholds.
    pub fn new(addr: IpAddr, port: u16, forward: ForwardMethod, weight: u32) -> Self {
        Self {
            addr,
            port,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: None,
        }
    }

    /// A NAT destination, as kube-proxy programs them.
    pub fn masq(addr: IpAddr, port: u16, weight: u32) -> Self {
        Self::new(addr, port, ForwardMethod::Masquerade, weight)
    }

    /// The attributes of a NEW/SET_DEST request, in ipvsadm's order.
    pub fn to_attributes(&self) -> Vec<DestinationAttribute> {
        let mut out = Vec::with_capacity(10);
        out.push(DestinationAttribute::AddressFamily(
            AddressFamily::of(self.addr).number(),
        ));
        out.push(DestinationAttribute::Address(RawAddr::from(self.addr)));
        out.push(DestinationAttribute::Port(self.port));
        out.push(DestinationAttribute::FwdMethod(self.forward.number()));
        out.push(DestinationAttribute::Weight(self.weight));
        // Always sent (zero unless tunnelling), as ipvsadm 1.31 does and the kernel reports them.
        let (kind, port, flags) = match self.forward {
            ForwardMethod::Tunnel { kind, port, flags } => (kind.number(), port, flags.0),
            _ => (0, 0, 0),
        };
        out.push(DestinationAttribute::TunnelType(kind));
        out.push(DestinationAttribute::TunnelPort(port));
        out.push(DestinationAttribute::TunnelFlags(flags));
        out.push(DestinationAttribute::UpperThreshold(self.upper_threshold));
        out.push(DestinationAttribute::LowerThreshold(self.lower_threshold));
        out
    }

    /// The attributes identifying a destination (DEL_DEST).
    pub fn key_attributes(addr: IpAddr, port: u16) -> Vec<DestinationAttribute> {
        vec![
            DestinationAttribute::AddressFamily(AddressFamily::of(addr).number()),
            DestinationAttribute::Address(RawAddr::from(addr)),
            DestinationAttribute::Port(port),
        ]
    }

    /// Build from a destination nest; `service_family` applies when the nest has no family.
    pub fn from_attributes(
        nlas: &[DestinationAttribute],
        service_family: AddressFamily,
    ) -> Result<Self, DecodeError> {
        let mut addr = None;
        let mut port = None;
        let mut method = None;
        let mut family = service_family;
        let (mut tun_type, mut tun_port, mut tun_flags) = (0, 0, 0);
        let mut d = Self::masq(IpAddr::from([0, 0, 0, 0]), 0, 0);
        let (mut stats, mut stats64) = (None, None);
        for nla in nlas {
            match nla {
                DestinationAttribute::Address(v) => addr = Some(*v),
                DestinationAttribute::Port(v) => port = Some(*v),
                DestinationAttribute::FwdMethod(v) => method = Some(*v),
                DestinationAttribute::Weight(v) => d.weight = *v,
                DestinationAttribute::UpperThreshold(v) => d.upper_threshold = *v,
                DestinationAttribute::LowerThreshold(v) => d.lower_threshold = *v,
                DestinationAttribute::ActiveConns(v) => d.active_conns = *v,
                DestinationAttribute::InactiveConns(v) => d.inactive_conns = *v,
                DestinationAttribute::PersistentConns(v) => d.persistent_conns = *v,
                DestinationAttribute::Stats(v) => stats = Some(Stats::from_attributes(v)),
                DestinationAttribute::Stats64(v) => stats64 = Some(Stats::from_attributes(v)),
                DestinationAttribute::AddressFamily(v) => {
                    family =
                        AddressFamily::from_number(*v).ok_or_else(|| DecodeError::Invalid {
                            object: OBJ,
                            attribute: "IPVS_DEST_ATTR_ADDR_FAMILY",
                            reason: format!("unsupported address family {v}"),
                        })?;
                }
                DestinationAttribute::TunnelType(v) => tun_type = *v,
                DestinationAttribute::TunnelPort(v) => tun_port = *v,
                DestinationAttribute::TunnelFlags(v) => tun_flags = *v,
                _ => {}
            }
        }
        let addr = addr.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_DEST_ATTR_ADDR",
        })?;
        d.addr = addr.to_ip(family);
        d.port = port.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_DEST_ATTR_PORT",
        })?;
        let method = method.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_DEST_ATTR_FWD_METHOD",
        })?;
        d.forward =
            ForwardMethod::from_parts(method, tun_type, tun_port, tun_flags).ok_or_else(|| {
                DecodeError::Invalid {
                    object: OBJ,
                    attribute: "IPVS_DEST_ATTR_FWD_METHOD",
                    reason: format!("forwarding method {method} with tunnel type {tun_type}"),
                }
            })?;
        d.stats = stats64.or(stats);
        Ok(d)
    }
}
