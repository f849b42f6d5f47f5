//! The dummy device and its addresses, and the node's own addresses (replaces
//! `ip link add kube-ipvs0 type dummy`, `ip addr add/del VIP/32 dev kube-ipvs0`,
//! `ip -o addr show`, `ip link del kube-ipvs0`).
//!
//! Messages are built with `rtnetlink`'s builders and sent through the shared netlink transport's
//! pipelined batches: binding 50,000 addresses is a few hundred datagrams, not 50,000 round
//! trips. (`rtnetlink::Handle` sends one datagram and allocates one channel per request.)

mod error;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_transport::{
    Ack, BatchOptions, BatchOutcome, DumpPart, Errno, Failure, NETLINK_ROUTE, Transport,
    decode_packet, encode_packet,
};
use rtnetlink::{AddressMessageBuilder, LinkDummy};

pub use error::{LinkError, LinkOp};

use crate::SocketOptions;

/// The device stock kube-proxy binds service addresses to.
pub const DEFAULT_DUMMY_NAME: &str = "kube-ipvs0";
/// Default bound on every netlink receive.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// rtnetlink batches: 128 requests per `sendmsg`, each answered (so a lost answer costs only its
/// own request), at most 128 replies queued in the receive buffer before we read them.
pub(crate) const BATCH: BatchOptions = BatchOptions {
    window: 128,
    ack: Ack::Every,
    max_datagram: 64 * 1024,
    keep_echo: false,
};
/// Kernel-side receive buffer (capped by `net.core.rmem_max` without CAP_NET_ADMIN).
const RCVBUF: usize = 1 << 20;

/// An address configured on an interface, as `ip -o addr` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InterfaceAddress {
    /// The address with its prefix length.
    pub addr: IpNet,
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: String,
    /// The interface is the loopback device.
    pub loopback: bool,
}

/// What `sync_addresses` changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddressChanges {
    /// Addresses bound by this call.
    pub added: BTreeSet<IpAddr>,
    /// Addresses removed by this call.
    pub removed: BTreeSet<IpNet>,
}

/// rtnetlink client for links, addresses and routes of one network namespace.
#[derive(Debug)]
pub struct Links {
    sock: Transport,
}

/// A failure inside an exchange: the transport's, or a reply that does not decode.
pub(crate) enum Fail {
    Transport(netlink_transport::Error),
    Decode(String),
}

impl From<netlink_transport::Error> for Fail {
    fn from(e: netlink_transport::Error) -> Self {
        Fail::Transport(e)
    }
}

impl Fail {
    pub(crate) fn into_link(self, op: LinkOp) -> LinkError {
        match self {
            Fail::Transport(e) => LinkError::from_transport(op, e),
            Fail::Decode(reason) => LinkError::Decode { op, reason },
        }
    }

    /// The kernel's errno, when it refused the request.
    pub(crate) fn kernel(&self) -> Option<Errno> {
        match self {
            Fail::Transport(netlink_transport::Error::Kernel(e)) => Some(*e),
            _ => None,
        }
    }
}

