//! The IPVS generic-netlink message: a command plus top-level attributes, decoded by command.

use netlink_packet_core::{
    DecodeError as WireError, DefaultNla, Emitable, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator,
    Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::daemon::DaemonAttribute;
use crate::destination::DestinationAttribute;
use crate::info::InfoAttribute;
use crate::nla::{emit_bytes, emit_nested, emit_one, nested_len, parse_nested, parse_u32};
use crate::service::ServiceAttribute;

/// `IPVS_GENL_NAME`.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const IPVS_GENL_VERSION: u8 = 1;

const IPVS_CMD_NEW_SERVICE: u8 = 1;
const IPVS_CMD_SET_SERVICE: u8 = 2;
const IPVS_CMD_DEL_SERVICE: u8 = 3;
const IPVS_CMD_GET_SERVICE: u8 = 4;
const IPVS_CMD_NEW_DEST: u8 = 5;
const IPVS_CMD_SET_DEST: u8 = 6;
const IPVS_CMD_DEL_DEST: u8 = 7;
const IPVS_CMD_GET_DEST: u8 = 8;
const IPVS_CMD_NEW_DAEMON: u8 = 9;
const IPVS_CMD_DEL_DAEMON: u8 = 10;
const IPVS_CMD_GET_DAEMON: u8 = 11;
const IPVS_CMD_SET_CONFIG: u8 = 12;
const IPVS_CMD_GET_CONFIG: u8 = 13;
const IPVS_CMD_SET_INFO: u8 = 14;
const IPVS_CMD_GET_INFO: u8 = 15;
const IPVS_CMD_ZERO: u8 = 16;
const IPVS_CMD_FLUSH: u8 = 17;

const IPVS_CMD_ATTR_SERVICE: u16 = 1;
const IPVS_CMD_ATTR_DEST: u16 = 2;
const IPVS_CMD_ATTR_DAEMON: u16 = 3;
const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

/// `IPVS_CMD_*`. Replies reuse commands: GET_SERVICE is answered by NEW_SERVICE, GET_DEST by
/// NEW_DEST, GET_INFO by SET_INFO, GET_CONFIG by SET_CONFIG, GET_DAEMON by NEW_DAEMON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvsCmd {
    /// Add a service.
    NewService,
    /// Modify a service.
    SetService,
    /// Delete a service.
    DelService,
    /// Get one service (do) or all (dump).
    GetService,
    /// Add a destination.
    NewDest,
    /// Modify a destination.
    SetDest,
    /// Delete a destination.
    DelDest,
    /// Dump a service's destinations.
    GetDest,
    /// Start a sync daemon.
    NewDaemon,
    /// Stop a sync daemon.
    DelDaemon,
    /// Dump sync daemons.
    GetDaemon,
    /// Set timeouts.
    SetConfig,
    /// Get timeouts.
    GetConfig,
    /// GET_INFO's reply.
    SetInfo,
    /// Get version and table size.
    GetInfo,
    /// Zero counters (all, or one service).
    Zero,
    /// Delete every service.
    Flush,
    /// A command number this codec does not know.
    Other(u8),
}

impl From<u8> for IpvsCmd {
    fn from(n: u8) -> Self {
        match n {
            IPVS_CMD_NEW_SERVICE => Self::NewService,
            IPVS_CMD_SET_SERVICE => Self::SetService,
            IPVS_CMD_DEL_SERVICE => Self::DelService,
            IPVS_CMD_GET_SERVICE => Self::GetService,
            IPVS_CMD_NEW_DEST => Self::NewDest,
            IPVS_CMD_SET_DEST => Self::SetDest,
            IPVS_CMD_DEL_DEST => Self::DelDest,
            IPVS_CMD_GET_DEST => Self::GetDest,
            IPVS_CMD_NEW_DAEMON => Self::NewDaemon,
            IPVS_CMD_DEL_DAEMON => Self::DelDaemon,
            IPVS_CMD_GET_DAEMON => Self::GetDaemon,
            IPVS_CMD_SET_CONFIG => Self::SetConfig,
            IPVS_CMD_GET_CONFIG => Self::GetConfig,
            IPVS_CMD_SET_INFO => Self::SetInfo,
            IPVS_CMD_GET_INFO => Self::GetInfo,
            IPVS_CMD_ZERO => Self::Zero,
            IPVS_CMD_FLUSH => Self::Flush,
            other => Self::Other(other),
        }
    }
}

