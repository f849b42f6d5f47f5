//! ipset replies: acks and errors (with the failing batch entry), PROTOCOL/TYPE/HEADER
//! answers, and LIST dumps merged across their multipart messages. Total: never panics.

use netlink_transport::Errno;

use super::attribute::Attrs;
use super::constants::*;
use super::entry::{Entry, Member, SetType, from_nfproto};
use super::error::DecodeError;
use super::message::{CmdAttrs, Messages, NlHeader, parse_header, split_message};
use super::request::CreateSpec;
use crate::AddressFamily;

/// A set's header as listed (`ipset list -t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetHeader {
    pub name: String,
    pub set_type: SetType,
    pub family: Option<AddressFamily>,
    pub revision: u8,
    /// Kernel index (protocol 7 only).
    pub index: Option<u16>,
    pub hashsize: Option<u32>,
    pub maxelem: Option<u32>,
    pub bucketsize: Option<u8>,
    pub initval: Option<u32>,
    pub port_range: Option<(u16, u16)>,
    /// iptables rules (and list:set sets) referencing the set.
    pub references: u32,
    pub memsize: u32,
    pub elements: u32,
    pub comment: bool,
    pub counters: bool,
    pub timeout: Option<u32>,
}

impl SetHeader {
    /// A create spec that reproduces this set's type, family and options under `name`.
    pub fn create_spec(&self, name: impl Into<String>) -> CreateSpec {
        CreateSpec {
            name: name.into(),
            set_type: self.set_type.clone(),
            family: self.family,
            hashsize: self.hashsize,
            maxelem: self.maxelem,
            port_range: self.port_range,
            comment: self.comment,
        }
    }
}

/// One set from a LIST dump, merged across its multipart messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSet {
    pub name: String,
    /// Absent when listing names only.
    pub header: Option<SetHeader>,
    pub members: Vec<Member>,
}

/// A decoded reply message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// NLMSG_ERROR with errno 0.
    Ack,
    /// NLMSG_ERROR: positive errno; for a failed batch the LINENO of the failing entry.
    Error { errno: Errno, lineno: Option<u32> },
    /// NLMSG_DONE: end of a dump.
    Done,
    /// Reply to PROTOCOL.
    Protocol { version: u8, min: Option<u8> },
    /// Reply to TYPE: the kernel's revision range.
    Type {
        set_type: SetType,
        family: Option<AddressFamily>,
        revision: u8,
        revision_min: u8,
    },
    /// Reply to HEADER.
    Header {
        name: String,
        set_type: SetType,
        family: Option<AddressFamily>,
        revision: u8,
    },
    /// One LIST dump part (decode it with a [`ListDecoder`]).
    List,
    /// An ipset message of another command.
    Other { cmd: u8 },
}

/// Decodes one message (as produced by [`Messages`]) into a [`Reply`]. LIST parts are only
/// classified here: their content goes through [`ListDecoder`].
pub fn parse_reply(msg: &[u8]) -> Result<(NlHeader, Reply), DecodeError> {
    let hdr = parse_header(msg)?;
    match hdr.kind {
        NLMSG_ERROR => {
            let body = msg.get(NLMSG_HDRLEN..).unwrap_or_default();
            let code = body
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes)
                .ok_or(DecodeError::Truncated {
                    what: "netlink error",
                    need: 4,
                    have: body.len(),
                })?;
            if code == 0 {
                return Ok((hdr, Reply::Ack));
            }
            Ok((
                hdr,
                Reply::Error {
                    errno: Errno::from_wire(code),
                    lineno: lineno_of(body.get(4..).unwrap_or_default()),
                },
            ))
        }
        NLMSG_DONE => Ok((hdr, Reply::Done)),
        kind if kind >> 8 == NFNL_SUBSYS_IPSET => {
            let (_, payload) = split_message(msg)?;
            let attrs = CmdAttrs::parse(payload)?;
            let cmd = u8::try_from(kind & 0xff).unwrap_or(0);
            let family = || {
                from_nfproto(
                    attrs
                        .family
                        .ok_or(DecodeError::Missing { what: "family" })?,
                )
            };
            let typename = || {
                attrs
                    .typename
                    .clone()
                    .ok_or(DecodeError::Missing { what: "type name" })
            };
            let reply = match cmd {
                IPSET_CMD_PROTOCOL => Reply::Protocol {
                    version: attrs
                        .protocol
                        .ok_or(DecodeError::Missing { what: "protocol" })?,
                    min: attrs.protocol_min,
                },
                IPSET_CMD_TYPE => Reply::Type {
                    set_type: SetType::from_name(&typename()?),
                    family: family()?,
                    revision: attrs
                        .revision
                        .ok_or(DecodeError::Missing { what: "revision" })?,
                    revision_min: attrs.protocol_min.unwrap_or(0),
                },
                IPSET_CMD_HEADER => Reply::Header {
                    name: attrs
                        .setname
                        .clone()
                        .ok_or(DecodeError::Missing { what: "set name" })?,
                    set_type: SetType::from_name(&typename()?),
                    family: family()?,
                    revision: attrs
                        .revision
                        .ok_or(DecodeError::Missing { what: "revision" })?,
                },
                IPSET_CMD_LIST | IPSET_CMD_SAVE => Reply::List,
                other => Reply::Other { cmd: other },
            };
            Ok((hdr, reply))
        }
        other => Err(DecodeError::Invalid {
            what: "reply type",
            detail: format!("unexpected nlmsg type {other:#x}"),
        }),
    }
}

