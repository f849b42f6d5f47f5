//! Core benchmarks: 50,000 Services x 2 ports x 2 endpoints.
//!
//! - full desired + plan (against an empty kernel, and the no-op repair against a converged one)
//! - one endpoint change on the incremental path, at 1,000 / 10,000 / 50,000 Services (must be flat)
//! - memory of the index per Service port (resident-set growth while building it)
//!
//! Run: `cargo bench -p kube-ipvs --bench core`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_ipvs::desired::NodeState;
use kube_ipvs::model::ClusterIndex;
use kube_ipvs::plan::{ObservedState, Planner};
use kube_ipvs::{Engine, PlannerConfig};

/// Resident memory of this process in bytes (`/proc/self/statm`, 4 KiB pages). The workspace
/// forbids `unsafe`, so no counting allocator: RSS growth over a fresh build of the index is
/// an upper bound of its heap (it includes allocator overhead and fragmentation).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const NODE: &str = "node-0";

fn ip4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

fn service(i: u32) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(format!("ns{}", i % 100)),
            name: Some(format!("svc{i}")),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip4(0x0a60_0000 + i)),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("https".into()),
                    port: 443,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(i: u32, generation: u32) -> EndpointSlice {
    let ep = |n: u32, node: u32| Endpoint {
        addresses: vec![ip4(0x0af4_0000 + n)],
        node_name: Some(format!("node-{node}")),
        ..Default::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(format!("ns{}", i % 100)),
            name: Some(format!("svc{i}-abcde")),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                format!("svc{i}"),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![
            EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            EndpointPort {
                name: Some("https".into()),
                port: Some(8443),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        endpoints: vec![ep(2 * i + generation, i % 7), ep(2 * i + 1, (i + 1) % 7)],
    }
}

fn config() -> PlannerConfig {
    let mut cfg = PlannerConfig::new(NODE);
    cfg.service_cidrs = vec!["10.96.0.0/12".parse().unwrap()];
    cfg
}

fn engine(n: u32) -> Engine {
    let mut e = Engine::new(config());
    for i in 0..n {
        e.apply_service(&service(i));
        e.apply_slice(&slice(i, 0));
    }
    let ops = e.plan_full(Duration::ZERO);
    e.commit(&ops).unwrap();
    e
}

fn index(n: u32) -> ClusterIndex {
    let mut idx = ClusterIndex::new(NODE);
    for i in 0..n {
        idx.apply_service(&service(i));
        idx.apply_slice(&slice(i, 0));
    }
    idx
}

fn memory_report() {
    let n = 50_000;
    let before = rss();
    let idx = index(n);
    let after_index = rss();
    let cfg = config();
    let desired = NodeState::build(&idx, &cfg);
    let after_desired = rss();
    let ports = f64::from(n * 2);
    let per = |b: usize| b as f64 / ports;
    println!(
        "memory: index {:.1} MiB = {:.0} B per Service port (target <= 1024); desired state {:.0} B per Service port",
        (after_index - before) as f64 / 1048576.0,
        per(after_index - before),
        per(after_desired - after_index),
    );
    let t = std::time::Instant::now();
    let d2 = NodeState::build(&idx, &cfg);
    let t_build = t.elapsed();
    let t = std::time::Instant::now();
    let ops = Planner::new().plan(&cfg, &d2, &ObservedState::new(), Duration::ZERO);
    let t_plan = t.elapsed();
    let t = std::time::Instant::now();
    drop(d2);
    println!(
        "single run: build {t_build:?}, plan {t_plan:?} ({} ops), drop {:?}",
        ops.len(),
        t.elapsed()
    );
    black_box((idx, desired));
}

fn full(c: &mut Criterion) {
    memory_report();
    let n = 50_000;
    let idx = index(n);
    let cfg = config();
    let mut g = c.benchmark_group("full");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("desired+plan 50k svc x2 ports x2 eps, empty kernel", |b| {
        b.iter(|| {
            let d = NodeState::build(&idx, &cfg);
            let ops = Planner::new().plan(&cfg, &d, &ObservedState::new(), Duration::ZERO);
            black_box((d, ops.len()))
        })
    });
    let d = NodeState::build(&idx, &cfg);
    let mut observed = ObservedState::new();
    observed
        .apply_all(&Planner::new().plan(&cfg, &d, &observed.clone(), Duration::ZERO))
        .unwrap();
    g.bench_function(
        "desired+plan 50k svc, converged kernel (no-op repair)",
        |b| {
            b.iter(|| {
                let d = NodeState::build(&idx, &cfg);
                let ops = Planner::new().plan(&cfg, &d, &observed, Duration::ZERO);
                assert!(ops.is_empty());
                black_box(d)
            })
        },
    );
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("incremental one endpoint change");
    for n in [1_000u32, 10_000, 50_000] {
        let mut e = engine(n);
        let target = n / 2;
        let mut generation = 0u32;
        g.bench_function(format!("{n} services"), |b| {
            b.iter_batched(
                || {
                    generation = (generation + 1) % 2;
                    slice(target, 1_000_000 + generation)
                },
                |s| {
                    e.apply_slice(&s);
                    let ops = e.plan_incremental(Duration::ZERO);
                    e.commit(&ops).unwrap();
                    black_box(ops.len())
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, full, incremental);
criterion_main!(benches);
