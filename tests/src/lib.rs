//! End-to-end scenarios for kube-ipvs; they run inside the kernel lab (`cargo xtask test`).
//! Helpers shared by the scenarios: backends and clients in network namespaces of their own.
#![forbid(unsafe_code)]
// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

pub use lab_kit::backend::SERVER;

/// Connects `n` times to `vip`:`port` from the namespace of `pid`; the greetings received (fewer
/// than `n` when connections fail).
pub fn ask_vip(pid: u32, vip: &str, port: u16, n: usize) -> Vec<String> {
    let script = format!(
        "import socket\nfor _ in range({n}):\n    try:\n        c = socket.create_connection(('{vip}', {port}), timeout=5)\n        print(c.makefile().readline().strip(), flush=True)\n        c.close()\n    except OSError:\n        pass\n"
    );
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "python3", "-c", &script])
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

pub mod lab;
pub mod stock;

pub use lab::{Procs, sh, spawn_in_netns};
