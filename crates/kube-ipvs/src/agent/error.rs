//! Why the agent could not start, or stopped.

use crate::config::NodeNameError;
use crate::kernel::KernelError;
use crate::source::SourceError;

/// A start-up failure, or the end of the event feed. Transient kernel and API errors are not
/// here: the loop retries them.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No usable node name.
    #[error(transparent)]
    NodeName(#[from] NodeNameError),
    /// The cluster source could not be set up.
    #[error("cluster source: {0}")]
    Source(#[from] SourceError),
    /// The node's addresses could not be listed at start-up (rtnetlink).
    #[error("listing the node's addresses: {0}")]
    NodeAddresses(#[source] nodenet::link::LinkError),
    /// The kernel clients could not be set up.
    #[error("connecting to the kernel: {0}")]
    Kernel(#[source] KernelError),
    /// Installing the SIGTERM handler failed.
    #[error("installing the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
    /// Every cluster source ended: nothing can keep the rules current any more.
    #[error("the cluster sources ended unexpectedly")]
    SourcesEnded,
}
