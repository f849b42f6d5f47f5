//! Reads a cluster dump as the file source of `kube-ipvs run --source file:PATH` does
//! (`source::file::load`: decode, select, strip), or as `plan -f` does (`dump::ClusterDump`), and
//! prints the time it took and the peak resident memory, for the figures in docs/benchmarks.md:
//!
//! ```sh
//! cargo run --release -p kube-ipvs --example kubectl-dump -- 50000 4 yaml > /tmp/50k.yaml
//! cargo run --release -p kube-ipvs --example load-dump -- /tmp/50k.yaml file
//! ```
//! Modes: `file` (the file source), `dump` (plan's reader). Same allocator as the agent.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use kube_ipvs::dump::ClusterDump;
use kube_ipvs::source::file;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/status.rs"]
mod status;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = Path::new(args.first().expect("a dump file"));
    let mode = args.get(1).map_or("file", String::as_str);
    let started = Instant::now();
    let (services, slices, bad) = match mode {
        "file" => {
            let s = file::load(path, "node-1").expect("the dump loads");
            (s.services.len(), s.slices.len(), s.invalid.len())
        }
        "dump" => {
            let mut d = ClusterDump::default();
            d.read_file(path).expect("the dump loads");
            (d.services.len(), d.slices.len(), d.bad.len())
        }
        other => panic!("mode {other:?}: file or dump"),
    };
    println!(
        "{mode}: {services} Services, {slices} EndpointSlices, {bad} bad, {:.2} s, peak RSS {} MiB",
        started.elapsed().as_secs_f64(),
        status::status_mib("VmHWM:")
    );
}
