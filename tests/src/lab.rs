//! A node in the lab for the takeover tests and bench: backends and clients in network namespaces
//! of their own behind veths (as pods on other nodes), clients that hold a connection open and
//! open new ones back to back, the agent binary, its health and metrics endpoints. Backends and
//! clients are threads of the test process that entered those namespaces (`setns`): starting an
//! interpreter costs tens of seconds under the lab's emulation.
#![allow(clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use lab_kit::backend::{Procs, spawn_in_netns};
pub use lab_kit::{sh, sh_try};

/// Prints `msg` with the seconds since the first note (lab runs are slow: where did it go).
pub fn note(msg: &str) {
    eprintln!("[{:7.1}s] {msg}", since_start());
}

/// Seconds since the first [`note`] (or call of this).
fn since_start() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The agent binary: `KUBE_IPVS_BIN`, else next to this test binary (`cargo xtask test` builds
/// it there).
pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBE_IPVS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("kube-ipvs"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p kube-ipvs` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// A directory that survives the lab run (`$LAB_SHARE`), for logs and inputs.
pub fn artifacts(name: &str) -> PathBuf {
    let base = std::env::var_os("LAB_SHARE").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Moves the calling thread into the network namespace of process `pid`.
fn enter_netns(pid: u32) {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("netns of pid");
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// A backend in the namespace of `pid` (a thread of this process: no interpreter to start under
/// emulation): answers each connection on `port` with `name`, then holds it until the client
/// closes.
/// `pid` `None`: the caller's own namespace (a new thread starts in its creator's).
pub fn serve_in(pid: Option<u32>, name: &str, port: u16) {
    let name = format!("{name}\n");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(pid) = pid {
            enter_netns(pid);
        }
        let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind backend");
        let _ = tx.send(());
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let name = name.clone();
            std::thread::spawn(move || {
                if c.write_all(name.as_bytes()).is_ok() {
                    let mut buf = [0u8; 100];
                    while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
                }
            });
        }
    });
    rx.recv().expect("backend listening");
}

/// A client of one address in a client namespace (a thread of this process): one held
/// connection, then new connections back to back (each must get an answer) until stopped.
#[derive(Debug)]
pub struct Traffic {
    target: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::thread::JoinHandle<Seen>,
}

/// What a traffic client saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `ip:port` it asked.
    pub target: String,
    /// Connections that got an answer.
    pub ok: u64,
    /// Connections that failed (refused, reset, timed out).
    pub failed: u64,
    /// Whether the connection held from the start still worked at the end.
    pub held: bool,
    /// The longest a connection took to be accepted and answered.
    pub slowest: Duration,
    /// The failures.
    pub log: String,
}

/// How long a connection may take to be accepted, and then to be answered. Generous: the lab's
/// two emulated CPUs can stall a thread for seconds while the agent starts; a connection the
/// data path lost does not come back within them (TCP retransmits within a second or two).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

fn ask(c: &mut TcpStream) -> std::io::Result<String> {
    c.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 100];
    while !data.ends_with(b"\n") {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        data.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(String::from_utf8_lossy(&data).trim().to_owned())
}

fn connect(target: &str) -> std::io::Result<TcpStream> {
    let addr: std::net::SocketAddr = target.parse().map_err(std::io::Error::other)?;
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
}

impl Traffic {
    /// Starts a client of `ip:port` in the namespace of `client_pid`; returns once its held
    /// connection got an answer.
    pub fn start(client_pid: u32, ip: &str, port: u16) -> Self {
        let target = format!("{ip}:{port}");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (t, st) = (target.clone(), stop.clone());
        let done = std::thread::spawn(move || {
            enter_netns(client_pid);
            let mut held = connect(&t).and_then(|mut c| ask(&mut c).map(|_| c));
            let _ = ready_tx.send(held.as_ref().map(|_| ()).map_err(ToString::to_string));
            let mut seen = Seen {
                target: t.clone(),
                ok: 0,
                failed: 0,
                held: false,
                slowest: Duration::ZERO,
                log: String::new(),
            };
            let mut alive = true;
            let mut poked = Instant::now();
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                // A long-lived connection is not idle: IPVS forgets one idle for its TCP
                // timeout (900 s), and a lab run can take longer than that.
                if poked.elapsed() > Duration::from_secs(5) {
                    if let Ok(c) = &mut held {
                        alive &= c.write_all(b"k").is_ok();
                    }
                    poked = Instant::now();
                }
                let began = Instant::now();
                match connect(&t).and_then(|mut c| ask(&mut c)) {
                    Ok(_) => {
                        seen.ok += 1;
                        seen.slowest = seen.slowest.max(began.elapsed());
                    }
                    Err(e) => {
                        seen.failed += 1;
                        seen.log.push_str(&format!(
                            "[{:7.1}s] failure after {} ok, {:.1} s into the attempt: {e} ({:?})\n",
                            since_start(),
                            seen.ok,
                            began.elapsed().as_secs_f64(),
                            e.kind()
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(c) = &mut held {
                let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                seen.held = alive
                    && c.write_all(b"x").is_ok()
                    && match c.read(&mut [0u8; 1]) {
                        Ok(n) => n > 0,
                        Err(e) => matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                    };
            }
            seen
        });
        let ready = ready_rx.recv().expect("client thread");
        assert!(ready.is_ok(), "client of {target} did not start: {ready:?}");
        Self { target, stop, done }
    }

    /// Stops the client and returns what it saw.
    pub fn finish(self) -> Seen {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.done.join().unwrap_or_else(|_| Seen {
            target: self.target,
            ok: 0,
            failed: u64::MAX,
            held: false,
            slowest: Duration::ZERO,
            log: "client thread panicked".into(),
        })
    }
}

/// Whether a TCP connection to `target` (`ip:port`) from the namespace of `pid` is accepted
/// within 3 s.
pub fn reaches(pid: u32, target: &str) -> bool {
    let target = target.to_owned();
    std::thread::spawn(move || {
        enter_netns(pid);
        let addr: std::net::SocketAddr = target.parse().expect("ip:port");
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
    })
    .join()
    .unwrap_or(false)
}

/// `GET path` over HTTP/1.0: the status code and body, or `None` if nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((code, body))
}

/// Waits until `/healthz` on `addr` answers 200; how long that took from `since`.
pub fn wait_healthy(addr: &str, since: Instant, timeout: Duration, log: &Path) -> Duration {
    loop {
        if http_get(addr, "/healthz").is_some_and(|(c, _)| c == 200) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "/healthz never answered 200; agent log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kube_ipvs_syncs_total{kind}` from the metrics endpoint (0 when unreachable).
pub fn syncs(metrics_addr: &str, kind: &str) -> u64 {
    let (_, body) = http_get(metrics_addr, "/metrics").unwrap_or_default();
    let prefix = format!("kube_ipvs_syncs_total{{kind=\"{kind}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = v as u64;
            n
        })
}

/// Waits until the agent's first full sync is done; how long that took from `since`.
pub fn wait_first_sync(
    metrics_addr: &str,
    since: Instant,
    timeout: Duration,
    log: &Path,
) -> Duration {
    loop {
        if syncs(metrics_addr, "full") >= 1 {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "no full sync; agent log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ops of the agent's first full sync, as its log line `synced ... ops=KIND=N ...` says.
pub fn first_sync_ops(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.contains("kind=\"full\"") && l.contains(" synced "))
        .and_then(|l| l.split_once(" ops="))
        .map_or_else(String::new, |(_, ops)| ops.trim().to_owned())
}

/// `kube_ipvs_ops_total{kind,result="applied"}` by kind, from the metrics endpoint.
pub fn applied_ops(metrics_addr: &str) -> BTreeMap<String, u64> {
    let (_, body) = http_get(metrics_addr, "/metrics").unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("kube_ipvs_ops_total{") else {
            continue;
        };
        if !rest.contains("result=\"applied\"") {
            continue;
        }
        let kind = rest
            .split("kind=\"")
            .nth(1)
            .and_then(|k| k.split('"').next())
            .unwrap_or_default();
        let n: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        out.insert(kind.to_owned(), n as u64);
    }
    out
}

/// The difference of two counter snapshots (kinds with no change left out).
pub fn ops_since(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n.saturating_sub(*before.get(k).unwrap_or(&0))))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Addresses bound to a device, as `ip -o addr` lists them.
pub fn bound(dev: &str) -> Vec<String> {
    sh(&format!("ip -o -4 addr show dev {dev} 2>/dev/null || true"))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}
