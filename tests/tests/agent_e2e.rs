//! The agent end to end, in the lab: `kube-ipvs run` (the real binary) against the fake API server,
//! programming the real kernel of a fresh network namespace (the "node"). Backends live in their
//! own namespaces behind veths; clients in another namespace reach the ClusterIP through the node,
//! as a pod on another node would.
//!
//! - a Service created in the API server becomes reachable through its ClusterIP;
//! - scaling its EndpointSlice changes the real servers (and the traffic);
//! - restarting the agent under continuous client traffic fails no connection and keeps held ones.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use ipvs_netlink::{Client, VirtualServiceKey};
use kube_ipvs_e2e::lab::agent_binary;
use kube_ipvs_e2e::{
    NODE, Procs, SERVER, VIP, backend_ip, cluster_yaml, sh, slice_yaml, spawn_in_netns,
};

/// The client: one held connection, then new connections back to back until stdin closes;
/// prints `ok N fail M held OK|LOST` at the end (and each failure as it happens).
const CLIENT: &str = r#"
import socket, sys, threading, time
vip = (sys.argv[1], int(sys.argv[2]))
def ask(c):
    c.settimeout(5)
    data = b""
    while not data.endswith(b"\n"):
        d = c.recv(100)
        if not d:
            raise IOError("closed")
        data += d
    return data.decode().strip()
held = socket.create_connection(vip, timeout=5)
ask(held)
stop = []
threading.Thread(target=lambda: (sys.stdin.read(), stop.append(1)), daemon=True).start()
ok = fail = 0
print("ready", flush=True)
while not stop:
    try:
        c = socket.create_connection(vip, timeout=5)
        ask(c)
        c.close()
        ok += 1
    except Exception as e:
        fail += 1
        print("failure", repr(e), flush=True)
    time.sleep(0.01)
try:
    held.sendall(b"x")
    held.settimeout(1)
    try:
        held.recv(1)
        state = "OK"
    except socket.timeout:
        state = "OK"
except Exception:
    state = "LOST"
print("ok", ok, "fail", fail, "held", state, flush=True)
"#;

fn start_agent(kubeconfig: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(agent_binary())
        .args(["run", "--kubeconfig"])
        .arg(kubeconfig)
        .args([
            "--hostname-override",
            NODE,
            "--service-cluster-ip-range",
            "10.96.0.0/16",
            "--healthz-bind-address",
            "127.0.0.1:10256",
            "--metrics-bind-address",
            "127.0.0.1:10249",
            "--ipvs-sync-period",
            "5s",
        ])
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn kube-ipvs run")
}

/// The IPVS client with its own runtime (the test thread is synchronous: it runs processes).
struct Ipvs {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Ipvs {
    fn connect() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(Client::connect()).unwrap();
        Self { rt, client }
    }

    /// Real servers of the web Service with a non-zero weight.
    fn real_servers(&mut self) -> BTreeSet<IpAddr> {
        let key = VirtualServiceKey::tcp(VIP.parse().unwrap(), 80);
        match self.rt.block_on(self.client.list_destinations(&key)) {
            Ok(d) => d.iter().filter(|d| d.weight > 0).map(|d| d.addr).collect(),
            Err(_) => BTreeSet::new(),
        }
    }
}

