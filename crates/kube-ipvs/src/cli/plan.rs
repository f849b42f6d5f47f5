//! `kube-ipvs plan`: cluster dump + node + configuration -> the node's desired kernel state.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kube_ipvs::agent::Settings;
use kube_ipvs::config::{self, Config, RunArgs};
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::kernel::{Kernel as _, KernelConfig, KernelError, NetlinkKernel};
use kube_ipvs::plan::{ObservedState, Op};
use kube_ipvs::render::{PlanReport, plan_json, plan_text};
use kube_ipvs::{Engine, PlannerConfig};

const AFTER_HELP: &str = "\
Examples:
  kube-ipvs plan -f examples/cluster.yaml --node node-a
  kubectl get svc,endpointslices,nodes,servicecidrs -A -o yaml > dump.yaml
  kube-ipvs plan -f dump.yaml --node $(hostname) --service-cluster-ip-range 10.96.0.0/12,fd00:10:96::/112
  kube-ipvs plan -f dump.yaml --config /var/lib/kube-proxy/config.conf   # the DaemonSet's own flags

Settings come from the same flags and --config file as `kube-ipvs run` (see `kube-ipvs run
--help`), derived the same way: the families follow the configuration and the node's addresses.

Output: the desired IPVS table in `ipvsadm -Ln` layout, each virtual server annotated with
`# namespace/name:port` (--no-owners prints ipvsadm's exact bytes), then the local routes that make
service CIDRs local, the addresses bound to kube-ipvs0, NodePort addresses, ipset members,
health-check ports, iptables inputs, and every rejected or skipped object with its reason.

With --against-kernel: the ops that would turn this node's kernel (IPVS table, kube-ipvs0
addresses, local routes, ipset members) into that state, one per line (or a JSON array with
--json). Read-only: nothing is created or changed. Needs root (CAP_NET_ADMIN) and the ip_vs module.
Node addresses come from the kernel unless --node-address is given.";

/// Arguments of `kube-ipvs plan`: the dump and output options, then `run`'s flags (the same
/// `--config`, `--hostname-override`, ...), from which the planner settings are derived exactly as
/// `run` derives them.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PlanArgs {
    /// Cluster dump(s): YAML (multiple documents allowed) or JSON, objects or Lists of Services,
    /// EndpointSlices, Nodes and ServiceCIDRs; `-` reads stdin. Other kinds are ignored.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,

    /// The node to plan for, like --hostname-override (default: as `run` finds it: the
    /// configuration's hostnameOverride, $NODE_NAME, the hostname): its endpoints are local, its
    /// Node object gives zone and addresses.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// The node's addresses as the kernel lists them (default: InternalIP and ExternalIP of the
    /// Node object). They also decide the families, as the kernel's addresses do for `run`.
    #[arg(long, value_name = "IP,...", value_delimiter = ',')]
    node_address: Vec<IpAddr>,

    /// Honour EndpointSlice node hints (hints.forNodes), as stock 1.34+ does
    /// (PreferSameTrafficDistribution); `=false` ignores them, as stock before 1.34.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    topology_node_hints: bool,

    /// Print the owner-free `ipvsadm -Ln` table exactly.
    #[arg(long)]
    no_owners: bool,

    /// Print the ops that would be applied to this node's kernel (read-only; needs root and the
    /// ip_vs module).
    #[arg(long)]
    against_kernel: bool,

    #[command(flatten)]
    run: RunArgs,
}

/// The configuration as `run` loads it, with `--node` as the hostname override.
fn load_config(args: &PlanArgs) -> anyhow::Result<Config> {
    let mut run = args.run.clone();
    if let Some(node) = &args.node {
        run.hostname_override = Some(node.clone());
    }
    let loaded = config::load(&run).context("loading the configuration")?;
    // The configuration's own notes matter when one was given (`check-config` prints them all).
    if run.config.is_some() {
        for w in &loaded.warnings {
            eprintln!("kube-ipvs: warning: {w}");
        }
    }
    Ok(loaded.config)
}

