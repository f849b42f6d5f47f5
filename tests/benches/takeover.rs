//! `cargo xtask bench takeover`: kube-ipvs taking over a node from stock kube-proxy (IPVS mode) at
//! 50,000 Services x 2 ports x 2 endpoints, in the lab (issue 20).
//!
//! 1. Stock's state for the cluster, built from stock's source (`kube_ipvs_e2e::stock`) with the
//!    stock tools (`ip -batch`, `ipvsadm -R`, `ipset restore`, `iptables-restore`), timed.
//! 2. Stock's own restart on that state, modelled by the kernel round trips its first sync makes
//!    (pkg/proxy/ipvs/proxier.go: per virtual server a GET for `syncService` and one for
//!    `syncEndpoint`, a destination dump; one table dump for `cleanLegacyService`; `ipset list`
//!    of each set; one `ipset add` process per member missing from a set, which at this size
//!    means the 34,464 `KUBE-CLUSTER-IP` members stock's 65,536 cannot hold, every sync), as a
//!    lower bound (no Go, no process start-up but the measured ones).
//! 3. kube-ipvs started on that state without a known service CIDR (it adopts the bound
//!    ClusterIPs), then restarted with `--service-cluster-ip-range` (one route, the bound
//!    addresses retired in batches): time to `/healthz` 200, the first sync's ops by kind, the
//!    retirement's duration, and meanwhile the latency of single EndpointSlice changes (the
//!    longest a change waited) and clients holding and opening connections through a ClusterIP
//!    and a NodePort of a Service with real backends (failures must be 0).
//!
//! `BENCH_SERVICES` sets a smaller size for a quick look.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use ipvs_netlink::{Client, VirtualServiceKey};
use kube_ipvs_e2e::lab::{
    Procs, Traffic, agent_binary, applied_ops, artifacts, ops_since, serve_in, sh, spawn_in_netns,
    wait_healthy,
};
use kube_ipvs_e2e::stock;
use serde_json::{Value, json};

const NODE: &str = "node-a";
const NODE_IP: &str = "10.0.100.254";
/// The Service with real backends the clients use. Outside the routed 10.96.0.0/16, and sorted
/// before it: stock's `KUBE-CLUSTER-IP` (maxelem 65,536) cannot hold every ClusterIP at this size,
/// members are added in sorted order, and `KUBE-IPVS-FILTER` rejects new connections to a
/// ClusterIP missing from it; web's must be among those that fit, or stock itself refuses them.
const WEB: &str = "10.95.0.10";
const NODE_PORT: u16 = 30080;
const HEALTHZ: &str = "127.0.0.1:10256";
const METRICS: &str = "127.0.0.1:10249";

fn services() -> u32 {
    std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

fn vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i)
}

fn endpoint(i: u32, k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + i * 4 + k)
}

fn service(i: u32) -> Value {
    let ip = vip(i).to_string();
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("s{i}"), "namespace": "bench"},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                           {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]}})
}

fn slice(i: u32, eps: [u32; 2]) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|k| {
            json!({"addresses": [endpoint(i, *k).to_string()],
                        "conditions": {"ready": true}, "nodeName": "node-b"})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("s{i}-x"), "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": format!("s{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "https", "port": 8443, "protocol": "TCP"}],
        "endpoints": endpoints})
}

/// The Service traffic goes through: two real backends, ClusterIP (outside the bench range, in
/// 10.97.0.0/16) and NodePort.
fn web() -> [Value; 2] {
    [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": WEB, "clusterIPs": [WEB], "ipFamilies": ["IPv4"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                                "nodePort": NODE_PORT}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.0.1.1"], "conditions": {"ready": true}, "nodeName": "node-b"},
                          {"addresses": ["10.0.2.1"], "conditions": {"ready": true}, "nodeName": "node-b"}]}),
    ]
}