/// The LINENO of an echoed request (what follows the error code of an `NLMSG_ERROR`): after a
/// failed batch message it names the failing entry. call_ad() copies the entry's LINENO bytes
/// unconverted, so it reads back as the big-endian value we sent.
pub(crate) fn lineno_of(echo: &[u8]) -> Option<u32> {
    let (_, attrs) = split_message(echo).ok()?;
    Attrs::new(attrs)
        .filter_map(Result::ok)
        .find(|a| a.kind == IPSET_ATTR_LINENO)
        .and_then(|a| a.be32("lineno").ok())
}

/// Merges the parts of a LIST dump: the first part of a set carries its header, later parts
/// (same set name, no type name) continue its members.
#[derive(Debug, Default)]
pub struct ListDecoder {
    sets: Vec<ListedSet>,
}

impl ListDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one LIST message (whole, with its nlmsghdr).
    pub fn feed(&mut self, msg: &[u8]) -> Result<(), DecodeError> {
        let (_, payload) = split_message(msg)?;
        let attrs = CmdAttrs::parse(payload)?;
        let name = attrs.setname.clone().ok_or(DecodeError::Missing {
            what: "listed set name",
        })?;
        let continues = self.sets.last().is_some_and(|s| s.name == name);
        if let Some(typename) = &attrs.typename {
            let header = parse_set_header(&name, typename, &attrs)?;
            if continues && self.sets.last().is_some_and(|s| s.header.is_some()) {
                return Err(DecodeError::Invalid {
                    what: "list dump",
                    detail: format!("set {name} listed twice"),
                });
            }
            if continues {
                if let Some(last) = self.sets.last_mut() {
                    last.header = Some(header);
                }
            } else {
                self.sets.push(ListedSet {
                    name: name.clone(),
                    header: Some(header),
                    members: Vec::new(),
                });
            }
        } else if !continues {
            self.sets.push(ListedSet {
                name: name.clone(),
                header: None,
                members: Vec::new(),
            });
        }
        if let Some(adt) = attrs.adt {
            let set = self.sets.last_mut().ok_or(DecodeError::Missing {
                what: "set before members",
            })?;
            let set_type =
                set.header
                    .as_ref()
                    .map(|h| h.set_type.clone())
                    .ok_or(DecodeError::Missing {
                        what: "set header before members",
                    })?;
            if matches!(set_type, SetType::Other(_)) {
                // A foreign set type (hash:mac, list:set, ...): listed by name and header only.
                return Ok(());
            }
            for data in adt.nested() {
                let data = data?;
                if data.kind != IPSET_ATTR_DATA {
                    continue;
                }
                set.members.push(Entry::parse_data(&set_type, &data)?);
            }
        }
        Ok(())
    }

    /// The sets in dump order.
    pub fn finish(self) -> Vec<ListedSet> {
        self.sets
    }
}

fn parse_set_header(
    name: &str,
    typename: &str,
    attrs: &CmdAttrs<'_>,
) -> Result<SetHeader, DecodeError> {
    let mut header = SetHeader {
        name: name.to_string(),
        set_type: SetType::from_name(typename),
        family: from_nfproto(
            attrs
                .family
                .ok_or(DecodeError::Missing { what: "set family" })?,
        )?,
        revision: attrs.revision.ok_or(DecodeError::Missing {
            what: "set revision",
        })?,
        index: attrs.index,
        hashsize: None,
        maxelem: None,
        bucketsize: None,
        initval: None,
        port_range: None,
        references: 0,
        memsize: 0,
        elements: 0,
        comment: false,
        counters: false,
        timeout: None,
    };
    let mut from = None;
    let mut to = None;
    if let Some(data) = attrs.data {
        for attr in data.nested() {
            let attr = attr?;
            match attr.kind {
                IPSET_ATTR_HASHSIZE => header.hashsize = Some(attr.be32("hashsize")?),
                IPSET_ATTR_MAXELEM => header.maxelem = Some(attr.be32("maxelem")?),
                IPSET_ATTR_BUCKETSIZE => header.bucketsize = Some(attr.u8("bucketsize")?),
                IPSET_ATTR_INITVAL => header.initval = Some(attr.be32("initval")?),
                IPSET_ATTR_PORT => from = Some(attr.be16("range start")?),
                IPSET_ATTR_PORT_TO => to = Some(attr.be16("range end")?),
                IPSET_ATTR_REFERENCES => header.references = attr.be32("references")?,
                IPSET_ATTR_MEMSIZE => header.memsize = attr.be32("memsize")?,
                IPSET_ATTR_ELEMENTS => header.elements = attr.be32("elements")?,
                IPSET_ATTR_TIMEOUT => header.timeout = Some(attr.be32("timeout")?),
                IPSET_ATTR_CADT_FLAGS => {
                    let flags = attr.be32("cadt flags")?;
                    header.comment = flags & IPSET_FLAG_WITH_COMMENT != 0;
                    header.counters = flags & IPSET_FLAG_WITH_COUNTERS != 0;
                }
                _ => {}
            }
        }
    }
    if let (Some(from), Some(to)) = (from, to) {
        header.port_range = Some((from, to));
    }
    Ok(header)
}

/// Decodes every message of a reply datagram; for fuzzing and tests. Never panics.
pub fn decode_all(buf: &[u8]) -> Result<(Vec<Reply>, Vec<ListedSet>), DecodeError> {
    let mut replies = Vec::new();
    let mut lists = ListDecoder::new();
    for msg in Messages::new(buf) {
        let (_, msg) = msg?;
        let (_, reply) = parse_reply(msg)?;
        if reply == Reply::List {
            lists.feed(msg)?;
        }
        replies.push(reply);
    }
    Ok((replies, lists.finish()))
}