fn wait_real_servers(c: &mut Ipvs, want: &[u8], log: &Path) {
    let want: BTreeSet<IpAddr> = want.iter().map(|i| backend_ip(*i)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let have = c.real_servers();
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "real servers {have:?}, want {want:?}; agent log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asks the VIP `n` times from the client namespace; the backends' names.
fn ask_from_client(client_pid: u32, n: usize) -> Vec<String> {
    let script = format!(
        "import socket\nfor _ in range({n}):\n    c = socket.create_connection(('{VIP}', 80), timeout=5)\n    print(c.makefile().readline().strip(), flush=True)\n    c.close()\n"
    );
    let out = Command::new("nsenter")
        .args([
            "-t",
            &client_pid.to_string(),
            "-n",
            "python3",
            "-c",
            &script,
        ])
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn agent_programs_scales_and_restarts_without_dropping_connections() {
    lab_kit::enter_fresh_netns();
    sh("sysctl -qw net.ipv4.ip_forward=1");
    // LAB_SHARE survives the lab run: the agent's logs stay readable after a failure.
    let base = std::env::var_os("LAB_SHARE").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("kube-ipvs-e2e-{}", std::process::id()));
    eprintln!("e2e: logs in {}", dir.display());
    std::fs::create_dir_all(&dir).unwrap();
    let (kubeconfig, log) = (dir.join("kubeconfig"), dir.join("agent.log"));

    let mut procs = Procs::default();
    for i in 1..=2u8 {
        spawn_in_netns(&mut procs, i, &["python3", "-c", SERVER, &format!("b{i}")]);
    }
    // The client namespace: 10.0.100.1, reaching the service CIDR through the node.
    let client_pid = spawn_in_netns(&mut procs, 100, &["sleep", "3600"]);

    let api = FakeApiServer::start_on_own_thread().unwrap();
    api.apply_bytes(cluster_yaml().as_bytes()).unwrap();
    api.apply_bytes(slice_yaml(&[1]).as_bytes()).unwrap();
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).unwrap();

    eprintln!("e2e: namespaces up, starting the agent");
    let mut agent = start_agent(&kubeconfig, &log);
    let mut ipvs = Ipvs::connect();

    // 1. The ClusterIP answers from the client namespace.
    wait_real_servers(&mut ipvs, &[1], &log);
    let names: BTreeSet<String> = ask_from_client(client_pid, 3).into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from(["b1".into()]),
        "log: {}",
        log.display()
    );

    eprintln!("e2e: ClusterIP reachable");
    // 2. Scaling the EndpointSlice changes the real servers and the traffic.
    api.apply_bytes(slice_yaml(&[1, 2]).as_bytes()).unwrap();
    wait_real_servers(&mut ipvs, &[1, 2], &log);
    let names: BTreeSet<String> = ask_from_client(client_pid, 6).into_iter().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    api.apply_bytes(slice_yaml(&[2]).as_bytes()).unwrap();
    // A removed TCP endpoint drains (weight 0) before it goes; new connections reach only b2.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names: BTreeSet<String> = ask_from_client(client_pid, 4).into_iter().collect();
        if names == BTreeSet::from(["b2".into()]) {
            break;
        }
        assert!(Instant::now() < deadline, "still reaching {names:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    api.apply_bytes(slice_yaml(&[1, 2]).as_bytes()).unwrap();
    wait_real_servers(&mut ipvs, &[1, 2], &log);

    eprintln!("e2e: scaling done");
    // 3. Restart under continuous traffic: no connection fails, the held one survives.
    let mut traffic = Command::new("nsenter")
        .args([
            "-t",
            &client_pid.to_string(),
            "-n",
            "python3",
            "-c",
            CLIENT,
            VIP,
            "80",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let mut out = BufReader::new(traffic.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..2 {
        sh(&format!("kill -TERM {}", agent.id()));
        let _ = agent.wait();
        std::thread::sleep(Duration::from_secs(1));
        agent = start_agent(&kubeconfig, &dir.join("agent-restarted.log"));
        // Let it list, adopt and run its start-up sync.
        std::thread::sleep(Duration::from_secs(8));
    }
    drop(traffic.stdin.take());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let _ = traffic.wait();
    let summary = rest.lines().last().unwrap_or_default().to_owned();
    let fields: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"ok"), "client output:\n{rest}");
    let ok: u64 = fields[1].parse().unwrap();
    assert!(ok > 10, "too little traffic to prove anything: {summary}");
    assert_eq!(
        fields[3], "0",
        "connections failed across restarts:\n{rest}"
    );
    assert_eq!(fields[5], "OK", "the held connection was lost:\n{rest}");
    wait_real_servers(&mut ipvs, &[1, 2], &log);
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = std::io::stderr().flush();
}

/// The agent's HTTP endpoints, read with a plain request: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

/// `kubeproxy_sync_proxy_rules_iptables_restore_failures_total`, summed over its labels.
fn restore_failures() -> f64 {
    let (_, body) = http_get(10249, "/metrics").unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("kubeproxy_sync_proxy_rules_iptables_restore_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_for(what: &str, secs: u64, log: &Path, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; agent log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `iptables-restore` that fails (another program holds the xtables lock) or hangs: the real
/// binaries are shadowed on the agent's PATH by a stub that fails, hangs or runs the real one,
/// as a file says. The agent warns and retries with backoff, counts each failure in
/// `kubeproxy_sync_proxy_rules_iptables_restore_failures_total`, keeps programming IPVS, turns
/// `/healthz` to 503 once the change has waited 2 x syncPeriod (a failed rules write is not an
/// update, as in stock), kills a hung restore after its 30 s timeout, and recovers by itself.
#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn a_failing_or_hanging_iptables_restore_is_retried_counted_and_seen_by_healthz() {
    lab_kit::enter_fresh_netns();
    let base = std::env::var_os("LAB_SHARE").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("kube-ipvs-iptables-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mode = dir.join("mode");
    let set_mode = |m: &str| std::fs::write(&mode, m).unwrap();
    set_mode("fail");
    for family in ["iptables", "ip6tables"] {
        for backend in ["nft", "legacy"] {
            let tool = format!("{family}-{backend}-restore");
            let real = ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .map(|d| Path::new(d).join(&tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{tool} is not installed"));
            let script = format!(
                "#!/bin/sh\ncase \"$(cat {mode})\" in\n\
                 fail) cat >/dev/null; echo 'Another app is currently holding the xtables lock. \
                 Perhaps you want to use the -w option?' >&2; exit 4;;\n\
                 hang) exec sleep 3600;;\n\
                 *) exec {real} \"$@\";;\nesac\n",
                mode = mode.display(),
                real = real.display(),
            );
            let path = bin.join(&tool);
            std::fs::write(&path, script).unwrap();
            sh(&format!("chmod 755 {}", path.display()));
        }
    }
    let cluster = dir.join("cluster.yaml");
    std::fs::write(
        &cluster,
        format!("{}---\n{}", cluster_yaml(), slice_yaml(&[1])),
    )
    .unwrap();
    let log = dir.join("agent.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut procs = Procs::default();
    procs.0.push(
        Command::new(agent_binary())
            .args(["run", "--source"])
            .arg(format!("file:{}", cluster.display()))
            .args([
                "--hostname-override",
                NODE,
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--healthz-bind-address",
                "127.0.0.1:10256",
                "--metrics-bind-address",
                "127.0.0.1:10249",
                "--ipvs-sync-period",
                "5s",
            ])
            .env("PATH", path)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
            .spawn()
            .expect("spawn kube-ipvs run"),
    );
    let logs = || {
        std::fs::read_to_string(&log).unwrap_or_default()
            + &std::fs::read_to_string(dir.join("agent.err")).unwrap_or_default()
    };

    // 1. Failing: IPVS is programmed all the same; each attempt is warned about and counted.
    let mut ipvs = Ipvs::connect();
    wait_real_servers(&mut ipvs, &[1], &log);
    wait_for("two counted failures", 120, &log, || {
        restore_failures() >= 2.0
    });
    let text = logs();
    assert!(
        text.contains("writing the iptables rules failed; retrying next sync")
            && text.contains("holding the xtables lock"),
        "{text}"
    );
    // The start-up change has waited more than 2 x syncPeriod (10 s): unhealthy.
    wait_for("/healthz 503", 60, &log, || {
        http_get(10256, "/healthz").is_some_and(|(s, _)| s == 503)
    });

    // 2. The lock is free again: the next retry writes the rules, /healthz recovers, the
    //    failures stop counting.
    set_mode("ok");
    wait_for("/healthz 200", 60, &log, || {
        http_get(10256, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    sh("iptables -t nat -S KUBE-SERVICES >/dev/null");
    let settled = restore_failures();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        restore_failures(),
        settled,
        "no failure once the lock is free"
    );

    // 3. Hanging: a new NodePort Service changes the rules; the restore hangs, is killed after
    //    its 30 s timeout and counted, while /metrics keeps answering.
    set_mode("hang");
    std::fs::write(
        &cluster,
        format!(
            "{}---\n{}---\n{}",
            cluster_yaml(),
            slice_yaml(&[1]),
            cluster_yaml()
                .split("---")
                .nth(1)
                .unwrap()
                .replace("name: web", "name: np")
                .replace("type: ClusterIP", "type: NodePort")
                .replace(VIP, "10.96.0.11")
                .replace("targetPort: 8080}", "targetPort: 8080, nodePort: 30080}")
        ),
    )
    .unwrap();
    wait_for("the hung restore killed and counted", 120, &log, || {
        restore_failures() > settled
    });
    assert!(
        logs().contains("no result within 30s, killed"),
        "{}",
        logs()
    );
    assert!(http_get(10249, "/metrics").is_some_and(|(s, _)| s == 200));
    set_mode("ok");
    wait_for("/healthz 200 after the hang", 120, &log, || {
        http_get(10256, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    sh("iptables -t nat -S KUBE-NODE-PORT >/dev/null");
}
