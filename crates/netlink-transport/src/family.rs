//! The address family every kernel client speaks: IPVS services and destinations, ipsets and
//! conntrack tables (whose `NFPROTO_IPV4`/`NFPROTO_IPV6` are the same numbers), iptables or
//! ip6tables.

use std::fmt;
use std::net::IpAddr;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// An address family as the kernel numbers it (`AF_INET` / `AF_INET6`). kube-ipvs's domain has
/// its own `Family` and converts to and from this one in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    /// IPv4 (`AF_INET`, 2).
    Inet,
    /// IPv6 (`AF_INET6`, 10).
    Inet6,
}

impl AddressFamily {
    /// The kernel's number for this family.
    pub fn number(self) -> u16 {
        match self {
            Self::Inet => AF_INET,
            Self::Inet6 => AF_INET6,
        }
    }

    /// The family with kernel number `n`, if it is IPv4 or IPv6.
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            AF_INET => Some(Self::Inet),
            AF_INET6 => Some(Self::Inet6),
            _ => None,
        }
    }

    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Inet,
            IpAddr::V6(_) => Self::Inet6,
        }
    }

    /// Longest prefix length for this family (32 or 128).
    pub fn max_prefix(self) -> u8 {
        match self {
            Self::Inet => 32,
            Self::Inet6 => 128,
        }
    }
}

impl AddressFamily {
    /// `IPv4`, `IPv6` (also its `Display`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Inet => "IPv4",
            Self::Inet6 => "IPv6",
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