impl From<IpvsCmd> for u8 {
    fn from(c: IpvsCmd) -> u8 {
        match c {
            IpvsCmd::NewService => IPVS_CMD_NEW_SERVICE,
            IpvsCmd::SetService => IPVS_CMD_SET_SERVICE,
            IpvsCmd::DelService => IPVS_CMD_DEL_SERVICE,
            IpvsCmd::GetService => IPVS_CMD_GET_SERVICE,
            IpvsCmd::NewDest => IPVS_CMD_NEW_DEST,
            IpvsCmd::SetDest => IPVS_CMD_SET_DEST,
            IpvsCmd::DelDest => IPVS_CMD_DEL_DEST,
            IpvsCmd::GetDest => IPVS_CMD_GET_DEST,
            IpvsCmd::NewDaemon => IPVS_CMD_NEW_DAEMON,
            IpvsCmd::DelDaemon => IPVS_CMD_DEL_DAEMON,
            IpvsCmd::GetDaemon => IPVS_CMD_GET_DAEMON,
            IpvsCmd::SetConfig => IPVS_CMD_SET_CONFIG,
            IpvsCmd::GetConfig => IPVS_CMD_GET_CONFIG,
            IpvsCmd::SetInfo => IPVS_CMD_SET_INFO,
            IpvsCmd::GetInfo => IPVS_CMD_GET_INFO,
            IpvsCmd::Zero => IPVS_CMD_ZERO,
            IpvsCmd::Flush => IPVS_CMD_FLUSH,
            IpvsCmd::Other(n) => n,
        }
    }
}

