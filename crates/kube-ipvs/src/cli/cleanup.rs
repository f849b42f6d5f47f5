//! `kube-ipvs cleanup`: removes what kube-ipvs (or kube-proxy in IPVS mode) created.

use clap::Args;

/// Arguments of `kube-ipvs cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {}

/// Removes our kernel state.
pub fn run(_args: &CleanupArgs) -> anyhow::Result<()> {
    anyhow::bail!("kube-ipvs cleanup: not implemented yet")
}