/// One rtnetlink request and the messages of its answer.
pub(crate) async fn exchange(
    sock: &mut Transport,
    msg: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, Fail> {
    let mut out = Vec::new();
    sock.request(
        0,
        |b| {
            encode_packet(b, &msg, flags);
            Ok::<_, Fail>(())
        },
        |m| {
            out.extend(decode_packet(&m).map_err(|e| Fail::Decode(e.to_string()))?);
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// A dump: every message, decoded (redone when the kernel flags it interrupted).
pub(crate) async fn dump(
    sock: &mut Transport,
    make: impl Fn() -> RouteNetlinkMessage + Sync,
) -> Result<Vec<RouteNetlinkMessage>, Fail> {
    let mut out = Vec::new();
    sock.dump(
        |b| {
            encode_packet(b, &make(), 0);
            Ok::<_, Fail>(())
        },
        |part| {
            match part {
                DumpPart::Message(m) => {
                    out.extend(decode_packet(&m).map_err(|e| Fail::Decode(e.to_string()))?);
                }
                DumpPart::Restart => out.clear(),
            }
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// A pipelined batch of rtnetlink requests.
pub(crate) async fn batch(
    sock: &mut Transport,
    msgs: &[RouteNetlinkMessage],
    flags: u16,
) -> BatchOutcome {
    sock.batch(msgs.len(), &BATCH, |i, b| {
        if let Some(m) = msgs.get(i) {
            encode_packet(b, m, flags);
        }
        Ok::<_, std::convert::Infallible>(())
    })
    .await
}

/// The outcome as a map of failed items (a transport failure of a batch is reported as such).
fn failures_by<K: Ord + Copy>(
    op: LinkOp,
    keys: &[K],
    outcome: BatchOutcome,
) -> Result<BTreeMap<K, Errno>, LinkError> {
    let mut failed = BTreeMap::new();
    for (i, f) in outcome.failed {
        match f {
            Failure::Refused { errno, .. } => {
                if let Some(k) = keys.get(i) {
                    failed.insert(*k, errno);
                }
            }
            Failure::Lost(e) | Failure::NotSent(e) => return Err(LinkError::from_transport(op, e)),
        }
    }
    Ok(failed)
}

/// The host prefix of an address: /32 for IPv4, /128 for IPv6.
pub fn host_net(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

fn address_message(ifindex: u32, net: IpNet) -> AddressMessage {
    match net {
        IpNet::V4(n) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(ifindex)
            .address(n.addr(), n.prefix_len())
            .build(),
        IpNet::V6(n) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(ifindex)
            .address(n.addr(), n.prefix_len())
            .build(),
    }
}

/// The address of a dumped message: IFA_LOCAL when present (IPv4), else IFA_ADDRESS.
pub(crate) fn address_of(msg: &AddressMessage) -> Option<IpNet> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

pub(crate) fn link_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_kind(msg: &LinkMessage) -> Option<&InfoKind> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

impl Links {
    /// Opens an rtnetlink socket in the caller's network namespace (async only because the
    /// socket registers with the tokio reactor).
    pub async fn connect(timeout: Duration) -> Result<Self, LinkError> {
        Self::connect_with(&SocketOptions {
            timeout,
            ..SocketOptions::default()
        })
        .await
    }

    /// Opens an rtnetlink socket as `opts` say (namespace, timeout, fault layer).
    pub async fn connect_with(opts: &SocketOptions) -> Result<Self, LinkError> {
        let sock = Transport::connect(opts.transport(NETLINK_ROUTE, RCVBUF))
            .await
            .map_err(|e| LinkError::from_transport(LinkOp::Connect, e))?;
        Ok(Self { sock })
    }

    pub(crate) fn sock_mut(&mut self) -> &mut Transport {
        &mut self.sock
    }

    async fn get_link(&mut self, name: &str) -> Result<Option<LinkMessage>, LinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match exchange(&mut self.sock, RouteNetlinkMessage::GetLink(msg), 0).await {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.kernel() == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e.into_link(LinkOp::GetLink(name.to_string()))),
        }
    }

    /// The index of the link called `name`, if it exists.
    pub async fn link_index(&mut self, name: &str) -> Result<Option<u32>, LinkError> {
        Ok(self.get_link(name).await?.map(|l| l.header.index))
    }

    /// Makes sure a dummy device `name` exists (created DOWN, never set UP, like stock
    /// kube-proxy) and returns its index. A link of that name but another kind is an error:
    /// we never take over someone else's device.
    pub async fn ensure_dummy(&mut self, name: &str) -> Result<u32, LinkError> {
        if let Some(link) = self.get_link(name).await? {
            return match link_kind(&link) {
                Some(InfoKind::Dummy) => Ok(link.header.index),
                other => Err(LinkError::NotDummy {
                    name: name.to_string(),
                    kind: other.map_or_else(|| "none".to_string(), |k| k.to_string()),
                }),
            };
        }
        let msg = LinkDummy::new(name).build();
        exchange(
            &mut self.sock,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
        .map_err(|e| e.into_link(LinkOp::AddLink(name.to_string())))?;
        self.get_link(name)
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| LinkError::Vanished(name.to_string()))
    }

    /// Deletes the link `name`; `Ok(false)` if there was none.
    pub async fn delete_link(&mut self, name: &str) -> Result<bool, LinkError> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(false);
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match exchange(&mut self.sock, RouteNetlinkMessage::DelLink(msg), 0).await {
            Ok(_) => Ok(true),
            Err(e) if e.kernel() == Some(Errno::ENODEV) => Ok(true),
            Err(e) => Err(e.into_link(LinkOp::DelLink(name.to_string()))),
        }
    }

    async fn dump_addresses(&mut self) -> Result<Vec<AddressMessage>, LinkError> {
        let replies = dump(&mut self.sock, || {
            RouteNetlinkMessage::GetAddress(AddressMessage::default())
        })
        .await
        .map_err(|e| e.into_link(LinkOp::DumpAddresses))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Addresses on link `ifindex`, in the kernel's list order (the cheapest order to
    /// delete them in: the kernel searches its list from the head).
    pub async fn addresses(&mut self, ifindex: u32) -> Result<Vec<IpNet>, LinkError> {
        Ok(self
            .dump_addresses()
            .await?
            .iter()
            .filter(|m| m.header.index == ifindex)
            .filter_map(address_of)
            .collect())
    }

    /// Every address of every link, for NodePort addresses and for "this IP already lives
    /// on another interface". Callers filter by `ifindex`, `loopback` and scope.
    pub async fn all_addresses(&mut self) -> Result<Vec<InterfaceAddress>, LinkError> {
        let links = dump(&mut self.sock, || {
            RouteNetlinkMessage::GetLink(LinkMessage::default())
        })
        .await
        .map_err(|e| e.into_link(LinkOp::DumpLinks))?;
        let names: BTreeMap<u32, (String, bool)> = links
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some((
                    l.header.index,
                    (
                        link_name(l).unwrap_or_default().to_string(),
                        l.header.flags.contains(LinkFlags::Loopback),
                    ),
                )),
                _ => None,
            })
            .collect();
        let mut out: Vec<InterfaceAddress> = self
            .dump_addresses()
            .await?
            .iter()
            .filter_map(|m| {
                let addr = address_of(m)?;
                let (ifname, loopback) = names.get(&m.header.index).cloned().unwrap_or_default();
                Some(InterfaceAddress {
                    addr,
                    ifindex: m.header.index,
                    ifname,
                    loopback,
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Addresses of all links except `exclude_ifindex` (the dummy device), without the
    /// loopback device and IPv6 link-local ones: the node addresses NodePorts listen on.
    pub async fn node_addresses(
        &mut self,
        exclude_ifindex: Option<u32>,
    ) -> Result<BTreeSet<IpAddr>, LinkError> {
        Ok(self
            .all_addresses()
            .await?
            .into_iter()
            .filter(|a| Some(a.ifindex) != exclude_ifindex && !a.loopback)
            .map(|a| a.addr.addr())
            .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
            .collect())
    }

    /// Binds each address as a host prefix (/32, /128) to `ifindex`. Addresses already there
    /// count as success; the others that fail are reported together, after all were tried.
    pub async fn add_addresses(&mut self, ifindex: u32, addrs: &[IpAddr]) -> Result<(), LinkError> {
        let op = LinkOp::AddAddresses(ifindex);
        let outcome = self.bind(ifindex, addrs).await;
        let nets: Vec<IpNet> = addrs.iter().map(|a| host_net(*a)).collect();
        let failed = failures_by(op.clone(), &nets, outcome)?;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(LinkError::Addresses { op, failed })
        }
    }

    /// [`Links::add_addresses`], answered per address (the index into `addrs`): only the
    /// addresses that failed, and why.
    pub async fn bind(&mut self, ifindex: u32, addrs: &[IpAddr]) -> BatchOutcome {
        let msgs: Vec<RouteNetlinkMessage> = addrs
            .iter()
            .map(|a| RouteNetlinkMessage::NewAddress(address_message(ifindex, host_net(*a))))
            .collect();
        batch(&mut self.sock, &msgs, NLM_F_CREATE | NLM_F_EXCL)
            .await
            .forgive(|_, f| {
                f.errno() == Some(Errno::EEXIST) && matches!(f, Failure::Refused { .. })
            })
    }

    /// Removes the addresses from `ifindex`; ones already gone count as success.
    pub async fn remove_addresses(
        &mut self,
        ifindex: u32,
        nets: &[IpNet],
    ) -> Result<(), LinkError> {
        let op = LinkOp::DelAddresses(ifindex);
        let outcome = self.unbind(ifindex, nets).await;
        let failed = failures_by(op.clone(), nets, outcome)?;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(LinkError::Addresses { op, failed })
        }
    }

    /// [`Links::remove_addresses`], answered per address (the index into `nets`).
    pub async fn unbind(&mut self, ifindex: u32, nets: &[IpNet]) -> BatchOutcome {
        let msgs: Vec<RouteNetlinkMessage> = nets
            .iter()
            .map(|n| RouteNetlinkMessage::DelAddress(address_message(ifindex, *n)))
            .collect();
        batch(&mut self.sock, &msgs, 0).await.forgive(|_, f| {
            matches!(f, Failure::Refused { errno, .. } if *errno == Errno::EADDRNOTAVAIL || *errno == Errno::ENODEV)
        })
    }

    /// Brings the addresses of `ifindex` to exactly `wanted` (as host prefixes): one dump,
    /// then the missing ones added and the others removed, each in pipelined batches.
    pub async fn sync_addresses(
        &mut self,
        ifindex: u32,
        wanted: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let current = self.addresses(ifindex).await?;
        let plan = plan_addresses(&current, wanted);
        let added: Vec<IpAddr> = plan.added.iter().copied().collect();
        let removed: Vec<IpNet> = current
            .iter()
            .filter(|n| plan.removed.contains(n))
            .copied()
            .collect();
        self.add_addresses(ifindex, &added).await?;
        self.remove_addresses(ifindex, &removed).await?;
        Ok(plan)
    }
}

/// The pure diff behind [`Links::sync_addresses`]: an address counts as present only with
/// its host prefix; the same address with another prefix is removed and re-added.
pub fn plan_addresses(current: &[IpNet], wanted: &BTreeSet<IpAddr>) -> AddressChanges {
    let have: BTreeSet<IpNet> = current.iter().copied().collect();
    AddressChanges {
        added: wanted
            .iter()
            .copied()
            .filter(|a| !have.contains(&host_net(*a)))
            .collect(),
        removed: have
            .into_iter()
            .filter(|n| !(n.prefix_len() == n.max_prefix_len() && wanted.contains(&n.addr())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn plan_adds_missing_and_removes_unwanted_and_wrong_prefixes() {
        let current = vec![
            net("10.0.0.1/32"),
            net("10.0.0.2/24"),
            net("10.0.0.3/32"),
            net("fd00::1/128"),
        ];
        let wanted: BTreeSet<IpAddr> = ["10.0.0.1", "10.0.0.2", "fd00::2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let plan = plan_addresses(&current, &wanted);
        assert_eq!(
            plan.added,
            ["10.0.0.2", "fd00::2"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect()
        );
        assert_eq!(
            plan.removed,
            [net("10.0.0.2/24"), net("10.0.0.3/32"), net("fd00::1/128")]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn plan_of_a_synced_device_is_empty() {
        let wanted: BTreeSet<IpAddr> = ["10.0.0.1", "fd00::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let current: Vec<IpNet> = wanted.iter().map(|a| host_net(*a)).collect();
        assert_eq!(plan_addresses(&current, &wanted), AddressChanges::default());
    }
}
