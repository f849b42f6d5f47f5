//! `kube-ipvs run` as a library call: the real sources, kernel and telemetry wired to the agent's
//! loop, SIGTERM/SIGINT shutdown; `--init-only`. The one module that knows both [`crate::agent`]
//! and [`crate::telemetry`] (telemetry implements the agent's [`crate::agent::Observer`]).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::agent::{AgentError, Settings, run_agent};
use crate::config::{Config, Loaded, Source};
use crate::kernel::{KernelConfig, NetlinkKernel};
use crate::owners;
use crate::source::{FileOptions, KubernetesOptions, file, kubernetes};
use crate::telemetry::{Telemetry, TelemetryError, TelemetryOptions};
use kube::runtime::events::Reporter;

/// Why `run` or `--init-only` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent could not start, or its loop ended.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The health and metrics servers could not start.
    #[error("starting health and metrics: {0}")]
    Telemetry(#[from] TelemetryError),
}

/// Timeout of the start-up address listing.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the agent with the real sources and kernel until SIGTERM or SIGINT.
pub async fn run(loaded: Loaded) -> Result<(), RunError> {
    let cfg = &loaded.config;
    let node = cfg.node_name().map_err(AgentError::from)?;
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
    };
    let host = host_addresses(cfg).await?;
    let mut settings = Settings::derive(cfg, &node.name, host);
    let families = settings.planner.families.clone();
    tracing::info!(
        node = %node.name, node_from = %node.source, source = %cfg.source,
        families = ?families, sync_period = ?cfg.sync.period, min_sync_period = ?cfg.sync.min,
        "starting"
    );
    settings.owners_path = Some(PathBuf::from(owners::DEFAULT_PATH));
    let kernel = NetlinkKernel::connect(KernelConfig::from_config(cfg, &families))
        .await
        .map_err(AgentError::Kernel)?;
    let watch = KubernetesOptions::new(&node.name);
    let client = match &cfg.source {
        Source::Kubernetes => Some(
            kubernetes::client_with_master(
                cfg.kubeconfig.as_deref(),
                cfg.master.as_deref(),
                &watch.freshness,
            )
            .await
            .map_err(AgentError::from)?,
        ),
        Source::File(_) => None,
    };
    let sources = match (&cfg.source, &client) {
        (Source::File(path), _) => file::start(FileOptions::new(path, &node.name)),
        (Source::Kubernetes, Some(c)) => kubernetes::start(c.clone(), &watch),
        (Source::Kubernetes, None) => return Err(AgentError::SourcesEnded.into()),
    };
    let health_check_ips =
        if settings.planner.node_port_addresses.is_empty() && !settings.planner.node_port_primary {
            Vec::new()
        } else {
            settings.planner.node_port_ips()
        };
    let telemetry = Arc::new(Telemetry::new(
        cfg,
        TelemetryOptions {
            ip_families: families.clone(),
            health_check_ips,
            freshness: sources.freshness(),
            events: client.map(|c| {
                (
                    c,
                    Reporter {
                        controller: "kube-ipvs".into(),
                        instance: Some(node.name.clone()),
                    },
                )
            }),
            failures_path: Some(PathBuf::from(crate::failures::DEFAULT_PATH)),
            ..TelemetryOptions::default()
        },
    ));
    // Dropping the handles stops the servers: keep them for the agent's lifetime.
    let _servers = telemetry.start().await?;
    tokio::spawn(remove_nftables_proxier(telemetry.health().clone()));
    Ok(run_agent(kernel, sources, settings, telemetry, shutdown).await?)
}

/// kube-proxy's IPVS mode deletes the nftables proxier's tables when it starts (their prerouting
/// DNAT would keep sending Service traffic to the endpoints they last knew, before IPVS sees it).
/// kube-ipvs does it once its first sync is done, so a node taken over from nftables mode keeps
/// serving through those rules until IPVS serves the same Services.
async fn remove_nftables_proxier(health: crate::telemetry::health::ProxyHealth) {
    use nodenet::nft::{NftFamily, delete_table};
    while health.status().last_updated.is_none() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let opts = nodenet::SocketOptions {
        timeout: NETLINK_TIMEOUT,
        ..nodenet::SocketOptions::default()
    };
    for family in [NftFamily::Ip, NftFamily::Ip6] {
        let result = delete_table(family, "kube-proxy", &opts).await;
        match result {
            Ok(true) => tracing::info!(
                table = %format!("{} kube-proxy", family.name()),
                "deleted the nftables proxier's table: IPVS now serves its Services"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete the nftables proxier's table"),
        }
    }
}

/// `--init-only`: kube-proxy's privileged one-shot setup in IPVS mode (its proxier's constructor
/// up to `if initOnly { return }`: the IPVS sysctls and timeouts), done by the same preparation
/// every full sync runs (sysctls, conntrack sysctls, IPVS timeouts, the dummy device and the
/// ipsets of this node's families). The agent started afterwards then needs only CAP_NET_ADMIN.
pub async fn init_only(cfg: &Config) -> Result<(), AgentError> {
    use crate::kernel::Kernel as _;
    let host = host_addresses(cfg).await?;
    let families = crate::agent::settings::families(cfg, &host);
    let mut kernel = NetlinkKernel::connect(KernelConfig::from_config(cfg, &families))
        .await
        .map_err(AgentError::Kernel)?;
    kernel.prepare().await.map_err(AgentError::Kernel)?;
    tracing::info!(families = ?families, "system initialized and --init-only given: exiting");
    Ok(())
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
