//! Core benchmarks: 50,000 Services x 2 ports x 2 endpoints.
//!
//! - full desired + plan (against an empty kernel, and the no-op repair against a converged one)
//! - one endpoint change on the incremental path, at 1,000 / 10,000 / 50,000 Services (must be flat)
//! - one endpoint change in one Service of 1,000 / 10,000 / 100,000 endpoints (slices of 100): the
//!   join of that Service's slices, which must grow as n log n or better, never n^2
//! - memory of the index per Service port (resident-set growth while building it)
//! - the full path split into its stages (build, plan, drop, building a kernel view)
//! - the periodic repair of a large table: one verification slice merged and planned
//!
//! The full path is measured as the agent runs it, `Engine::plan_full`: the desired state is
//! rebuilt from the index, the previous one is handed to a background thread to be freed, and the
//! plan is made against the engine's kernel view; the op list is dropped inside the measurement.
//! Each full-path figure is measured three times: wall time (criterion's default) and the CPU time
//! of the benchmark thread (`/proc/thread-self/schedstat`), which is what the agent waits for and
//! stays meaningful when other jobs share the machine (wall time then also counts waiting for a
//! CPU), plus the CPU time of the whole process (`/proc/self/stat`, 10 ms ticks), which also counts
//! the background free: the total work.
//!
//! Run: `cargo bench -p kube-ipvs --bench core`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::IpNet;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube_ipvs::desired::NodeState;
use kube_ipvs::kernel::PartialRead;
use kube_ipvs::model::ClusterIndex;
use kube_ipvs::plan::{ObservedState, Planner};
use kube_ipvs::types::{IpsetEntry, IpsetName, RealServer, VsKey, VsSpec};
use kube_ipvs::{Engine, PlannerConfig};

#[path = "common/workload.rs"]
mod workload;
use workload::{NODE, config, ip4, service, slice};

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

/// CPU time this thread has run, in ns (the scheduler's `sum_exec_runtime`, updated at least
/// every tick: exact enough for samples of hundreds of milliseconds).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the whole process, threads that have exited included, in ns (user + system time
/// from `/proc/self/stat`, in ticks of 10 ms: exact enough over samples of seconds).
fn process_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks * 10_000_000
}

/// Criterion measurement: CPU time by a clock (this thread's, or the whole process').
struct CpuTime(fn() -> u64);

const THREAD_CPU: CpuTime = CpuTime(thread_cpu_ns);
const PROCESS_CPU: CpuTime = CpuTime(process_cpu_ns);

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        self.0()
    }
    fn end(&self, start: u64) -> u64 {
        self.0().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e3, "us cpu")
        } else if typical < 1e9 {
            (1e6, "ms cpu")
        } else {
            (1e9, "s cpu")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => *n,
            Throughput::Bits(n) => *n,
            _ => 1,
        };
        values.iter_mut().for_each(|v| *v = n as f64 * 1e9 / *v);
        "/s cpu"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// An engine over `n` Services whose kernel view is what a full plan converges to.
fn engine(n: u32) -> Engine {
    let mut e = engine_without_plan(n);
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
    let observed = converged(&cfg, &desired);
    println!(
        "stages (one run each; wall / thread CPU): {}",
        stages(&idx, &cfg, &observed)
    );
    black_box((idx, desired));
}

/// Times `f` in wall time and thread CPU time.
fn timed<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (w, c) = (std::time::Instant::now(), thread_cpu_ns());
    let out = f();
    let cpu = Duration::from_nanos(thread_cpu_ns().saturating_sub(c));
    (out, format!("{:.1?} / {cpu:.1?}", w.elapsed()))
}

fn stages(idx: &ClusterIndex, cfg: &PlannerConfig, observed: &ObservedState) -> String {
    let (d, build) = timed(|| NodeState::build(idx, cfg));
    let (ops, plan) = timed(|| Planner::new().plan(cfg, &d, &ObservedState::new(), Duration::ZERO));
    let (noop, plan_conv) = timed(|| Planner::new().plan(cfg, &d, observed, Duration::ZERO));
    assert!(noop.is_empty());
    let d2 = full_read(observed);
    let (_, view) = timed(|| kernel_view(d2));
    // What the agent does on its loop after a sync that added or removed a virtual server.
    let (json, owners) = timed(|| kube_ipvs::owners::Owners::from_desired(&d).to_json());
    let (_, drop_ops) = timed(|| drop(ops));
    let (_, drop_d) = timed(|| drop(d));
    format!(
        "build {build}; plan empty {plan}; plan converged {plan_conv}; \
         kernel view from dump {view}; owners file ({} KiB) {owners}; drop ops {drop_ops}; \
         drop desired {drop_d}",
        json.len() / 1024
    )
}

