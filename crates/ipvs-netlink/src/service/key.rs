//! How a virtual service is identified: (protocol, address, port) or (family, firewall mark).

use std::net::IpAddr;

use crate::error::DecodeError;
use crate::nla::RawAddr;
use crate::service::ServiceAttribute;
use crate::{AddressFamily, Protocol};

/// The identity of a virtual service (ipvsadm `-t/-u/--sctp-service addr:port` or `-f mark`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VirtualServiceKey {
    /// A service on a protocol, address and port.
    Inet {
        /// TCP, UDP or SCTP.
        protocol: Protocol,
        /// Virtual address; its family is the service's family.
        addr: IpAddr,
        /// Virtual port (host order).
        port: u16,
    },
    /// A service matching packets carrying a firewall mark (`-f`).
    Fwmark {
        /// Which family's packets it matches.
        family: AddressFamily,
        /// The mark (non-zero).
        mark: u32,
    },
}

impl VirtualServiceKey {
    /// A TCP service.
    pub fn tcp(addr: IpAddr, port: u16) -> Self {
        Self::Inet {
            protocol: Protocol::Tcp,
            addr,
            port,
        }
    }

    /// A UDP service.
    pub fn udp(addr: IpAddr, port: u16) -> Self {
        Self::Inet {
            protocol: Protocol::Udp,
            addr,
            port,
        }
    }

    /// The service's address family.
    pub fn family(&self) -> AddressFamily {
        match self {
            Self::Inet { addr, .. } => AddressFamily::of(*addr),
            Self::Fwmark { family, .. } => *family,
        }
    }

    /// Read the identity from a service nest: AF plus FWMARK, or PROTOCOL + ADDR + PORT.
    pub fn from_attributes(nlas: &[ServiceAttribute]) -> Result<Self, DecodeError> {
        const OBJ: &str = "service";
        let (mut af, mut proto, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
        for nla in nlas {
            match nla {
                ServiceAttribute::AddressFamily(v) => af = Some(*v),
                ServiceAttribute::Protocol(v) => proto = Some(*v),
                ServiceAttribute::Address(v) => addr = Some(*v),
                ServiceAttribute::Port(v) => port = Some(*v),
                ServiceAttribute::Fwmark(v) => fwmark = Some(*v),
                _ => {}
            }
        }
        let af = af.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_AF",
        })?;
        let family = AddressFamily::from_number(af).ok_or_else(|| DecodeError::Invalid {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_AF",
            reason: format!("unsupported address family {af}"),
        })?;
        if let Some(mark) = fwmark.filter(|m| *m != 0) {
            return Ok(Self::Fwmark { family, mark });
        }
        let p = proto.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_PROTOCOL",
        })?;
        let protocol = Protocol::from_number(p).ok_or_else(|| DecodeError::Invalid {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_PROTOCOL",
            reason: format!("unsupported protocol {p}"),
        })?;
        let addr = addr.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_ADDR",
        })?;
        let port = port.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_PORT",
        })?;
        Ok(Self::Inet {
            protocol,
            addr: addr.to_ip(family),
            port,
        })
    }

    /// The identity attributes, in the order ipvsadm sends them.
    pub fn to_attributes(&self) -> Vec<ServiceAttribute> {
        let mut out = Vec::with_capacity(9);
        self.push_attributes(&mut out);
        out
    }

    pub(crate) fn push_attributes(&self, out: &mut Vec<ServiceAttribute>) {
        out.push(ServiceAttribute::AddressFamily(self.family().number()));
        match *self {
            Self::Inet {
                protocol,
                addr,
                port,
            } => {
                out.push(ServiceAttribute::Protocol(protocol.number()));
                out.push(ServiceAttribute::Address(RawAddr::from(addr)));
                out.push(ServiceAttribute::Port(port));
            }
            Self::Fwmark { mark, .. } => out.push(ServiceAttribute::Fwmark(mark)),
        }
    }
}

impl std::fmt::Display for VirtualServiceKey {
    /// `TCP 10.0.0.1:80`, `UDP [fd00::1]:53`, `FWM 7 (IPv4)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inet {
                protocol,
                addr: IpAddr::V4(a),
                port,
            } => write!(f, "{protocol} {a}:{port}"),
            Self::Inet {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{protocol} [{a}]:{port}"),
            Self::Fwmark {
                family: AddressFamily::Inet,
                mark,
            } => write!(f, "FWM {mark} (IPv4)"),
            Self::Fwmark {
                family: AddressFamily::Inet6,
                mark,
            } => write!(f, "FWM {mark} (IPv6)"),
        }
    }
}
