//! One state-changing operation, as `ipvsadm -R` would read it from a line.

use std::net::IpAddr;

use netlink_transport::Errno;

use crate::client::Error;
use crate::config::Timeouts;
use crate::destination::Destination;
use crate::message::IpvsMessage;
use crate::service::{MAX_SCHEDULER_LEN, Service, VirtualServiceKey};

/// A change to the IPVS table. [`crate::Client::apply`] runs many of them pipelined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsOp {
    /// `ipvsadm -A`.
    AddService(Service),
    /// `ipvsadm -E`.
    UpdateService(Service),
    /// `ipvsadm -D`.
    DeleteService(VirtualServiceKey),
    /// `ipvsadm -a`.
    AddDestination(VirtualServiceKey, Destination),
    /// `ipvsadm -e`.
    UpdateDestination(VirtualServiceKey, Destination),
    /// `ipvsadm -d`.
    DeleteDestination {
        /// The service.
        service: VirtualServiceKey,
        /// Destination address.
        addr: IpAddr,
        /// Destination port.
        port: u16,
    },
    /// `ipvsadm -Z [service]`.
    Zero(Option<VirtualServiceKey>),
    /// `ipvsadm -C`.
    Flush,
    /// `ipvsadm --set`.
    SetTimeouts(Timeouts),
}

impl IpvsOp {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddService(_) => "add service",
            Self::UpdateService(_) => "update service",
            Self::DeleteService(_) => "delete service",
            Self::AddDestination(..) => "add destination",
            Self::UpdateDestination(..) => "update destination",
            Self::DeleteDestination { .. } => "delete destination",
            Self::Zero(_) => "zero counters",
            Self::Flush => "flush",
            Self::SetTimeouts(_) => "set timeouts",
        }
    }

    /// What the operation applies to, for error messages.
    pub fn target(&self) -> String {
        fn dest(addr: &IpAddr, port: u16) -> String {
            match addr {
                IpAddr::V4(a) => format!("{a}:{port}"),
                IpAddr::V6(a) => format!("[{a}]:{port}"),
            }
        }
        match self {
            Self::AddService(s) | Self::UpdateService(s) => s.key.to_string(),
            Self::DeleteService(k) | Self::Zero(Some(k)) => k.to_string(),
            Self::AddDestination(k, d) | Self::UpdateDestination(k, d) => {
                format!("{k} -> {}", dest(&d.addr, d.port))
            }
            Self::DeleteDestination {
                service,
                addr,
                port,
            } => format!("{service} -> {}", dest(addr, *port)),
            Self::Zero(None) | Self::Flush => "all services".into(),
            Self::SetTimeouts(t) => format!("tcp {} tcpfin {} udp {}", t.tcp, t.tcp_fin, t.udp),
        }
    }

    /// This operation refused for `reason` before sending.
    pub(crate) fn invalid(&self, reason: String) -> Error {
        Error::InvalidArgument {
            op: self.name(),
            target: self.target(),
            reason,
        }
    }

    /// Refuse values the kernel would misread, before sending.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| self.invalid(reason);
        match self {
            Self::AddService(s) | Self::UpdateService(s) => {
                if let VirtualServiceKey::Fwmark { mark: 0, .. } = s.key {
                    return Err(invalid("firewall mark 0 is not a mark".into()));
                }
                if s.pe_name
                    .as_ref()
                    .is_some_and(|p| p.is_empty() || p.len() > MAX_SCHEDULER_LEN)
                {
                    return Err(invalid(
                        "persistence engine name must be 1 to 15 bytes".into(),
                    ));
                }
                if s.netmask > s.key.family().max_prefix() {
                    return Err(invalid(format!(
                        "netmask /{} is longer than the address",
                        s.netmask
                    )));
                }
            }
            Self::AddDestination(_, d) | Self::UpdateDestination(_, d)
                if i32::try_from(d.weight).is_err() =>
            {
                return Err(invalid(format!("weight {} exceeds {}", d.weight, i32::MAX)));
            }
            _ => {}
        }
        Ok(())
    }

    /// The request message.
    pub fn message(&self) -> IpvsMessage {
        match self {
            Self::AddService(s) => IpvsMessage::new_service(s),
            Self::UpdateService(s) => IpvsMessage::set_service(s),
            Self::DeleteService(k) => IpvsMessage::del_service(k),
            Self::AddDestination(k, d) => IpvsMessage::new_dest(k, d),
            Self::UpdateDestination(k, d) => IpvsMessage::set_dest(k, d),
            Self::DeleteDestination {
                service,
                addr,
                port,
            } => IpvsMessage::del_dest(service, *addr, *port),
            Self::Zero(k) => IpvsMessage::zero(k.as_ref()),
            Self::Flush => IpvsMessage::flush(),
            Self::SetTimeouts(t) => IpvsMessage::set_config(t),
        }
    }

    /// Turn the kernel's errno for this operation into an [`Error`].
    pub fn error(&self, errno: Errno) -> Error {
        let (op, target) = (self.name(), self.target());
        let is_dest = matches!(
            self,
            Self::AddDestination(..) | Self::UpdateDestination(..) | Self::DeleteDestination { .. }
        );
        match errno {
            Errno::EPERM | Errno::EACCES => Error::PermissionDenied { op },
            Errno::EEXIST if is_dest => Error::DestinationExists { op, target },
            Errno::EEXIST => Error::ServiceExists { op, target },
            Errno::ESRCH => Error::NoSuchService { op, target },
            Errno::ENOENT if is_dest => Error::NoSuchDestination { op, target },
            Errno::ENOENT => match self {
                Self::AddService(s) | Self::UpdateService(s) => Error::UnknownScheduler {
                    op,
                    target,
                    scheduler: s.scheduler.to_string(),
                },
                _ => Error::Errno { op, target, errno },
            },
            Errno::EINVAL if is_dest => Error::InvalidArgument {
                op,
                target,
                reason: "the kernel refused the request (EINVAL); IPv4 destinations are refused while the \
                         namespace has no address at all (no local routing table: bring `lo` up), and a \
                         destination of another family than its service needs tunnel forwarding"
                    .into(),
            },
            Errno::EINVAL => Error::InvalidArgument {
                op,
                target,
                reason: "the kernel refused the request (EINVAL)".into(),
            },
            _ => Error::Errno { op, target, errno },
        }
    }
}
