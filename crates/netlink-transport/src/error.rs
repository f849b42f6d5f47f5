//! What can go wrong between a client and the kernel, without the client's operation (clients add
//! it: "add service TCP 10.96.0.1:443: ...").

use std::sync::Arc;
use std::time::Duration;

use crate::errno::Errno;
use crate::netns::NetnsError;
use crate::wire::FrameError;

/// A transport failure. Cheap to clone, so one failure can be reported for every request it hit.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused the request.
    #[error("the kernel answered {0}")]
    Kernel(Errno),
    /// No message from the kernel within the deadline; the socket was closed (the next request
    /// opens a new one).
    #[error(
        "no answer from the kernel within {0:?} (the socket was closed and is reopened on next use)"
    )]
    Timeout(Duration),
    /// Replies were dropped because the socket's receive buffer overflowed (ENOBUFS).
    #[error("replies lost to a full netlink receive buffer (ENOBUFS)")]
    RepliesLost,
    /// A socket call failed.
    #[error("netlink socket: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// A reply that does not frame as netlink messages.
    #[error("undecodable reply: {0}")]
    Frame(#[source] FrameError),
    /// A dump kept being interrupted by concurrent changes (`NLM_F_DUMP_INTR`).
    #[error("the dump was interrupted by concurrent changes {0} times in a row")]
    DumpInterrupted(usize),
    /// The generic netlink family is not registered (its module is not loaded).
    #[error("generic netlink family {0:?} is not registered in this kernel")]
    NoFamily(&'static str),
    /// The socket could not be opened in the configured network namespace.
    #[error(transparent)]
    Netns(Arc<NetnsError>),
    /// The request could not be encoded (never sent).
    #[error("cannot encode the request: {0}")]
    Encode(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The errno behind the failure: the kernel's, the socket's, `ETIMEDOUT` for a timeout,
    /// `ENOBUFS` for lost replies.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Kernel(e) => Some(*e),
            Self::Timeout(_) => Some(Errno::ETIMEDOUT),
            Self::RepliesLost => Some(Errno::ENOBUFS),
            Self::Io(e) => e.raw_os_error().map(Errno::new),
            Self::NoFamily(_) => Some(Errno::ENOENT),
            Self::Netns(e) => e.raw_os_error().map(Errno::new),
            Self::Frame(_) | Self::DumpInterrupted(_) | Self::Encode(_) => None,
        }
    }

    /// Whether the request's fate is unknown to us, so the socket cannot be trusted any more:
    /// a timeout, lost replies, a socket error, an unframeable reply.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_) | Self::RepliesLost | Self::Io(_) | Self::Frame(_)
        )
    }

    pub(crate) fn io(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(Errno::ENOBUFS.get()) {
            Self::RepliesLost
        } else {
            Self::Io(Arc::new(e))
        }
    }
}

impl From<NetnsError> for Error {
    fn from(e: NetnsError) -> Self {
        Self::Netns(Arc::new(e))
    }
}
