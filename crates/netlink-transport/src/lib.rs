//! The one netlink transport of kube-ipvs's kernel clients: IPVS (generic netlink), ipsets,
//! conntrack and nf_tables (nfnetlink), links, addresses and routes (rtnetlink). The protocol crates are codecs
//! plus typed clients; everything between a request's bytes and its answer is here, written once:
//!
//! | module | owns |
//! |---|---|
//! | [`Transport`] | the socket of one protocol: options (bound, connected, `NETLINK_CAP_ACK`, a forced receive buffer), opening it in a network namespace, sequence numbers, the generic netlink family id, a deadline on every send and receive, replies matched to requests, dumps with `NLM_F_DUMP_INTR` retry, multi-message transactions (nfnetlink batches), rebuilding the socket after a timeout or lost replies |
//! | [`batch`] | pipelined batches: window-packed `sendmsg`, ACKs and errors matched to request indices, lost replies found with a barrier, one [`BatchOutcome`] |
//! | [`wire`] | framing without I/O: headers, splitting datagrams, what a reply says (total) |
//! | [`netns`] | running work (opening sockets, iptables, sysctl files) in another network namespace on a helper thread |
//! | [`fault`] | the fault-injecting layer under every socket ([`Faults`]) and scripted kernels for tests |
//! | [`Errno`] | one errno type, including subsystem-private numbers |
//! | [`AddressFamily`] | `AF_INET`/`AF_INET6`, the one kernel-side family of every client |
//!
//! Modelled on rust-netlink's split (`netlink-sys` sockets, `netlink-packet-core` framing,
//! `netlink-proto` as the one socket owner) but synchronous per client (`&mut self`, one request
//! or batch at a time): the clients never have two requests of their own racing on a socket, and
//! a batch of 150,000 requests needs no channel or task per request.
#![forbid(unsafe_code)]

pub mod batch;
mod errno;
mod error;
mod family;
pub mod fault;
pub mod netns;
mod socket;
mod transport;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use batch::{Ack, BatchOptions, BatchOutcome, Failure};
pub use errno::Errno;
pub use error::Error;
pub use family::AddressFamily;
pub use fault::{Fault, Faults, Match};
pub use transport::{DUMP_ATTEMPTS, DumpPart, Transport};

/// `NETLINK_ROUTE`.
pub const NETLINK_ROUTE: isize = 0;
/// `NETLINK_NETFILTER` (ipset, conntrack).
pub const NETLINK_NETFILTER: isize = 12;
/// `NETLINK_GENERIC` (IPVS).
pub const NETLINK_GENERIC: isize = 16;

/// How a [`Transport`] opens its socket and bounds its waits.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Netlink protocol (`NETLINK_ROUTE`, ...).
    pub protocol: isize,
    /// Network namespace to open the socket in (`/run/netns/x`, `/proc/PID/ns/net`); `None`: the
    /// calling thread's.
    pub netns: Option<PathBuf>,
    /// Bound on each send and on each wait for the kernel's next message.
    pub timeout: Duration,
    /// Socket receive buffer in bytes (`SO_RCVBUFFORCE` when permitted, else `SO_RCVBUF`, capped
    /// by `net.core.rmem_max`).
    pub rcvbuf: usize,
    /// A generic netlink family to resolve on every socket opened (its id becomes the message
    /// type of every request).
    pub genl_family: Option<&'static str>,
    /// The fault-injecting layer (tests).
    pub faults: Option<Faults>,
}

impl Options {
    /// Defaults for `protocol`: no namespace, 10 s timeout, 4 MiB receive buffer.
    pub fn new(protocol: isize) -> Self {
        Self {
            protocol,
            netns: None,
            timeout: Duration::from_secs(10),
            rcvbuf: 4 << 20,
            genl_family: None,
            faults: None,
        }
    }
}

/// Appends `msg` (a `netlink-packet-core` message: rtnetlink, conntrack) as one netlink message
/// with `flags`, for [`Transport::request`] and [`Transport::batch`] encoders.
pub fn encode_packet<I: netlink_packet_core::NetlinkSerializable>(
    buf: &mut Vec<u8>,
    msg: &I,
    flags: u16,
) {
    let start = buf.len();
    wire::Header {
        len: 0,
        kind: msg.message_type(),
        flags,
        seq: 0,
        pid: 0,
    }
    .emit(buf);
    let body = buf.len();
    buf.resize(body + msg.buffer_len(), 0);
    if let Some(dst) = buf.get_mut(body..) {
        msg.serialize(dst);
    }
    let _ = wire::finish(buf, start);
}

/// Decodes one message of an answer as a `netlink-packet-core` message (rtnetlink, conntrack).
pub fn decode_packet<I: netlink_packet_core::NetlinkDeserializable>(
    msg: &wire::Message<'_>,
) -> Result<Option<I>, netlink_packet_core::DecodeError> {
    let nl = netlink_packet_core::NetlinkMessage::<I>::deserialize(msg.bytes)?;
    Ok(match nl.payload {
        netlink_packet_core::NetlinkPayload::InnerMessage(m) => Some(m),
        _ => None,
    })
}
