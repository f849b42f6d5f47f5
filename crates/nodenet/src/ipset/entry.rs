//! Typed set members and set types, with the DATA-nest encoding the kernel expects per type
//! and the decoding of the kernel's dumps.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::attribute::{self, Attr};
use super::constants::*;
use super::error::{DecodeError, EncodeError};
use crate::AddressFamily;

/// A set's family on the wire (`NFPROTO_*`, `family inet|inet6`): `None` is `NFPROTO_UNSPEC`, the
/// family-less types (bitmap:port).
pub(crate) fn to_nfproto(family: Option<AddressFamily>) -> u8 {
    match family {
        None => NFPROTO_UNSPEC,
        Some(AddressFamily::Inet) => NFPROTO_IPV4,
        Some(AddressFamily::Inet6) => NFPROTO_IPV6,
    }
}

/// The family of a set's `NFPROTO_*` ([`to_nfproto`]).
pub(crate) fn from_nfproto(value: u8) -> Result<Option<AddressFamily>, DecodeError> {
    match value {
        NFPROTO_UNSPEC => Ok(None),
        NFPROTO_IPV4 => Ok(Some(AddressFamily::Inet)),
        NFPROTO_IPV6 => Ok(Some(AddressFamily::Inet6)),
        other => Err(DecodeError::Invalid {
            what: "family",
            detail: format!("unknown NFPROTO {other}"),
        }),
    }
}

/// The set types kube-proxy's IPVS mode uses; any other type is listed as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SetType {
    HashIp,
    HashIpPort,
    HashIpPortIp,
    HashIpPortNet,
    HashNet,
    BitmapPort,
    /// A type we do not model (e.g. hash:mac): its name, members are not decoded.
    Other(String),
}

impl SetType {
    /// The kernel's type name, as in `ipset create NAME TYPENAME`.
    pub fn name(&self) -> &str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashIpPort => "hash:ip,port",
            SetType::HashIpPortIp => "hash:ip,port,ip",
            SetType::HashIpPortNet => "hash:ip,port,net",
            SetType::HashNet => "hash:net",
            SetType::BitmapPort => "bitmap:port",
            SetType::Other(name) => name,
        }
    }

    pub fn from_name(name: &str) -> Self {
        match name {
            "hash:ip" => SetType::HashIp,
            "hash:ip,port" => SetType::HashIpPort,
            "hash:ip,port,ip" => SetType::HashIpPortIp,
            "hash:ip,port,net" => SetType::HashIpPortNet,
            "hash:net" => SetType::HashNet,
            "bitmap:port" => SetType::BitmapPort,
            other => SetType::Other(other.to_string()),
        }
    }

    /// Highest type revision whose wire format this codec knows (ipset 7.17 userspace).
    pub fn max_revision(&self) -> u8 {
        match self {
            SetType::HashIp => 6,
            SetType::HashIpPort => 7,
            SetType::HashIpPortIp => 6,
            SetType::HashIpPortNet => 8,
            SetType::HashNet => 7,
            SetType::BitmapPort => 3,
            SetType::Other(_) => 0,
        }
    }

    pub fn is_hash(&self) -> bool {
        !matches!(self, SetType::BitmapPort | SetType::Other(_))
    }
}

impl fmt::Display for SetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// L4 protocol of a port entry (`tcp:80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    /// Any other IP protocol number (never 6, 17 or 132).
    Other(u8),
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Other(n) => n,
        }
    }

    pub fn from_number(n: u8) -> Self {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            other => Protocol::Other(other),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Sctp => f.write_str("sctp"),
            Protocol::Other(n) => write!(f, "{n}"),
        }
    }
}

/// One set member. Ordered so plans and diffs are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    /// hash:ip `10.0.0.1`
    Ip(IpAddr),
    /// hash:ip,port `10.96.0.10,tcp:53`
    IpPort {
        ip: IpAddr,
        proto: Protocol,
        port: u16,
    },
    /// hash:ip,port,ip `10.0.0.1,tcp:80,10.0.0.1`
    IpPortIp {
        ip: IpAddr,
        proto: Protocol,
        port: u16,
        ip2: IpAddr,
    },
    /// hash:ip,port,net `10.0.0.1,tcp:80,192.168.0.0/16`
    IpPortNet {
        ip: IpAddr,
        proto: Protocol,
        port: u16,
        net: IpNet,
    },
    /// hash:net `10.0.0.0/8`
    Net(IpNet),
    /// bitmap:port `30000`
    Port(u16),
}

