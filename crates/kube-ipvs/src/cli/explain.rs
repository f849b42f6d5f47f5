//! `kube-ipvs explain SERVICE`: one report on why a Service does or does not work on this node.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use kube_ipvs::config::{self, RunArgs};
use kube_ipvs::explain::{self, Target, gather, render};

const AFTER_HELP: &str = "\
Examples:
  kube-ipvs explain shop/web                   # NAMESPACE/NAME
  kube-ipvs explain 10.96.0.20:80              # what answers this address (also [fd00::1]:53/udp)
  kube-ipvs explain shop/web --json            # for tools
  kube-ipvs explain shop/web -f dump.yaml      # cluster objects from a dump instead of the API server
  kubectl -n kube-system exec ds/kube-ipvs -- kube-ipvs explain shop/web --config=/var/lib/kube-ipvs/config.conf

Checks, in order: the Service and its policies; whether kube-ipvs accepts it (the rejected field);
endpoints ready/serving/terminating per EndpointSlice; slice ports vs the Service's ports and
targetPort; a TCP connect to each endpoint (--no-probe to skip); which endpoints this node uses
per traffic policy and why; the virtual servers planned vs the kernel's; the ClusterIP's local
route or address; the NodePort addresses (nodePortAddresses vs this node's); the health-check
node port's answer; ipset members and the iptables rules using them; connection spread across
real servers; conntrack usage; the agent's health, last sync, queued changes and refused ops.

Give explain the agent's own flags (--config, --hostname-override, --healthz-bind-address,
--metrics-bind-address, --source...): it reads the configuration with the same loader as `run`,
and the agent's state from those endpoints and from /run/kube-ipvs/{owners,failures}.json.
Cluster objects come from --kubeconfig or the in-cluster credentials (list calls the agent's
ClusterRole grants), from -f, or from the agent's --source file:PATH. Read-only; the kernel
checks need CAP_NET_ADMIN, like `kube-ipvs list`.

Exit status: 0 everything checked holds, 1 something is wrong, 2 something could not be checked.";

/// Arguments of `kube-ipvs explain`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ExplainArgs {
    /// The Service: NAMESPACE/NAME, or IP:PORT[/PROTO] ([IPv6]:PORT) for what answers there.
    #[arg(value_name = "SERVICE", value_parser = parse_target)]
    target: Target,
    /// Cluster dump file(s) instead of the API server (as `kube-ipvs plan -f`; `-` is stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE", num_args = 1..)]
    files: Vec<PathBuf>,
    /// Print JSON (the checks and `status`, the exit status).
    #[arg(long)]
    json: bool,
    /// Do not connect to the endpoints.
    #[arg(long)]
    no_probe: bool,
    /// The owners file the agent publishes.
    #[arg(long, value_name = "PATH", default_value = kube_ipvs::owners::DEFAULT_PATH)]
    owners: PathBuf,
    /// The failed-ops file the agent publishes.
    #[arg(long, value_name = "PATH", default_value = kube_ipvs::failures::DEFAULT_PATH)]
    failures: PathBuf,
    /// Bound on each exchange (API request, HTTP request, netlink answer, TCP connect).
    #[arg(long, value_name = "SECONDS", default_value = "3")]
    timeout: f64,
    /// The agent's flags (`kube-ipvs run --help`).
    #[command(flatten)]
    agent: RunArgs,
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

async fn report(args: &ExplainArgs) -> anyhow::Result<explain::Report> {
    let loaded = config::load(&args.agent).context("loading the configuration")?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!(
            "--timeout {}: must be a positive number of seconds",
            args.timeout
        );
    }
    let opts = gather::Options {
        target: args.target.clone(),
        files: args.files.clone(),
        owners: args.owners.clone(),
        failures: args.failures.clone(),
        probe: !args.no_probe,
        timeout: Duration::from_secs_f64(args.timeout),
    };
    let inputs = gather::gather(&loaded.config, &opts).await?;
    Ok(explain::explain(&inputs))
}

/// Runs the checks and prints the report. Exit status 0/1/2 (an error before any check is 2:
/// nothing could be checked).
pub fn run(args: &ExplainArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-ipvs: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match rt.block_on(report(args)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kube-ipvs: explain: {e:#}");
            return ExitCode::from(2);
        }
    };
    let text = if args.json {
        render::json(&r)
    } else {
        render::text(&r)
    };
    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
        eprintln!("kube-ipvs: writing the report: {e}");
        return ExitCode::from(2);
    }
    ExitCode::from(r.exit_status())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::super::{Cli, Command};

    #[test]
    fn takes_a_target_its_own_flags_and_the_agents() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kube-ipvs",
            "explain",
            "10.96.0.20:80/udp",
            "--json",
            "-f",
            "a.yaml",
            "b.yaml",
            "--config",
            "/var/lib/kube-proxy/config.conf",
            "--hostname-override=node-a",
            "--metrics-bind-address=127.0.0.1:10249",
        ])
        .unwrap();
        let Command::Explain(a) = cli.command else {
            panic!("not explain: {cli:?}");
        };
        assert_eq!(a.target.to_string(), "10.96.0.20:80/UDP");
        assert!(a.json && !a.no_probe);
        assert_eq!(a.files.len(), 2);
        assert_eq!(a.agent.hostname_override.as_deref(), Some("node-a"));
        let e = Cli::try_parse_from(["kube-ipvs", "explain", "web"]).unwrap_err();
        assert!(e.to_string().contains("expected NAMESPACE/NAME"), "{e}");
    }
}
