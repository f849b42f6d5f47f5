//! Transport protocols as IPVS numbers them (the address family is the transport's
//! [`AddressFamily`](netlink_transport::AddressFamily)).

use std::fmt;

const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const IPPROTO_SCTP: u16 = 132;

/// Transport protocol of a virtual service (IPVS supports exactly these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `IPPROTO_TCP` (6), ipvsadm `-t`.
    Tcp,
    /// `IPPROTO_UDP` (17), ipvsadm `-u`.
    Udp,
    /// `IPPROTO_SCTP` (132), ipvsadm `--sctp-service`.
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u16 {
        match self {
            Self::Tcp => IPPROTO_TCP,
            Self::Udp => IPPROTO_UDP,
            Self::Sctp => IPPROTO_SCTP,
        }
    }

    /// The protocol with IP protocol number `n`, if IPVS supports it.
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            IPPROTO_TCP => Some(Self::Tcp),
            IPPROTO_UDP => Some(Self::Udp),
            IPPROTO_SCTP => Some(Self::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    /// Upper case, as `ipvsadm -Ln` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        })
    }
}
