//! Errors of the client: what failed (the operation and its target) and why (the errno).

use std::time::Duration;

use netlink_transport::Errno;

use crate::error::DecodeError;

/// An IPVS client error. Every variant names the operation; kernel errors keep the errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The generic netlink family "IPVS" does not exist in this kernel / namespace.
    #[error(
        "IPVS is not available: the generic netlink family \"IPVS\" is not registered (load the ip_vs kernel module: `modprobe ip_vs`)"
    )]
    ModuleNotLoaded,
    /// EPERM/EACCES.
    #[error("{op}: permission denied (IPVS needs CAP_NET_ADMIN in the target network namespace)")]
    PermissionDenied {
        /// Operation.
        op: &'static str,
    },
    /// EEXIST on NEW_SERVICE.
    #[error("{op} {target}: service already exists")]
    ServiceExists {
        /// Operation.
        op: &'static str,
        /// The service.
        target: String,
    },
    /// ESRCH: the service does not exist.
    #[error("{op} {target}: no such service")]
    NoSuchService {
        /// Operation.
        op: &'static str,
        /// The service.
        target: String,
    },
    /// EEXIST on NEW_DEST.
    #[error("{op} {target}: destination already exists")]
    DestinationExists {
        /// Operation.
        op: &'static str,
        /// Service and destination.
        target: String,
    },
    /// ENOENT on SET/DEL_DEST.
    #[error("{op} {target}: no such destination")]
    NoSuchDestination {
        /// Operation.
        op: &'static str,
        /// Service and destination.
        target: String,
    },
    /// ENOENT on NEW/SET_SERVICE: the scheduler (or persistence engine) module does not exist.
    #[error(
        "{op} {target}: unknown scheduler {scheduler:?} (is the ip_vs_{scheduler} module available?) or unknown persistence engine"
    )]
    UnknownScheduler {
        /// Operation.
        op: &'static str,
        /// The service.
        target: String,
        /// The scheduler asked for.
        scheduler: String,
    },
    /// EINVAL from the kernel, or a value refused before sending.
    #[error("{op} {target}: invalid argument: {reason}")]
    InvalidArgument {
        /// Operation.
        op: &'static str,
        /// What it was applied to.
        target: String,
        /// What is known about the cause.
        reason: String,
    },
    /// No answer within the request timeout; the connection was rebuilt.
    #[error(
        "{op}: no answer from the kernel within {after:?}; the netlink socket was closed and will be reopened"
    )]
    Timeout {
        /// Operation.
        op: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The kernel's answer could not be decoded.
    #[error("{op}: cannot decode the kernel's reply: {source}")]
    Decode {
        /// Operation.
        op: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// Replies were lost because the socket receive buffer overflowed (ENOBUFS); the outcome of
    /// this operation is unknown. The connection was rebuilt; re-read the table and retry.
    #[error(
        "{op} {target}: outcome unknown: replies lost to a full netlink receive buffer (ENOBUFS); lower the batch window or raise the receive buffer"
    )]
    RepliesLost {
        /// Operation.
        op: &'static str,
        /// Target.
        target: String,
    },
    /// Any other errno from the kernel.
    #[error("{op} {target}: {errno}")]
    Errno {
        /// Operation.
        op: &'static str,
        /// Target.
        target: String,
        /// The kernel's errno.
        errno: Errno,
    },
    /// A socket or file error; the connection was rebuilt.
    #[error("{op}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Any other failure of the netlink transport (the namespace could not be entered, a dump
    /// kept being interrupted, ...).
    #[error("{op}: {source}")]
    Transport {
        /// Operation.
        op: &'static str,
        /// The transport's error.
        source: netlink_transport::Error,
    },
}

impl Error {
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::ModuleNotLoaded => Some(Errno::ENOENT),
            Self::PermissionDenied { .. } => Some(Errno::EPERM),
            Self::ServiceExists { .. } | Self::DestinationExists { .. } => Some(Errno::EEXIST),
            Self::NoSuchService { .. } => Some(Errno::ESRCH),
            Self::NoSuchDestination { .. } | Self::UnknownScheduler { .. } => Some(Errno::ENOENT),
            Self::InvalidArgument { .. } => Some(Errno::EINVAL),
            Self::Timeout { .. } => Some(Errno::ETIMEDOUT),
            Self::RepliesLost { .. } => Some(Errno::ENOBUFS),
            Self::Errno { errno, .. } => Some(*errno),
            Self::Io { source, .. } => source.raw_os_error().map(Errno::new),
            Self::Transport { source, .. } => source.errno(),
            Self::Decode { .. } => None,
        }
    }

    /// The error of `op` on `target` for a transport failure.
    pub(crate) fn transport(op: &'static str, target: String, e: netlink_transport::Error) -> Self {
        use netlink_transport::Error as T;
        match e {
            T::Kernel(errno) => match errno {
                Errno::EPERM | Errno::EACCES => Self::PermissionDenied { op },
                Errno::ESRCH => Self::NoSuchService { op, target },
                _ => Self::Errno { op, target, errno },
            },
            T::NoFamily(_) => Self::ModuleNotLoaded,
            T::Timeout(after) => Self::Timeout { op, after },
            T::RepliesLost => Self::RepliesLost { op, target },
            T::Io(source) => Self::Io {
                op,
                source: std::sync::Arc::try_unwrap(source)
                    .unwrap_or_else(|a| std::io::Error::new(a.kind(), a.to_string())),
            },
            T::Frame(f) => Self::Decode {
                op,
                source: DecodeError::Wire(netlink_packet_core::DecodeError::from(f.to_string())),
            },
            T::Encode(inner) => match inner.downcast_ref::<Error>() {
                Some(Error::InvalidArgument { reason, .. }) => Self::InvalidArgument {
                    op,
                    target,
                    reason: reason.clone(),
                },
                _ => Self::InvalidArgument {
                    op,
                    target,
                    reason: inner.to_string(),
                },
            },
            source => Self::Transport { op, source },
        }
    }

    /// A request of `op` too large to encode.
    pub(crate) fn encode(op: &'static str, e: &crate::frame::EncodeError) -> Self {
        Self::InvalidArgument {
            op,
            target: String::new(),
            reason: e.to_string(),
        }
    }

    /// The same error attributed to another operation name.
    pub(crate) fn renamed(self, new: &'static str) -> Self {
        match self {
            Self::NoSuchService { target, .. } => Self::NoSuchService { op: new, target },
            Self::Errno { target, errno, .. } => Self::Errno {
                op: new,
                target,
                errno,
            },
            Self::InvalidArgument { target, reason, .. } => Self::InvalidArgument {
                op: new,
                target,
                reason,
            },
            Self::PermissionDenied { .. } => Self::PermissionDenied { op: new },
            other => other,
        }
    }
}
