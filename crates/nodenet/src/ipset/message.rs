//! Typed ipset messages: requests with their exact wire layout (the same bytes the `ipset`
//! CLI sends) and a total decoder for requests and replies.
//!
//! ```text
//! nlmsghdr { len u32, type u16 = 6 << 8 | cmd, flags u16, seq u32, pid u32 }
//! nfgenmsg { family u8 = AF_INET, version u8 = 0, res_id be16 = 0 }
//! PROTOCOL u8 | SETNAME str | TYPENAME/SETNAME2 str | REVISION u8 | FAMILY u8 | FLAGS be32
//! DATA|NESTED { IP|NESTED { IPADDR_IPV4|NET be32 } PORT|NET be16 PROTO u8 ... LINENO|NET be32 }
//! ADT|NESTED { DATA|NESTED {..} DATA|NESTED {..} ... }      (batches, with command LINENO)
//! ```
//!
//! This file holds the framing shared by requests (`request.rs`) and replies (`reply.rs`).

use netlink_transport::wire::{self, FrameError};

use super::attribute::{self, Attr, Attrs};
use super::constants::*;
use super::error::{DecodeError, EncodeError};

/// Starts a message: nlmsghdr (length patched by [`finish`]) and nfgenmsg, then PROTOCOL.
pub(crate) fn start(buf: &mut Vec<u8>, cmd: u8, flags: u16, seq: u32, protocol: u8) {
    buf.clear();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&(NFNL_SUBSYS_IPSET << 8 | u16::from(cmd)).to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[NFPROTO_IPV4, NFNETLINK_V0, 0, 0]);
    attribute::put_u8(buf, IPSET_ATTR_PROTOCOL, protocol);
}

pub(crate) fn finish(buf: &mut [u8]) -> Result<(), EncodeError> {
    let len = u32::try_from(buf.len()).map_err(|_| EncodeError::TooLarge {
        what: "message",
        len: buf.len(),
    })?;
    if let Some(slot) = buf.get_mut(..4) {
        slot.copy_from_slice(&len.to_ne_bytes());
    }
    Ok(())
}

pub(crate) fn put_name(buf: &mut Vec<u8>, kind: u16, name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() >= IPSET_MAXNAMELEN || name.contains('\0') {
        return Err(EncodeError::Name(name.to_string()));
    }
    attribute::put_cstr(buf, kind, name)
}

/// The nlmsghdr fields (the transport's header type).
pub use netlink_transport::wire::Header as NlHeader;

fn frame_error(e: FrameError) -> DecodeError {
    match e {
        FrameError::Header { have } => DecodeError::Truncated {
            what: "netlink header",
            need: NLMSG_HDRLEN,
            have,
        },
        FrameError::Length { len, have }
            if usize::try_from(len).is_ok_and(|l| l >= NLMSG_HDRLEN) =>
        {
            DecodeError::Truncated {
                what: "netlink message",
                need: usize::try_from(len).unwrap_or(usize::MAX),
                have,
            }
        }
        FrameError::Length { len, .. } => DecodeError::Length {
            what: "netlink message",
            len: usize::try_from(len).unwrap_or(usize::MAX),
        },
        other => DecodeError::Invalid {
            what: "netlink message",
            detail: other.to_string(),
        },
    }
}

pub(crate) fn parse_header(buf: &[u8]) -> Result<NlHeader, DecodeError> {
    NlHeader::parse(buf).map_err(frame_error)
}

/// Splits one whole message into its header and the attributes after nfgenmsg.
pub(crate) fn split_message(buf: &[u8]) -> Result<(NlHeader, &[u8]), DecodeError> {
    let hdr = parse_header(buf)?;
    let len = usize::try_from(hdr.len).unwrap_or(usize::MAX);
    let body = buf.get(NLMSG_HDRLEN..len).ok_or(DecodeError::Truncated {
        what: "netlink message",
        need: len,
        have: buf.len(),
    })?;
    let attrs = body.get(4..).ok_or(DecodeError::Truncated {
        what: "nfgenmsg",
        need: 4,
        have: body.len(),
    })?;
    Ok((hdr, attrs))
}

/// Iterates over the netlink messages in one datagram (the transport's framing).
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    inner: wire::Messages<'a>,
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Messages {
            inner: wire::messages(buf),
        }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(NlHeader, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.inner
                .next()?
                .map(|m| (m.header, m.bytes))
                .map_err(frame_error),
        )
    }
}

/// Command-level attributes of one message.
#[derive(Debug, Default)]
pub(crate) struct CmdAttrs<'a> {
    pub(crate) protocol: Option<u8>,
    pub(crate) protocol_min: Option<u8>,
    pub(crate) setname: Option<String>,
    pub(crate) typename: Option<String>,
    pub(crate) revision: Option<u8>,
    pub(crate) family: Option<u8>,
    pub(crate) flags: Option<u32>,
    pub(crate) lineno: Option<u32>,
    pub(crate) index: Option<u16>,
    pub(crate) data: Option<Attr<'a>>,
    pub(crate) adt: Option<Attr<'a>>,
}

impl<'a> CmdAttrs<'a> {
    pub(crate) fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut out = CmdAttrs::default();
        for attr in Attrs::new(buf) {
            let attr = attr?;
            match attr.kind {
                IPSET_ATTR_PROTOCOL => out.protocol = Some(attr.u8("protocol")?),
                IPSET_ATTR_SETNAME => out.setname = Some(attr.string("set name")?),
                IPSET_ATTR_TYPENAME => out.typename = Some(attr.string("type name")?),
                IPSET_ATTR_REVISION => out.revision = Some(attr.u8("revision")?),
                IPSET_ATTR_FAMILY => out.family = Some(attr.u8("family")?),
                IPSET_ATTR_FLAGS => out.flags = Some(attr.be32("flags")?),
                IPSET_ATTR_LINENO => out.lineno = Some(attr.be32("lineno")?),
                IPSET_ATTR_PROTOCOL_MIN => out.protocol_min = Some(attr.u8("protocol min")?),
                IPSET_ATTR_INDEX => out.index = Some(attr.be16("index")?),
                IPSET_ATTR_DATA => out.data = Some(attr),
                IPSET_ATTR_ADT => out.adt = Some(attr),
                _ => {}
            }
        }
        Ok(out)
    }
}
