//! End-to-end scenarios for kube-ipvs; they run inside the kernel lab (`cargo xtask test`).
//! Helpers shared by the scenarios: backends and clients in network namespaces of their own.
#![forbid(unsafe_code)]
// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP backend on port 8080 that greets each connection with its name (argv[1]) and a newline.
pub const SERVER: &str = r#"
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(512)
def serve(c):
    try:
        c.sendall(sys.argv[1].encode() + b"\n")
        while c.recv(100):
            pass
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Run a shell command; fail the test with its stderr when it fails.
pub fn sh(cmd: &str) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn netns_of(path: &str) -> PathBuf {
    std::fs::read_link(path).unwrap_or_default()
}

/// Processes killed on drop.
#[derive(Debug, Default)]
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `argv` in a new network namespace wired to the caller's by a veth: theirs 10.0.`i`.1/24,
/// ours 10.0.`i`.254/24, default route through us. Returns its pid.
pub fn spawn_in_netns(procs: &mut Procs, i: u8, argv: &[&str]) -> u32 {
    let ours = netns_of("/proc/thread-self/ns/net");
    let child = Command::new("unshare")
        .arg("-n")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    procs.0.push(child);
    let deadline = Instant::now() + Duration::from_secs(180);
    while netns_of(&format!("/proc/{pid}/ns/net")) == ours {
        assert!(
            Instant::now() < deadline,
            "{argv:?} never entered its namespace"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sh(&format!(
        "ip link add vh{i} type veth peer name eth0 netns {pid} \
         && ip addr add 10.0.{i}.254/24 dev vh{i} && ip link set vh{i} up \
         && nsenter -t {pid} -n sh -c 'ip link set lo up && ip addr add 10.0.{i}.1/24 dev eth0 \
            && ip link set eth0 up && ip route add default via 10.0.{i}.254'"
    ));
    pid
}

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
