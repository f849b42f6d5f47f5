//! Netlink attribute (NLA) encoding and a total decoder: every length is checked, nothing is
//! indexed unchecked, and a malformed attribute yields a [`DecodeError`], never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::constants::{
    IPSET_ATTR_IPADDR_IPV4, IPSET_ATTR_IPADDR_IPV6, NLA_F_NESTED, NLA_F_NET_BYTEORDER,
};
use super::error::{DecodeError, EncodeError};

const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// Rounds up to the 4-byte netlink alignment.
pub(crate) const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(align4(buf.len()), 0);
}

pub(crate) fn put_u8(buf: &mut Vec<u8>, kind: u16, value: u8) {
    // A 5-byte attribute always fits: no error path.
    buf.extend_from_slice(&5u16.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&[value, 0, 0, 0]);
}

/// Big-endian u16 flagged NLA_F_NET_BYTEORDER, as the kernel requires for ports.
pub(crate) fn put_be16(buf: &mut Vec<u8>, kind: u16, value: u16) {
    buf.extend_from_slice(&6u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NET_BYTEORDER).to_ne_bytes());
    buf.extend_from_slice(&value.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
}

/// Big-endian u32 flagged NLA_F_NET_BYTEORDER (hashsize, maxelem, lineno, flags).
pub(crate) fn put_be32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    buf.extend_from_slice(&8u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NET_BYTEORDER).to_ne_bytes());
    buf.extend_from_slice(&value.to_be_bytes());
}

/// NUL-terminated string.
pub(crate) fn put_cstr(buf: &mut Vec<u8>, kind: u16, value: &str) -> Result<(), EncodeError> {
    let len = u16::try_from(NLA_HDRLEN + value.len() + 1).map_err(|_| EncodeError::TooLarge {
        what: "string attribute",
        len: value.len(),
    })?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value.as_bytes());
    buf.push(0);
    pad(buf);
    Ok(())
}

/// Starts a nest flagged NLA_F_NESTED (the kernel rejects DATA, ADT and addresses without it);
/// returns the offset to pass to [`end_nest`].
pub(crate) fn begin_nest(buf: &mut Vec<u8>, kind: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

/// Writes the nest's length; fails when it exceeds the 16-bit `nla_len`.
pub(crate) fn end_nest(buf: &mut [u8], start: usize) -> Result<(), EncodeError> {
    let len = buf.len().saturating_sub(start);
    let len16 = u16::try_from(len).map_err(|_| EncodeError::TooLarge {
        what: "nested attribute",
        len,
    })?;
    let slot = buf.get_mut(start..start + 2).ok_or(EncodeError::TooLarge {
        what: "nested attribute",
        len,
    })?;
    slot.copy_from_slice(&len16.to_ne_bytes());
    Ok(())
}

/// An address nest: `kind|NESTED { IPADDR_IPV4|NET_BYTEORDER or IPADDR_IPV6|NET_BYTEORDER }`.
pub(crate) fn put_ip(buf: &mut Vec<u8>, kind: u16, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            buf.extend_from_slice(&12u16.to_ne_bytes());
            buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
            buf.extend_from_slice(&8u16.to_ne_bytes());
            buf.extend_from_slice(&(IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER).to_ne_bytes());
            buf.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            buf.extend_from_slice(&24u16.to_ne_bytes());
            buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
            buf.extend_from_slice(&20u16.to_ne_bytes());
            buf.extend_from_slice(&(IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER).to_ne_bytes());
            buf.extend_from_slice(&v6.octets());
        }
    }
}

/// One decoded attribute: its type without flags, the flags, and the payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        match self.payload.first() {
            Some(v) => Ok(*v),
            None => Err(DecodeError::Length { what, len: 0 }),
        }
    }

    pub fn be16(&self, what: &'static str) -> Result<u16, DecodeError> {
        let bytes: [u8; 2] = self
            .payload
            .get(..2)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::Length {
                what,
                len: self.payload.len(),
            })?;
        Ok(u16::from_be_bytes(bytes))
    }

    pub fn be32(&self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array4(what)?))
    }

    fn array4(&self, what: &'static str) -> Result<[u8; 4], DecodeError> {
        self.payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::Length {
                what,
                len: self.payload.len(),
            })
    }

    /// A NUL-terminated (or unterminated) UTF-8 string.
    pub fn string(&self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .payload
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.payload.len());
        let bytes = self.payload.get(..end).unwrap_or_default();
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
            what,
            detail: "not UTF-8".to_string(),
        })
    }

    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }

    /// An address nest (IPADDR_IPV4 4 bytes or IPADDR_IPV6 16 bytes).
    pub fn ip(&self, what: &'static str) -> Result<IpAddr, DecodeError> {
        for attr in self.nested() {
            let attr = attr?;
            match attr.kind {
                IPSET_ATTR_IPADDR_IPV4 => {
                    let b: [u8; 4] = attr
                        .payload
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .ok_or(DecodeError::Length {
                            what,
                            len: attr.payload.len(),
                        })?;
                    return Ok(IpAddr::V4(Ipv4Addr::from(b)));
                }
                IPSET_ATTR_IPADDR_IPV6 => {
                    let b: [u8; 16] = attr
                        .payload
                        .get(..16)
                        .and_then(|b| b.try_into().ok())
                        .ok_or(DecodeError::Length {
                            what,
                            len: attr.payload.len(),
                        })?;
                    return Ok(IpAddr::V6(Ipv6Addr::from(b)));
                }
                _ => {}
            }
        }
        Err(DecodeError::Missing { what })
    }
}

/// Iterator over a run of attributes. After the first error it yields nothing more.
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let (hdr, _) =
                self.rest
                    .split_at_checked(NLA_HDRLEN)
                    .ok_or(DecodeError::Truncated {
                        what: "attribute header",
                        need: NLA_HDRLEN,
                        have: self.rest.len(),
                    })?;
            let len = usize::from(u16::from_ne_bytes([
                *hdr.first().unwrap_or(&0),
                *hdr.get(1).unwrap_or(&0),
            ]));
            let kind = u16::from_ne_bytes([*hdr.get(2).unwrap_or(&0), *hdr.get(3).unwrap_or(&0)]);
            if len < NLA_HDRLEN {
                return Err(DecodeError::Length {
                    what: "attribute",
                    len,
                });
            }
            let payload = self
                .rest
                .get(NLA_HDRLEN..len)
                .ok_or(DecodeError::Truncated {
                    what: "attribute payload",
                    need: len,
                    have: self.rest.len(),
                })?;
            // The last attribute may omit its padding.
            self.rest = self.rest.get(align4(len)..).unwrap_or_default();
            Ok(Attr {
                kind: kind & NLA_TYPE_MASK,
                payload,
            })
        })();
        if parsed.is_err() {
            self.rest = &[];
        }
        Some(parsed)
    }
}
