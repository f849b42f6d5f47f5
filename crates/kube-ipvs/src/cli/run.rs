//! `kube-ipvs run`: the node agent (see `kube_ipvs::agent`).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use kube_ipvs::agent::{self, NoopObserver};
use kube_ipvs::config::{self, LogFormat, RunArgs};

/// Arguments of `kube-ipvs run`: kube-proxy's flags (same names) plus ours.
#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub args: RunArgs,
}

/// Runs the agent until SIGTERM/SIGINT.
pub fn run(cmd: &RunCmd) -> anyhow::Result<()> {
    let loaded = config::load(&cmd.args).context("loading the configuration")?;
    init_logging(loaded.config.log_format);
    loaded.log_warnings();
    if loaded.config.cleanup {
        bail!(
            "--cleanup is not available in this build yet: run `kube-ipvs cleanup` to remove \
             what kube-ipvs (or kube-proxy in IPVS mode) created"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(agent::run(loaded, Arc::new(NoopObserver)))
        .context("kube-ipvs run")
}

/// Logs to stderr as text or JSON lines; `RUST_LOG` filters (default `info`). Kept apart so it
/// can be replaced by the telemetry module's fuller setup.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
