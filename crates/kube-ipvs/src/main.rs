//! `kube-ipvs`: the IPVS proxier for Kubernetes. See `kube-ipvs --help`.
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Cli::parse())
}
