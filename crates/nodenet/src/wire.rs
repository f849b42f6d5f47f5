//! The decoders behind nodenet's kernel reads, as pure functions of one received datagram:
//! bytes in, the values nodenet uses out (or an error; never a panic). The sockets run the same
//! conversions on what they receive; the fuzz targets (`crates/nodenet/fuzz`) and tests call
//! these, so they do not depend on how the sockets are built.
//!
//! | function | the reply of |
//! |---|---|
//! | [`links`] | `RTM_GETLINK` (dump) |
//! | [`addresses`] | `RTM_GETADDR` (dump) |
//! | [`local_routes`] | `RTM_GETROUTE` (dump of the local table) |
//! | [`conntrack_flows`] | `IPCTNL_MSG_CT_GET` (dump) |

use ipnet::IpNet;
use netlink_packet_core::NetlinkDeserializable;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkFlags;

use crate::conntrack::{Flow, flow_of};
use crate::route::LocalRoute;
use netlink_transport::decode_packet;
use netlink_transport::wire::Message;

/// A datagram that is not a sequence of well-formed netlink messages.
#[derive(Debug, thiserror::Error)]
#[error("malformed netlink datagram: {0}")]
pub struct DecodeError(String);

/// What `decode` makes of each message of a datagram (its `None`s skipped), framed as the sockets
/// do (`netlink_transport::wire::messages`).
fn decode_each<T>(
    datagram: &[u8],
    decode: impl Fn(&Message<'_>) -> Result<Option<T>, netlink_packet_core::DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    for msg in netlink_transport::wire::messages(datagram) {
        let msg = msg.map_err(|e| DecodeError(e.to_string()))?;
        out.extend(decode(&msg).map_err(|e| DecodeError(e.to_string()))?);
    }
    Ok(out)
}

/// The inner messages of a datagram (acks, errors and `NLMSG_DONE` skipped), decoded as the
/// sockets do (`decode_packet`).
fn messages<I: NetlinkDeserializable>(datagram: &[u8]) -> Result<Vec<I>, DecodeError> {
    decode_each(datagram, decode_packet::<I>)
}

/// One link of an `RTM_GETLINK` dump, as nodenet reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// `IFLA_IFNAME`.
    pub name: Option<String>,
    /// `IFLA_INFO_KIND` (`dummy`, `veth`, ...).
    pub kind: Option<String>,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
}

/// The links of an `RTM_GETLINK` reply.
pub fn links(datagram: &[u8]) -> Result<Vec<Link>, DecodeError> {
    Ok(messages::<RouteNetlinkMessage>(datagram)?
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link {
                index: l.header.index,
                name: crate::link::link_name(l).map(str::to_owned),
                kind: crate::link::link_kind(l).map(ToString::to_string),
                loopback: l.header.flags.contains(LinkFlags::Loopback),
            }),
            _ => None,
        })
        .collect())
}

/// The `(ifindex, address/prefix)` pairs of an `RTM_GETADDR` reply.
pub fn addresses(datagram: &[u8]) -> Result<Vec<(u32, IpNet)>, DecodeError> {
    Ok(messages::<RouteNetlinkMessage>(datagram)?
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => {
                Some((a.header.index, crate::link::address_of(a)?))
            }
            _ => None,
        })
        .collect())
}

/// The `local` routes of the local table in an `RTM_GETROUTE` reply.
pub fn local_routes(datagram: &[u8]) -> Result<Vec<LocalRoute>, DecodeError> {
    Ok(messages::<RouteNetlinkMessage>(datagram)?
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => crate::route::decode(r),
            _ => None,
        })
        .collect())
}

/// The flows (with ports) of a conntrack dump reply.
pub fn conntrack_flows(datagram: &[u8]) -> Result<Vec<Flow>, DecodeError> {
    decode_each(datagram, flow_of)
}