/// A top-level attribute (`IPVS_CMD_ATTR_*`, or `IPVS_INFO_ATTR_*` in SET/GET_INFO messages).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpvsAttribute {
    /// `IPVS_CMD_ATTR_SERVICE` nest.
    Service(Vec<ServiceAttribute>),
    /// `IPVS_CMD_ATTR_DEST` nest.
    Destination(Vec<DestinationAttribute>),
    /// `IPVS_CMD_ATTR_DAEMON` nest.
    Daemon(Vec<DaemonAttribute>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP` (seconds).
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN` (seconds).
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP` (seconds).
    TimeoutUdp(u32),
    /// An info attribute (only in SET_INFO/GET_INFO messages).
    Info(InfoAttribute),
    /// Unknown; kept verbatim.
    Other(DefaultNla),
}

impl Nla for IpvsAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Service(n) => nested_len(n),
            Self::Destination(n) => nested_len(n),
            Self::Daemon(n) => nested_len(n),
            Self::TimeoutTcp(_) | Self::TimeoutTcpFin(_) | Self::TimeoutUdp(_) => 4,
            Self::Info(nla) => nla.value_len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Service(_) => IPVS_CMD_ATTR_SERVICE,
            Self::Destination(_) => IPVS_CMD_ATTR_DEST,
            Self::Daemon(_) => IPVS_CMD_ATTR_DAEMON,
            Self::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            Self::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            Self::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            Self::Info(nla) => nla.kind(),
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Service(n) => emit_nested(n, buffer),
            Self::Destination(n) => emit_nested(n, buffer),
            Self::Daemon(n) => emit_nested(n, buffer),
            Self::TimeoutTcp(v) | Self::TimeoutTcpFin(v) | Self::TimeoutUdp(v) => {
                emit_bytes(&v.to_ne_bytes(), buffer);
            }
            Self::Info(nla) => nla.emit_value(buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl IpvsAttribute {
    /// SERVICE, DEST and DAEMON are nests.
    pub fn is_nest(&self) -> bool {
        matches!(
            self,
            Self::Service(_) | Self::Destination(_) | Self::Daemon(_)
        )
    }

    /// Parse a top-level attribute of a message carrying command `cmd`.
    pub fn parse_for(buf: &NlaBuffer<&[u8]>, cmd: IpvsCmd) -> Result<Self, WireError> {
        if matches!(cmd, IpvsCmd::SetInfo | IpvsCmd::GetInfo) {
            return InfoAttribute::parse(buf).map(Self::Info);
        }
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_CMD_ATTR_SERVICE => Self::Service(parse_nested::<ServiceAttribute>(
                v,
                "IPVS_CMD_ATTR_SERVICE",
            )?),
            IPVS_CMD_ATTR_DEST => Self::Destination(parse_nested::<DestinationAttribute>(
                v,
                "IPVS_CMD_ATTR_DEST",
            )?),
            IPVS_CMD_ATTR_DAEMON => {
                Self::Daemon(parse_nested::<DaemonAttribute>(v, "IPVS_CMD_ATTR_DAEMON")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP => {
                Self::TimeoutTcp(parse_u32(v, "IPVS_CMD_ATTR_TIMEOUT_TCP")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                Self::TimeoutTcpFin(parse_u32(v, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => {
                Self::TimeoutUdp(parse_u32(v, "IPVS_CMD_ATTR_TIMEOUT_UDP")?)
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One IPVS message: the generic-netlink command and its attributes (IPVS has no family header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The command.
    pub cmd: IpvsCmd,
    /// Top-level attributes.
    pub attributes: Vec<IpvsAttribute>,
    /// Whether the SERVICE/DEST/DAEMON nests carry `NLA_F_NESTED`. ipvsadm (libnl) sets it on
    /// requests, the kernel's replies do not; the kernel accepts both. Kept so that a decoded
    /// message re-encodes byte for byte.
    pub nested_flag: bool,
}

impl IpvsMessage {
    /// A request with `cmd` and `attributes`; nests are flagged `NLA_F_NESTED`, as ipvsadm does
    /// (`nested_flag` is only true when there is a nest to flag).
    pub fn new(cmd: IpvsCmd, attributes: Vec<IpvsAttribute>) -> Self {
        let nested_flag = attributes.iter().any(IpvsAttribute::is_nest);
        Self {
            cmd,
            attributes,
            nested_flag,
        }
    }

    /// Parse the attribute payload (after the genl header) of a message with command `cmd`.
    pub fn parse_payload(payload: &[u8], cmd: IpvsCmd) -> Result<Self, WireError> {
        let mut attributes = Vec::new();
        let mut nested_flag = false;
        for nla in NlasIterator::new(payload) {
            let nla = nla?;
            let attr = IpvsAttribute::parse_for(&nla, cmd)?;
            if attr.is_nest() && nla.nested_flag() {
                nested_flag = true;
            }
            attributes.push(attr);
        }
        Ok(Self {
            cmd,
            attributes,
            nested_flag,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        nested_len(&self.attributes)
    }

    fn emit(&self, buffer: &mut [u8]) {
        let mut rest = buffer;
        for nla in &self.attributes {
            let len = nla.buffer_len().min(rest.len());
            let (head, tail) = rest.split_at_mut(len);
            emit_one(nla, head);
            if self.nested_flag && nla.is_nest() {
                // nla_type is bytes 2..4 of the attribute header.
                if let Some(kind) = head.get_mut(2..4)
                    && let Ok(raw) = <[u8; 2]>::try_from(&*kind)
                {
                    kind.copy_from_slice(&(u16::from_ne_bytes(raw) | NLA_F_NESTED).to_ne_bytes());
                }
            }
            rest = tail;
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, WireError> {
        Self::parse_payload(buf, IpvsCmd::from(header.cmd))
    }
}
