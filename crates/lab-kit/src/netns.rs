//! Network namespaces for kernel tests: each test (or bench) moves its thread into a fresh one,
//! so IPVS services, sets, links and rules never leak between tests or onto the host, and the
//! test threads of one binary run side by side.

use nix::sched::{CloneFlags, unshare};

use crate::sh::sh;

const NEEDS_ROOT: &str = "unshare(CLONE_NEWNET) failed: kernel tests need root (cargo xtask test)";

/// Moves the calling thread into a new network namespace (children it spawns later inherit it)
/// and brings `lo` up. Panics loudly when not root: kernel tests never skip silently.
///
/// `lo` up matters beyond loopback traffic: without any address the namespace has no local
/// routing table, and the kernel refuses IPv4 IPVS destinations with EINVAL
/// (`inet_addr_type()` answers `RTN_BROADCAST`).
pub fn enter_fresh_netns() {
    unshare(CloneFlags::CLONE_NEWNET).expect(NEEDS_ROOT);
    sh("ip link set lo up");
}

/// A thread living in a network namespace of its own: `tid` names it for
/// `ip link set DEV netns TID` (and `/proc/PID/task/TID/ns/net`); it brings `lo` up and runs
/// `f` once [`Self::start`] is called, so the caller can first move links into it.
#[derive(Debug)]
pub struct NetnsThread<T> {
    /// The thread id (a pid for `ip ... netns`).
    pub tid: i32,
    go: std::sync::mpsc::Sender<()>,
    handle: std::thread::JoinHandle<T>,
}

impl<T: Send + 'static> NetnsThread<T> {
    /// Spawns the thread; it unshares its network namespace and waits for [`Self::start`].
    pub fn spawn(f: impl FnOnce() -> T + Send + 'static) -> Self {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect(NEEDS_ROOT);
            tid_tx
                .send(nix::unistd::gettid().as_raw())
                .expect("the spawner waits for the tid");
            go_rx.recv().expect("NetnsThread dropped before start");
            sh("ip link set lo up");
            f()
        });
        let tid = tid_rx.recv().expect("netns thread died before unsharing");
        Self { tid, go, handle }
    }

    /// The namespace's path, for clients that open sockets in it by path.
    pub fn path(&self) -> String {
        format!("/proc/{}/task/{}/ns/net", std::process::id(), self.tid)
    }

    /// Links the thread's namespace to the caller's by a veth: `ours` stays here with address
    /// `our_cidr`, up; `theirs` moves into the thread's namespace, for its closure to configure.
    pub fn veth(&self, ours: &str, theirs: &str, our_cidr: &str) {
        sh(&format!(
            "ip link add {ours} type veth peer name {theirs} netns {} \
             && ip addr add {our_cidr} dev {ours} && ip link set {ours} up",
            self.tid
        ));
    }

    /// Lets the thread run its closure.
    pub fn start(&self) {
        self.go.send(()).expect("netns thread gone");
    }

    /// Waits for the closure's result.
    pub fn join(self) -> T {
        self.handle.join().expect("netns thread panicked")
    }
}