fn timed(what: &str, cmd: &str) -> Duration {
    let t = Instant::now();
    sh(cmd);
    let d = t.elapsed();
    println!("  {what}: {:.1} s", d.as_secs_f64());
    d
}

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

    fn dests(&mut self, key: &VirtualServiceKey) -> Vec<IpAddr> {
        self.rt
            .block_on(self.client.list_destinations(key))
            .map(|d| {
                d.into_iter()
                    .filter(|d| d.weight > 0)
                    .map(|d| d.addr)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stock's first sync's IPVS round trips: per virtual server two GETs and a destination
    /// dump, and one table dump.
    fn stock_sync_round_trips(&mut self) -> (Duration, usize) {
        let t = Instant::now();
        let services = self.rt.block_on(self.client.list_services()).unwrap();
        for s in &services {
            for _ in 0..2 {
                let _ = self.rt.block_on(self.client.get_service(&s.key));
            }
            let _ = self.rt.block_on(self.client.list_destinations(&s.key));
        }
        let _ = self.rt.block_on(self.client.list_services()).unwrap();
        (t.elapsed(), services.len())
    }
}

fn start_agent(dir: &std::path::Path, kubeconfig: &str, log: &str, extra: &[&str]) -> Child {
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
        .args(["--ipvs-sync-period", "90s"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn stop(mut agent: Child) {
    sh(&format!("kill -TERM {}", agent.id()));
    let _ = agent.wait();
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn dummy_addresses() -> usize {
    sh("ip -o -4 addr show dev kube-ipvs0 | wc -l")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// One takeover run: agent start to healthy, the first sync's ops, then EndpointSlice changes
/// (one at a time, each waited for) until `until` says the run is done, with traffic throughout.
#[allow(clippy::too_many_arguments)]
fn run(
    label: &str,
    dir: &std::path::Path,
    api: &FakeApiServer,
    ipvs: &mut Ipvs,
    client: u32,
    n: u32,
    extra: &[&str],
    until: &dyn Fn() -> bool,
    first_change: &mut u32,
) -> Child {
    println!("== {label}");
    let traffic = [
        Traffic::start(client, WEB, 80),
        Traffic::start(client, NODE_IP, NODE_PORT),
    ];
    let log = format!("agent-{}.log", label.replace(' ', "-"));
    let before = applied_ops(METRICS);
    let started = Instant::now();
    let agent = start_agent(dir, &api.kubeconfig_yaml(), &log, extra);
    let ready = wait_healthy(HEALTHZ, started, Duration::from_secs(3600), &dir.join(&log));
    let first = ops_since(&before, &applied_ops(METRICS));
    let total: u64 = first.values().sum();
    println!("time to /healthz 200: {:.2} s", ready.as_secs_f64());
    println!("first sync: {total} ops {first:?}");
    let t0 = Instant::now();
    let mut lat = Vec::new();
    loop {
        let done = until();
        if done && lat.len() >= 20 {
            break;
        }
        let i = (*first_change * 7919) % n;
        let k = 2 + (*first_change % 2);
        *first_change += 1;
        let want = IpAddr::V4(endpoint(i, k));
        let key = VirtualServiceKey::tcp(IpAddr::V4(vip(i)), 80);
        let t = Instant::now();
        api.apply_value(slice(i, [0, k])).unwrap();
        while !ipvs.dests(&key).contains(&want) {
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "a change never reached the kernel"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        lat.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let busy = t0.elapsed();
    lat.sort();
    println!(
        "{} EndpointSlice changes over {:.1} s after ready: p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        lat.len(),
        busy.as_secs_f64(),
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        pct(&lat, 1.0).as_secs_f64() * 1e3
    );
    let all = ops_since(&before, &applied_ops(METRICS));
    println!("all ops until then: {all:?}");
    for s in traffic.into_iter().map(Traffic::finish) {
        println!(
            "traffic {}: {} connections ok, {} failed, held connection {}, slowest {:.2?}",
            s.target,
            s.ok,
            s.failed,
            if s.held { "kept" } else { "LOST" },
            s.slowest
        );
        assert_eq!(s.failed, 0, "{}", s.log);
        assert!(s.held, "{}", s.log);
    }
    agent
}

fn main() {
    assert!(
        std::path::Path::new("/proc/net/ip_vs").exists(),
        "no IPVS in this kernel: run through `cargo xtask bench takeover`"
    );
    let n = services();
    let dir = artifacts("kube-ipvs-takeover-bench");
    lab_kit::enter_fresh_netns();
    sh("sysctl -qw net.ipv4.ip_forward=1");
    let mut procs = Procs::default();
    for i in 1..=2u8 {
        let pid = spawn_in_netns(&mut procs, i, &["sleep", "36000"]);
        serve_in(Some(pid), &format!("b{i}"), 8080);
    }
    let client = spawn_in_netns(&mut procs, 100, &["sleep", "36000"]);
    println!(
        "== takeover bench: {n} Services x 2 ports x 2 endpoints (+ web with 2 real backends)"
    );

    let mut objects: Vec<Value> = vec![json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}})];
    objects.extend(web());
    for i in 0..n {
        objects.push(service(i));
        objects.push(slice(i, [0, 1]));
    }
    let node = stock::Node {
        name: NODE.into(),
        addresses: ["10.0.1.254", "10.0.2.254", NODE_IP]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect(),
        cluster_cidr: None,
        draining: vec![],
    };
    let st = stock::ipvs_mode(&objects, &node);
    println!(
        "stock's state: {} virtual servers, {} real servers, {} set members, {} bound addresses",
        st.counts.0,
        st.counts.1,
        st.counts.2,
        st.bound.len()
    );
    let script = stock::ipvs_script(&st, &dir);
    std::fs::write(dir.join("stock.sh"), &script).unwrap();
    println!("building it with the stock tools:");
    let p = |f: &str| dir.join(f).display().to_string();
    sh("modprobe ip_vs 2>/dev/null || true; ip link add kube-ipvs0 type dummy");
    for (k, v) in stock::IPVS_SYSCTLS {
        sh(&format!("sysctl -qw {k}={v}"));
    }
    let setup = [
        timed(
            "ip -batch (addresses)",
            &format!("ip -batch {}", p("stock-addresses.batch")),
        ),
        timed(
            "ipvsadm -R",
            &format!("ipvsadm -R < {}", p("stock-ipvsadm.rules")),
        ),
        timed(
            "ipset restore",
            &format!("ipset restore < {}", p("stock-ipset.rules")),
        ),
        timed(
            "iptables-restore",
            &format!(
                "iptables-restore -w --noflush < {}",
                p("stock-iptables.rules")
            ),
        ),
    ];
    println!(
        "stock's state built in {:.1} s",
        setup.iter().sum::<Duration>().as_secs_f64()
    );

    let mut ipvs = Ipvs::connect();
    println!("== stock's own restart on this state (modelled, lower bound)");
    let (rt, vss) = ipvs.stock_sync_round_trips();
    println!(
        "  IPVS round trips of its first sync ({vss} virtual servers x 3 + 2 dumps): {:.1} s",
        rt.as_secs_f64()
    );
    // Stock lists each set (one `ipset list SET` exec each); one exec for all is a lower bound.
    let t = Instant::now();
    sh("ipset list > /dev/null");
    let lists = t.elapsed();
    // Members stock cannot hold: one failing `ipset add` exec each, every sync.
    let missing = (2 * n as usize).saturating_sub(stock::STOCK_MAXELEM);
    let tries = missing.min(50);
    let t = Instant::now();
    for i in 0..tries {
        let _ = Command::new("ipset")
            .args([
                "add",
                "KUBE-CLUSTER-IP",
                &format!("{},tcp:9", vip(i as u32)),
            ])
            .output();
    }
    let per_add = t.elapsed() / u32::try_from(tries.max(1)).unwrap();
    let t = Instant::now();
    sh(&format!(
        "iptables-restore -w --noflush < {}",
        p("stock-iptables.rules")
    ));
    let restore = t.elapsed();
    let modelled = rt + lists + restore + per_add * u32::try_from(missing).unwrap_or(u32::MAX);
    println!(
        "  ipset list (all sets) {:.1} s, iptables-restore {:.1} s, {missing} failing `ipset add` execs at {:.0} ms each",
        lists.as_secs_f64(),
        restore.as_secs_f64(),
        per_add.as_secs_f64() * 1e3
    );
    println!(
        "  stock's first sync after a restart: >= {:.1} s (every sync repeats the execs)",
        modelled.as_secs_f64()
    );

    let api = FakeApiServer::start_on_own_thread().unwrap();
    for o in &objects {
        api.apply_value(o.clone()).unwrap();
    }
    drop(objects);
    let mut change = 0;
    let agent = run(
        "adopting bound ClusterIPs",
        &dir,
        &api,
        &mut ipvs,
        client,
        n,
        &[],
        &|| true,
        &mut change,
    );
    stop(agent);
    let bound_before = dummy_addresses();
    let t_retire = std::cell::Cell::new(None::<Instant>);
    let started = Instant::now();
    let agent = run(
        "routing the service CIDR",
        &dir,
        &api,
        &mut ipvs,
        client,
        n,
        &["--service-cluster-ip-range", "10.96.0.0/16"],
        &|| {
            let done = dummy_addresses() <= 1;
            if done && t_retire.get().is_none() {
                t_retire.set(Some(Instant::now()));
            }
            done
        },
        &mut change,
    );
    if let Some(t) = t_retire.get() {
        println!(
            "retired {bound_before} bound addresses (one remains: web's, outside the range) within {:.1} s of the agent's start",
            (t - started).as_secs_f64()
        );
    }
    let rss: BTreeMap<&str, String> = [("VmHWM", "peak RSS")]
        .into_iter()
        .map(|(k, v)| {
            let st =
                std::fs::read_to_string(format!("/proc/{}/status", agent.id())).unwrap_or_default();
            (
                v,
                st.lines()
                    .find(|l| l.starts_with(k))
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    println!("agent {rss:?}");
    stop(agent);
    println!("artifacts: {}", dir.display());
}
