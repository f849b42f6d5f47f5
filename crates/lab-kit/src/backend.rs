//! Backends as pods on other nodes: processes in network namespaces of their own, each behind a
//! veth to the caller's namespace (the node), and a small TCP server that tells clients which
//! backend answered, so a test can see where IPVS sent each connection.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sh::sh;

/// A TCP backend on port 8080 that greets each connection with its name (argv[1]) and a newline,
/// then holds it until the client closes. Run it with `python3 -c SERVER NAME`.
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

/// Processes killed (and waited for) on drop: their namespaces go with them.
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

fn netns_of(path: &str) -> PathBuf {
    std::fs::read_link(path).unwrap_or_default()
}

/// Runs `argv` in a new network namespace wired to the caller's by a veth (`vh<i>` on our side):
/// theirs 10.0.`i`.1/24, ours 10.0.`i`.254/24, their default route through us. Returns its pid.
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
    // Namespace creation is slow under emulation; wait until the child is in its own.
    let deadline = Instant::now() + Duration::from_secs(180);
    while netns_of(&format!("/proc/{pid}/ns/net")) == ours {
        assert!(
            Instant::now() < deadline,
            "{argv:?} never entered its namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(&format!(
        "ip link add vh{i} type veth peer name eth0 netns {pid} \
         && ip addr add 10.0.{i}.254/24 dev vh{i} && ip link set vh{i} up \
         && nsenter -t {pid} -n sh -c 'ip link set lo up && ip addr add 10.0.{i}.1/24 dev eth0 \
            && ip link set eth0 up && ip route add default via 10.0.{i}.254'"
    ));
    pid
}

/// Backends `b1`..`bN` ([`SERVER`] at 10.0.i.1:8080, as [`spawn_in_netns`] wires them), once
/// each answers directly.
pub fn start_servers(n: u8) -> Procs {
    let mut procs = Procs::default();
    for i in 1..=n {
        spawn_in_netns(&mut procs, i, &["python3", "-c", SERVER, &format!("b{i}")]);
    }
    for i in 1..=n {
        let addr = SocketAddr::from(([10, 0, i, 1], 8080));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                assert_eq!(read_name(&mut c), format!("b{i}"));
                break;
            }
            assert!(Instant::now() < deadline, "backend {i} does not answer");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    procs
}

/// The greeting line of a [`SERVER`] on an open connection (10 s at most).
pub fn read_name(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    let mut line = String::new();
    BufReader::new(c.try_clone().expect("clone the connection"))
        .read_line(&mut line)
        .expect("read the backend's name");
    line.trim().to_owned()
}
