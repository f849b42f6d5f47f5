//! `kube-ipvs run`: the node agent (owned by the agent work; see `kube_ipvs::agent`).

use clap::Args;
use kube_ipvs::config::RunArgs;

/// Arguments of `kube-ipvs run`: kube-proxy's flags (same names) plus ours.
#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub args: RunArgs,
}

/// Runs the agent until SIGTERM/SIGINT.
pub fn run(cmd: &RunCmd) -> anyhow::Result<()> {
    let _ = &cmd.args;
    anyhow::bail!("kube-ipvs run: not implemented yet")
}
