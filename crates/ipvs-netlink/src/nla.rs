//! Small, total helpers shared by the attribute codecs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DecodeError, Emitable, Nla, NlaBuffer, NlasIterator, Parseable};

/// Parse every attribute of a nest with `f`, failing on the first malformed one.
pub(crate) fn parse_nested<T>(value: &[u8], what: &str) -> Result<Vec<T>, DecodeError>
where
    T: for<'b> Parseable<NlaBuffer<&'b [u8]>>,
{
    let mut out = Vec::new();
    for nla in NlasIterator::new(value) {
        let nla = nla.map_err(|e| DecodeError::from(format!("{what}: {e}")))?;
        out.push(T::parse(&nla).map_err(|e| DecodeError::from(format!("{what}: {e}")))?);
    }
    Ok(out)
}

/// Byte length of a list of attributes.
pub(crate) fn nested_len<T: Nla>(nlas: &[T]) -> usize {
    nlas.iter().map(Emitable::buffer_len).sum()
}

/// Emit one attribute, header included, keeping every flag bit of its type.
///
/// netlink-packet-core 0.9 loses `NLA_F_NET_BYTEORDER` when an attribute also has
/// `NLA_F_NESTED` (its `set_nested_flag` re-reads the masked type), so an unknown attribute with
/// both flags would not re-encode to its own bytes; found by the `frame` fuzz target.
pub(crate) fn emit_one<T: Nla>(nla: &T, buffer: &mut [u8]) {
    nla.emit(buffer);
    if let Some(kind) = buffer.get_mut(2..4) {
        kind.copy_from_slice(&nla.kind().to_ne_bytes());
    }
}

/// Emit a list of attributes back to back (each is already 4-byte aligned).
pub(crate) fn emit_nested<T: Nla>(nlas: &[T], buffer: &mut [u8]) {
    let mut rest = buffer;
    for nla in nlas {
        let len = nla.buffer_len();
        let (head, tail) = rest.split_at_mut(len.min(rest.len()));
        emit_one(nla, head);
        rest = tail;
    }
}

/// Exactly `N` bytes.
pub(crate) fn parse_array<const N: usize>(
    value: &[u8],
    what: &str,
) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(value)
        .map_err(|_| DecodeError::from(format!("{what}: expected {N} bytes, got {}", value.len())))
}

pub(crate) fn parse_u8(value: &[u8], what: &str) -> Result<u8, DecodeError> {
    parse_array::<1>(value, what).map(|[b]| b)
}

pub(crate) fn parse_u16(value: &[u8], what: &str) -> Result<u16, DecodeError> {
    parse_array(value, what).map(u16::from_ne_bytes)
}

pub(crate) fn parse_be16(value: &[u8], what: &str) -> Result<u16, DecodeError> {
    parse_array(value, what).map(u16::from_be_bytes)
}

pub(crate) fn parse_u32(value: &[u8], what: &str) -> Result<u32, DecodeError> {
    parse_array(value, what).map(u32::from_ne_bytes)
}

pub(crate) fn parse_u64(value: &[u8], what: &str) -> Result<u64, DecodeError> {
    parse_array(value, what).map(u64::from_ne_bytes)
}

/// A NUL-terminated string; the terminator is optional on input, always emitted.
pub(crate) fn parse_cstring(value: &[u8], what: &str) -> Result<String, DecodeError> {
    let bytes = value.strip_suffix(&[0]).unwrap_or(value);
    String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError::from(format!("{what}: {e}")))
}

pub(crate) fn emit_cstring(s: &str, buffer: &mut [u8]) {
    let bytes = s.as_bytes();
    if let Some(dst) = buffer.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    if let Some(nul) = buffer.get_mut(bytes.len()) {
        *nul = 0;
    }
}

/// Copy `src` to the front of `buffer`, ignoring what does not fit (buffers are sized by `value_len`).
pub(crate) fn emit_bytes(src: &[u8], buffer: &mut [u8]) {
    let n = src.len().min(buffer.len());
    if let (Some(dst), Some(src)) = (buffer.get_mut(..n), src.get(..n)) {
        dst.copy_from_slice(src);
    }
}

/// The kernel's `union nf_inet_addr`: 16 bytes, IPv4 in the first four.
///
/// Kept raw at the attribute level because its meaning depends on the address family, which is a
/// separate attribute. Requests always carry 16 bytes (as ipvsadm does); 4 bytes are accepted too.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Default, Hash, PartialOrd, Ord)]
pub struct RawAddr(pub [u8; 16]);

impl RawAddr {
    pub(crate) fn parse(value: &[u8], what: &str) -> Result<Self, DecodeError> {
        let mut out = [0u8; 16];
        match value.len() {
            4 | 16 => {
                emit_bytes(value, &mut out);
                Ok(Self(out))
            }
            n => Err(DecodeError::from(format!(
                "{what}: expected 4 or 16 address bytes, got {n}"
            ))),
        }
    }

    /// Interpret as an address of `family`.
    pub fn to_ip(self, family: crate::AddressFamily) -> IpAddr {
        match family {
            crate::AddressFamily::Inet => {
                let [a, b, c, d, ..] = self.0;
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            }
            crate::AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }
}

impl From<IpAddr> for RawAddr {
    fn from(ip: IpAddr) -> Self {
        let mut out = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => emit_bytes(&v4.octets(), &mut out),
            IpAddr::V6(v6) => out = v6.octets(),
        }
        Self(out)
    }
}
