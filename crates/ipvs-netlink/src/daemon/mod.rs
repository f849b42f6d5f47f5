//! Connection-sync daemon state (`ipvsadm -L --daemon`): the GET_DAEMON dump.

mod attribute;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use attribute::DaemonAttribute;

use crate::error::DecodeError;

const IP_VS_STATE_MASTER: u32 = 0x0001;
const IP_VS_STATE_BACKUP: u32 = 0x0002;

/// Role of a sync daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonState {
    /// Sends connection state.
    Master,
    /// Receives connection state.
    Backup,
    /// A value this codec does not know.
    Other(u32),
}

impl DaemonState {
    fn from_number(n: u32) -> Self {
        match n {
            IP_VS_STATE_MASTER => Self::Master,
            IP_VS_STATE_BACKUP => Self::Backup,
            other => Self::Other(other),
        }
    }
}

/// One running sync daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Master or backup.
    pub state: DaemonState,
    /// Multicast interface.
    pub mcast_ifn: String,
    /// Sync ID.
    pub sync_id: u32,
    /// Maximum sync message payload, if reported.
    pub sync_maxlen: Option<u16>,
    /// Multicast group, if reported.
    pub mcast_group: Option<IpAddr>,
    /// Multicast port, if reported.
    pub mcast_port: Option<u16>,
    /// Multicast TTL, if reported.
    pub mcast_ttl: Option<u8>,
}

impl Daemon {
    /// Build from a daemon nest.
    pub fn from_attributes(nlas: &[DaemonAttribute]) -> Result<Self, DecodeError> {
        let mut state = None;
        let mut d = Self {
            state: DaemonState::Other(0),
            mcast_ifn: String::new(),
            sync_id: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        for nla in nlas {
            match nla {
                DaemonAttribute::State(v) => state = Some(DaemonState::from_number(*v)),
                DaemonAttribute::McastIfn(v) => d.mcast_ifn.clone_from(v),
                DaemonAttribute::SyncId(v) => d.sync_id = *v,
                DaemonAttribute::SyncMaxLen(v) => d.sync_maxlen = Some(*v),
                DaemonAttribute::McastGroup(v) => {
                    d.mcast_group = Some(IpAddr::V4(Ipv4Addr::from(*v)))
                }
                DaemonAttribute::McastGroup6(v) => {
                    d.mcast_group = Some(IpAddr::V6(Ipv6Addr::from(*v)))
                }
                DaemonAttribute::McastPort(v) => d.mcast_port = Some(*v),
                DaemonAttribute::McastTtl(v) => d.mcast_ttl = Some(*v),
                DaemonAttribute::Other(_) => {}
            }
        }
        d.state = state.ok_or(DecodeError::Missing {
            object: "daemon",
            attribute: "IPVS_DAEMON_ATTR_STATE",
        })?;
        Ok(d)
    }
}
