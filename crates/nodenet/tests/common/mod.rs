//! Shared by the kernel tests: a fresh network namespace per test, and CLI cross-checks.
#![allow(dead_code)]

use std::process::Command;

/// Moves the calling thread into a new network namespace (children it spawns inherit it)
/// and brings `lo` up. Panics loudly when not root: kernel tests never skip silently.
pub fn enter_fresh_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) failed: kernel tests need root (cargo xtask test)");
    sh("ip link set lo up");
}

/// Runs a shell command line, panicking with its stderr if it fails; returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like `sh` but returns whether it succeeded.
pub fn sh_ok(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A thread living in a network namespace of its own: `tid` names it for
/// `ip link set DEV netns TID`; it runs `f` once `go` is sent.
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
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare in thread");
            tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            go_rx.recv().unwrap();
            sh("ip link set lo up");
            f()
        });
        let tid = tid_rx.recv().unwrap();
        Self { tid, go, handle }
    }

    /// Lets the thread run its closure.
    pub fn start(&self) {
        self.go.send(()).unwrap();
    }

    /// Waits for the closure's result.
    pub fn join(self) -> T {
        self.handle.join().expect("netns thread panicked")
    }
}
