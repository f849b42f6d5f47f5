//! `IPVS_SVC_ATTR_*`: the attributes inside `IPVS_CMD_ATTR_SERVICE`.

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};

use crate::nla::{
    RawAddr, emit_bytes, emit_cstring, emit_nested, nested_len, parse_array, parse_be16,
    parse_cstring, parse_nested, parse_u16, parse_u32,
};
use crate::stats::StatsAttribute;

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
const IPVS_SVC_ATTR_ADDR: u16 = 3;
const IPVS_SVC_ATTR_PORT: u16 = 4;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;
const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
const IPVS_SVC_ATTR_NETMASK: u16 = 9;
const IPVS_SVC_ATTR_STATS: u16 = 10;
const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
const IPVS_SVC_ATTR_STATS64: u16 = 12;

/// `struct ip_vs_flags`: the kernel applies `(old & !mask) | (flags & mask)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlagsMask {
    /// Flag bits (`IP_VS_SVC_F_*`).
    pub flags: u32,
    /// Which bits to change; dumps report `!0`.
    pub mask: u32,
}

/// One service attribute, values exactly as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceAttribute {
    /// `IPVS_SVC_ATTR_AF` (u16).
    AddressFamily(u16),
    /// `IPVS_SVC_ATTR_PROTOCOL` (u16 IP protocol number).
    Protocol(u16),
    /// `IPVS_SVC_ATTR_ADDR` (16 bytes).
    Address(RawAddr),
    /// `IPVS_SVC_ATTR_PORT` (big-endian on the wire, host order here).
    Port(u16),
    /// `IPVS_SVC_ATTR_FWMARK` (u32).
    Fwmark(u32),
    /// `IPVS_SVC_ATTR_SCHED_NAME` (NUL-terminated).
    SchedName(String),
    /// `IPVS_SVC_ATTR_FLAGS` (`struct ip_vs_flags`).
    Flags(FlagsMask),
    /// `IPVS_SVC_ATTR_TIMEOUT`: persistence timeout in seconds.
    Timeout(u32),
    /// `IPVS_SVC_ATTR_NETMASK`, raw: an IPv4 mask in network order, or an IPv6 prefix length as
    /// a host-order u32. Only the address family tells which.
    Netmask([u8; 4]),
    /// `IPVS_SVC_ATTR_STATS` (32-bit counters).
    Stats(Vec<StatsAttribute>),
    /// `IPVS_SVC_ATTR_PE_NAME`: persistence engine (e.g. `sip`).
    PeName(String),
    /// `IPVS_SVC_ATTR_STATS64`.
    Stats64(Vec<StatsAttribute>),
    /// Unknown to this codec; kept verbatim.
    Other(DefaultNla),
}

impl Nla for ServiceAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::AddressFamily(_) | Self::Protocol(_) | Self::Port(_) => 2,
            Self::Address(_) => 16,
            Self::Fwmark(_) | Self::Timeout(_) | Self::Netmask(_) => 4,
            Self::SchedName(s) | Self::PeName(s) => s.len() + 1,
            Self::Flags(_) => 8,
            Self::Stats(n) | Self::Stats64(n) => nested_len(n),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::AddressFamily(_) => IPVS_SVC_ATTR_AF,
            Self::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Self::Address(_) => IPVS_SVC_ATTR_ADDR,
            Self::Port(_) => IPVS_SVC_ATTR_PORT,
            Self::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            Self::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Self::Flags(_) => IPVS_SVC_ATTR_FLAGS,
            Self::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Self::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Self::Stats(_) => IPVS_SVC_ATTR_STATS,
            Self::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Self::Stats64(_) => IPVS_SVC_ATTR_STATS64,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::AddressFamily(v) | Self::Protocol(v) => emit_bytes(&v.to_ne_bytes(), buffer),
            Self::Port(v) => emit_bytes(&v.to_be_bytes(), buffer),
            Self::Address(a) => emit_bytes(&a.0, buffer),
            Self::Fwmark(v) | Self::Timeout(v) => emit_bytes(&v.to_ne_bytes(), buffer),
            Self::Netmask(m) => emit_bytes(m, buffer),
            Self::SchedName(s) | Self::PeName(s) => emit_cstring(s, buffer),
            Self::Flags(f) => {
                emit_bytes(&f.flags.to_ne_bytes(), buffer);
                if let Some(rest) = buffer.get_mut(4..) {
                    emit_bytes(&f.mask.to_ne_bytes(), rest);
                }
            }
            Self::Stats(n) | Self::Stats64(n) => emit_nested(n, buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for ServiceAttribute {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => Self::AddressFamily(parse_u16(v, "IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => Self::Protocol(parse_u16(v, "IPVS_SVC_ATTR_PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => Self::Address(RawAddr::parse(v, "IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => Self::Port(parse_be16(v, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => Self::Fwmark(parse_u32(v, "IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => {
                Self::SchedName(parse_cstring(v, "IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                let raw: [u8; 8] = parse_array(v, "IPVS_SVC_ATTR_FLAGS")?;
                let (f, m) = raw.split_at(4);
                Self::Flags(FlagsMask {
                    flags: parse_u32(f, "IPVS_SVC_ATTR_FLAGS")?,
                    mask: parse_u32(m, "IPVS_SVC_ATTR_FLAGS")?,
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => Self::Timeout(parse_u32(v, "IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => Self::Netmask(parse_array(v, "IPVS_SVC_ATTR_NETMASK")?),
            IPVS_SVC_ATTR_STATS => {
                Self::Stats(parse_nested::<StatsAttribute>(v, "IPVS_SVC_ATTR_STATS")?)
            }
            IPVS_SVC_ATTR_PE_NAME => Self::PeName(parse_cstring(v, "IPVS_SVC_ATTR_PE_NAME")?),
            IPVS_SVC_ATTR_STATS64 => {
                Self::Stats64(parse_nested::<StatsAttribute>(v, "IPVS_SVC_ATTR_STATS64")?)
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
