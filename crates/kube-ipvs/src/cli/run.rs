//! `kube-ipvs run`: the node agent (see `kube_ipvs::agent`).

use anyhow::Context as _;
use clap::Args;
use kube_ipvs::agent;
use kube_ipvs::config::{self, RunArgs};
use kube_ipvs::telemetry;

/// Arguments of `kube-ipvs run`: kube-proxy's flags (same names) plus ours.
#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub args: RunArgs,
}

/// Runs the agent until SIGTERM/SIGINT.
pub fn run(cmd: &RunCmd) -> anyhow::Result<()> {
    let loaded = config::load(&cmd.args).context("loading the configuration")?;
    // A second init cannot happen in this process; an error here means a subscriber is set.
    let _ = telemetry::logging::init(loaded.config.log_format, "info");
    loaded.log_warnings();
    if loaded.config.cleanup {
        return super::cleanup::run_for_agent(loaded.config.dummy_device.as_str());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(agent::run(loaded)).context("kube-ipvs run")
}
