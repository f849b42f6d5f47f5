//! Command-line dispatch: one module per subcommand.

mod plan;

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
enum Command {
    /// Print the IPVS table, addresses, ipsets and rejected objects a node would get from a
    /// cluster dump (no kernel access, works on any machine).
    Plan(plan::PlanArgs),
}

/// Runs the command; errors are printed with their causes.
pub fn run(cli: Cli) -> ExitCode {
    let res = match cli.command {
        Command::Plan(args) => plan::run(&args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-ipvs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