/// The kernel after applying a full plan.
fn converged(cfg: &PlannerConfig, desired: &NodeState) -> ObservedState {
    let mut observed = ObservedState::new();
    let ops = Planner::new().plan(cfg, desired, &observed, Duration::ZERO);
    observed.apply_all(&ops).unwrap();
    observed
}

/// What a full kernel read yields: virtual servers with their real servers, ipset members, routes.
#[derive(Clone)]
struct FullRead {
    vs: Vec<(VsKey, VsSpec, Vec<RealServer>)>,
    members: Vec<(IpsetName, IpsetEntry)>,
    routes: Vec<IpNet>,
}

fn full_read(observed: &ObservedState) -> FullRead {
    FullRead {
        vs: observed
            .virtual_servers()
            .iter()
            .map(|(k, v)| (*k, v.spec, v.reals.clone()))
            .collect(),
        members: observed
            .ipsets()
            .iter()
            .flat_map(|(set, m)| m.iter().map(|e| (*set, *e)))
            .collect(),
        routes: observed.routes().iter().copied().collect(),
    }
}

/// Converts a full read into the planner's kernel view, as the agent does.
fn kernel_view(read: FullRead) -> ObservedState {
    let mut o = ObservedState::new();
    for (key, spec, reals) in read.vs {
        o.insert_vs(key, spec, reals);
    }
    for (set, e) in read.members {
        o.insert_member(set, e);
    }
    for r in read.routes {
        o.insert_route(r);
    }
    o
}

/// Two engines over the 50k-Service index: one whose kernel view is empty, one whose kernel view
/// is what a full plan converges to.
struct Setup {
    empty: Engine,
    converged: Engine,
}

fn setup() -> MutexGuard<'static, Setup> {
    static SETUP: OnceLock<Mutex<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let mut empty = engine_without_plan(50_000);
            empty.plan_full(Duration::ZERO);
            let converged = engine(50_000);
            Mutex::new(Setup { empty, converged })
        })
        .lock()
        .unwrap()
}

fn engine_without_plan(n: u32) -> Engine {
    let mut e = Engine::new(config());
    for i in 0..n {
        e.apply_service(&service(i));
        e.apply_slice(&slice(i, 0));
    }
    e
}

/// Whether a full-path figure counts the background free of the replaced desired state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Free {
    /// Not counted: each repair starts once the previous one's free has finished, as the agent's
    /// repairs (seconds apart) do. This is what the agent waits for.
    Excluded,
    /// Counted: an iteration ends when its free has finished (the total work).
    Included,
}

/// Full desired + plan, as the agent's periodic repair runs it (`Engine::plan_full`): the desired
/// state is rebuilt, the plan made, the replaced desired state handed to a background thread to be
/// freed; the op list is dropped inside the measurement.
fn full_group<M: Measurement>(c: &mut Criterion<M>, m: &M, name: &str, free: Free) {
    let mut setup = setup();
    let Setup { empty, converged } = &mut *setup;
    let mut g = c.benchmark_group(name);
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let run = |e: &mut Engine, iters: u64, want_ops: bool| {
        let mut total = m.zero();
        for _ in 0..iters {
            e.wait_retired();
            let start = m.start();
            let ops = e.plan_full(Duration::ZERO);
            assert_eq!(!ops.is_empty(), want_ops);
            drop(black_box(ops));
            if free == Free::Included {
                e.wait_retired();
            }
            total = m.add(&total, &m.end(start));
        }
        total
    };
    g.bench_function("desired+plan 50k svc x2 ports x2 eps, empty kernel", |b| {
        b.iter_custom(|iters| run(empty, iters, true))
    });
    g.bench_function(
        "desired+plan 50k svc, converged kernel (no-op repair)",
        |b| b.iter_custom(|iters| run(converged, iters, false)),
    );
    g.finish();
}

fn full(c: &mut Criterion) {
    memory_report();
    full_group(c, &WallTime, "full", Free::Excluded);
}

fn full_process_cpu(c: &mut Criterion<CpuTime>) {
    full_group(
        c,
        &PROCESS_CPU,
        "full (process CPU time, background free included)",
        Free::Included,
    );
}

