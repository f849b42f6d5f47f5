//! `local` routes for whole prefixes in the local routing table (replaces
//! `ip route add local 10.96.0.0/12 dev lo table local`, `ip route show table local type local`,
//! `ip route del local 10.96.0.0/12 dev lo table local`).
//!
//! One such route makes every address of a service CIDR local, so IPVS (which hooks
//! LOCAL_IN) catches traffic to any ClusterIP without binding each address to the dummy
//! device: one request instead of one per Service, and no superlinear per-address kernel work.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_transport::{BatchOutcome, Errno, Failure};
use rtnetlink::RouteMessageBuilder;

use crate::link::{LinkError, LinkOp, Links, dump, exchange};

/// The kernel's local routing table (`table local`).
pub const RT_TABLE_LOCAL: u8 = 255;
/// The protocol our routes carry (`proto static`), so they can be told from the kernel's own
/// per-address local routes (`proto kernel`).
pub const OUR_PROTOCOL: RouteProtocol = RouteProtocol::Static;

/// A `local` route of the local table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalRoute {
    /// The destination prefix.
    pub prefix: IpNet,
    /// Output interface index.
    pub ifindex: u32,
    /// Routing protocol number (`proto`): 4 (static) for ours, 2 (kernel) for the kernel's.
    pub protocol: u8,
}

fn message(prefix: IpNet, ifindex: u32) -> Result<RouteMessage, LinkError> {
    let prefix = prefix.trunc();
    let mut msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(prefix.addr(), prefix.prefix_len())
        .map_err(|e| LinkError::Invalid {
            op: LinkOp::AddRoute(prefix),
            reason: e.to_string(),
        })?
        .output_interface(ifindex)
        .table_id(u32::from(RT_TABLE_LOCAL))
        .kind(RouteType::Local)
        .scope(RouteScope::Host)
        .protocol(OUR_PROTOCOL)
        .build();
    msg.header.table = RT_TABLE_LOCAL;
    Ok(msg)
}

/// One route of any table but `local` (`ip route show table all`, less the local table).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// Routing table.
    pub table: u32,
    /// Destination prefix (`0.0.0.0/0`, `::/0` for a default route).
    pub prefix: IpNet,
    /// Gateways (several for a multipath route).
    pub gateways: Vec<IpAddr>,
}

fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn decode_any(msg: &RouteMessage) -> Option<Route> {
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut gateways = Vec::new();
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = route_address(a),
            RouteAttribute::Gateway(a) => gateways.extend(route_address(a)),
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    for a in &hop.attributes {
                        if let RouteAttribute::Gateway(g) = a {
                            gateways.extend(route_address(g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if table == u32::from(RT_TABLE_LOCAL) {
        return None;
    }
    // No destination attribute: a default route of the message's family.
    let dst = match dst {
        Some(d) => d,
        None => match msg.header.address_family {
            netlink_packet_route::AddressFamily::Inet => IpAddr::from([0u8; 4]),
            netlink_packet_route::AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
            _ => return None,
        },
    };
    let prefix = IpNet::new(dst, msg.header.destination_prefix_length).ok()?;
    Some(Route {
        table,
        prefix: prefix.trunc(),
        gateways,
    })
}

pub(crate) fn decode(msg: &RouteMessage) -> Option<LocalRoute> {
    if msg.header.kind != RouteType::Local {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut oif = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => oif = *i,
            _ => {}
        }
    }
    if table != u32::from(RT_TABLE_LOCAL) {
        return None;
    }
    let prefix = IpNet::new(dst?, msg.header.destination_prefix_length).ok()?;
    Some(LocalRoute {
        prefix,
        ifindex: oif,
        protocol: u8::from(msg.header.protocol),
    })
}

/// A change to one `local` prefix route, for [`Links::change_local_routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// Add (or replace) `local PREFIX`.
    Add(IpNet),
    /// Delete `local PREFIX` (absent counts as done).
    Del(IpNet),
}

impl Links {
    /// Adds (or replaces) `local PREFIX dev IFINDEX table local proto static`. Idempotent.
    pub async fn add_local_route(&mut self, prefix: IpNet, ifindex: u32) -> Result<(), LinkError> {
        let msg = message(prefix, ifindex)?;
        exchange(
            self.sock_mut(),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.into_link(LinkOp::AddRoute(prefix)))
    }

    /// Deletes that route; `Ok(false)` if it was not there.
    pub async fn remove_local_route(
        &mut self,
        prefix: IpNet,
        ifindex: u32,
    ) -> Result<bool, LinkError> {
        let msg = message(prefix, ifindex)?;
        match exchange(self.sock_mut(), RouteNetlinkMessage::DelRoute(msg), 0).await {
            Ok(_) => Ok(true),
            Err(e) if e.kernel() == Some(Errno::ESRCH) => Ok(false),
            Err(e) => Err(e.into_link(LinkOp::DelRoute(prefix))),
        }
    }

    /// Applies route changes through `ifindex` pipelined, answered per change (the index into
    /// `changes`). Adding a present route and deleting an absent one count as done.
    pub async fn change_local_routes(
        &mut self,
        ifindex: u32,
        changes: &[RouteChange],
    ) -> BatchOutcome {
        let mut msgs = Vec::with_capacity(changes.len());
        let mut at = Vec::with_capacity(changes.len());
        let mut invalid = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            let (prefix, add) = match c {
                RouteChange::Add(p) => (*p, true),
                RouteChange::Del(p) => (*p, false),
            };
            match message(prefix, ifindex) {
                Ok(m) if add => {
                    msgs.push((
                        RouteNetlinkMessage::NewRoute(m),
                        NLM_F_CREATE | NLM_F_REPLACE,
                    ));
                    at.push(i);
                }
                Ok(m) => {
                    msgs.push((RouteNetlinkMessage::DelRoute(m), 0));
                    at.push(i);
                }
                Err(e) => invalid.push((
                    i,
                    Failure::NotSent(netlink_transport::Error::Encode(std::sync::Arc::new(e))),
                )),
            }
        }
        let sock = self.sock_mut();
        let outcome = sock
            .batch(msgs.len(), &crate::link::BATCH, |i, b| {
                if let Some((m, flags)) = msgs.get(i) {
                    netlink_transport::encode_packet(b, m, *flags);
                }
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .forgive(|i, f| {
                matches!(f, Failure::Refused { errno, .. } if *errno == Errno::ESRCH)
                    && matches!(msgs.get(i), Some((RouteNetlinkMessage::DelRoute(_), _)))
            });
        let mut outcome = outcome.reindex(|i| at.get(i).copied().unwrap_or(i));
        outcome.failed.extend(invalid);
        outcome.failed.sort_by_key(|(i, _)| *i);
        outcome
    }

    /// Every `local` route of the local table covering more than one address (both
    /// families), ours and others'. Filter on `protocol == OUR_PROTOCOL` for ours.
    pub async fn local_prefix_routes(&mut self) -> Result<Vec<LocalRoute>, LinkError> {
        let replies = dump(self.sock_mut(), || {
            RouteNetlinkMessage::GetRoute(RouteMessage::default())
        })
        .await
        .map_err(|e| e.into_link(LinkOp::DumpRoutes))?;
        let mut routes: Vec<LocalRoute> = replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => decode(r),
                _ => None,
            })
            .filter(|r| r.prefix.prefix_len() < r.prefix.max_prefix_len())
            .collect();
        routes.sort();
        Ok(routes)
    }

    /// Every route of every table but `local`, both families (what the node reaches where).
    pub async fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        let replies = dump(self.sock_mut(), || {
            RouteNetlinkMessage::GetRoute(RouteMessage::default())
        })
        .await
        .map_err(|e| e.into_link(LinkOp::DumpRoutes))?;
        let mut routes: Vec<Route> = replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => decode_any(r),
                _ => None,
            })
            .collect();
        routes.sort();
        routes.dedup();
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_what_ip_route_add_local_sends() {
        let msg = message("10.96.0.0/12".parse().unwrap(), 1).unwrap();
        assert_eq!(msg.header.table, RT_TABLE_LOCAL);
        assert_eq!(msg.header.kind, RouteType::Local);
        assert_eq!(msg.header.scope, RouteScope::Host);
        assert_eq!(msg.header.destination_prefix_length, 12);
        assert_eq!(
            decode(&msg).unwrap(),
            LocalRoute {
                prefix: "10.96.0.0/12".parse().unwrap(),
                ifindex: 1,
                protocol: 4
            }
        );
    }

    #[test]
    fn any_route_decodes_with_its_gateways_and_the_local_table_is_left_out() {
        let mut msg = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway("192.168.10.1".parse().unwrap())
            .build();
        msg.header.table = 254;
        assert_eq!(
            decode_any(&msg).unwrap(),
            Route {
                table: 254,
                prefix: "0.0.0.0/0".parse().unwrap(),
                gateways: vec!["192.168.10.1".parse().unwrap()],
            }
        );
        let ours = message("10.96.0.0/12".parse().unwrap(), 1).unwrap();
        assert_eq!(decode_any(&ours), None);
    }

    #[test]
    fn host_bits_are_cleared() {
        let msg = message("fd00:10:96::5/108".parse().unwrap(), 1).unwrap();
        assert_eq!(
            decode(&msg).unwrap().prefix,
            "fd00:10:96::/108".parse::<IpNet>().unwrap()
        );
    }
}
