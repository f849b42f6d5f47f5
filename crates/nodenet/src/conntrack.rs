//! Deleting stale UDP conntrack entries over ctnetlink (replaces
//! `conntrack -D -p udp --orig-dst IP --dport PORT [--reply-src ENDPOINT]`).
//!
//! UDP has no connection end: after a Service's endpoints change, a client that keeps
//! sending keeps hitting the conntrack entry of a gone backend (kubernetes#139628, #141371).
//! One dump of the family's table, filtered here, then the matching entries deleted by their
//! original tuple in pipelined batches. Messages: `netlink-packet-netfilter`'s conntrack codec.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_transport::{
    Ack, BatchOptions, BatchOutcome, DumpPart, Errno, Failure, NETLINK_NETFILTER, Transport,
    decode_packet, encode_packet,
};

use crate::{AddressFamily, SocketOptions};

const IPPROTO_UDP: u8 = 17;
/// `NFNL_SUBSYS_CTNETLINK`, the high byte of a conntrack message's type.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// Deletions: 128 per `sendmsg`, each answered.
const BATCH: BatchOptions = BatchOptions {
    window: 128,
    ack: Ack::Every,
    max_datagram: 64 * 1024,
    keep_echo: false,
};

/// The netfilter family of a conntrack table (`conntrack -f ipv4|ipv6`).
fn nfproto(family: AddressFamily) -> NetfilterProtoFamily {
    match family {
        AddressFamily::Inet => NetfilterProtoFamily::IPv4,
        AddressFamily::Inet6 => NetfilterProtoFamily::IPv6,
    }
}

/// One direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// A conntrack entry of a port-based protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    /// IP protocol number (17 for UDP).
    pub protocol: u8,
    /// The original direction (client -> service address).
    pub orig: FlowTuple,
    /// The reply direction (its source is the endpoint after DNAT/IPVS).
    pub reply: FlowTuple,
}

/// Which reply sources (endpoints) to delete entries for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplySource {
    /// Every entry to the service address and port.
    Any,
    /// Only entries answered by this endpoint.
    Is(IpAddr),
    /// Only entries answered by none of these (the serving endpoints).
    NotIn(BTreeSet<IpAddr>),
}

impl ReplySource {
    fn matches(&self, ip: IpAddr) -> bool {
        match self {
            ReplySource::Any => true,
            ReplySource::Is(e) => *e == ip,
            ReplySource::NotIn(keep) => !keep.contains(&ip),
        }
    }
}

/// Failure of a conntrack operation, naming it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConntrackError {
    /// Socket or kernel failure.
    #[error("conntrack {op}: {source}")]
    Netlink {
        /// The operation.
        op: &'static str,
        /// What went wrong (kernel errno, timeout, lost replies, socket error).
        #[source]
        source: netlink_transport::Error,
    },
    /// Some deletions failed (the others were done).
    #[error("conntrack delete: {} entries failed, first: {}", failed.len(), failed.first().map(|(f, e)| format!("{f:?}: {e}")).unwrap_or_default())]
    Delete {
        /// Each failed flow and why.
        failed: Vec<(Flow, Failure)>,
    },
    /// A reply that does not decode.
    #[error("conntrack {op}: undecodable reply: {reason}")]
    Decode {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl ConntrackError {
    /// The errno, when the kernel or the socket gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ConntrackError::Netlink { source, .. } => source.errno(),
            ConntrackError::Delete { failed } => failed.first().and_then(|(_, f)| f.errno()),
            ConntrackError::Decode { .. } => None,
        }
    }
}

/// A failure inside an exchange.
enum Fail {
    Transport(netlink_transport::Error),
    Decode(String),
}

impl From<netlink_transport::Error> for Fail {
    fn from(e: netlink_transport::Error) -> Self {
        Fail::Transport(e)
    }
}

fn err(op: &'static str) -> impl FnOnce(Fail) -> ConntrackError {
    move |e| match e {
        Fail::Transport(source) => ConntrackError::Netlink { op, source },
        Fail::Decode(reason) => ConntrackError::Decode { op, reason },
    }
}

fn message(family: AddressFamily, msg: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(NetfilterHeader::new(nfproto(family), 0, 0), msg)
}

