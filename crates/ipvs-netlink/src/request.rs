//! Building requests and reading replies: the messages each ipvsadm command sends.

use std::net::IpAddr;

use crate::AddressFamily;
use crate::config::Timeouts;
use crate::daemon::Daemon;
use crate::destination::Destination;
use crate::error::DecodeError;
use crate::info::{Info, InfoAttribute};
use crate::message::{IpvsAttribute, IpvsCmd, IpvsMessage};
use crate::service::{Service, VirtualServiceKey};

impl IpvsMessage {
    /// `ipvsadm -A`: NEW_SERVICE.
    pub fn new_service(service: &Service) -> Self {
        Self::new(
            IpvsCmd::NewService,
            vec![IpvsAttribute::Service(service.to_attributes())],
        )
    }

    /// `ipvsadm -E`: SET_SERVICE (full entry; flags sent with mask `!0`).
    pub fn set_service(service: &Service) -> Self {
        Self::new(
            IpvsCmd::SetService,
            vec![IpvsAttribute::Service(service.to_attributes())],
        )
    }

    /// `ipvsadm -D`: DEL_SERVICE.
    pub fn del_service(key: &VirtualServiceKey) -> Self {
        Self::new(
            IpvsCmd::DelService,
            vec![IpvsAttribute::Service(key.to_attributes())],
        )
    }

    /// GET_SERVICE for one service (a "do" request).
    pub fn get_service(key: &VirtualServiceKey) -> Self {
        Self::new(
            IpvsCmd::GetService,
            vec![IpvsAttribute::Service(key.to_attributes())],
        )
    }

    /// GET_SERVICE without attributes: send with `NLM_F_DUMP`.
    pub fn dump_services() -> Self {
        Self::new(IpvsCmd::GetService, Vec::new())
    }

    /// `ipvsadm -a`: NEW_DEST.
    pub fn new_dest(service: &VirtualServiceKey, dest: &Destination) -> Self {
        Self::new(
            IpvsCmd::NewDest,
            vec![
                IpvsAttribute::Service(service.to_attributes()),
                IpvsAttribute::Destination(dest.to_attributes()),
            ],
        )
    }

    /// `ipvsadm -e`: SET_DEST.
    pub fn set_dest(service: &VirtualServiceKey, dest: &Destination) -> Self {
        Self::new(
            IpvsCmd::SetDest,
            vec![
                IpvsAttribute::Service(service.to_attributes()),
                IpvsAttribute::Destination(dest.to_attributes()),
            ],
        )
    }

    /// `ipvsadm -d`: DEL_DEST.
    pub fn del_dest(service: &VirtualServiceKey, addr: IpAddr, port: u16) -> Self {
        Self::new(
            IpvsCmd::DelDest,
            vec![
                IpvsAttribute::Service(service.to_attributes()),
                IpvsAttribute::Destination(Destination::key_attributes(addr, port)),
            ],
        )
    }

    /// GET_DEST for one service: send with `NLM_F_DUMP` (the kernel only dumps destinations).
    pub fn dump_dests(service: &VirtualServiceKey) -> Self {
        Self::new(
            IpvsCmd::GetDest,
            vec![IpvsAttribute::Service(service.to_attributes())],
        )
    }

    /// GET_INFO.
    pub fn get_info() -> Self {
        Self::new(IpvsCmd::GetInfo, Vec::new())
    }

    /// GET_CONFIG (`ipvsadm -L --timeout`).
    pub fn get_config() -> Self {
        Self::new(IpvsCmd::GetConfig, Vec::new())
    }

    /// SET_CONFIG (`ipvsadm --set`); zero fields are left unchanged by the kernel.
    pub fn set_config(timeouts: &Timeouts) -> Self {
        Self::new(IpvsCmd::SetConfig, timeouts.to_attributes())
    }

    /// GET_DAEMON: send with `NLM_F_DUMP`.
    pub fn dump_daemons() -> Self {
        Self::new(IpvsCmd::GetDaemon, Vec::new())
    }

    /// `ipvsadm -Z [service]`: ZERO all counters, or one service's.
    pub fn zero(service: Option<&VirtualServiceKey>) -> Self {
        let attrs = service
            .map(|k| vec![IpvsAttribute::Service(k.to_attributes())])
            .unwrap_or_default();
        Self::new(IpvsCmd::Zero, attrs)
    }

    /// `ipvsadm -C`: FLUSH.
    pub fn flush() -> Self {
        Self::new(IpvsCmd::Flush, Vec::new())
    }

    /// The service in a NEW_SERVICE reply (or request).
    pub fn service(&self) -> Result<Service, DecodeError> {
        self.attributes
            .iter()
            .find_map(|a| match a {
                IpvsAttribute::Service(n) => Some(Service::from_attributes(n)),
                _ => None,
            })
            .unwrap_or(Err(DecodeError::Missing {
                object: "message",
                attribute: "IPVS_CMD_ATTR_SERVICE",
            }))
    }

    /// The service identity in any message carrying a service nest.
    pub fn service_key(&self) -> Result<VirtualServiceKey, DecodeError> {
        self.attributes
            .iter()
            .find_map(|a| match a {
                IpvsAttribute::Service(n) => Some(VirtualServiceKey::from_attributes(n)),
                _ => None,
            })
            .unwrap_or(Err(DecodeError::Missing {
                object: "message",
                attribute: "IPVS_CMD_ATTR_SERVICE",
            }))
    }

    /// The destination in a NEW_DEST reply; `service_family` is used if the nest has no family.
    pub fn destination(&self, service_family: AddressFamily) -> Result<Destination, DecodeError> {
        self.attributes
            .iter()
            .find_map(|a| match a {
                IpvsAttribute::Destination(n) => {
                    Some(Destination::from_attributes(n, service_family))
                }
                _ => None,
            })
            .unwrap_or(Err(DecodeError::Missing {
                object: "message",
                attribute: "IPVS_CMD_ATTR_DEST",
            }))
    }

    /// The info in a SET_INFO reply.
    pub fn info(&self) -> Result<Info, DecodeError> {
        let nlas: Vec<InfoAttribute> = self
            .attributes
            .iter()
            .filter_map(|a| match a {
                IpvsAttribute::Info(i) => Some(i.clone()),
                _ => None,
            })
            .collect();
        Info::from_attributes(&nlas)
    }

    /// The timeouts in a SET_CONFIG reply.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts::from_attributes(&self.attributes)
    }

    /// The daemon in a NEW_DAEMON reply.
    pub fn daemon(&self) -> Result<Daemon, DecodeError> {
        self.attributes
            .iter()
            .find_map(|a| match a {
                IpvsAttribute::Daemon(n) => Some(Daemon::from_attributes(n)),
                _ => None,
            })
            .unwrap_or(Err(DecodeError::Missing {
                object: "message",
                attribute: "IPVS_CMD_ATTR_DAEMON",
            }))
    }
}