impl Entry {
    /// The set type this entry belongs to.
    pub fn set_type(&self) -> SetType {
        match self {
            Entry::Ip(_) => SetType::HashIp,
            Entry::IpPort { .. } => SetType::HashIpPort,
            Entry::IpPortIp { .. } => SetType::HashIpPortIp,
            Entry::IpPortNet { .. } => SetType::HashIpPortNet,
            Entry::Net(_) => SetType::HashNet,
            Entry::Port(_) => SetType::BitmapPort,
        }
    }

    /// The address family; `None` for ports.
    pub fn family(&self) -> Option<AddressFamily> {
        match self {
            Entry::Ip(ip)
            | Entry::IpPort { ip, .. }
            | Entry::IpPortIp { ip, .. }
            | Entry::IpPortNet { ip, .. } => Some(AddressFamily::of(*ip)),
            Entry::Net(net) => Some(AddressFamily::of(net.addr())),
            Entry::Port(_) => None,
        }
    }

    /// The entry as the kernel stores it: networks truncated to their prefix (the kernel
    /// masks them, so `10.1.2.3/16` is listed back as `10.1.0.0/16`).
    pub fn normalized(self) -> Self {
        match self {
            Entry::Net(net) => Entry::Net(net.trunc()),
            Entry::IpPortNet {
                ip,
                proto,
                port,
                net,
            } => Entry::IpPortNet {
                ip,
                proto,
                port,
                net: net.trunc(),
            },
            other => other,
        }
    }

    /// Appends the attributes inside one DATA nest, in the order the `ipset` CLI uses.
    pub(crate) fn emit_data(
        &self,
        buf: &mut Vec<u8>,
        comment: Option<&str>,
        lineno: Option<u32>,
    ) -> Result<(), EncodeError> {
        match *self {
            Entry::Ip(ip) => attribute::put_ip(buf, IPSET_ATTR_IP, ip),
            Entry::IpPort { ip, proto, port } => {
                attribute::put_ip(buf, IPSET_ATTR_IP, ip);
                attribute::put_be16(buf, IPSET_ATTR_PORT, port);
                attribute::put_u8(buf, IPSET_ATTR_PROTO, proto.number());
            }
            Entry::IpPortIp {
                ip,
                proto,
                port,
                ip2,
            } => {
                attribute::put_ip(buf, IPSET_ATTR_IP, ip);
                attribute::put_be16(buf, IPSET_ATTR_PORT, port);
                attribute::put_u8(buf, IPSET_ATTR_PROTO, proto.number());
                attribute::put_ip(buf, IPSET_ATTR_IP2, ip2);
            }
            Entry::IpPortNet {
                ip,
                proto,
                port,
                net,
            } => {
                attribute::put_ip(buf, IPSET_ATTR_IP, ip);
                attribute::put_be16(buf, IPSET_ATTR_PORT, port);
                attribute::put_u8(buf, IPSET_ATTR_PROTO, proto.number());
                attribute::put_ip(buf, IPSET_ATTR_IP2, net.network());
                attribute::put_u8(buf, IPSET_ATTR_CIDR2, net.prefix_len());
            }
            Entry::Net(net) => {
                attribute::put_ip(buf, IPSET_ATTR_IP, net.network());
                attribute::put_u8(buf, IPSET_ATTR_CIDR, net.prefix_len());
            }
            Entry::Port(port) => attribute::put_be16(buf, IPSET_ATTR_PORT, port),
        }
        if let Some(comment) = comment {
            if comment.len() > IPSET_MAX_COMMENT_SIZE || comment.contains('\0') {
                return Err(EncodeError::Comment);
            }
            attribute::put_cstr(buf, IPSET_ATTR_COMMENT, comment)?;
        }
        if let Some(lineno) = lineno {
            attribute::put_be32(buf, IPSET_ATTR_LINENO, lineno);
        }
        Ok(())
    }