fn decode_tuple(parts: &[Tuple]) -> Option<(u8, FlowTuple)> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, None, None);
    for p in parts {
        match p {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for pt in ps {
                    match pt {
                        ProtoTuple::Protocol(pr) => proto = Some(u8::from(*pr)),
                        ProtoTuple::SourcePort(p) => sport = Some(*p),
                        ProtoTuple::DestinationPort(p) => dport = Some(*p),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((
        proto?,
        FlowTuple {
            src: src?,
            dst: dst?,
            sport: sport?,
            dport: dport?,
        },
    ))
}

/// One message of a conntrack dump as a [`Flow`]; `None` for what is not an entry with ports.
///
/// Only ctnetlink messages reach the crate's parser: netlink-packet-netfilter 0.4 also parses
/// nf_tables messages, and indexes their attributes unchecked (a nested attribute longer than its
/// parent panics: fuzz regression `conntrack-nested-nla-length`). A dump of the conntrack table
/// carries no other subsystem.
pub fn flow_of(
    m: &netlink_transport::wire::Message<'_>,
) -> Result<Option<Flow>, netlink_packet_core::DecodeError> {
    if m.header.kind >> 8 != NFNL_SUBSYS_CTNETLINK {
        return Ok(None);
    }
    Ok(decode_packet::<NetfilterMessage>(m)?
        .as_ref()
        .and_then(decode_flow))
}

/// A dumped entry as a [`Flow`]; `None` for entries without ports (ICMP, GRE, ...).
pub fn decode_flow(msg: &NetfilterMessage) -> Option<Flow> {
    let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = &msg.inner else {
        return None;
    };
    let mut orig = None;
    let mut reply = None;
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = decode_tuple(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = decode_tuple(t),
            _ => {}
        }
    }
    let (protocol, orig) = orig?;
    let (_, reply) = reply?;
    Some(Flow {
        protocol,
        orig,
        reply,
    })
}

fn tuple_attrs(protocol: u8, t: &FlowTuple) -> Vec<Tuple> {
    vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(t.src),
            IPTuple::DestinationAddress(t.dst),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(Protocol::from(protocol)),
            ProtoTuple::SourcePort(t.sport),
            ProtoTuple::DestinationPort(t.dport),
        ]),
    ]
}

/// The DELETE request for one entry, identified by its original tuple.
pub fn delete_message(flow: &Flow) -> NetfilterMessage {
    message(
        AddressFamily::of(flow.orig.dst),
        ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(tuple_attrs(
            flow.protocol,
            &flow.orig,
        ))]),
    )
}

/// The pure selection: UDP entries to `dst:dport` whose reply source matches.
pub fn select_udp(flows: &[Flow], dst: IpAddr, dport: u16, reply: &ReplySource) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| f.protocol == IPPROTO_UDP && f.orig.dst == dst && f.orig.dport == dport)
        .filter(|f| reply.matches(f.reply.src))
        .copied()
        .collect()
}

/// ctnetlink client of one network namespace.
#[derive(Debug)]
pub struct Conntrack {
    sock: Transport,
}

impl Conntrack {
    /// Opens a NETLINK_NETFILTER socket in the caller's namespace (async only because it
    /// registers with tokio).
    pub async fn connect(timeout: Duration) -> Result<Self, ConntrackError> {
        Self::connect_with(&SocketOptions {
            timeout,
            ..SocketOptions::default()
        })
        .await
    }

    /// Opens the socket as `opts` say (namespace, timeout, fault layer).
    pub async fn connect_with(opts: &SocketOptions) -> Result<Self, ConntrackError> {
        let sock = Transport::connect(opts.transport(NETLINK_NETFILTER, 1 << 20))
            .await
            .map_err(|e| err("connect")(Fail::Transport(e)))?;
        Ok(Self { sock })
    }

    /// Every entry of the family's table that has ports (`conntrack -L -f FAMILY`).
    pub async fn flows(&mut self, family: AddressFamily) -> Result<Vec<Flow>, ConntrackError> {
        let mut flows = Vec::new();
        self.sock
            .dump(
                |b| {
                    encode_packet(b, &message(family, ConntrackMessage::Get(Vec::new())), 0);
                    Ok::<_, Fail>(())
                },
                |part| {
                    match part {
                        DumpPart::Message(m) => {
                            flows.extend(flow_of(&m).map_err(|e| Fail::Decode(e.to_string()))?);
                        }
                        DumpPart::Restart => flows.clear(),
                    }
                    Ok(())
                },
            )
            .await
            .map_err(err("dump"))?;
        Ok(flows)
    }