fn full_cpu(c: &mut Criterion<CpuTime>) {
    full_group(c, &THREAD_CPU, "full (thread CPU time)", Free::Excluded);
    let setup = setup();
    let (idx, cfg, observed) = (
        setup.converged.index(),
        setup.converged.config(),
        setup.converged.observed(),
    );
    let d = NodeState::build(idx, cfg);
    let mut g = c.benchmark_group("stages (thread CPU time)");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("NodeState::build", |b| {
        b.iter_with_large_drop(|| NodeState::build(idx, cfg))
    });
    g.bench_function("Planner::plan, empty kernel", |b| {
        b.iter_with_large_drop(|| {
            Planner::new().plan(cfg, &d, &ObservedState::new(), Duration::ZERO)
        })
    });
    g.bench_function("Planner::plan, converged kernel", |b| {
        b.iter_with_large_drop(|| Planner::new().plan(cfg, &d, observed, Duration::ZERO))
    });
    let read = full_read(observed);
    g.bench_function("kernel view from a dump (ObservedState::insert_*)", |b| {
        b.iter_batched(|| read.clone(), kernel_view, BatchSize::PerIteration)
    });
    g.finish();
}

/// The periodic repair of a large table as the agent now runs it on its loop: one verification
/// slice (1/16 of the virtual servers, as read from an unchanged kernel) merged into the kernel
/// view and planned (`Engine::plan_read`), and the last slice of a cycle, which also carries the
/// table without real servers (specs, addresses, routes, sets). Compare with the no-op full
/// repair above (`full (thread CPU time)`, converged kernel).
fn verify_cpu(c: &mut Criterion<CpuTime>) {
    let mut setup = setup();
    let e = &mut setup.converged;
    let keys: Vec<VsKey> = e.observed().virtual_servers().keys().copied().collect();
    let per = keys.len().div_ceil(16);
    let read = |from: usize, table: bool, e: &Engine| {
        let o = e.observed();
        PartialRead {
            vs: keys[from..(from + per).min(keys.len())]
                .iter()
                .map(|k| (*k, o.virtual_server(k).map(|v| v.reals.clone())))
                .collect(),
            table: table.then(|| o.without_reals()),
        }
    };
    // Read before planning: the engine is borrowed mutably while planning.
    let (slice, last) = (read(per * 7, false, e), read(per * 15, true, e));
    let mut g = c.benchmark_group("verification slice (thread CPU time)");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("1/16 of 50k svc, unchanged kernel", |b| {
        b.iter_batched(
            || slice.clone(),
            |r| assert!(e.plan_read(r, &[], true, Duration::ZERO).is_empty()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function(
        "last slice of a cycle (with the table), unchanged kernel",
        |b| {
            b.iter_batched(
                || last.clone(),
                |r| assert!(e.plan_read(r, &[], true, Duration::ZERO).is_empty()),
                BatchSize::PerIteration,
            )
        },
    );
    g.finish();
}

/// Wall time only: a change costs microseconds, below the tick resolution of thread CPU time.
fn incremental_group<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let mut g = c.benchmark_group(name);
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

fn incremental(c: &mut Criterion) {
    incremental_group(c, "incremental one endpoint change");
}

/// One Service whose endpoints are spread over slices of 100 (the EndpointSlice controller's
/// default maximum), as a large Deployment behind one Service has them.
fn large_service_slice(i: u32, generation: u32) -> EndpointSlice {
    let mut s = slice(0, 0);
    s.metadata.name = Some(format!("svc0-{i:05}"));
    s.endpoints = (0..100)
        .map(|j| Endpoint {
            addresses: vec![ip4(0x0b00_0000 + generation * 0x0100_0000 + i * 100 + j)],
            node_name: Some(format!("node-{}", j % 7)),
            ..Default::default()
        })
        .collect();
    s
}

/// One endpoint change in a Service of 1,000 / 10,000 / 100,000 endpoints: re-joins every slice of
/// that Service (`model::port_endpoints`), so a quadratic join shows here at once.
fn large_service(c: &mut Criterion) {
    let mut g = c.benchmark_group("one service, one slice changes");
    g.sample_size(10);
    for n in [1_000u32, 10_000, 100_000] {
        let mut e = Engine::new(config());
        e.apply_service(&service(0));
        for i in 0..n / 100 {
            e.apply_slice(&large_service_slice(i, 0));
        }
        let ops = e.plan_full(Duration::ZERO);
        e.commit(&ops).unwrap();
        let mut generation = 0u32;
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("{n} endpoints"), |b| {
            b.iter_batched(
                || {
                    generation = (generation + 1) % 2;
                    large_service_slice(0, generation)
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

criterion_group!(benches, full, incremental, large_service);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(THREAD_CPU);
    targets = full_cpu, verify_cpu
}
criterion_group! {
    name = process_cpu;
    config = Criterion::default().with_measurement(PROCESS_CPU);
    targets = full_process_cpu
}
criterion_main!(benches, cpu, process_cpu);
