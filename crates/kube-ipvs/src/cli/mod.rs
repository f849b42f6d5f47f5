//! Command-line dispatch: one module per subcommand.

mod cleanup;
#[cfg(test)]
mod deploy_check;
mod explain;
mod list;
mod plan;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An IPVS proxier for Kubernetes: a drop-in replacement for kube-proxy in IPVS mode.
#[derive(Debug, Parser)]
#[command(name = "kube-ipvs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at startup; the size of the run variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the node agent: watch Services, EndpointSlices and this Node, program IPVS, addresses,
    /// ipsets and iptables (the kube-proxy replacement; takes kube-proxy's flags and ConfigMap).
    Run(run::RunCmd),
    /// Print the IPVS table, addresses, ipsets and rejected objects a node would get from a
    /// cluster dump (no kernel access, works on any machine).
    Plan(plan::PlanArgs),
    /// Print the kernel's IPVS table in `ipvsadm -Ln` layout, optionally naming each virtual
    /// server's Service (safe on a live node: read-only).
    List(list::ListArgs),
    /// Remove what kube-ipvs (or kube-proxy in IPVS mode) created on this node.
    Cleanup(cleanup::CleanupArgs),
    /// Explain why a Service does or does not work on this node: every check from the Service
    /// to the kernel, each with its verdict and fix (read-only; exit 0 ok, 1 wrong, 2 unchecked).
    Explain(explain::ExplainArgs),
}

/// Runs the command; errors are printed with their causes.
pub fn run(cli: Cli) -> ExitCode {
    let res = match cli.command {
        Command::Run(cmd) => run::run(&cmd),
        Command::Plan(args) => plan::run(&args),
        Command::List(args) => list::run(&args),
        Command::Cleanup(args) => cleanup::run(&args),
        Command::Explain(args) => return explain::run(&args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-ipvs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
