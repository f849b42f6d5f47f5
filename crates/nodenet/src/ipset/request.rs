//! ipset requests: typed, encoded exactly as the `ipset` CLI encodes them, and parsed back
//! (for tests and fuzzing).

use super::attribute::{self, Attr};
use super::constants::*;
use super::entry::{Entry, Member, SetType, from_nfproto, to_nfproto};
use super::error::{DecodeError, EncodeError};
use super::message::{CmdAttrs, finish, put_name, split_message, start};
use crate::AddressFamily;

/// Parameters of `ipset create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    pub set_type: SetType,
    /// `None` for the family-less bitmap:port (sent as unspec for it whatever this says).
    pub family: Option<AddressFamily>,
    /// `hashsize N` (hash types): initial buckets; the kernel rounds up to a power of two.
    pub hashsize: Option<u32>,
    /// `maxelem N` (hash types): the kernel's default is 65536.
    pub maxelem: Option<u32>,
    /// `range FROM-TO` (bitmap:port, required there).
    pub port_range: Option<(u16, u16)>,
    /// `comment`: members may carry a comment.
    pub comment: bool,
}

impl CreateSpec {
    /// A hash set of `set_type` and `family` with the kernel's defaults.
    pub fn hash(name: impl Into<String>, set_type: SetType, family: AddressFamily) -> Self {
        CreateSpec {
            name: name.into(),
            set_type,
            family: Some(family),
            hashsize: None,
            maxelem: None,
            port_range: None,
            comment: false,
        }
    }

    /// A bitmap:port set over `from..=to`.
    pub fn bitmap_port(name: impl Into<String>, from: u16, to: u16) -> Self {
        CreateSpec {
            name: name.into(),
            set_type: SetType::BitmapPort,
            family: None,
            hashsize: None,
            maxelem: None,
            port_range: Some((from, to)),
            comment: false,
        }
    }

    /// The family put on the wire: bitmap:port is family-less.
    pub(crate) fn wire_family(&self) -> Option<AddressFamily> {
        if self.set_type == SetType::BitmapPort {
            None
        } else {
            self.family
        }
    }
}

/// add, del or test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdtOp {
    Add,
    Del,
    Test,
}

impl AdtOp {
    fn cmd(self) -> u8 {
        match self {
            AdtOp::Add => IPSET_CMD_ADD,
            AdtOp::Del => IPSET_CMD_DEL,
            AdtOp::Test => IPSET_CMD_TEST,
        }
    }
}

/// What a LIST dump returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// Header and members (`ipset list`).
    Full,
    /// Header only (`ipset list -t`).
    Header,
    /// Names only (`ipset list -n`).
    Names,
}

/// One ipset request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Asks the kernel's protocol version (sent with our version, 7).
    Protocol,
    /// Asks the kernel's revision range of a set type.
    Type {
        set_type: SetType,
        family: Option<AddressFamily>,
    },
    /// Asks name, type, family and revision of one set.
    Header {
        name: String,
    },
    Create {
        spec: CreateSpec,
        revision: u8,
        exist_ok: bool,
    },
    Destroy {
        name: String,
        exist_ok: bool,
    },
    Flush {
        name: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Swap {
        from: String,
        to: String,
    },
    List {
        name: Option<String>,
        mode: ListMode,
    },
    /// add/del/test. `batch: None` sends one DATA nest (like `ipset add`); `Some(first_lineno)`
    /// sends an ADT nest with numbered entries (like `ipset restore`), so a failure names
    /// the entry.
    Adt {
        op: AdtOp,
        name: String,
        exist_ok: bool,
        members: Vec<Member>,
        batch: Option<u32>,
    },
}

/// Request header flags and the nlmsg type byte, as the CLI sends them.
fn header_for(req: &Request) -> (u8, u16) {
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    match req {
        Request::Protocol => (IPSET_CMD_PROTOCOL, NLM_F_REQUEST),
        Request::Type { .. } => (IPSET_CMD_TYPE, NLM_F_REQUEST),
        Request::Header { .. } => (IPSET_CMD_HEADER, NLM_F_REQUEST),
        Request::Create { exist_ok, .. } => (
            IPSET_CMD_CREATE,
            ack | NLM_F_CREATE | if *exist_ok { 0 } else { NLM_F_EXCL },
        ),
        Request::Destroy { exist_ok, .. } => (
            IPSET_CMD_DESTROY,
            ack | if *exist_ok { 0 } else { NLM_F_EXCL },
        ),
        Request::Flush { .. } => (IPSET_CMD_FLUSH, ack),
        Request::Rename { .. } => (IPSET_CMD_RENAME, ack),
        Request::Swap { .. } => (IPSET_CMD_SWAP, ack),
        Request::List { .. } => (IPSET_CMD_LIST, ack | NLM_F_DUMP),
        Request::Adt { op, exist_ok, .. } => {
            let excl = if *exist_ok || *op == AdtOp::Test {
                0
            } else {
                NLM_F_EXCL
            };
            (op.cmd(), ack | excl)
        }
    }
}

