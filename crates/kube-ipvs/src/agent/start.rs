//! `kube-ipvs run` as a library call: the real sources and kernel, SIGTERM/SIGINT shutdown.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::error::AgentError;
use super::report::Observer;
use super::run_loop::run_agent;
use super::settings::{Settings, families};
use crate::config::{Config, Loaded, Source};
use crate::kernel::{KernelConfig, NetlinkKernel};
use crate::source::{FileOptions, KubernetesOptions, Sources, file, kubernetes};

/// Timeout of the start-up address listing.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the agent with the real sources and kernel until SIGTERM or SIGINT.
pub async fn run(loaded: Loaded, observer: Arc<dyn Observer>) -> Result<(), AgentError> {
    let cfg = &loaded.config;
    let node = cfg.node_name()?;
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
    };
    let host = host_addresses(cfg).await?;
    let families = families(cfg, &host);
    tracing::info!(
        node = %node.name, node_from = %node.source, source = %cfg.source,
        families = ?families, sync_period = ?cfg.sync.period, min_sync_period = ?cfg.sync.min,
        "starting"
    );
    let settings = Settings::from_config(cfg, &node.name, families.clone(), host)?;
    let kernel = NetlinkKernel::connect(KernelConfig::from_config(cfg, &families))
        .await
        .map_err(AgentError::Kernel)?;
    let sources = sources(cfg, &node.name).await?;
    run_agent(kernel, sources, settings, observer, shutdown).await
}

/// The configured cluster source, started.
async fn sources(cfg: &Config, node: &str) -> Result<Sources, AgentError> {
    Ok(match &cfg.source {
        Source::Kubernetes => {
            let client = kubernetes::client(cfg.kubeconfig.as_deref()).await?;
            kubernetes::start(client, &KubernetesOptions::new(node))
        }
        Source::File(path) => file::start(FileOptions::new(path, node)),
    })
}

/// The node's addresses (all links but the dummy device), to choose the families.
async fn host_addresses(cfg: &Config) -> Result<Vec<IpAddr>, AgentError> {
    let mut links = nodenet::link::Links::connect(NETLINK_TIMEOUT)
        .await
        .map_err(AgentError::NodeAddresses)?;
    let dummy = links
        .link_index(cfg.dummy_device.as_str())
        .await
        .map_err(AgentError::NodeAddresses)?;
    Ok(links
        .node_addresses(dummy)
        .await
        .map_err(AgentError::NodeAddresses)?
        .into_iter()
        .collect())
}
