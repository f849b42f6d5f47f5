//! Virtual servers and real servers (`ipvsadm -A/-E/-D` and `-a/-e/-d`).

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::{Family, Proto, Scheduler, VsFlags, ip_cmp};

/// Identity of a virtual server: protocol + address + port, or a firewall mark.
///
/// Orders as `ipvsadm -Ln` sorts: address services before fwmark ones, then family, protocol
/// number, address, port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VsKey {
    /// `-t/-u/--sctp-service ADDR:PORT`.
    Service {
        /// Protocol.
        proto: Proto,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `-f MARK` (never created by us; only observed, and left alone).
    Fwmark {
        /// Address family.
        family: Family,
        /// Firewall mark.
        mark: u32,
    },
}

impl VsKey {
    /// An address virtual server.
    pub fn new(proto: Proto, addr: IpAddr, port: u16) -> Self {
        Self::Service { proto, addr, port }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        match self {
            Self::Service { addr, .. } => Family::of(addr),
            Self::Fwmark { family, .. } => *family,
        }
    }

    /// The virtual address, if an address service.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Self::Service { addr, .. } => Some(*addr),
            Self::Fwmark { .. } => None,
        }
    }

    /// The protocol, if an address service.
    pub fn proto(&self) -> Option<Proto> {
        match self {
            Self::Service { proto, .. } => Some(*proto),
            Self::Fwmark { .. } => None,
        }
    }
}

impl Ord for VsKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (
                Self::Service {
                    proto: p1,
                    addr: a1,
                    port: o1,
                },
                Self::Service {
                    proto: p2,
                    addr: a2,
                    port: o2,
                },
            ) => a1
                .is_ipv6()
                .cmp(&a2.is_ipv6())
                .then(p1.cmp(p2))
                .then_with(|| ip_cmp(a1, a2))
                .then(o1.cmp(o2)),
            (Self::Service { .. }, Self::Fwmark { .. }) => Ordering::Less,
            (Self::Fwmark { .. }, Self::Service { .. }) => Ordering::Greater,
            (
                Self::Fwmark {
                    family: f1,
                    mark: m1,
                },
                Self::Fwmark {
                    family: f2,
                    mark: m2,
                },
            ) => m1.cmp(m2).then(f1.cmp(f2)),
        }
    }
}

impl PartialOrd for VsKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for VsKey {
    /// `TCP  10.0.0.1:80` / `UDP  [fd00::1]:53` / `FWM  5`, as in `ipvsadm -Ln`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service { proto, addr, port } => {
                write!(f, "{}  {}", proto.upper(), SockAddr(*addr, *port))
            }
            Self::Fwmark {
                family: Family::V4,
                mark,
            } => write!(f, "FWM  {mark}"),
            Self::Fwmark {
                family: Family::V6,
                mark,
            } => write!(f, "FWM  {mark} IPv6"),
        }
    }
}

/// `addr:port`, bracketing IPv6 as `ipvsadm` does.
#[derive(Clone, Copy, Debug)]
pub struct SockAddr(pub IpAddr, pub u16);

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// The settable properties of a virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct VsSpec {
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Flags (persistent, scheduler flags).
    pub flags: VsFlags,
    /// Persistence timeout in seconds (0 unless persistent).
    pub timeout: u32,
    /// Persistence netmask as a prefix length (32 or 128 for one client address).
    pub netmask: u8,
}

impl VsSpec {
    /// A plain, non-persistent virtual server of a family.
    pub fn plain(scheduler: Scheduler, family: Family) -> Self {
        Self {
            scheduler,
            flags: VsFlags::default(),
            timeout: 0,
            netmask: family.host_prefix(),
        }
    }

    /// Whether `other` (typically read from the kernel) already matches this spec in every
    /// property we manage: timeout and netmask matter only for persistent services.
    pub fn matches(&self, other: &VsSpec) -> bool {
        let persistent = self.flags.has(VsFlags::PERSISTENT);
        self.scheduler == other.scheduler
            && self.flags.managed() == other.flags.managed()
            && (!persistent || (self.timeout == other.timeout && self.netmask == other.netmask))
    }
}

/// The forwarding method of a real server (`IP_VS_CONN_F_FWD_MASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Forward {
    /// NAT (`-m`), the only method kube-proxy uses.
    Masq,
    /// Local node (`Local`).
    Local,
    /// IP-in-IP tunnel (`-i`).
    Tunnel,
    /// Direct routing (`-g`).
    Route,
    /// Bypass.
    Bypass,
}

impl Forward {
    /// As `ipvsadm -Ln` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Local => "Local",
            Self::Tunnel => "Tunnel",
            Self::Route => "Route",
            Self::Bypass => "Bypass",
        }
    }
}

/// Identity of a real server within its virtual server. Orders by address, then port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RsKey {
    /// Endpoint address.
    pub addr: IpAddr,
    /// Endpoint port.
    pub port: u16,
}

impl Ord for RsKey {
    fn cmp(&self, other: &Self) -> Ordering {
        ip_cmp(&self.addr, &other.addr).then(self.port.cmp(&other.port))
    }
}

impl PartialOrd for RsKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SockAddr(self.addr, self.port).fmt(f)
    }
}

/// A real server as desired, or as read from the kernel (with connection counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RealServer {
    /// Address and port.
    pub key: RsKey,
    /// Weight (1 for a serving endpoint, 0 while draining).
    pub weight: u32,
    /// Forwarding method.
    pub forward: Forward,
    /// Active connections (kernel counter; 0 in desired state).
    pub active: u32,
    /// Inactive connections (kernel counter; 0 in desired state).
    pub inactive: u32,
}

impl RealServer {
    /// A desired masquerading real server with weight 1.
    pub fn masq(addr: IpAddr, port: u16) -> Self {
        Self {
            key: RsKey { addr, port },
            weight: 1,
            forward: Forward::Masq,
            active: 0,
            inactive: 0,
        }
    }

    /// Active plus inactive connections.
    pub fn connections(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }
}
