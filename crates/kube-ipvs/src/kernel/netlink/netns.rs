//! Running blocking work (iptables binaries, sysctl files) in the configured network namespace,
//! through the transport's one namespace helper (`netlink_transport::netns`): a short-lived
//! thread enters the namespace and runs the work; the runtime's threads never change namespace.
//! The netlink sockets themselves are opened by the transport, given the namespace's path.

use std::path::Path;

use netlink_transport::netns::{self, NetnsError};

use super::KernelError;

/// Runs `f` on a blocking thread of the configured namespace (`None`: the runtime's blocking
/// pool, in the namespace the runtime's threads live in).
pub async fn blocking<T: Send + 'static>(
    netns: Option<&Path>,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KernelError> {
    netns::run_in(netns, f).await.map_err(|e| {
        let op = match &e {
            NetnsError::Open { path, .. } => {
                format!("{what}: open network namespace {}", path.display())
            }
            NetnsError::Enter { path, .. } => {
                format!("{what}: enter network namespace {}", path.display())
            }
            _ => what.to_owned(),
        };
        let source = match e {
            NetnsError::Open { source, .. }
            | NetnsError::Enter { source, .. }
            | NetnsError::Thread(source) => source,
            other => std::io::Error::other(other),
        };
        KernelError::Namespace { op, source }
    })
}
