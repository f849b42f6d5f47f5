//! `kube-ipvs list`: the kernel's IPVS table in `ipvsadm -Ln` layout, optionally with owners.

use clap::Args;

/// Arguments of `kube-ipvs list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// Prints the table.
pub fn run(_args: &ListArgs) -> anyhow::Result<()> {
    anyhow::bail!("kube-ipvs list: not implemented yet")
}
