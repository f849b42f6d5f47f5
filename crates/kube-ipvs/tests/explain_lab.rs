//! Lab test of `kube-ipvs explain` against a real kernel: the agent (`kube-ipvs run --source
//! file:`, the real binary) programs a fresh network namespace (the "node"); things are then
//! broken on purpose and `explain` (the real binary, given the agent's flags) must name each
//! problem and its fix, and exit 0 on the healthy Service. Needs the lab (`cargo xtask test -p
//! kube-ipvs`) and fails loudly without IPVS.
//!
//! Broken on purpose: a real server deleted behind the agent's back, a Service whose endpoints
//! are not ready, a targetPort nothing listens on, nodePortAddresses matching no node address,
//! a full conntrack table.
// Test code: helpers outside #[test] fns may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use lab_kit::{enter_fresh_netns, sh};

const BIN: &str = env!("CARGO_BIN_EXE_kube-ipvs");
const NODE: &str = "node-a";

/// Two endpoints listening on 8080 (on a dummy link of the node: local addresses), one of them
/// on this node. `badport` targets 8081, where nothing listens; `np` is a NodePort Service the
/// agent's nodePortAddresses keeps off every node address.
fn cluster_yaml() -> String {
    let svc = |name: &str, ip: &str, node_port: bool, target: u16| {
        let (kind, np) = if node_port {
            ("  type: NodePort\n", ", nodePort: 30080")
        } else {
            ("", "")
        };
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  \
             selector: {{app: {name}}}\n  clusterIP: {ip}\n  clusterIPs: [{ip}]\n{kind}  ports: \
             [{{name: http, port: 80, protocol: TCP, targetPort: {target}{np}}}]\n---\n"
        )
    };
    let slice = |name: &str, ready: bool, port: u16| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  \
             namespace: shop\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\n\
             endpoints:\n- {{addresses: [10.244.1.5], nodeName: node-a, conditions: {{ready: {ready}}}}}\n\
             - {{addresses: [10.244.1.6], nodeName: node-b, conditions: {{ready: {ready}}}}}\n\
             ports: [{{name: http, port: {port}, protocol: TCP}}]\n---\n"
        )
    };
    let mut y = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {NODE}}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.0.9.1}}]}}\n---\n"
    );
    for (name, ip, node_port, target, ready) in [
        ("web", "10.96.0.20", false, 8080, true),
        ("gone", "10.96.0.21", false, 8080, true),
        ("noready", "10.96.0.22", false, 8080, false),
        ("badport", "10.96.0.23", false, 8081, true),
        ("np", "10.96.0.24", true, 8080, true),
    ] {
        y += &svc(name, ip, node_port, target);
        y += &slice(name, ready, target);
    }
    y
}

/// Kills the agent (and restores the conntrack limit) however the test ends.
struct Guard {
    agent: Child,
    conntrack_max: Option<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        if let Some(max) = &self.conntrack_max {
            let _ = Command::new("nsenter")
                .args(["-t", "1", "-n", "sysctl", "-qw"])
                .arg(format!("net.netfilter.nf_conntrack_max={max}"))
                .status();
        }
    }
}

