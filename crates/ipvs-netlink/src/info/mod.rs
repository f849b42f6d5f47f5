//! General information (`ipvsadm -L` header line "IP Virtual Server version 1.2.1 (size=4096)"):
//! the GET_INFO request, answered by a SET_INFO message.

use netlink_packet_core::{DecodeError as WireError, DefaultNla, Nla, NlaBuffer, Parseable};

use crate::error::DecodeError;
use crate::nla::{emit_bytes, parse_u32};

const IPVS_INFO_ATTR_VERSION: u16 = 1;
const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

/// A top-level attribute of a SET_INFO reply. Its numbers collide with SERVICE/DEST, which is why
/// messages are decoded by command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoAttribute {
    /// `IPVS_INFO_ATTR_VERSION`: `IP_VS_VERSION_CODE`, e.g. 0x010201.
    Version(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`: connection hash table size.
    ConnTabSize(u32),
    /// Unknown; kept verbatim.
    Other(DefaultNla),
}

impl Nla for InfoAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Version(_) | Self::ConnTabSize(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Version(_) => IPVS_INFO_ATTR_VERSION,
            Self::ConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Version(v) | Self::ConnTabSize(v) => emit_bytes(&v.to_ne_bytes(), buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for InfoAttribute {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, WireError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_INFO_ATTR_VERSION => Self::Version(parse_u32(v, "IPVS_INFO_ATTR_VERSION")?),
            IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                Self::ConnTabSize(parse_u32(v, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?)
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// IPVS version and connection table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// `IP_VS_VERSION_CODE` (0x010201 = 1.2.1).
    pub version: u32,
    /// Size of the connection hash table (`size=` in `ipvsadm -L`).
    pub conn_tab_size: u32,
}

impl Info {
    /// Version as (major, minor, patch).
    pub fn version_triple(&self) -> (u32, u32, u32) {
        (
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff,
        )
    }

    /// Build from a SET_INFO reply's attributes.
    pub fn from_attributes(nlas: &[InfoAttribute]) -> Result<Self, DecodeError> {
        let mut version = None;
        let mut size = None;
        for nla in nlas {
            match nla {
                InfoAttribute::Version(v) => version = Some(*v),
                InfoAttribute::ConnTabSize(v) => size = Some(*v),
                InfoAttribute::Other(_) => {}
            }
        }
        Ok(Self {
            version: version.ok_or(DecodeError::Missing {
                object: "info",
                attribute: "IPVS_INFO_ATTR_VERSION",
            })?,
            conn_tab_size: size.ok_or(DecodeError::Missing {
                object: "info",
                attribute: "IPVS_INFO_ATTR_CONN_TAB_SIZE",
            })?,
        })
    }
}
