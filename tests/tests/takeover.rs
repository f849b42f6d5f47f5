//! Taking a node over from stock kube-proxy and handing it back, in the lab, under traffic.
//!
//! Each test is a node (a fresh network namespace) with backends and a client in namespaces of
//! their own behind veths. Stock kube-proxy's state is built from its source
//! (`kube_ipvs_e2e::stock`) with the stock tools; `kube-ipvs run` (the real binary) then takes
//! over against the fake API server while clients hold one connection open and open new ones
//! back to back through a ClusterIP and a NodePort. No connection may fail or be reset.
//!
//! - IPVS mode, first without known service CIDRs (stock's bound ClusterIPs are adopted), then
//!   with one (the route goes in with the first sync; the bound addresses are retired in
//!   batches afterwards);
//! - iptables mode, then deploy/cleanup-iptables-mode.sh;
//! - hand-back: kube-ipvs's node (routes, a set grown past stock's maxelem) after
//!   `kube-ipvs cleanup --handback` is exactly stock's state, stock's own `ipset create -exist`
//!   and rules apply, and no unallocated service address answers on a host port;
//! - a service CIDR that one route would make dangerous (0.0.0.0/0; one holding the node's
//!   subnet and gateway) is not routed, with a real default route to the API server.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use kube_ipvs_e2e::lab::{
    Procs, Traffic, agent_binary, applied_ops, artifacts, bound, first_sync_ops, note, reaches,
    serve_in, sh, sh_try, spawn_in_netns, wait_first_sync, wait_healthy,
};
use kube_ipvs_e2e::stock::{self, Node, Proto};
use serde_json::{Value, json};

/// The tests share the guest's two CPUs: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const NODE: &str = "node-a";
/// The node's address on the client's side: NodePorts are asked there.
const NODE_IP: &str = "10.0.100.254";
const VIP: &str = "10.96.0.10";
const NODE_PORT: u16 = 30080;
/// web's external IP: bound to the dummy device by stock and kube-ipvs alike, in no service CIDR.
const EXTERNAL_IP: &str = "192.0.2.50";
/// Services without endpoints besides `web`: their ClusterIPs fill the dummy device, so
/// retiring them takes several batches.
const FILLERS: u32 = 100;
const HEALTHZ: &str = "127.0.0.1:10256";
const METRICS: &str = "127.0.0.1:10249";

fn filler_vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + i)
}

/// web (NodePort, two backends) and the fillers, as the API server and stock see them.
fn cluster() -> Vec<Value> {
    let mut objs = vec![
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
               "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "NodePort", "clusterIP": VIP, "clusterIPs": [VIP],
                        "ipFamilies": ["IPv4"], "externalIPs": [EXTERNAL_IP],
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                   "targetPort": 8080, "nodePort": NODE_PORT}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-abc", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [
                   {"addresses": ["10.0.1.1"], "conditions": {"ready": true}, "nodeName": "node-b"},
                   {"addresses": ["10.0.2.1"], "conditions": {"ready": true}, "nodeName": "node-b"}]}),
    ];
    for i in 0..FILLERS {
        let ip = filler_vip(i).to_string();
        objs.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("f{i}"), "namespace": "fill"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                     "ports": [{"name": "p", "port": 80, "protocol": "TCP", "targetPort": 80}]}}));
    }
    objs
}

/// The node as stock saw it: the veth addresses towards the two backends and the client, and a
/// third endpoint of web stock left draining at weight 0 when it stopped.
fn stock_node() -> Node {
    Node {
        name: NODE.into(),
        addresses: ["10.0.1.254", "10.0.2.254", NODE_IP]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect(),
        cluster_cidr: None,
        draining: vec![(
            Proto::Tcp,
            VIP.parse().unwrap(),
            80,
            "10.0.3.1".parse().unwrap(),
            8080,
        )],
    }
}

