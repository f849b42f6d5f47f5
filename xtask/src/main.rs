//! `cargo xtask`: the project's task runner.
//!
//! - `vm`: run a command as root inside the kernel lab (a stock Debian kernel under qemu with IPVS).
//! - `test`: fmt, clippy, unused dependencies, host tests, then every ignored kernel test inside the
//!   lab.
//! - `bench`: the benchmarks that need a real kernel, each where its kernel lives.
//! - `image`: the container image (OCI layout + `docker load` archive) without a container engine.
//! - `fuzz`: build every fuzz target on stable and run each for a while; one table at the end.
//! - `plot`: charts of the benchmarks' results.
//! - `demo`: `kube-ipvs run --source file:examples/cluster.yaml` on a real kernel, next to `plan`.
//! - `runner`: (internal) cargo's target runner used by `test`.
#![forbid(unsafe_code)]

mod bench;
mod deps;
mod fuzz;
mod image;
mod lab;
mod plot;
mod summary;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "kube-ipvs project tasks: the kernel lab, tests, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run CMD as root inside a throwaway VM with a stock Debian kernel that has IPVS.
    ///
    /// The guest sees the host's root filesystem read-only (tmpfs on /tmp and /run), starts in the
    /// current directory, has ip_vs with every scheduler, dummy, veth, bridge, ip_set, xt_set,
    /// iptables (nft and legacy), conntrack and nlmon loaded and loopback up. CMD's stdout/stderr are
    /// printed and its exit status becomes ours. `LAB_SHARE` inside the guest names a writable
    /// directory that survives the run (its host path is printed).
    Vm(lab::VmArgs),
    /// Run everything: cargo fmt --check, clippy -D warnings, host tests, then all ignored
    /// (kernel) tests inside the lab. Ends with a line `N passed, N failed`.
    Test(test::TestArgs),
    /// Run a benchmark where its kernel lives: `ipvs` (in the lab), `nodenet` (host, fresh netns),
    /// `core` (criterion, host).
    Bench(bench::BenchArgs),
    /// Build the container image without a container engine: Debian packages (mmdebstrap, as
    /// deploy/Containerfile installs them) and the release binary, written reproducibly as an OCI
    /// image layout (target/image/oci) and a `docker load` archive (target/image/kube-ipvs.tar).
    Image(image::ImageArgs),
    /// Fuzz every decoder: build the libFuzzer targets of crates/*/fuzz on stable Rust and run
    /// each in turn (default 600 s each), then print one table (execs, coverage, crashes).
    /// Heavy on CPU: run it under `nice -n 19` on a shared machine.
    Fuzz(fuzz::FuzzArgs),
    /// Charts (SVG) of the benchmarks' results in `target/bench/` (`bench agent` JSON files,
    /// the core bench's criterion estimates): latency CDF, cost vs cluster size, ours vs the C
    /// tools.
    Plot(plot::PlotArgs),
    /// The demo, in the lab: `kube-ipvs plan` on examples/cluster.yaml, then `kube-ipvs run --source
    /// file:examples/cluster.yaml` programs the kernel, `kube-ipvs list --services` shows it, and the
    /// kernel's table is compared with the plan's (examples/demo.sh).
    Demo,
    /// Cargo target runner used by `xtask test`: runs a test binary in the lab when it has ignored
    /// tests selected, on the host otherwise.
    #[command(hide = true)]
    Runner {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vm(args) => lab::vm_command(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Plot(args) => plot::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo => bench::demo(),
        Command::Runner { argv } => test::runner(&argv),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
