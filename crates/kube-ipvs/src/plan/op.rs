//! One kernel change, in domain terms (the agent maps each to ipvs-netlink / nodenet calls).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::types::{IpsetEntry, IpsetName, RealServer, RsKey, ServicePortName, VsKey, VsSpec};

/// One change to the node's kernel state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// `ip route add local CIDR dev lo table local proto static`: makes a whole service CIDR local
    /// (on `lo`: the kernel refuses IPv6 routes through the dummy device, which stays down).
    AddRoute {
        /// The CIDR.
        cidr: IpNet,
    },
    /// Adds an address (/32 or /128) to the dummy device.
    BindAddr {
        /// The address.
        addr: IpAddr,
    },
    /// `ipset add`.
    IpsetAdd {
        /// Set.
        set: IpsetName,
        /// Member.
        entry: IpsetEntry,
    },
    /// `ipvsadm -A`.
    AddVs {
        /// Identity.
        key: VsKey,
        /// Properties.
        spec: VsSpec,
        /// Owner, for logs.
        owner: ServicePortName,
    },
    /// `ipvsadm -E`.
    UpdateVs {
        /// Identity.
        key: VsKey,
        /// New properties.
        spec: VsSpec,
    },
    /// `ipvsadm -a`.
    AddRs {
        /// Virtual server.
        vs: VsKey,
        /// Real server (weight, forwarding).
        rs: RealServer,
    },
    /// `ipvsadm -e`: a weight change (0 starts a drain; 1 restores a drained or stuck one).
    UpdateRs {
        /// Virtual server.
        vs: VsKey,
        /// Real server with its new weight.
        rs: RealServer,
    },
    /// `ipvsadm -d`.
    DelRs {
        /// Virtual server.
        vs: VsKey,
        /// Real server.
        rs: RsKey,
    },
    /// `ipvsadm -D`.
    DelVs {
        /// Identity.
        key: VsKey,
    },
    /// `ipset del`.
    IpsetDel {
        /// Set.
        set: IpsetName,
        /// Member.
        entry: IpsetEntry,
    },
    /// Removes an address from the dummy device.
    UnbindAddr {
        /// The address.
        addr: IpAddr,
    },
    /// Removes a service-CIDR local route.
    DelRoute {
        /// The CIDR.
        cidr: IpNet,
    },
    /// `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT [--reply-src EP]`: stale UDP
    /// flows would otherwise keep black-holing to a removed (or absent) endpoint.
    ClearConntrack {
        /// The UDP virtual server.
        vs: VsKey,
        /// Only flows answered by this endpoint; `None`: every flow to the virtual server.
        reply_src: Option<IpAddr>,
    },
}

impl Op {
    /// Short name of the kind of change, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AddRoute { .. } => "add_route",
            Self::BindAddr { .. } => "bind_addr",
            Self::IpsetAdd { .. } => "ipset_add",
            Self::AddVs { .. } => "add_vs",
            Self::UpdateVs { .. } => "update_vs",
            Self::AddRs { .. } => "add_rs",
            Self::UpdateRs { .. } => "update_rs",
            Self::DelRs { .. } => "del_rs",
            Self::DelVs { .. } => "del_vs",
            Self::IpsetDel { .. } => "ipset_del",
            Self::UnbindAddr { .. } => "unbind_addr",
            Self::DelRoute { .. } => "del_route",
            Self::ClearConntrack { .. } => "clear_conntrack",
        }
    }

    /// Position in a plan: addresses before the virtual servers that use them, virtual servers
    /// before their destinations, destinations removed before their virtual server, addresses
    /// removed last, conntrack cleaned once the destinations are gone.
    pub fn phase(&self) -> u8 {
        match self {
            Self::AddRoute { .. } | Self::BindAddr { .. } => 0,
            Self::IpsetAdd { .. } => 1,
            Self::AddVs { .. } | Self::UpdateVs { .. } => 2,
            Self::AddRs { .. } | Self::UpdateRs { .. } => 3,
            Self::DelRs { .. } => 4,
            Self::DelVs { .. } => 5,
            Self::IpsetDel { .. } => 6,
            Self::UnbindAddr { .. } | Self::DelRoute { .. } => 7,
            Self::ClearConntrack { .. } => 8,
        }
    }
}

impl fmt::Display for Op {
    /// An `ipvsadm`/`ip`/`ipset`-like line, for `--against-kernel` and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddRoute { cidr } => write!(f, "route add local {cidr}"),
            Self::BindAddr { addr } => write!(f, "addr add {addr}"),
            Self::IpsetAdd { set, entry } => write!(f, "ipset add {set} {entry}"),
            Self::AddVs { key, spec, owner } => {
                write!(
                    f,
                    "vs add {key} {} flags {:#x} timeout {}  # {owner}",
                    spec.scheduler, spec.flags.0, spec.timeout
                )
            }
            Self::UpdateVs { key, spec } => {
                write!(
                    f,
                    "vs edit {key} {} flags {:#x} timeout {}",
                    spec.scheduler, spec.flags.0, spec.timeout
                )
            }
            Self::AddRs { vs, rs } => write!(f, "rs add {vs} -> {} w {}", rs.key, rs.weight),
            Self::UpdateRs { vs, rs } => write!(f, "rs edit {vs} -> {} w {}", rs.key, rs.weight),
            Self::DelRs { vs, rs } => write!(f, "rs del {vs} -> {rs}"),
            Self::DelVs { key } => write!(f, "vs del {key}"),
            Self::IpsetDel { set, entry } => write!(f, "ipset del {set} {entry}"),
            Self::UnbindAddr { addr } => write!(f, "addr del {addr}"),
            Self::DelRoute { cidr } => write!(f, "route del local {cidr}"),
            Self::ClearConntrack {
                vs,
                reply_src: None,
            } => write!(f, "conntrack clear {vs}"),
            Self::ClearConntrack {
                vs,
                reply_src: Some(ep),
            } => write!(f, "conntrack clear {vs} reply-src {ep}"),
        }
    }
}
