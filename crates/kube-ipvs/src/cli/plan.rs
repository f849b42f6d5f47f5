//! `kube-ipvs plan`: cluster dump + node + configuration -> the node's desired kernel state.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use ipnet::IpNet;
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::kernel::{Kernel as _, KernelConfig, KernelError, NetlinkKernel};
use kube_ipvs::plan::{ObservedState, Op};
use kube_ipvs::render::{PlanReport, plan_json, plan_text};
use kube_ipvs::types::Scheduler;
use kube_ipvs::{Engine, PlannerConfig};

const AFTER_HELP: &str = "\
Examples:
  kube-ipvs plan -f examples/cluster.yaml --node node-a
  kubectl get svc,endpointslices,nodes,servicecidrs -A -o yaml > dump.yaml
  kube-ipvs plan -f dump.yaml --node $(hostname) --service-cluster-ip-range 10.96.0.0/12,fd00:10:96::/112

Output: the desired IPVS table in `ipvsadm -Ln` layout, each virtual server annotated with
`# namespace/name:port` (--no-owners prints ipvsadm's exact bytes), then the local routes that make
service CIDRs local, the addresses bound to kube-ipvs0, NodePort addresses, ipset members,
health-check ports, iptables inputs, and every rejected or skipped object with its reason.

With --against-kernel: the ops that would turn this node's kernel (IPVS table, kube-ipvs0
addresses, local routes, ipset members) into that state, one per line (or a JSON array with
--json). Read-only: nothing is created or changed. Needs root (CAP_NET_ADMIN) and the ip_vs module.
Node addresses come from the kernel unless --node-address is given.";

/// Arguments of `kube-ipvs plan`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PlanArgs {
    /// Cluster dump(s): YAML (multiple documents allowed) or JSON, objects or Lists of Services,
    /// EndpointSlices, Nodes and ServiceCIDRs; `-` reads stdin. Other kinds are ignored.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,

    /// The node to plan for: its endpoints are local, its Node object gives zone and addresses.
    #[arg(long, value_name = "NAME")]
    node: String,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// Service CIDRs (one per family, as kube-apiserver's flag): ClusterIPs inside are made local
    /// by one route per CIDR instead of one address each. ServiceCIDR objects in the dump add more.
    #[arg(long, value_name = "CIDR[,CIDR]", value_delimiter = ',')]
    service_cluster_ip_range: Vec<IpNet>,

    /// Default IPVS scheduler (kube-proxy's ipvs.scheduler).
    #[arg(long, value_name = "NAME", default_value = "rr")]
    ipvs_scheduler: String,

    /// Virtual servers on these CIDRs are never changed or deleted (ipvs.excludeCIDRs).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    ipvs_exclude_cidrs: Vec<IpNet>,

    /// NodePorts listen only on node addresses in these CIDRs, or `primary` (nodePortAddresses).
    #[arg(long, value_name = "CIDR|primary,...", value_delimiter = ',')]
    nodeport_addresses: Vec<String>,

    /// The node's addresses as the kernel lists them (default: InternalIP and ExternalIP of the
    /// Node object).
    #[arg(long, value_name = "IP,...", value_delimiter = ',')]
    node_address: Vec<IpAddr>,

    /// Bind every ClusterIP to kube-ipvs0 like stock kube-proxy instead of routing service CIDRs.
    #[arg(long)]
    bind_cluster_ips: bool,

    /// Traffic policy Local without a local endpoint drops traffic instead of falling back to
    /// cluster endpoints (stock IPVS falls back).
    #[arg(long)]
    strict_local: bool,

    /// Honour EndpointSlice node hints (hints.forNodes).
    #[arg(long)]
    topology_node_hints: bool,

    /// Print the owner-free `ipvsadm -Ln` table exactly.
    #[arg(long)]
    no_owners: bool,

    /// Print the ops that would be applied to this node's kernel (read-only; needs root and the
    /// ip_vs module).
    #[arg(long)]
    against_kernel: bool,

    /// The dummy device kube-ipvs binds addresses to (with --against-kernel).
    #[arg(long, value_name = "NAME", default_value = "kube-ipvs0")]
    dummy_device: String,
}

fn config(
    args: &PlanArgs,
    dump: &ClusterDump,
    kernel_addresses: Option<Vec<IpAddr>>,
) -> anyhow::Result<PlannerConfig> {
    let Some(scheduler) = Scheduler::parse(&args.ipvs_scheduler) else {
        bail!(
            "--ipvs-scheduler: unknown scheduler {:?}",
            args.ipvs_scheduler
        );
    };
    let mut cfg = PlannerConfig::new(&args.node).with_scheduler(scheduler);
    cfg.service_cidrs.clone_from(&args.service_cluster_ip_range);
    cfg.exclude_cidrs.clone_from(&args.ipvs_exclude_cidrs);
    for a in &args.nodeport_addresses {
        if a == "primary" {
            cfg.node_port_primary = true;
        } else {
            cfg.node_port_addresses.push(
                a.parse()
                    .with_context(|| format!("--nodeport-addresses: {a:?}"))?,
            );
        }
    }
    let node = dump.node(&args.node);
    let info = node.map(kube_ipvs::model::convert_node).unwrap_or_default();
    cfg.node_addresses = if !args.node_address.is_empty() {
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
    cfg.bind_cluster_ips = args.bind_cluster_ips;
    cfg.strict_local = args.strict_local;
    cfg.topology_node_hints = args.topology_node_hints;
    Ok(cfg)
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

/// Reads the node's kernel (no `prepare`: nothing is created): its addresses and one full dump.
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

fn print_ops(ops: &[Op], json: bool) -> anyhow::Result<()> {
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
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing output")
}

/// Runs `kube-ipvs plan`.
pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    let dump = load(&args.files)?;
    let kernel = if args.against_kernel {
        Some(read_kernel(&args.dummy_device)?)
    } else {
        None
    };
    let (kernel_addresses, observed) = match kernel {
        Some((a, o)) => (Some(a), Some(o)),
        None => (None, None),
    };
    let cfg = config(args, &dump, kernel_addresses)?;
    let mut engine = Engine::new(cfg);
    match dump.node(&args.node) {
        Some(n) => engine.apply_node(n),
        None => eprintln!(
            "kube-ipvs: warning: no Node {:?} in the dump: no zone, NodePorts only on --node-address",
            args.node
        ),
    }
    for c in &dump.service_cidrs {
        engine.apply_service_cidr(c);
    }
    for s in &dump.services {
        engine.apply_service(s);
    }
    for s in &dump.slices {
        engine.apply_slice(s);
    }
    if let Some(observed) = observed {
        engine.set_observed(observed);
        let ops = engine.plan_full(std::time::Duration::ZERO);
        return print_ops(&ops, args.json);
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
    let text = if args.json {
        plan_json(&report)?
    } else {
        plan_text(&report, !args.no_owners)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("writing output")?;
    Ok(())
}