/// A node: fresh namespace, two backends (b1, b2) and a client namespace (10.0.100.1).
struct Lab {
    _procs: Procs,
    client: u32,
    dir: PathBuf,
}

fn lab(name: &str) -> Lab {
    lab_kit::enter_fresh_netns();
    sh("sysctl -qw net.ipv4.ip_forward=1");
    let dir = artifacts(name);
    note(&format!("{name}: artifacts in {}", dir.display()));
    let mut procs = Procs::default();
    for i in 1..=2u8 {
        let pid = spawn_in_netns(&mut procs, i, &["sleep", "36000"]);
        serve_in(Some(pid), &format!("b{i}"), 8080);
    }
    let client = spawn_in_netns(&mut procs, 100, &["sleep", "3600"]);
    Lab {
        _procs: procs,
        client,
        dir,
    }
}

fn api(objects: &[Value]) -> FakeApiServer {
    let api = FakeApiServer::start_on_own_thread().unwrap();
    for o in objects {
        api.apply_value(o.clone()).unwrap();
    }
    api
}

fn start_agent(dir: &Path, kubeconfig: &str, log: &str, extra: &[&str]) -> Child {
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, kubeconfig).unwrap();
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(agent_binary())
        .args(["run", "--kubeconfig"])
        .arg(&kc)
        .args(["--hostname-override", NODE])
        .args([
            "--healthz-bind-address",
            HEALTHZ,
            "--metrics-bind-address",
            METRICS,
        ])
        .args(["--ipvs-sync-period", "20s"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn kube-ipvs run")
}

fn stop(mut agent: Child) {
    sh(&format!("kill -TERM {}", agent.id()));
    let _ = agent.wait();
}

/// Runs an agent until its first full sync is done: prints and returns the time to
/// `/healthz` 200 (stock's semantics: healthy while no change has waited 2 x syncPeriod, so
/// usually at once) and to the end of the first full sync, and that sync's ops by kind.
fn take_over(lab: &Lab, api: &FakeApiServer, log: &str, extra: &[&str]) -> (Child, String) {
    let started = Instant::now();
    let agent = start_agent(&lab.dir, &api.kubeconfig_yaml(), log, extra);
    let path = lab.dir.join(log);
    let healthy = wait_healthy(HEALTHZ, started, Duration::from_secs(600), &path);
    let synced = wait_first_sync(METRICS, started, Duration::from_secs(600), &path);
    let ops = first_sync_ops(&path);
    let line = format!(
        "{log}: /healthz 200 after {:.1} s, first full sync done after {:.1} s, its ops: {ops}",
        healthy.as_secs_f64(),
        synced.as_secs_f64()
    );
    note(&line);
    (agent, line)
}

fn assert_clean(seen: &[kube_ipvs_e2e::lab::Seen]) {
    for s in seen {
        assert!(s.ok > 10, "too little traffic to prove anything: {s:?}");
        assert_eq!(
            s.failed, 0,
            "connections to {} failed:\n{}",
            s.target, s.log
        );
        assert!(
            s.held,
            "the held connection to {} was lost:\n{}",
            s.target, s.log
        );
    }
}

fn ipvs_rules() -> BTreeSet<String> {
    sh("ipvsadm -Sn").lines().map(str::to_owned).collect()
}

fn stock_rules(st: &stock::IpvsState) -> BTreeSet<String> {
    st.ipvsadm.lines().map(str::to_owned).collect()
}

/// Stock IPVS mode -> kube-ipvs without a known service CIDR -> kube-ipvs with one -> back to
/// stock (`rollout undo` + `kube-ipvs cleanup --handback`), one node, traffic throughout.
#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn takeover_and_hand_back_in_ipvs_mode_keep_every_connection() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lab = lab("takeover-ipvs");
    let objects = cluster();
    let st = stock::ipvs_mode(&objects, &stock_node());
    sh(&stock::ipvs_script(&st, &lab.dir));
    assert_eq!(ipvs_rules(), stock_rules(&st));
    note("stock's state programmed with the stock tools");
    // A host port an unallocated service address must never reach.
    serve_in(None, "host", 2222);
    let api = api(&objects);
    let traffic = [
        Traffic::start(lab.client, VIP, 80),
        Traffic::start(lab.client, NODE_IP, NODE_PORT),
    ];
    note("traffic running");

    // 1. No service CIDR known: stock's bound ClusterIPs are what kube-ipvs wants too.
    let (agent, report1) = take_over(&lab, &api, "agent-bound.log", &[]);
    stop(agent);
    assert_eq!(bound("kube-ipvs0").len(), 2 + FILLERS as usize);

    // 2. The service CIDR known: the route goes in with the first sync, the addresses are
    //    retired in batches afterwards.
    let (agent, report2) = take_over(
        &lab,
        &api,
        "agent-routed.log",
        &["--service-cluster-ip-range", "10.96.0.0/16"],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let external = vec![format!("{EXTERNAL_IP}/32")];
    while bound("kube-ipvs0") != external {
        assert!(
            Instant::now() < deadline,
            "never retired: {:?}",
            bound("kube-ipvs0")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let retired = applied_ops(METRICS);
    note(&format!("retired: ops {retired:?}"));
    assert_eq!(retired.get("unbind_addr"), Some(&(1 + u64::from(FILLERS))));
    let routes = sh("ip route show table local proto static");
    assert!(routes.contains("local 10.96.0.0/16 dev lo"), "{routes}");
    // The table is stock's; the real server stock left draining may have been deleted (idle)
    // but never got traffic back.
    let not_draining = |rules: BTreeSet<String>| -> BTreeSet<String> {
        rules
            .into_iter()
            .filter(|l| !l.contains("10.0.3.1"))
            .collect()
    };
    let now = ipvs_rules();
    assert_eq!(not_draining(now.clone()), not_draining(stock_rules(&st)));
    assert!(
        now.iter()
            .filter(|l| l.contains("10.0.3.1"))
            .all(|l| l.ends_with("-w 0"))
    );

    // 3. Back to stock: `kubectl rollout undo` stops kube-ipvs, its state stays. A set kube-ipvs
    //    grew (stock's 65,536 overflow at ~33,000 two-port Services; resized here the way
    //    kube-ipvs resizes one, members kept) would stop stock's sync at `ipset create -exist`.
    stop(agent);
    sh(
        "ipset create KIPVS-T hash:ip,port family inet hashsize 1024 maxelem 1048576 \
        && ipset list KUBE-CLUSTER-IP | sed -n '/^Members:/,$p' | tail -n +2 \
           | sed 's/^/add KIPVS-T /' | ipset restore -exist \
        && ipset swap KUBE-CLUSTER-IP KIPVS-T && ipset destroy KIPVS-T",
    );
    let stock_create = "ipset create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 \
                        maxelem 65536 -exist";
    let (ok, why) = sh_try(stock_create);
    assert!(!ok, "stock's ensureIPSet would pass on a grown set: {why}");
    let out = sh(&format!("{} cleanup --handback", agent_binary().display()));
    note(&format!("hand-back:\n{out}"));
    assert!(
        out.contains("resize ipset KUBE-CLUSTER-IP")
            && out.contains(&format!("bind {} virtual-server address", 1 + FILLERS))
            && out.contains("delete route local 10.96.0.0/16"),
        "{out}"
    );
    // Stock's first sync (syncProxyRules) on this node: its sets ensure, and it finds exactly
    // its own state: the same virtual servers, bound addresses and set members.
    for line in st.ipset.lines().filter(|l| l.starts_with("create ")) {
        sh(&format!("ipset {line} -exist"));
    }
    assert_eq!(not_draining(ipvs_rules()), not_draining(stock_rules(&st)));
    let want: BTreeSet<String> = st.bound.iter().map(|a| format!("{a}/32")).collect();
    assert_eq!(
        bound("kube-ipvs0").into_iter().collect::<BTreeSet<_>>(),
        want
    );
    let adds = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("add "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(adds(&sh("ipset save")), adds(&st.ipset), "set members");
    sh(&format!(
        "iptables-restore -w --noflush < {}",
        lab.dir.join("stock-iptables.rules").display()
    ));
    let routes = sh("ip route show table local proto static");
    assert!(routes.trim().is_empty(), "{routes}");
    // No unallocated service address answers on a host port; an allocated one is rejected by
    // stock's KUBE-IPVS-FILTER.
    for addr in ["10.96.200.200", VIP] {
        assert!(
            !reaches(lab.client, &format!("{addr}:2222")),
            "{addr}:2222 reached a host port"
        );
    }
    let again = sh(&format!("{} cleanup --handback", agent_binary().display()));
    assert!(again.contains("nothing to hand back"), "{again}");
    std::thread::sleep(Duration::from_secs(1));
    let seen: Vec<_> = traffic.into_iter().map(Traffic::finish).collect();
    for s in &seen {
        note(&format!(
            "{} ok {} failed {} held {} slowest {:.2?}",
            s.target, s.ok, s.failed, s.held, s.slowest
        ));
    }
    assert_clean(&seen);
    note(&format!("{report1}\n{report2}"));
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn takeover_from_stock_iptables_mode_keeps_every_connection() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lab = lab("takeover-iptables");
    let objects = cluster();
    let rules = stock::iptables_mode(&objects, &stock_node());
    std::fs::write(lab.dir.join("stock-iptables-mode.rules"), &rules).unwrap();
    for (k, v) in stock::IPTABLES_SYSCTLS {
        sh(&format!("sysctl -qw {k}={v}"));
    }
    sh(&format!(
        "iptables-restore -w --noflush < {}",
        lab.dir.join("stock-iptables-mode.rules").display()
    ));
    let api = api(&objects);
    let traffic = [
        Traffic::start(lab.client, VIP, 80),
        Traffic::start(lab.client, NODE_IP, NODE_PORT),
    ];
    std::thread::sleep(Duration::from_secs(1));
    let (agent, report) = take_over(
        &lab,
        &api,
        "agent.log",
        &["--service-cluster-ip-range", "10.96.0.0/16"],
    );
    std::thread::sleep(Duration::from_secs(2));
    // MIGRATING.md: right after the pod is ready, the iptables mode's own chains go.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cleanup-iptables-mode.sh");
    let out = sh(&format!("sh {}", script.display()));
    note(&out);
    std::thread::sleep(Duration::from_secs(2));
    let seen: Vec<_> = traffic.into_iter().map(Traffic::finish).collect();
    stop(agent);
    for s in &seen {
        eprintln!(
            "{} ok {} failed {} held {} slowest {:.2?}",
            s.target, s.ok, s.failed, s.held, s.slowest
        );
    }
    assert_clean(&seen);
    let left = sh("iptables-save");
    assert!(
        !left.contains("KUBE-SVC-") && !left.contains("KUBE-SEP-"),
        "{left}"
    );
    note(&report);
}

/// Issue 16 part 1: the node routes to the API server through a real default route; ServiceCIDR
/// objects for 0.0.0.0/0 and for the node's own subnet (holding its address and gateway) must
/// not become local routes, while the configured 10.96.0.0/16 does. ClusterIPs outside a routed
/// range are bound one by one; Warning Events and the rejection gauge say why.
#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn an_unsafe_service_cidr_is_not_routed_and_the_api_server_stays_reachable() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The API server in the lab's root namespace, on an address only the default route reaches.
    let api = FakeApiServer::start_on_own_thread_at(SocketAddr::from(([0, 0, 0, 0], 0))).unwrap();
    let port = api.addr().port();
    lab_kit::enter_fresh_netns();
    let dir = artifacts("unsafe-cidr");
    sh("ip link add eth0 type veth peer name gw0 netns 1 \
        && ip addr add 10.0.250.1/24 dev eth0 && ip link set eth0 up \
        && ip route add default via 10.0.250.254");
    sh(
        "nsenter -t 1 -n sh -c 'ip link set lo up; ip addr add 10.0.250.254/24 dev gw0 \
        && ip link set gw0 up && ip addr add 192.0.2.10/32 dev lo'",
    );
    let kubeconfig = api
        .kubeconfig_yaml()
        .replace(&api.url(), &format!("http://192.0.2.10:{port}"));
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
               "status": {"addresses": [{"type": "InternalIP", "address": "10.0.250.1"}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
               "metadata": {"name": "everything"}, "spec": {"cidrs": ["0.0.0.0/0"]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
               "metadata": {"name": "node-subnet"}, "spec": {"cidrs": ["10.0.250.0/24"]}}),
    ];
    for (name, ip) in [
        ("routed", VIP),
        ("elsewhere", "172.30.0.5"),
        ("subnet", "10.0.250.77"),
    ] {
        objects.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                     "ports": [{"name": "p", "port": 80, "protocol": "TCP", "targetPort": 80}]}}));
    }
    for o in &objects {
        api.apply_value(o.clone()).unwrap();
    }
    let started = Instant::now();
    let agent = start_agent(
        &dir,
        &kubeconfig,
        "agent.log",
        &["--service-cluster-ip-range", "10.96.0.0/16"],
    );
    wait_healthy(
        HEALTHZ,
        started,
        Duration::from_secs(120),
        &dir.join("agent.log"),
    );
    // Healthy comes before the first sync ends (stock's semantics): wait for its route.
    let deadline = Instant::now() + Duration::from_secs(120);
    let routes = loop {
        let routes = sh("ip route show table local proto static");
        if routes.contains("local 10.96.0.0/16 dev lo") || Instant::now() > deadline {
            break routes;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(routes.contains("local 10.96.0.0/16 dev lo"), "{routes}");
    assert!(
        !routes.contains("0.0.0.0/0")
            && !routes.contains("default")
            && !routes.contains("10.0.250.0/24"),
        "{routes}"
    );
    let via = sh("ip route get 192.0.2.10");
    assert!(via.contains("via 10.0.250.254"), "{via}");
    let on_dummy: BTreeSet<String> = bound("kube-ipvs0").into_iter().collect();
    assert_eq!(
        on_dummy,
        ["10.0.250.77/32", "172.30.0.5/32"].map(String::from).into()
    );
    // The agent still reaches the API server: a new Service is programmed.
    api.apply_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "later", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"],
                 "ipFamilies": ["IPv4"], "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}}))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sh("ipvsadm -Ln").contains("10.96.0.11:80") {
        assert!(Instant::now() < deadline, "the agent lost the API server");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let events: Vec<Value> = api
            .events()
            .into_iter()
            .filter(|e| e.get("reason").and_then(Value::as_str) == Some("UnsafeServiceCIDR"))
            .collect();
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let names: BTreeSet<&str> = refused
        .iter()
        .filter_map(|e| e.pointer("/regarding/name").and_then(Value::as_str))
        .collect();
    assert_eq!(names, ["everything", "node-subnet"].into(), "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e.get("type").and_then(Value::as_str) == Some("Warning"))
    );
    let (_, metrics) = kube_ipvs_e2e::lab::http_get(METRICS, "/metrics").unwrap();
    assert!(
        metrics.contains("kube_ipvs_rejected_objects{reason=\"UnsafeServiceCIDR\"} 2"),
        "{metrics}"
    );
    stop(agent);
    sh("nsenter -t 1 -n sh -c 'ip link del gw0 2>/dev/null; ip addr del 192.0.2.10/32 dev lo'");
}
