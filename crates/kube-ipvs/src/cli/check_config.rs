//! `kube-ipvs check-config`: flags + configuration file + node name, validated offline as `run`
//! validates them, printed as the effective KubeProxyConfiguration with every warning. For CI
//! before a rollout: exit 1 on an error, 2 on a command line kube-proxy would refuse.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use kube_ipvs::config::{self, RunArgs, render};

const AFTER_HELP: &str = "\
Takes exactly the flags of `kube-ipvs run` (kube-proxy's), so a DaemonSet's command line can be
checked as is:

  kube-ipvs check-config --config=/var/lib/kube-proxy/config.conf --hostname-override=node-a
  kubectl -n kube-system get cm kube-proxy -o yaml > cm.yaml && kube-ipvs check-config --config=cm.yaml

Prints the configuration `run` would use, as a KubeProxyConfiguration (YAML), after comments
naming the node, each warning, and the kube-ipvs settings that have no field in it.
`kube-proxy --write-config-to=FILE` writes the same to FILE.";

/// Arguments of `kube-ipvs check-config`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub args: RunArgs,
}

/// Validates and prints; the node name is part of the check.
pub fn run(a: &CheckConfigArgs) -> anyhow::Result<()> {
    let loaded = config::load(&a.args).context("loading the configuration")?;
    let node = loaded.config.node_name();
    let text = render::effective_text(&loaded, &node).context("rendering the configuration")?;
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing output")?;
    node.context("the node name")?;
    Ok(())
}
