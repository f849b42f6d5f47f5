//! `kube-ipvs run` (and the binary invoked as `kube-proxy`): the node agent (see
//! `kube_ipvs::agent`), or one of kube-proxy's one-shot actions (`--cleanup`, `--init-only`,
//! `--write-config-to`).

use anyhow::Context as _;
use clap::Args;
use kube_ipvs::config::{self, Loaded, RunArgs, render};
use kube_ipvs::daemon;
use kube_ipvs::telemetry;

use super::go_runner::Tee;

/// Arguments of `kube-ipvs run`: kube-proxy's flags (same names) plus ours.
#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub args: RunArgs,
}

/// Loads the configuration and sets up logging (to `log` when given, else stderr).
pub fn start(args: &RunArgs, log: Option<Tee>) -> anyhow::Result<Loaded> {
    let loaded = config::load(args).context("loading the configuration")?;
    let c = &loaded.config;
    let directive = telemetry::logging::klog_directive(c.verbosity);
    // An error here means a subscriber is already installed (tests): logging works either way.
    let _ = match log {
        Some(tee) => telemetry::logging::init_to(c.log_format, directive, tee),
        None => telemetry::logging::init(c.log_format, directive),
    };
    loaded.log_warnings();
    Ok(loaded)
}

/// Runs the agent until SIGTERM/SIGINT, or the one-shot action the flags ask for.
pub fn run(cmd: &RunCmd, log: Option<Tee>) -> anyhow::Result<()> {
    let loaded = start(&cmd.args, log)?;
    let cfg = &loaded.config;
    if let Some(path) = &cfg.write_config_to {
        let text = render::effective_text(&loaded, &cfg.node_name())
            .context("rendering the configuration")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(file = %path.display(), "wrote the effective configuration");
        return Ok(());
    }
    if cfg.cleanup {
        return super::cleanup::run_for_agent(cfg);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    if cfg.init_only {
        return rt.block_on(daemon::init_only(cfg)).context("--init-only");
    }
    rt.block_on(daemon::run(loaded)).context("kube-ipvs run")
}
