//! Netlink framing for IPVS: requests into bytes, datagrams into replies. No I/O, total.

use netlink_packet_core::{Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_transport::wire::{self, NLMSG_HDRLEN};

use crate::error::DecodeError;
use crate::message::{IPVS_GENL_VERSION, IpvsCmd, IpvsMessage};

const GENL_HDRLEN: usize = 4;

/// Flags of a request that changes state: answered by exactly one ACK or error.
pub const FLAGS_ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// Flags of a dump request: answered by messages then `NLMSG_DONE` (or an error).
pub const FLAGS_DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK;
/// Flags of a "do" request that returns one message (plus an ACK).
pub const FLAGS_GET: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// A request too large for netlink attribute lengths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request of {len} bytes exceeds the netlink attribute limit")]
pub struct EncodeError {
    /// Attribute payload length.
    pub len: usize,
}

/// Append one request (`nlmsghdr` + `genlmsghdr` + attributes) to `buf`.
pub fn encode(
    buf: &mut Vec<u8>,
    family_id: u16,
    flags: u16,
    seq: u32,
    msg: &IpvsMessage,
) -> Result<(), EncodeError> {
    let attrs = msg.buffer_len();
    let total = NLMSG_HDRLEN + GENL_HDRLEN + attrs;
    // Nested attribute lengths are u16: anything larger cannot be encoded faithfully.
    let len = u32::try_from(total)
        .ok()
        .filter(|_| attrs <= usize::from(u16::MAX))
        .ok_or(EncodeError { len: attrs })?;
    let start = buf.len();
    wire::Header {
        len,
        kind: family_id,
        flags,
        seq,
        pid: 0,
    }
    .emit(buf);
    buf.extend_from_slice(&[u8::from(msg.cmd), IPVS_GENL_VERSION, 0, 0]);
    buf.resize(start + total, 0);
    if let Some(body) = buf.get_mut(start + NLMSG_HDRLEN + GENL_HDRLEN..) {
        msg.emit(body);
    }
    Ok(())
}

/// What one netlink message of a reply datagram says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// An IPVS message (dump entry or "do" answer).
    Message(IpvsMessage),
    /// `NLMSG_ERROR` with code 0.
    Ack,
    /// `NLMSG_ERROR` (or `NLMSG_DONE`) carrying a negative errno; this is the positive errno.
    Error(i32),
    /// `NLMSG_DONE`: end of a dump.
    Done,
    /// `NLMSG_OVERRUN` or `NLMSG_NOOP`: ignored.
    Noise,
}

/// One decoded netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Sequence number (matches the request's).
    pub seq: u32,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// Content.
    pub body: ReplyBody,
}

/// A message that could not be decoded, with its sequence number when the header was readable.
#[derive(Debug)]
pub struct ReplyError {
    /// Sequence number, if the header was intact.
    pub seq: Option<u32>,
    /// Why.
    pub error: DecodeError,
}

/// Iterate over the netlink messages of one received datagram.
pub fn replies(datagram: &[u8]) -> Replies<'_> {
    Replies {
        messages: wire::messages(datagram),
    }
}

/// Iterator returned by [`replies`]. Stops after a broken header.
#[derive(Debug)]
pub struct Replies<'a> {
    messages: wire::Messages<'a>,
}

fn wire_error(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Wire(netlink_packet_core::DecodeError::from(e.to_string()))
}

impl Iterator for Replies<'_> {
    type Item = Result<Reply, ReplyError>;

    fn next(&mut self) -> Option<Self::Item> {
        let msg = match self.messages.next()? {
            Ok(m) => m,
            Err(e) => {
                return Some(Err(ReplyError {
                    seq: None,
                    error: wire_error(e),
                }));
            }
        };
        Some(body(&msg).map_or_else(
            |error| {
                Err(ReplyError {
                    seq: Some(msg.header.seq),
                    error,
                })
            },
            |body| {
                Ok(Reply {
                    seq: msg.header.seq,
                    flags: msg.header.flags,
                    body,
                })
            },
        ))
    }
}

/// What one message says, its IPVS message decoded.
fn body(msg: &wire::Message<'_>) -> Result<ReplyBody, DecodeError> {
    Ok(match msg.reply().map_err(wire_error)? {
        wire::Reply::Ack => ReplyBody::Ack,
        wire::Reply::Done(None) => ReplyBody::Done,
        wire::Reply::Error { errno, .. } | wire::Reply::Done(Some(errno)) => {
            ReplyBody::Error(errno.get())
        }
        wire::Reply::Noise => ReplyBody::Noise,
        wire::Reply::Data => ReplyBody::Message(decode(msg)?),
    })
}

/// The IPVS message of a data message (generic netlink header, then attributes).
pub(crate) fn decode(msg: &wire::Message<'_>) -> Result<IpvsMessage, DecodeError> {
    match msg.payload().split_at_checked(GENL_HDRLEN) {
        Some((genl, attrs)) => {
            let cmd = IpvsCmd::from(genl.first().copied().unwrap_or(0));
            IpvsMessage::parse_payload(attrs, cmd).map_err(DecodeError::Wire)
        }
        None => Err(wire_error(
            "generic netlink message shorter than its header",
        )),
    }
}
