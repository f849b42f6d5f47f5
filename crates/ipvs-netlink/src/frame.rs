//! Netlink framing for IPVS: requests into bytes, datagrams into replies. No I/O, total.

use netlink_packet_core::{Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

use crate::error::DecodeError;
use crate::message::{IPVS_GENL_VERSION, IpvsCmd, IpvsMessage};

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;

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
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&family_id.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
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
    Replies { rest: datagram }
}

/// Iterator returned by [`replies`]. Stops after a broken header.
#[derive(Debug)]
pub struct Replies<'a> {
    rest: &'a [u8],
}

fn wire(msg: String) -> DecodeError {
    DecodeError::Wire(netlink_packet_core::DecodeError::from(msg))
}

fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

impl Iterator for Replies<'_> {
    type Item = Result<Reply, ReplyError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let buf = self.rest;
        if buf.len() < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(ReplyError {
                seq: None,
                error: wire(format!("{} trailing bytes, no netlink header", buf.len())),
            }));
        }
        let len = usize::try_from(u32::from_ne_bytes(field(buf, 0))).unwrap_or(usize::MAX);
        let kind = u16::from_ne_bytes(field(buf, 4));
        let flags = u16::from_ne_bytes(field(buf, 6));
        let seq = u32::from_ne_bytes(field(buf, 8));
        let Some(payload) = buf.get(NLMSG_HDRLEN..len).filter(|_| len >= NLMSG_HDRLEN) else {
            self.rest = &[];
            return Some(Err(ReplyError {
                seq: None,
                error: wire(format!(
                    "netlink length {len} does not fit a {}-byte datagram",
                    buf.len()
                )),
            }));
        };
        let next = len.saturating_add(3) & !3;
        self.rest = buf.get(next..).unwrap_or(&[]);
        let body = match kind {
            NLMSG_ERROR => match payload.get(..4) {
                Some(_) => match i32::from_ne_bytes(field(payload, 0)) {
                    0 => Ok(ReplyBody::Ack),
                    code => Ok(ReplyBody::Error(code.saturating_neg())),
                },
                None => Err(wire("NLMSG_ERROR shorter than its error code".into())),
            },
            NLMSG_DONE => match payload
                .get(..4)
                .map(|_| i32::from_ne_bytes(field(payload, 0)))
            {
                Some(code) if code < 0 => Ok(ReplyBody::Error(code.saturating_neg())),
                _ => Ok(ReplyBody::Done),
            },
            NLMSG_NOOP | NLMSG_OVERRUN => Ok(ReplyBody::Noise),
            _ => match payload.split_at_checked(GENL_HDRLEN) {
                Some((genl, attrs)) => {
                    let cmd = IpvsCmd::from(genl.first().copied().unwrap_or(0));
                    IpvsMessage::parse_payload(attrs, cmd)
                        .map(ReplyBody::Message)
                        .map_err(DecodeError::Wire)
                }
                None => Err(wire(
                    "generic netlink message shorter than its header".into(),
                )),
            },
        };
        Some(match body {
            Ok(body) => Ok(Reply { seq, flags, body }),
            Err(error) => Err(ReplyError {
                seq: Some(seq),
                error,
            }),
        })
    }
}