/// The planner settings `run` would use on this node: [`Settings::derive`] over the node's
/// addresses (`--node-address`, else the kernel's with `--against-kernel`, else the Node object's).
fn planner(
    args: &PlanArgs,
    cfg: &Config,
    node: &str,
    dump: &ClusterDump,
    kernel_addresses: Option<Vec<IpAddr>>,
) -> anyhow::Result<PlannerConfig> {
    let info = dump
        .node(node)
        .map(kube_ipvs::model::convert_node)
        .unwrap_or_default();
    let node_addresses = if !args.node_address.is_empty() {
        args.node_address.clone()
    } else if let Some(addrs) = kernel_addresses {
        addrs
    } else {
        info.internal_ips
            .iter()
            .chain(&info.external_ips)
            .copied()
            .collect()
    };
    let mut p = Settings::derive(cfg, node, node_addresses).planner;
    p.topology_node_hints = args.topology_node_hints;
    Ok(p)
}

fn load(files: &[PathBuf]) -> anyhow::Result<ClusterDump> {
    let mut dump = ClusterDump::default();
    for f in files {
        if f.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            dump.parse(&text, "<stdin>")?;
        } else {
            dump.read_file(f)?;
        }
    }
    Ok(dump)
}

/// A kernel error in the words an operator needs: missing module, missing privilege. (The
/// error's own text already holds its causes, so they are not chained again.)
fn explain(e: KernelError) -> anyhow::Error {
    use ipvs_netlink::Error as Ipvs;
    match &e {
        KernelError::Ipvs {
            source: Ipvs::ModuleNotLoaded,
            ..
        } => anyhow::anyhow!(
            "the ip_vs module is not loaded: load it with `modprobe ip_vs` (--against-kernel reads \
             the IPVS table)"
        ),
        KernelError::Ipvs {
            source: Ipvs::PermissionDenied { .. },
            ..
        } => anyhow::anyhow!(
            "permission denied: --against-kernel needs CAP_NET_ADMIN (run as root): {e}"
        ),
        _ if matches!(
            e.errno(),
            Some(ipvs_netlink::Errno::EPERM | ipvs_netlink::Errno::EACCES)
        ) =>
        {
            anyhow::anyhow!(
                "permission denied: --against-kernel needs CAP_NET_ADMIN (run as root): {e}"
            )
        }
        _ => anyhow::anyhow!("reading the kernel: {e}"),
    }
}

/// Reads the node's kernel (no `prepare`: nothing is created): its addresses and one full read.
fn read_kernel(device: &str) -> anyhow::Result<(Vec<IpAddr>, ObservedState)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let cfg = KernelConfig::new(device, &kube_ipvs::types::Family::ALL);
        let mut kernel = NetlinkKernel::connect(cfg).await.map_err(explain)?;
        let addrs = kernel.node_addresses().await.map_err(explain)?;
        let observed = kernel.observe().await.map_err(explain)?;
        Ok((addrs, observed))
    })
}

fn ops_text(ops: &[Op], json: bool) -> anyhow::Result<String> {
    let mut text = String::new();
    if json {
        text = serde_json::to_string_pretty(ops)?;
        text.push('\n');
    } else {
        for op in ops {
            text.push_str(&op.to_string());
            text.push('\n');
        }
    }
    Ok(text)
}

/// Runs `kube-ipvs plan`.
pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    let text = render(args)?;
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing output")
}

/// What `kube-ipvs plan` prints.
pub fn render(args: &PlanArgs) -> anyhow::Result<String> {
    let cfg = load_config(args)?;
    let node = cfg.node_name()?.name;
    let dump = load(&args.files)?;
    let kernel = if args.against_kernel {
        Some(read_kernel(cfg.dummy_device.as_str())?)
    } else {
        None
    };
    let (kernel_addresses, observed) = match kernel {
        Some((a, o)) => (Some(a), Some(o)),
        None => (None, None),
    };
    let mut engine = Engine::new(planner(args, &cfg, &node, &dump, kernel_addresses)?);
    if dump.node(&node).is_none() {
        eprintln!(
            "kube-ipvs: warning: no Node {node:?} in the dump: no zone, NodePorts only on --node-address"
        );
    }
    engine.load(&dump);
    if let Some(observed) = observed {
        engine.set_observed(observed);
        let ops = engine.plan_full(std::time::Duration::ZERO);
        return ops_text(&ops, args.json);
    }
    engine.plan_full(std::time::Duration::ZERO);
    let bad: BTreeMap<String, String> = dump
        .bad
        .iter()
        .map(|b| {
            (
                format!("{} {} ({})", b.kind, b.name, b.origin),
                b.message.clone(),
            )
        })
        .collect();
    let report = PlanReport::new(engine.desired(), engine.index(), bad);
    Ok(if args.json {
        plan_json(&report)?
    } else {
        plan_text(&report, !args.no_owners)
    })
}