    /// Deletes the given entries; ones already gone count as deleted. Returns how many the
    /// kernel removed or had already dropped.
    pub async fn delete(&mut self, flows: &[Flow]) -> Result<usize, ConntrackError> {
        let outcome = self.delete_each(flows).await;
        if outcome.is_ok() {
            return Ok(flows.len());
        }
        Err(ConntrackError::Delete {
            failed: outcome
                .failed
                .into_iter()
                .filter_map(|(i, f)| Some((*flows.get(i)?, f)))
                .collect(),
        })
    }

    /// [`Conntrack::delete`], answered per flow (the index into `flows`).
    pub async fn delete_each(&mut self, flows: &[Flow]) -> BatchOutcome {
        self.sock
            .batch(flows.len(), &BATCH, |i, b| {
                if let Some(f) = flows.get(i) {
                    encode_packet(b, &delete_message(f), 0);
                }
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .forgive(|_, f| matches!(f, Failure::Refused { errno, .. } if *errno == Errno::ENOENT))
    }

    /// Deletes UDP entries whose original destination is `dst:dport` and whose reply
    /// source matches `reply`; returns the flows deleted.
    pub async fn delete_udp(
        &mut self,
        dst: IpAddr,
        dport: u16,
        reply: &ReplySource,
    ) -> Result<Vec<Flow>, ConntrackError> {
        let flows = self.flows(AddressFamily::of(dst)).await?;
        let doomed = select_udp(&flows, dst, dport, reply);
        self.delete(&doomed).await?;
        Ok(doomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    fn flow(proto: u8, dst: &str, dport: u16, reply_src: &str) -> Flow {
        Flow {
            protocol: proto,
            orig: FlowTuple {
                src: "10.0.0.1".parse().unwrap(),
                dst: dst.parse().unwrap(),
                sport: 40000,
                dport,
            },
            reply: FlowTuple {
                src: reply_src.parse().unwrap(),
                dst: "10.0.0.1".parse().unwrap(),
                sport: 53,
                dport: 40000,
            },
        }
    }

    #[test]
    fn selects_udp_by_destination_and_reply_source() {
        let flows = [
            flow(17, "10.96.0.10", 53, "10.244.1.5"),
            flow(17, "10.96.0.10", 53, "10.244.2.7"),
            flow(6, "10.96.0.10", 53, "10.244.1.5"),
            flow(17, "10.96.0.10", 54, "10.244.1.5"),
            flow(17, "10.96.0.11", 53, "10.244.1.5"),
        ];
        let dst = "10.96.0.10".parse().unwrap();
        assert_eq!(select_udp(&flows, dst, 53, &ReplySource::Any), flows[..2]);
        assert_eq!(
            select_udp(
                &flows,
                dst,
                53,
                &ReplySource::Is("10.244.2.7".parse().unwrap())
            ),
            flows[1..2]
        );
        let keep = ["10.244.1.5".parse().unwrap()].into();
        assert_eq!(
            select_udp(&flows, dst, 53, &ReplySource::NotIn(keep)),
            flows[1..2]
        );
    }

    #[test]
    fn delete_message_round_trips_through_the_codec() {
        let f = flow(17, "fd00::10", 53, "fd00:244::5");
        let f = Flow {
            orig: FlowTuple {
                src: "fd00::1".parse().unwrap(),
                ..f.orig
            },
            ..f
        };
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(delete_message(&f)),
        );
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        // nfnetlink type: subsystem 1 (ctnetlink) << 8 | IPCTNL_MSG_CT_DELETE 2; family AF_INET6.
        assert_eq!(&buf[4..6], &[2, 1]);
        assert_eq!(buf[16], 10);
        let back = NetlinkMessage::<NetfilterMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(m) = back.payload else {
            panic!()
        };
        let NetfilterMessageInner::Conntrack(ConntrackMessage::Delete(attrs)) = &m.inner else {
            panic!()
        };
        let ConntrackAttribute::CtaTupleOrig(t) = &attrs[0] else {
            panic!()
        };
        assert_eq!(decode_tuple(t), Some((17, f.orig)));
        // Truncations decode to errors, never panics.
        for cut in 0..buf.len() {
            let _ = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[..cut]);
        }
    }
}