/// Checks that `entry` can be a member of a set of `set_type` (the kernel would answer with
/// a protocol error otherwise, naming nothing).
pub(crate) fn check_entry(set_type: &SetType, entry: &Entry) -> Result<(), EncodeError> {
    if entry.set_type() == *set_type {
        Ok(())
    } else {
        Err(EncodeError::EntryType {
            entry: entry.to_string(),
            set_type: set_type.to_string(),
        })
    }
}

/// Largest ADT nest payload: the 16-bit `nla_len` bounds it.
pub(crate) const MAX_ADT_NEST: usize = 65_535;

/// The fixed part of one ADT batch message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchHeader<'a> {
    pub seq: u32,
    pub protocol: u8,
    pub op: AdtOp,
    pub name: &'a str,
    /// Without NLM_F_EXCL the kernel ignores present (add) or absent (del) entries.
    pub exist_ok: bool,
    /// LINENO of the first entry; entry `i` gets `first_lineno + i`.
    pub first_lineno: u32,
}

/// Encodes one ADT batch message, consuming entries from `members` until the ADT nest is
/// full. Returns how many entries went in.
pub(crate) fn encode_batch<'a, I>(
    buf: &mut Vec<u8>,
    header: BatchHeader<'_>,
    members: &mut std::iter::Peekable<I>,
) -> Result<usize, EncodeError>
where
    I: Iterator<Item = (&'a Entry, Option<&'a str>)>,
{
    let BatchHeader {
        seq,
        protocol,
        op,
        name,
        exist_ok,
        first_lineno,
    } = header;
    let flags = NLM_F_REQUEST | NLM_F_ACK | if exist_ok { 0 } else { NLM_F_EXCL };
    start(buf, op.cmd(), flags, seq, protocol);
    put_name(buf, IPSET_ATTR_SETNAME, name)?;
    attribute::put_be32(buf, IPSET_ATTR_LINENO, first_lineno);
    let adt = attribute::begin_nest(buf, IPSET_ATTR_ADT);
    let mut count = 0usize;
    while let Some((entry, comment)) = members.peek().copied() {
        let mark = buf.len();
        let lineno = first_lineno.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
        let data = attribute::begin_nest(buf, IPSET_ATTR_DATA);
        entry.emit_data(buf, comment, Some(lineno))?;
        attribute::end_nest(buf, data)?;
        if buf.len() - adt > MAX_ADT_NEST {
            if count == 0 {
                return Err(EncodeError::TooLarge {
                    what: "entry",
                    len: buf.len() - mark,
                });
            }
            buf.truncate(mark);
            break;
        }
        members.next();
        count += 1;
    }
    attribute::end_nest(buf, adt)?;
    finish(buf)?;
    Ok(count)
}

