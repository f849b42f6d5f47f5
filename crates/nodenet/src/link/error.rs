//! Errors of the rtnetlink operations: the operation, and the errno the kernel answered.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;

use super::socket::TransportError;

/// An rtnetlink operation, named in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
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

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Connect => write!(f, "open rtnetlink socket"),
            Op::GetLink(n) => write!(f, "get link {n}"),
            Op::AddLink(n) => write!(f, "add dummy link {n}"),
            Op::DelLink(n) => write!(f, "delete link {n}"),
            Op::DumpLinks => write!(f, "list links"),
            Op::DumpAddresses => write!(f, "list addresses"),
            Op::AddAddresses(i) => write!(f, "add addresses to link #{i}"),
            Op::DelAddresses(i) => write!(f, "delete addresses from link #{i}"),
            Op::AddRoute(p) => write!(f, "add local route {p}"),
            Op::DelRoute(p) => write!(f, "delete local route {p}"),
            Op::DumpRoutes => write!(f, "list routes"),
        }
    }
}

/// Failure of a link, address or route operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The kernel refused the request.
    #[error("{op}: the kernel answered {}", errno_text(*errno))]
    Kernel {
        /// The operation.
        op: Op,
        /// Positive errno.
        errno: i32,
    },
    /// Some addresses of a batch failed (the rest were applied).
    #[error("{op}: {} address(es) failed, first {}", failed.len(), first_failure(failed))]
    Addresses {
        /// The operation.
        op: Op,
        /// Each failed address with its positive errno.
        failed: BTreeMap<IpNet, i32>,
    },
    /// No reply within the timeout.
    #[error("{op}: no answer from the kernel within {timeout:?}")]
    Timeout {
        /// The operation.
        op: Op,
        /// The bound that expired.
        timeout: Duration,
    },
    /// Socket-level failure.
    #[error("{op}: netlink socket: {source}")]
    Io {
        /// The operation.
        op: Op,
        /// The socket error (carries the errno).
        #[source]
        source: std::io::Error,
    },
    /// A reply that does not parse.
    #[error("{op}: undecodable reply: {reason}")]
    Decode {
        /// The operation.
        op: Op,
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
        op: Op,
        /// Why.
        reason: String,
    },
}

impl LinkError {
    pub(crate) fn from_transport(op: Op, e: TransportError) -> Self {
        match e {
            TransportError::Kernel(errno) => LinkError::Kernel { op, errno },
            TransportError::Timeout(timeout) => LinkError::Timeout { op, timeout },
            TransportError::Io(source) => LinkError::Io { op, source },
            TransportError::Decode(reason) => LinkError::Decode { op, reason },
            TransportError::DumpInterrupted => LinkError::Decode {
                op,
                reason: "dump interrupted by concurrent changes 3 times".into(),
            },
        }
    }

    /// The errno, when the kernel or the socket reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Kernel { errno, .. } => Some(*errno),
            LinkError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn first_failure(failed: &BTreeMap<IpNet, i32>) -> String {
    failed
        .iter()
        .next()
        .map(|(n, e)| format!("{n}: {}", errno_text(*e)))
        .unwrap_or_default()
}

/// `EEXIST (File exists)` for a positive errno.
pub(crate) fn errno_text(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    format!("{} ({})", e, e.desc())
}
