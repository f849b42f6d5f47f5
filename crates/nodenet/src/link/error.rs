//! Errors of the rtnetlink operations: the operation, and the errno the kernel answered.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use netlink_transport::Errno;

/// An rtnetlink operation, named in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkOp {
    /// Opening the netlink socket.
    Connect,
    /// RTM_GETLINK by name.
    GetLink(String),
    /// RTM_NEWLINK of a dummy device.
    AddLink(String),
    /// RTM_DELLINK.
    DelLink(String),
    /// RTM_GETLINK dump.
    DumpLinks,
    /// RTM_GETADDR dump.
    DumpAddresses,
    /// RTM_NEWADDR batch on a link index.
    AddAddresses(u32),
    /// RTM_DELADDR batch on a link index.
    DelAddresses(u32),
    /// RTM_NEWROUTE of a local route.
    AddRoute(IpNet),
    /// RTM_DELROUTE of a local route.
    DelRoute(IpNet),
    /// RTM_GETROUTE dump.
    DumpRoutes,
}

impl fmt::Display for LinkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkOp::Connect => write!(f, "open rtnetlink socket"),
            LinkOp::GetLink(n) => write!(f, "get link {n}"),
            LinkOp::AddLink(n) => write!(f, "add dummy link {n}"),
            LinkOp::DelLink(n) => write!(f, "delete link {n}"),
            LinkOp::DumpLinks => write!(f, "list links"),
            LinkOp::DumpAddresses => write!(f, "list addresses"),
            LinkOp::AddAddresses(i) => write!(f, "add addresses to link #{i}"),
            LinkOp::DelAddresses(i) => write!(f, "delete addresses from link #{i}"),
            LinkOp::AddRoute(p) => write!(f, "add local route {p}"),
            LinkOp::DelRoute(p) => write!(f, "delete local route {p}"),
            LinkOp::DumpRoutes => write!(f, "list routes"),
        }
    }
}

/// Failure of a link, address or route operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The kernel refused the request.
    #[error("{op}: the kernel answered {errno}")]
    Kernel {
        /// The operation.
        op: LinkOp,
        /// The errno.
        errno: Errno,
    },
    /// Some addresses of a batch failed (the rest were applied).
    #[error("{op}: {} address(es) failed, first {}", failed.len(), first_failure(failed))]
    Addresses {
        /// The operation.
        op: LinkOp,
        /// Each failed address with its errno.
        failed: BTreeMap<IpNet, Errno>,
    },
    /// No reply within the timeout.
    #[error("{op}: no answer from the kernel within {timeout:?}")]
    Timeout {
        /// The operation.
        op: LinkOp,
        /// The bound that expired.
        timeout: Duration,
    },
    /// Any other transport failure: the socket, lost replies, an undecodable reply, a dump
    /// that kept being interrupted, the namespace.
    #[error("{op}: {source}")]
    Transport {
        /// The operation.
        op: LinkOp,
        /// The transport's error (carries the errno).
        #[source]
        source: netlink_transport::Error,
    },
    /// A reply that does not parse.
    #[error("{op}: undecodable reply: {reason}")]
    Decode {
        /// The operation.
        op: LinkOp,
        /// What was wrong.
        reason: String,
    },
    /// A link of the wanted name exists with another kind.
    #[error("link {name} exists but is of kind {kind}, not dummy; refusing to use it")]
    NotDummy {
        /// Link name.
        name: String,
        /// Its kind.
        kind: String,
    },
    /// The link disappeared right after being created.
    #[error("link {0} vanished right after it was created")]
    Vanished(String),
    /// An argument the kernel cannot take.
    #[error("{op}: invalid argument: {reason}")]
    Invalid {
        /// The operation.
        op: LinkOp,
        /// Why.
        reason: String,
    },
}

impl LinkError {
    pub(crate) fn from_transport(op: LinkOp, e: netlink_transport::Error) -> Self {
        use netlink_transport::Error as T;
        match e {
            T::Kernel(errno) => LinkError::Kernel { op, errno },
            T::Timeout(timeout) => LinkError::Timeout { op, timeout },
            other => LinkError::Transport { op, source: other },
        }
    }

    /// The errno, when the kernel or the socket reported one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            LinkError::Kernel { errno, .. } => Some(*errno),
            LinkError::Addresses { failed, .. } => failed.values().next().copied(),
            LinkError::Timeout { .. } => Some(Errno::ETIMEDOUT),
            LinkError::Transport { source, .. } => source.errno(),
            _ => None,
        }
    }
}

fn first_failure(failed: &BTreeMap<IpNet, Errno>) -> String {
    failed
        .iter()
        .next()
        .map(|(n, e)| format!("{n}: {e}"))
        .unwrap_or_default()
}
