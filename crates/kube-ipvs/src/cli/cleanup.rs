//! `kube-ipvs cleanup`: removes what kube-ipvs (or kube-proxy in IPVS mode) created.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use kube_ipvs::agent::settings::cleanup_options;
use kube_ipvs::cleanup::{
    CleanupError, CleanupOptions, Outcome, Plan, cleanup, execute_handback, observe_handback,
    plan_handback,
};
use kube_ipvs::config::{Config, RunArgs};
use kube_ipvs::kernel::vs_key;

const AFTER_HELP: &str = "\
Removes, in this order: virtual servers on addresses kube-ipvs owns (addresses of the dummy
device, service CIDRs it routes locally, node addresses with a NodePort-range port, and those the
agent published in its owners file); then the iptables jumps and KUBE-* chains (both families,
nft and legacy); then the KUBE-* ipsets; then the local routes and the dummy device.
Other IPVS entries (keepalived, kube-vip, fwmark services) are left alone unless --all, which
flushes the whole IPVS table like stock `kube-proxy --cleanup`. Virtual servers in
ipvs.excludeCIDRs are never removed (except by --all). The dummy device, the NodePort range and
excludeCIDRs come from the same flags and --config file as `kube-ipvs run`.

With --handback, it removes nothing of Service routing: after a rollback to stock kube-proxy in
IPVS mode, it leaves the node in the shape stock programs. It resizes ipsets kube-ipvs grew past
stock's maxelem 65536 back to it (stock programs nothing while one differs), binds the virtual-
server addresses kube-ipvs's service-CIDR routes cover to the dummy device (as stock binds
them), then deletes those routes (with them, every unallocated service address would answer on
host ports). Run it once stock kube-proxy runs on the node; it is idempotent.

Examples:
  kube-ipvs cleanup --dry-run     # print each step, change nothing
  kube-ipvs cleanup
  kube-ipvs cleanup --all         # also foreign IPVS entries
  kube-ipvs cleanup --config /var/lib/kube-proxy/config.conf   # the agent's excludeCIDRs, device, ...
  kube-ipvs cleanup --handback    # after `kubectl rollout undo` to stock kube-proxy";

/// Arguments of `kube-ipvs cleanup`: its own options, then `run`'s flags, from which the
/// dummy device, the NodePort range and `excludeCIDRs` come exactly as the agent's do.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CleanupArgs {
    /// Print each step that would be taken and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Flush the whole IPVS table, foreign entries included (stock kube-proxy behaviour).
    #[arg(long, conflicts_with = "handback")]
    all: bool,
    /// Only hand the node back to stock kube-proxy (IPVS mode): sets to stock's options,
    /// service-CIDR routes replaced by bound addresses. See below.
    #[arg(long)]
    handback: bool,
    /// The owners file the agent publishes: its virtual servers are ours; it is removed too.
    #[arg(long, value_name = "PATH", default_value = kube_ipvs::owners::DEFAULT_PATH)]
    owners: PathBuf,
    /// Bound on each kernel request and iptables command, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    request_timeout: u64,
    #[command(flatten)]
    run: RunArgs,
}

/// The options the library takes: the configuration's ([`cleanup_options`]) and this command's.
fn options(args: &CleanupArgs, cfg: &Config) -> CleanupOptions {
    CleanupOptions {
        all: args.all,
        owners_file: Some(args.owners.clone()),
        timeout: Duration::from_secs(args.request_timeout.max(1)),
        ..cleanup_options(cfg)
    }
}

/// The report printed on stdout: steps (done or to do), then what was kept.
fn report(plan: &Plan, outcome: Option<&Outcome>) -> String {
    let mut out = String::new();
    match outcome {
        None => {
            for s in &plan.steps {
                let _ = writeln!(out, "would {s}");
            }
        }
        Some(o) => {
            for s in &o.done {
                let _ = writeln!(out, "done: {s}");
            }
        }
    }
    for k in &plan.kept {
        let _ = writeln!(out, "kept: virtual server {} (not ours)", vs_key(k));
    }
    if plan.steps.is_empty() {
        out.push_str("nothing to clean up\n");
    }
    out
}

fn error(e: CleanupError) -> anyhow::Error {
    match e {
        CleanupError::Ipvs(e) => super::list::ipvs_error(e),
        e => anyhow::Error::new(e),
    }
}

/// Hands the node back to stock kube-proxy (`--handback`).
fn handback(opts: &CleanupOptions, dry_run: bool) -> anyhow::Result<()> {
    let rt = runtime()?;
    let obs = rt.block_on(observe_handback(opts)).map_err(error)?;
    let steps = plan_handback(&obs);
    let mut out = String::new();
    let verb = if dry_run { "would" } else { "done:" };
    if !dry_run {
        rt.block_on(execute_handback(&steps, opts))
            .map_err(error)
            .context("hand-back stopped (later steps not taken)")?;
    }
    for s in &steps {
        let _ = writeln!(out, "{verb} {s}");
    }
    if steps.is_empty() {
        out.push_str("nothing to hand back: the node is in stock kube-proxy's shape\n");
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing output")
}

/// Removes our kernel state (or, with `--handback`, hands the node back to stock).
pub fn run(args: &CleanupArgs) -> anyhow::Result<()> {
    // Logging as the agent's (a large node's cleanup logs its progress).
    let loaded = super::run::start(&args.run, None)?;
    let opts = options(args, &loaded.config);
    if args.handback {
        return handback(&opts, args.dry_run);
    }
    execute(&opts, args.dry_run)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn execute(opts: &CleanupOptions, dry_run: bool) -> anyhow::Result<()> {
    let rt = runtime()?;
    let (plan, outcome) = rt.block_on(cleanup(opts, dry_run)).map_err(error)?;
    for w in &plan.warnings {
        eprintln!("kube-ipvs: warning: {w}");
    }
    std::io::stdout()
        .lock()
        .write_all(report(&plan, outcome.as_ref()).as_bytes())
        .context("writing output")?;
    let failed = outcome.map(|o| o.failed).unwrap_or_default();
    for (step, e) in &failed {
        eprintln!("kube-ipvs: failed: {step}: {}", error_text(e));
    }
    if !failed.is_empty() {
        bail!("cleanup: {} step(s) failed", failed.len());
    }
    Ok(())
}

/// `kube-ipvs run --cleanup` (the stock flag): `kube-ipvs cleanup` with the agent's configuration.
pub fn run_for_agent(cfg: &Config) -> anyhow::Result<()> {
    execute(&cleanup_options(cfg), false)
}

fn error_text(e: &CleanupError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let _ = write!(s, ": {c}");
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_report_says_would_and_lists_kept_entries() {
        let plan = Plan {
            steps: vec![kube_ipvs::cleanup::Step::DestroyIpset {
                name: "KUBE-CLUSTER-IP".into(),
            }],
            kept: vec![ipvs_netlink::VirtualServiceKey::tcp(
                "203.0.113.5".parse().unwrap(),
                80,
            )],
            warnings: vec![],
        };
        assert_eq!(
            report(&plan, None),
            "would destroy ipset KUBE-CLUSTER-IP\nkept: virtual server TCP  203.0.113.5:80 (not ours)\n"
        );
        assert_eq!(report(&Plan::default(), None), "nothing to clean up\n");
    }
}
