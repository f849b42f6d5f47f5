//! `IPVS_STATS_ATTR_*`: the nest inside `IPVS_SVC_ATTR_STATS(64)` and `IPVS_DEST_ATTR_STATS(64)`.

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};

use crate::nla::{parse_u32, parse_u64};

const IPVS_STATS_ATTR_CONNS: u16 = 1;
const IPVS_STATS_ATTR_INPKTS: u16 = 2;
const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
const IPVS_STATS_ATTR_INBYTES: u16 = 4;
const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
const IPVS_STATS_ATTR_CPS: u16 = 6;
const IPVS_STATS_ATTR_INPPS: u16 = 7;
const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
const IPVS_STATS_ATTR_INBPS: u16 = 9;
const IPVS_STATS_ATTR_OUTBPS: u16 = 10;

/// A counter as it travels: `STATS` uses u32 (u64 for bytes), `STATS64` u64 throughout.
///
/// The width is kept so that a decoded message re-encodes to the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsValue {
    /// A 4-byte counter.
    U32(u32),
    /// An 8-byte counter.
    U64(u64),
}

impl StatsValue {
    /// The value, widened.
    pub fn get(self) -> u64 {
        match self {
            Self::U32(v) => u64::from(v),
            Self::U64(v) => v,
        }
    }

    fn len(self) -> usize {
        match self {
            Self::U32(_) => 4,
            Self::U64(_) => 8,
        }
    }

    fn emit(self, buffer: &mut [u8]) {
        match self {
            Self::U32(v) => crate::nla::emit_bytes(&v.to_ne_bytes(), buffer),
            Self::U64(v) => crate::nla::emit_bytes(&v.to_ne_bytes(), buffer),
        }
    }

    fn parse(value: &[u8], what: &str) -> Result<Self, DecodeError> {
        match value.len() {
            4 => parse_u32(value, what).map(Self::U32),
            _ => parse_u64(value, what).map(Self::U64),
        }
    }
}

/// One statistics attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsAttribute {
    /// Connections scheduled.
    Conns(StatsValue),
    /// Incoming packets.
    InPkts(StatsValue),
    /// Outgoing packets.
    OutPkts(StatsValue),
    /// Incoming bytes.
    InBytes(StatsValue),
    /// Outgoing bytes.
    OutBytes(StatsValue),
    /// Connection rate (per second, estimator).
    Cps(StatsValue),
    /// Incoming packet rate.
    InPps(StatsValue),
    /// Outgoing packet rate.
    OutPps(StatsValue),
    /// Incoming byte rate.
    InBps(StatsValue),
    /// Outgoing byte rate.
    OutBps(StatsValue),
    /// Anything else (e.g. `IPVS_STATS_ATTR_PAD`), kept verbatim.
    Other(DefaultNla),
}

impl Nla for StatsAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Conns(v)
            | Self::InPkts(v)
            | Self::OutPkts(v)
            | Self::InBytes(v)
            | Self::OutBytes(v)
            | Self::Cps(v)
            | Self::InPps(v)
            | Self::OutPps(v)
            | Self::InBps(v)
            | Self::OutBps(v) => v.len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Conns(_) => IPVS_STATS_ATTR_CONNS,
            Self::InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            Self::OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            Self::InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            Self::OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            Self::Cps(_) => IPVS_STATS_ATTR_CPS,
            Self::InPps(_) => IPVS_STATS_ATTR_INPPS,
            Self::OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            Self::InBps(_) => IPVS_STATS_ATTR_INBPS,
            Self::OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Conns(v)
            | Self::InPkts(v)
            | Self::OutPkts(v)
            | Self::InBytes(v)
            | Self::OutBytes(v)
            | Self::Cps(v)
            | Self::InPps(v)
            | Self::OutPps(v)
            | Self::InBps(v)
            | Self::OutBps(v) => v.emit(buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for StatsAttribute {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_STATS_ATTR_CONNS => Self::Conns(StatsValue::parse(v, "IPVS_STATS_ATTR_CONNS")?),
            IPVS_STATS_ATTR_INPKTS => Self::InPkts(StatsValue::parse(v, "IPVS_STATS_ATTR_INPKTS")?),
            IPVS_STATS_ATTR_OUTPKTS => {
                Self::OutPkts(StatsValue::parse(v, "IPVS_STATS_ATTR_OUTPKTS")?)
            }
            IPVS_STATS_ATTR_INBYTES => {
                Self::InBytes(StatsValue::parse(v, "IPVS_STATS_ATTR_INBYTES")?)
            }
            IPVS_STATS_ATTR_OUTBYTES => {
                Self::OutBytes(StatsValue::parse(v, "IPVS_STATS_ATTR_OUTBYTES")?)
            }
            IPVS_STATS_ATTR_CPS => Self::Cps(StatsValue::parse(v, "IPVS_STATS_ATTR_CPS")?),
            IPVS_STATS_ATTR_INPPS => Self::InPps(StatsValue::parse(v, "IPVS_STATS_ATTR_INPPS")?),
            IPVS_STATS_ATTR_OUTPPS => Self::OutPps(StatsValue::parse(v, "IPVS_STATS_ATTR_OUTPPS")?),
            IPVS_STATS_ATTR_INBPS => Self::InBps(StatsValue::parse(v, "IPVS_STATS_ATTR_INBPS")?),
            IPVS_STATS_ATTR_OUTBPS => Self::OutBps(StatsValue::parse(v, "IPVS_STATS_ATTR_OUTBPS")?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
