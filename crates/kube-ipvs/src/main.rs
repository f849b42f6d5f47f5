//! `kube-ipvs`: the IPVS proxier for Kubernetes. See `kube-ipvs --help`.
#![forbid(unsafe_code)]

mod cli;

/// jemalloc, not glibc's malloc: the agent frees on one thread what another allocated (a full
/// repair's kernel view is read on the read thread and dropped after the next one), and glibc's
/// per-thread arenas kept those pages resident (at 50,000 Services, 209-234 MiB resident with
/// glibc after a few repairs, in the lab). Its options (one arena, a purge thread) are set where
/// it is built: `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::main(std::env::args_os().collect())
}
