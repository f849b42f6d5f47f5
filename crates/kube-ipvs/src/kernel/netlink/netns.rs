//! Running blocking work (iptables binaries, sysctl files, socket creation) in the configured
//! network namespace.
//!
//! `setns` changes only the calling thread, and sockets, `/proc/sys/net` files and child processes
//! belong to the namespace of the thread that creates them. So work for another namespace runs on
//! a short-lived thread that enters it first; the runtime's threads never change namespace.

use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use super::KernelError;

/// Runs `f` on a blocking thread of the configured namespace (`None`: the runtime's blocking
/// pool, in the namespace the runtime's threads live in).
pub async fn blocking<T: Send + 'static>(
    netns: Option<&Path>,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KernelError> {
    let died = |e: String| KernelError::Namespace {
        op: what.to_owned(),
        source: std::io::Error::other(e),
    };
    let Some(path) = netns else {
        return tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| died(e.to_string()));
    };
    let path: PathBuf = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    let op = what.to_owned();
    std::thread::Builder::new()
        .name("kube-ipvs-netns".into())
        .spawn(move || {
            // Sockets created by `f` register with the caller's runtime.
            let _entered = runtime.enter();
            let res = enter(&path, &op).map(|()| f());
            let _ = tx.send(res);
        })
        .map_err(|source| KernelError::Namespace {
            op: what.to_owned(),
            source,
        })?;
    rx.await
        .map_err(|_| died("the namespace thread died".into()))?
}

fn enter(path: &Path, op: &str) -> Result<(), KernelError> {
    let ns = std::fs::File::open(path).map_err(|source| KernelError::Namespace {
        op: format!("{op}: open network namespace {}", path.display()),
        source,
    })?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| KernelError::Namespace {
        op: format!("{op}: enter network namespace {}", path.display()),
        source: std::io::Error::from(e),
    })
}