impl Request {
    /// Encodes the request with sequence number `seq` speaking ipset `protocol`.
    pub fn emit(&self, seq: u32, protocol: u8) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::with_capacity(128);
        self.emit_into(&mut buf, seq, protocol)?;
        Ok(buf)
    }

    pub(crate) fn emit_into(
        &self,
        buf: &mut Vec<u8>,
        seq: u32,
        protocol: u8,
    ) -> Result<(), EncodeError> {
        let (cmd, flags) = header_for(self);
        start(buf, cmd, flags, seq, protocol);
        match self {
            Request::Protocol => {}
            Request::Type { set_type, family } => {
                put_name(buf, IPSET_ATTR_TYPENAME, set_type.name())?;
                attribute::put_u8(buf, IPSET_ATTR_FAMILY, to_nfproto(*family));
            }
            Request::Header { name } | Request::Flush { name } | Request::Destroy { name, .. } => {
                put_name(buf, IPSET_ATTR_SETNAME, name)?;
            }
            Request::Create { spec, revision, .. } => {
                put_name(buf, IPSET_ATTR_SETNAME, &spec.name)?;
                put_name(buf, IPSET_ATTR_TYPENAME, spec.set_type.name())?;
                attribute::put_u8(buf, IPSET_ATTR_REVISION, *revision);
                attribute::put_u8(buf, IPSET_ATTR_FAMILY, to_nfproto(spec.wire_family()));
                let data = attribute::begin_nest(buf, IPSET_ATTR_DATA);
                if let Some((from, to)) = spec.port_range {
                    attribute::put_be16(buf, IPSET_ATTR_PORT, from);
                    attribute::put_be16(buf, IPSET_ATTR_PORT_TO, to);
                }
                if let Some(hashsize) = spec.hashsize {
                    attribute::put_be32(buf, IPSET_ATTR_HASHSIZE, hashsize);
                }
                if let Some(maxelem) = spec.maxelem {
                    attribute::put_be32(buf, IPSET_ATTR_MAXELEM, maxelem);
                }
                if spec.comment {
                    attribute::put_be32(buf, IPSET_ATTR_CADT_FLAGS, IPSET_FLAG_WITH_COMMENT);
                }
                attribute::end_nest(buf, data)?;
            }
            Request::Rename { from, to } | Request::Swap { from, to } => {
                put_name(buf, IPSET_ATTR_SETNAME, from)?;
                put_name(buf, IPSET_ATTR_SETNAME2, to)?;
            }
            Request::List { name, mode } => {
                if let Some(name) = name {
                    put_name(buf, IPSET_ATTR_SETNAME, name)?;
                }
                match mode {
                    ListMode::Full => {}
                    ListMode::Header => {
                        attribute::put_be32(buf, IPSET_ATTR_FLAGS, IPSET_FLAG_LIST_HEADER)
                    }
                    ListMode::Names => {
                        attribute::put_be32(buf, IPSET_ATTR_FLAGS, IPSET_FLAG_LIST_SETNAME)
                    }
                }
            }
            Request::Adt {
                op,
                name,
                members,
                batch,
                ..
            } => {
                put_name(buf, IPSET_ATTR_SETNAME, name)?;
                match batch {
                    None => {
                        let member = match members.as_slice() {
                            [one] => one,
                            _ => {
                                return Err(EncodeError::TooLarge {
                                    what: "single-entry request",
                                    len: members.len(),
                                });
                            }
                        };
                        let data = attribute::begin_nest(buf, IPSET_ATTR_DATA);
                        // The CLI numbers add/del lines (0 outside restore); test carries none.
                        let lineno = if *op == AdtOp::Test { None } else { Some(0) };
                        member
                            .entry
                            .emit_data(buf, member.comment.as_deref(), lineno)?;
                        attribute::end_nest(buf, data)?;
                    }
                    Some(first) => {
                        attribute::put_be32(buf, IPSET_ATTR_LINENO, *first);
                        let adt = attribute::begin_nest(buf, IPSET_ATTR_ADT);
                        for (i, member) in members.iter().enumerate() {
                            let data = attribute::begin_nest(buf, IPSET_ATTR_DATA);
                            let lineno = first.wrapping_add(u32::try_from(i).unwrap_or(u32::MAX));
                            member
                                .entry
                                .emit_data(buf, member.comment.as_deref(), Some(lineno))?;
                            attribute::end_nest(buf, data)?;
                        }
                        attribute::end_nest(buf, adt)?;
                    }
                }
            }
        }
        finish(buf)
    }

    /// Decodes a request (what [`Request::emit`] produced, or what the CLI sends). Entries are
    /// decoded by their attributes since requests do not carry the set type.
    pub fn parse(buf: &[u8]) -> Result<(u32, Request), DecodeError> {
        let (hdr, payload) = split_message(buf)?;
        if hdr.kind >> 8 != NFNL_SUBSYS_IPSET {
            return Err(DecodeError::Invalid {
                what: "message type",
                detail: format!("{:#x} is not ipset", hdr.kind),
            });
        }
        let cmd = u8::try_from(hdr.kind & 0xff).unwrap_or(0);
        let attrs = CmdAttrs::parse(payload)?;
        let name = || {
            attrs
                .setname
                .clone()
                .ok_or(DecodeError::Missing { what: "set name" })
        };
        let name2 = || {
            attrs.typename.clone().ok_or(DecodeError::Missing {
                what: "second set name",
            })
        };
        let exist_ok = hdr.flags & NLM_F_EXCL == 0;
        let req = match cmd {
            IPSET_CMD_PROTOCOL => Request::Protocol,
            IPSET_CMD_TYPE => Request::Type {
                set_type: SetType::from_name(&name2()?),
                family: from_nfproto(
                    attrs
                        .family
                        .ok_or(DecodeError::Missing { what: "family" })?,
                )?,
            },
            IPSET_CMD_HEADER => Request::Header { name: name()? },
            IPSET_CMD_CREATE => {
                let set_type = SetType::from_name(&name2()?);
                let mut spec = CreateSpec {
                    name: name()?,
                    family: from_nfproto(
                        attrs
                            .family
                            .ok_or(DecodeError::Missing { what: "family" })?,
                    )?,
                    set_type,
                    hashsize: None,
                    maxelem: None,
                    port_range: None,
                    comment: false,
                };
                // bitmap:port is family-less whatever the message says (see wire_family).
                spec.family = spec.wire_family();
                let mut from = None;
                let mut to = None;
                if let Some(data) = attrs.data {
                    for attr in data.nested() {
                        let attr = attr?;
                        match attr.kind {
                            IPSET_ATTR_HASHSIZE => spec.hashsize = Some(attr.be32("hashsize")?),
                            IPSET_ATTR_MAXELEM => spec.maxelem = Some(attr.be32("maxelem")?),
                            IPSET_ATTR_PORT => from = Some(attr.be16("range start")?),
                            IPSET_ATTR_PORT_TO => to = Some(attr.be16("range end")?),
                            IPSET_ATTR_CADT_FLAGS => {
                                spec.comment =
                                    attr.be32("cadt flags")? & IPSET_FLAG_WITH_COMMENT != 0
                            }
                            _ => {}
                        }
                    }
                }
                if let (Some(from), Some(to)) = (from, to) {
                    spec.port_range = Some((from, to));
                }
                Request::Create {
                    spec,
                    revision: attrs
                        .revision
                        .ok_or(DecodeError::Missing { what: "revision" })?,
                    exist_ok,
                }
            }
            IPSET_CMD_DESTROY => Request::Destroy {
                name: name()?,
                exist_ok,
            },
            IPSET_CMD_FLUSH => Request::Flush { name: name()? },
            IPSET_CMD_RENAME => Request::Rename {
                from: name()?,
                to: name2()?,
            },
            IPSET_CMD_SWAP => Request::Swap {
                from: name()?,
                to: name2()?,
            },
            IPSET_CMD_LIST => Request::List {
                name: attrs.setname.clone(),
                mode: match attrs.flags {
                    Some(f) if f & IPSET_FLAG_LIST_SETNAME != 0 => ListMode::Names,
                    Some(f) if f & IPSET_FLAG_LIST_HEADER != 0 => ListMode::Header,
                    _ => ListMode::Full,
                },
            },
            IPSET_CMD_ADD | IPSET_CMD_DEL | IPSET_CMD_TEST => {
                let op = match cmd {
                    IPSET_CMD_ADD => AdtOp::Add,
                    IPSET_CMD_DEL => AdtOp::Del,
                    _ => AdtOp::Test,
                };
                let (members, batch) = match (attrs.data, attrs.adt) {
                    (Some(data), None) => (vec![parse_request_entry(&data)?], None),
                    (None, Some(adt)) => {
                        let mut members = Vec::new();
                        for data in adt.nested() {
                            members.push(parse_request_entry(&data?)?);
                        }
                        (
                            members,
                            Some(attrs.lineno.ok_or(DecodeError::Missing {
                                what: "batch lineno",
                            })?),
                        )
                    }
                    _ => {
                        return Err(DecodeError::Missing {
                            what: "exactly one of DATA or ADT",
                        });
                    }
                };
                Request::Adt {
                    op,
                    name: name()?,
                    exist_ok: exist_ok && op != AdtOp::Test,
                    members,
                    batch,
                }
            }
            other => {
                return Err(DecodeError::Invalid {
                    what: "ipset command",
                    detail: format!("unknown command {other}"),
                });
            }
        };
        Ok((hdr.seq, req))
    }
}

/// Infers an entry's type from the attributes present (requests carry no set type).
fn parse_request_entry(data: &Attr<'_>) -> Result<Member, DecodeError> {
    let mut has = [false; 32];
    for attr in data.nested() {
        if let Some(slot) = has.get_mut(usize::from(attr?.kind)) {
            *slot = true;
        }
    }
    let present = |kind: u16| has.get(usize::from(kind)).copied().unwrap_or(false);
    let set_type = if !present(IPSET_ATTR_IP) {
        SetType::BitmapPort
    } else if present(IPSET_ATTR_CIDR2) {
        SetType::HashIpPortNet
    } else if present(IPSET_ATTR_IP2) {
        SetType::HashIpPortIp
    } else if present(IPSET_ATTR_PORT) {
        SetType::HashIpPort
    } else if present(IPSET_ATTR_CIDR) {
        SetType::HashNet
    } else {
        SetType::HashIp
    };
    Entry::parse_data(&set_type, data)
}
