//! The agent's steady state without the agent: an engine over the core bench's workload (50,000
//! Services x 2 ports x 2 endpoints by default) fed object by object, planned against an empty
//! kernel, the plan committed (the kernel view is then what the kernel holds), then one no-op
//! repair (`plan_full` again). Prints the resident set after each step and exits without freeing
//! the engine, so a heap profiler reports what a converged agent keeps live, by allocation site:
//!
//! ```sh
//! cargo build --release -p kube-ipvs --example engine-memory
//! heaptrack target/release/examples/engine-memory 50000
//! heaptrack_print --print-leaks 1 heaptrack.engine-memory.*.zst
//! ```
//! The system allocator (not the agent's jemalloc), so the profiler sees every allocation.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kube_ipvs::Engine;

#[path = "../benches/common/workload.rs"]
mod workload;

#[path = "common/status.rs"]
mod status;

fn step(what: &str) {
    let (rss, hwm) = (status::status_mib("VmRSS:"), status::status_mib("VmHWM:"));
    println!("{what:<40} VmRSS {rss:>5} MiB  VmHWM {hwm:>5} MiB");
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(50_000, |a| a.parse().expect("a number of Services"));
    step("start");
    let mut engine = Engine::new(workload::config());
    for i in 0..n {
        engine.apply_service(&workload::service(i));
        engine.apply_slice(&workload::slice(i, 0));
    }
    step(&format!("{n} Services indexed"));
    let ops = engine.plan_full(Duration::ZERO);
    let count = ops.len();
    engine
        .commit(&ops)
        .expect("the plan applies to its own state");
    drop(ops);
    step(&format!("planned and committed ({count} ops)"));
    let started = Instant::now();
    let again = engine.plan_full(Duration::ZERO);
    let repair = started.elapsed();
    assert!(again.is_empty(), "a converged engine plans nothing");
    // The replaced desired state is freed on a background thread: let it finish.
    std::thread::sleep(Duration::from_millis(500));
    step(&format!("after a no-op repair ({repair:.0?})"));
    // Exit with the engine live: a heap profiler reports it as not freed, by allocation site.
    std::mem::forget(engine);
}
