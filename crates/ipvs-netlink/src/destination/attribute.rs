//! `IPVS_DEST_ATTR_*`: the attributes inside `IPVS_CMD_ATTR_DEST`.

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};

use crate::nla::{
    RawAddr, emit_bytes, emit_nested, nested_len, parse_be16, parse_nested, parse_u8, parse_u16,
    parse_u32,
};
use crate::stats::StatsAttribute;

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
const IPVS_DEST_ATTR_STATS: u16 = 10;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
const IPVS_DEST_ATTR_STATS64: u16 = 12;
const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

/// One destination attribute, values exactly as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestinationAttribute {
    /// `IPVS_DEST_ATTR_ADDR` (16 bytes).
    Address(RawAddr),
    /// `IPVS_DEST_ATTR_PORT` (big-endian on the wire, host order here).
    Port(u16),
    /// `IPVS_DEST_ATTR_FWD_METHOD` (`IP_VS_CONN_F_*` & `IP_VS_CONN_F_FWD_MASK`).
    FwdMethod(u32),
    /// `IPVS_DEST_ATTR_WEIGHT` (u32; the kernel refuses values above `i32::MAX`).
    Weight(u32),
    /// `IPVS_DEST_ATTR_U_THRESH`: upper connection threshold (0 = none).
    UpperThreshold(u32),
    /// `IPVS_DEST_ATTR_L_THRESH`: lower connection threshold.
    LowerThreshold(u32),
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS` (reply only).
    ActiveConns(u32),
    /// `IPVS_DEST_ATTR_INACT_CONNS` (reply only).
    InactiveConns(u32),
    /// `IPVS_DEST_ATTR_PERSIST_CONNS` (reply only).
    PersistentConns(u32),
    /// `IPVS_DEST_ATTR_STATS` (32-bit counters).
    Stats(Vec<StatsAttribute>),
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (u16); may differ from the service's for tunnels.
    AddressFamily(u16),
    /// `IPVS_DEST_ATTR_STATS64`.
    Stats64(Vec<StatsAttribute>),
    /// `IPVS_DEST_ATTR_TUN_TYPE` (u8: ipip 0, gue 1, gre 2).
    TunnelType(u8),
    /// `IPVS_DEST_ATTR_TUN_PORT` (big-endian on the wire, host order here).
    TunnelPort(u16),
    /// `IPVS_DEST_ATTR_TUN_FLAGS` (u16 `IP_VS_TUNNEL_ENCAP_FLAG_*`).
    TunnelFlags(u16),
    /// Unknown to this codec; kept verbatim.
    Other(DefaultNla),
}

impl Nla for DestinationAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Address(_) => 16,
            Self::Port(_) | Self::AddressFamily(_) | Self::TunnelPort(_) | Self::TunnelFlags(_) => {
                2
            }
            Self::FwdMethod(_)
            | Self::Weight(_)
            | Self::UpperThreshold(_)
            | Self::LowerThreshold(_)
            | Self::ActiveConns(_)
            | Self::InactiveConns(_)
            | Self::PersistentConns(_) => 4,
            Self::TunnelType(_) => 1,
            Self::Stats(n) | Self::Stats64(n) => nested_len(n),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Address(_) => IPVS_DEST_ATTR_ADDR,
            Self::Port(_) => IPVS_DEST_ATTR_PORT,
            Self::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Self::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            Self::UpperThreshold(_) => IPVS_DEST_ATTR_U_THRESH,
            Self::LowerThreshold(_) => IPVS_DEST_ATTR_L_THRESH,
            Self::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            Self::InactiveConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            Self::PersistentConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Self::Stats(_) => IPVS_DEST_ATTR_STATS,
            Self::AddressFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Self::Stats64(_) => IPVS_DEST_ATTR_STATS64,
            Self::TunnelType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            Self::TunnelPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            Self::TunnelFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Address(a) => emit_bytes(&a.0, buffer),
            Self::Port(v) | Self::TunnelPort(v) => emit_bytes(&v.to_be_bytes(), buffer),
            Self::AddressFamily(v) | Self::TunnelFlags(v) => emit_bytes(&v.to_ne_bytes(), buffer),
            Self::FwdMethod(v)
            | Self::Weight(v)
            | Self::UpperThreshold(v)
            | Self::LowerThreshold(v)
            | Self::ActiveConns(v)
            | Self::InactiveConns(v)
            | Self::PersistentConns(v) => emit_bytes(&v.to_ne_bytes(), buffer),
            Self::TunnelType(v) => emit_bytes(&[*v], buffer),
            Self::Stats(n) | Self::Stats64(n) => emit_nested(n, buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestinationAttribute {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_DEST_ATTR_ADDR => Self::Address(RawAddr::parse(v, "IPVS_DEST_ATTR_ADDR")?),
            IPVS_DEST_ATTR_PORT => Self::Port(parse_be16(v, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => {
                Self::FwdMethod(parse_u32(v, "IPVS_DEST_ATTR_FWD_METHOD")?)
            }
            IPVS_DEST_ATTR_WEIGHT => Self::Weight(parse_u32(v, "IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => {
                Self::UpperThreshold(parse_u32(v, "IPVS_DEST_ATTR_U_THRESH")?)
            }
            IPVS_DEST_ATTR_L_THRESH => {
                Self::LowerThreshold(parse_u32(v, "IPVS_DEST_ATTR_L_THRESH")?)
            }
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                Self::ActiveConns(parse_u32(v, "IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                Self::InactiveConns(parse_u32(v, "IPVS_DEST_ATTR_INACT_CONNS")?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                Self::PersistentConns(parse_u32(v, "IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => {
                Self::Stats(parse_nested::<StatsAttribute>(v, "IPVS_DEST_ATTR_STATS")?)
            }
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                Self::AddressFamily(parse_u16(v, "IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => {
                Self::Stats64(parse_nested::<StatsAttribute>(v, "IPVS_DEST_ATTR_STATS64")?)
            }
            IPVS_DEST_ATTR_TUN_TYPE => Self::TunnelType(parse_u8(v, "IPVS_DEST_ATTR_TUN_TYPE")?),
            IPVS_DEST_ATTR_TUN_PORT => Self::TunnelPort(parse_be16(v, "IPVS_DEST_ATTR_TUN_PORT")?),
            IPVS_DEST_ATTR_TUN_FLAGS => {
                Self::TunnelFlags(parse_u16(v, "IPVS_DEST_ATTR_TUN_FLAGS")?)
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