    /// Decodes one DATA nest of a set of type `set_type`; returns the entry and its comment.
    pub(crate) fn parse_data(set_type: &SetType, data: &Attr<'_>) -> Result<Member, DecodeError> {
        let mut ip = None;
        let mut ip2 = None;
        let mut cidr = None;
        let mut cidr2 = None;
        let mut port = None;
        let mut proto = None;
        let mut comment = None;
        for attr in data.nested() {
            let attr = attr?;
            match attr.kind {
                IPSET_ATTR_IP => ip = Some(attr.ip("entry address")?),
                IPSET_ATTR_IP2 => ip2 = Some(attr.ip("entry second address")?),
                IPSET_ATTR_CIDR => cidr = Some(attr.u8("entry cidr")?),
                IPSET_ATTR_CIDR2 => cidr2 = Some(attr.u8("entry cidr2")?),
                IPSET_ATTR_PORT => port = Some(attr.be16("entry port")?),
                IPSET_ATTR_PROTO => proto = Some(Protocol::from_number(attr.u8("entry protocol")?)),
                IPSET_ATTR_COMMENT => comment = Some(attr.string("entry comment")?),
                _ => {}
            }
        }
        let need_ip = || {
            ip.ok_or(DecodeError::Missing {
                what: "entry address",
            })
        };
        let need_port = || port.ok_or(DecodeError::Missing { what: "entry port" });
        let need_proto = || {
            proto.ok_or(DecodeError::Missing {
                what: "entry protocol",
            })
        };
        let entry = match set_type {
            SetType::HashIp => Entry::Ip(need_ip()?),
            SetType::HashIpPort => Entry::IpPort {
                ip: need_ip()?,
                proto: need_proto()?,
                port: need_port()?,
            },
            SetType::HashIpPortIp => Entry::IpPortIp {
                ip: need_ip()?,
                proto: need_proto()?,
                port: need_port()?,
                ip2: ip2.ok_or(DecodeError::Missing {
                    what: "entry second address",
                })?,
            },
            SetType::HashIpPortNet => {
                let addr = ip2.ok_or(DecodeError::Missing {
                    what: "entry network",
                })?;
                Entry::IpPortNet {
                    ip: need_ip()?,
                    proto: need_proto()?,
                    port: need_port()?,
                    net: make_net(addr, cidr2)?,
                }
            }
            SetType::HashNet => Entry::Net(make_net(need_ip()?, cidr)?),
            SetType::BitmapPort => Entry::Port(need_port()?),
            SetType::Other(name) => {
                return Err(DecodeError::Invalid {
                    what: "set type",
                    detail: format!("members of {name} are not modelled"),
                });
            }
        };
        Ok(Member { entry, comment })
    }
}

/// A network from an address and an optional prefix (absent means a host prefix).
fn make_net(addr: IpAddr, prefix: Option<u8>) -> Result<IpNet, DecodeError> {
    let host = if addr.is_ipv4() { 32 } else { 128 };
    IpNet::new(addr, prefix.unwrap_or(host))
        .map(|n| n.trunc())
        .map_err(|_| DecodeError::Invalid {
            what: "entry cidr",
            detail: format!("prefix {prefix:?} too long for {addr}"),
        })
}

/// The `ipset save` syntax of an entry (host prefixes omitted, as the CLI prints them).
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Ip(ip) => write!(f, "{ip}"),
            Entry::IpPort { ip, proto, port } => write!(f, "{ip},{proto}:{port}"),
            Entry::IpPortIp {
                ip,
                proto,
                port,
                ip2,
            } => write!(f, "{ip},{proto}:{port},{ip2}"),
            Entry::IpPortNet {
                ip,
                proto,
                port,
                net,
            } => write!(f, "{ip},{proto}:{port},{}", NetDisplay(*net)),
            Entry::Net(net) => write!(f, "{}", NetDisplay(*net)),
            Entry::Port(port) => write!(f, "{port}"),
        }
    }
}

struct NetDisplay(IpNet);

impl fmt::Display for NetDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A listed member: the entry and its comment (sets created with `comment`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub entry: Entry,
    pub comment: Option<String>,
}
