//! Publishes the owners file (`kube-ipvs list --services`) off the loop. Formatting and writing
//! it costs ~34 ms natively at 50,000 Services (an 8 MiB file; core bench `stages`), after every
//! sync that adds or removes a virtual server, and every change queued behind that sync waited
//! for it. The loop now hands over the desired virtual servers (one reference count each); a
//! thread of its own formats and writes the newest state, skipping any a newer one superseded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::desired::DesiredVs;
use crate::owners::Owners;

/// One state to publish.
struct Snapshot {
    node: String,
    vs: Vec<Arc<DesiredVs>>,
}

#[derive(Default)]
struct Queue {
    /// The newest state not yet written.
    next: Option<Snapshot>,
    /// The publisher is gone: the thread ends.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The last write failed.
    failed: AtomicBool,
}

impl Shared {
    /// The queue (a panic while it was held left nothing half-done: one `Option`, one flag).
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The owners file and the thread that writes it.
pub(super) struct OwnersFile {
    path: PathBuf,
    shared: Arc<Shared>,
    /// The writer thread (started on the first publish).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnersFile {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            shared: Arc::default(),
            thread: None,
        }
    }

    /// Queues the owners of `vs` for writing, replacing a state not written yet. Written inline
    /// if no thread can be started.
    pub(super) fn publish<'a>(&mut self, node: &str, vs: impl Iterator<Item = &'a Arc<DesiredVs>>) {
        let snapshot = Snapshot {
            node: node.to_owned(),
            vs: vs.cloned().collect(),
        };
        if self.thread.is_none() {
            let (shared, path) = (self.shared.clone(), self.path.clone());
            let spawned = std::thread::Builder::new()
                .name("owners-file".into())
                .spawn(move || writer(&shared, &path));
            match spawned {
                Ok(t) => self.thread = Some(t),
                Err(e) => {
                    tracing::debug!(error = %e, "writing the owners file inline");
                    write(&self.shared, &self.path, snapshot);
                    return;
                }
            }
        }
        self.shared.queue().next = Some(snapshot);
        self.shared.wake.notify_one();
    }

    /// Whether the last write failed (the caller publishes again on its next sync).
    pub(super) fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }
}

/// On shutdown the state last published is written before the agent exits.
impl Drop for OwnersFile {
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::warn!("the owners-file writer panicked");
        }
    }
}

/// The writer thread: writes the newest queued state until the publisher is gone (a state
/// queued before that is still written).
fn writer(shared: &Shared, path: &std::path::Path) {
    loop {
        let snapshot = {
            let mut q = shared.queue();
            loop {
                if let Some(s) = q.next.take() {
                    break s;
                }
                if q.closed {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        write(shared, path, snapshot);
    }
}

fn write(shared: &Shared, path: &std::path::Path, s: Snapshot) {
    // `write_atomic` creates the directory, and names it when it cannot.
    let owners = Owners::from_virtual_servers(s.vs.iter().map(|v| &**v)).with_node(&s.node);
    match owners.write_atomic(path) {
        Ok(()) => shared.failed.store(false, Ordering::Relaxed),
        Err(e) => {
            shared.failed.store(true, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot publish virtual-server owners for `kube-ipvs list --services`");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::types::{Proto, Scheduler, ServiceName, ServicePortName, VsKey, VsSpec};

    fn vs(port: u16) -> Arc<DesiredVs> {
        Arc::new(DesiredVs {
            key: VsKey::new(Proto::Tcp, "10.96.0.1".parse().unwrap(), port),
            spec: VsSpec::plain(Scheduler::Rr, crate::types::Family::V4),
            owner: ServicePortName {
                service: ServiceName::new("ns", "web"),
                port: Arc::from("http"),
            },
            reals: Box::new([]),
        })
    }

    fn eventually(what: &str, f: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < end, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The newest published state ends up in the file, written by the thread; a failed write
    /// is reported so the agent publishes again.
    #[test]
    fn the_newest_state_is_written_off_the_caller() {
        let dir = std::env::temp_dir().join(format!("owners-file-{}", std::process::id()));
        let path = dir.join("sub/owners.json");
        let mut f = OwnersFile::new(path.clone());
        let (a, b) = (vs(80), vs(443));
        f.publish("node-a", [&a].into_iter());
        f.publish("node-a", [&a, &b].into_iter());
        let written = || Owners::read(&path).ok().filter(|o| o.len() == 2);
        eventually("both virtual servers written", || written().is_some());
        let o = written().unwrap();
        assert_eq!(o.get(&b.key), Some("ns/web:http"));
        assert_eq!(o.node(), "node-a");
        assert!(!f.failed());
        // The last state published before shutdown is on disk once the publisher is gone.
        f.publish("node-a", [&b].into_iter());
        drop(f);
        assert_eq!(Owners::read(&path).unwrap().len(), 1);

        // A parent that is a file: the write fails, and says so.
        let mut bad = OwnersFile::new(path.join("owners.json"));
        bad.publish("node-a", [&a].into_iter());
        eventually("the failure is reported", || bad.failed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