/// The agent's flags, given to `run` and to `explain` alike.
fn agent_flags(cluster: &Path) -> Vec<String> {
    [
        &format!("--source=file:{}", cluster.display()),
        "--hostname-override=node-a",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--healthz-bind-address=127.0.0.1:10256",
        "--metrics-bind-address=127.0.0.1:10249",
        // No repair while the test runs: what is broken stays broken.
        "--ipvs-sync-period=1h",
        "--nodeport-addresses=192.0.2.0/24",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// The agent's flags parsed as `run` parses them.
#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    run: kube_ipvs::config::RunArgs,
}

/// `explain` in this process (the binary's code path without its start-up: under emulation
/// each process start costs seconds): gather with the agent's configuration, check, render.
fn explain_here(rt: &tokio::runtime::Runtime, flags: &[String], target: &str) -> (u8, String) {
    use clap::Parser as _;
    use kube_ipvs::explain::{self, gather, render};
    let t0 = Instant::now();
    let args =
        Flags::try_parse_from(std::iter::once("run").chain(flags.iter().map(String::as_str)))
            .unwrap();
    let loaded = kube_ipvs::config::load(&args.run).unwrap();
    let opts = gather::Options {
        target: target.parse().unwrap(),
        files: Vec::new(),
        owners: kube_ipvs::owners::DEFAULT_PATH.into(),
        failures: kube_ipvs::failures::DEFAULT_PATH.into(),
        probe: true,
        timeout: Duration::from_secs(3),
    };
    let inputs = rt.block_on(gather::gather(&loaded.config, &opts)).unwrap();
    let report = explain::explain(&inputs);
    let text = render::text(&report);
    eprintln!(
        "explain {target} (in process): {:.1}s, exit {}\n{text}",
        t0.elapsed().as_secs_f64(),
        report.exit_status()
    );
    (report.exit_status(), text)
}

/// The report must have exit status `status` and hold each of `want`.
fn expect_here(rt: &tokio::runtime::Runtime, flags: &[String], target: &str, want: &[&str]) {
    let (status, text) = explain_here(rt, flags, target);
    assert_eq!(status, 1, "{text}");
    for w in want {
        assert!(
            text.contains(w),
            "{w:?} missing from the report of {target}:\n{text}"
        );
    }
}

fn explain(flags: &[String], args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("explain")
        .args(args)
        .args(flags)
        .output()
        .expect("spawn kube-ipvs explain")
}

/// Runs the explain binary on `target`: it must exit `status` and its report must hold each of `want`
/// (`[FAIL] CHECK ...` lines and fix texts).
fn expect(flags: &[String], target: &str, status: i32, want: &[&str]) -> String {
    let t0 = Instant::now();
    let out = explain(flags, &[target]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "explain {target}: {:.1}s, exit {:?}\n{text}",
        t0.elapsed().as_secs_f64(),
        out.status.code()
    );
    assert_eq!(
        out.status.code(),
        Some(status),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for w in want {
        assert!(
            text.contains(w),
            "{w:?} missing from the report of {target}:\n{text}"
        );
    }
    text
}

/// Waits until the agent has programmed every Service and published its files.
fn wait_programmed(rt: &tokio::runtime::Runtime, ipvs: &mut ipvs_netlink::Client, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let listed = rt.block_on(ipvs.list_services()).map_or(0, |s| s.len());
        let published = Path::new(kube_ipvs::failures::DEFAULT_PATH).exists()
            && Path::new(kube_ipvs::owners::DEFAULT_PATH).exists();
        if listed == 5 && published {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not program the Services ({listed} virtual servers); its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn explain_names_each_broken_thing_and_passes_a_healthy_service() {
    let started = Instant::now();
    // The conntrack limit is global (read-only in other namespaces): read it before leaving.
    let conntrack_max = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .map(|s| s.trim().to_string())
        .expect("nf_conntrack is not loaded in the lab");
    enter_fresh_netns();
    sh(
        "ip link add eth0 type dummy && ip addr add 10.0.9.1/24 dev eth0 && ip link set eth0 up \
        && ip link add pods type dummy && ip addr add 10.244.1.5/32 dev pods \
        && ip addr add 10.244.1.6/32 dev pods && ip link set pods up",
    );
    // The "Pods": listening on 8080 (the kernel completes handshakes without accept()).
    let _pods: Vec<TcpListener> = ["10.244.1.5:8080", "10.244.1.6:8080"]
        .iter()
        .map(|a| TcpListener::bind(a).unwrap())
        .collect();

    let base = std::env::var_os("LAB_SHARE").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("kube-ipvs-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = dir.join("cluster.yaml");
    std::fs::write(&cluster, cluster_yaml()).unwrap();
    let log = dir.join("agent.log");
    let flags = agent_flags(&cluster);
    let agent = Command::new(BIN)
        .arg("run")
        .args(&flags)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
        .spawn()
        .expect("spawn kube-ipvs run");
    let mut guard = Guard {
        agent,
        conntrack_max: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ipvs = rt.block_on(ipvs_netlink::Client::connect()).unwrap();
    wait_programmed(&rt, &mut ipvs, &log);
    eprintln!(
        "agent programmed after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Healthy, asked by address (resolved through the agent's owners file), as JSON: exit 0.
    let out = explain(&flags, &["10.96.0.20:80/tcp", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["status"], 0);
    assert_eq!(v["service"], "shop/web");
    let checks = v["checks"].as_array().unwrap();
    for c in checks {
        assert!(
            c["verdict"] == "pass" || c["verdict"] == "skip",
            "healthy shop/web: {c:#}"
        );
    }
    // Every kernel-side check really ran against the kernel and the agent.
    for id in [
        "reachable",
        "ipvs",
        "address",
        "ipset",
        "conntrack",
        "agent",
    ] {
        let c = checks.iter().find(|c| c["id"] == id).unwrap();
        assert_eq!(c["verdict"], "pass", "{id}: {v:#}");
    }

    // A real server deleted behind the agent's back (its repair is an hour away).
    let gone = ipvs_netlink::VirtualServiceKey::tcp("10.96.0.21".parse().unwrap(), 80);
    rt.block_on(ipvs.delete_destination(&gone, "10.244.1.6".parse().unwrap(), 8080))
        .unwrap();
    expect_here(
        &rt,
        &flags,
        "shop/gone",
        &[
            "[FAIL] ipvs",
            "TCP  10.96.0.21:80 -> 10.244.1.6:8080: real server missing",
            "fix: the agent's full repair (every syncPeriod, 3600s) restores the plan",
        ],
    );
    expect_here(
        &rt,
        &flags,
        "shop/noready",
        &[
            "[FAIL] endpoints    no ready endpoints: 2 not ready",
            "fix: kubectl -n shop get pods -l app=noready -o wide",
        ],
    );
    expect_here(
        &rt,
        &flags,
        "shop/badport",
        &[
            "[FAIL] reachable    2 of 2 endpoints do not accept connections",
            "10.244.1.5:8081: refused (nothing listens)",
            "why: nothing listens on port 8081",
            "fix: compare spec.ports[].targetPort with the port the container listens on",
        ],
    );
    expect_here(
        &rt,
        &flags,
        "shop/np",
        &[
            "[FAIL] nodeports    NodePort 30080/TCP is served on no address of this node",
            "node addresses: 10.0.9.1",
            "why: nodePortAddresses (192.0.2.0/24) matches none",
            "fix: set nodePortAddresses in the kube-proxy configuration",
        ],
    );

    // A full conntrack table: 240 established connections, then a global limit of 252 (read-only
    // in other namespaces: set in the lab's own). Established entries never expire while open,
    // and the kernel keeps what it holds when the limit drops.
    let sink = TcpListener::bind("10.0.9.1:9000").unwrap();
    let _held_server = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in sink.incoming() {
            held.push(s);
        }
    });
    let to = "10.0.9.1:9000".parse().unwrap();
    let held: Vec<std::net::TcpStream> = (0..240)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok())
        .collect();
    assert!(held.len() >= 236, "only {} connections", held.len());
    sh("nsenter -t 1 -n sysctl -qw net.netfilter.nf_conntrack_max=252");
    guard.conntrack_max = Some(conntrack_max);
    expect(
        &flags,
        "shop/web",
        1,
        &[
            "[FAIL] conntrack    conntrack table full",
            "fix: raise the limit: conntrack.maxPerCore",
        ],
    );
    drop(guard);
    eprintln!("explain lab test: {:.1}s", started.elapsed().as_secs_f64());
}
