//! Work in another network namespace without moving the caller.
//!
//! `setns` changes only the calling thread, and sockets, `/proc/thread-self/net` files and child
//! processes belong to the namespace of the thread that creates them. So work for another
//! namespace runs on a short-lived helper thread that enters it first, does the work and exits;
//! the runtime's threads never change namespace. Sockets opened there stay bound to that namespace.

use std::io;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// Why work could not run in a namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("open network namespace {path}: {source}")]
    Open {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `setns` refused (no CAP_SYS_ADMIN, not a network namespace).
    #[error("enter network namespace {path}: {source}")]
    Enter {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The helper thread could not start or died.
    #[error("namespace helper thread: {0}")]
    Thread(#[source] io::Error),
}

impl NetnsError {
    /// The errno behind it, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Open { source, .. } | Self::Enter { source, .. } | Self::Thread(source) => {
                source.raw_os_error()
            }
        }
    }
}

/// Enters the network namespace at `path` on the calling thread.
fn enter(path: &Path) -> Result<(), NetnsError> {
    let ns = std::fs::File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_owned(),
        source,
    })?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
        path: path.to_owned(),
        source: io::Error::from(e),
    })
}

/// Runs `f` in the network namespace at `netns`, on a helper thread that enters it first (`None`:
/// on the runtime's blocking pool, in the namespace the runtime's threads live in). `f` runs with
/// the caller's tokio runtime entered, so sockets it opens register with the caller's reactor.
pub async fn run_in<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let Some(path) = netns else {
        return tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| NetnsError::Thread(io::Error::other(e)));
    };
    let path = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let _entered = runtime.enter();
            let _ = tx.send(enter(&path).map(|()| f()));
        })
        .map_err(NetnsError::Thread)?;
    rx.await
        .map_err(|_| NetnsError::Thread(io::Error::other("the namespace thread died")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_here_or_refuses_a_missing_namespace() {
        assert_eq!(run_in(None, || 7).await.unwrap(), 7);
        let e = run_in(Some(Path::new("/nonexistent/netns")), || 7)
            .await
            .unwrap_err();
        assert!(matches!(e, NetnsError::Open { .. }), "{e}");
        assert_eq!(e.raw_os_error(), Some(2));
        // Not a namespace file: setns refuses (EINVAL), nothing runs.
        let e = run_in(Some(Path::new("/proc/self/stat")), || 7)
            .await
            .unwrap_err();
        assert!(matches!(e, NetnsError::Enter { .. }), "{e}");
    }
}
