//! Everything besides IPVS that an IPVS proxier programs on a node.
//!
//! | module | replaces |
//! |---|---|
//! | [`link`] | `ip link add kube-ipvs0 type dummy`, `ip addr add/del VIP/32 dev kube-ipvs0`, `ip -o addr show`, `ip link del kube-ipvs0` |
//! | [`route`] | `ip route add/del local 10.96.0.0/12 dev lo table local`, `ip route show table local type local` |
//! | [`ipset`] | `ipset create/destroy/flush/rename/swap/list/add/del/test/restore` |
//! | [`iptables`] | `iptables-restore --noflush` of the `KUBE-*` chains, `iptables -I ... -j KUBE-*`, `iptables -F/-X` on cleanup |
//! | [`sysctl`] | `sysctl -w net.ipv4.vs.conntrack=1` and the other IPVS-mode sysctls |
//! | [`conntrack`] | `conntrack -D -p udp --orig-dst IP --dport PORT [--reply-src ENDPOINT]` |
//! | [`nft`] | `nft delete table ip kube-proxy` (the nftables proxier's leftovers) |
//! | [`wire`] | (the decoders of the rtnetlink and conntrack replies, bytes -> values, for fuzzing) |
//!
//! Netlink work (links, addresses, routes, ipsets, conntrack) happens in-process through the
//! shared transport (`netlink-transport`: pipelined, a timeout on every receive, sockets rebuilt
//! after a fault); only iptables goes through its own binaries, because its rule set is small and
//! constant and `iptables-restore` is the interface both back ends share.
#![forbid(unsafe_code)]

pub mod conntrack;
pub mod ipset;
pub mod iptables;
pub mod link;
pub mod nft;
pub mod route;
pub mod sysctl;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use netlink_transport::{AddressFamily, BatchOutcome, Errno, Failure, Faults};

/// How a netlink client of this crate opens its socket.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketOptions {
    /// Network namespace to open it in (`/run/netns/x`, `/proc/PID/ns/net`); `None`: the calling
    /// thread's.
    pub netns: Option<PathBuf>,
    /// Bound on each send and on each wait for the kernel's next message.
    pub timeout: Duration,
    /// The fault-injecting layer under the socket (tests).
    pub faults: Option<Faults>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            netns: None,
            timeout: link::DEFAULT_TIMEOUT,
            faults: None,
        }
    }
}

impl SocketOptions {
    pub(crate) fn transport(&self, protocol: isize, rcvbuf: usize) -> netlink_transport::Options {
        netlink_transport::Options {
            netns: self.netns.clone(),
            timeout: self.timeout,
            rcvbuf,
            faults: self.faults.clone(),
            ..netlink_transport::Options::new(protocol)
        }
    }
}
