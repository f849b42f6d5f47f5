//! `kube-ipvs plan`: cluster dump + node + configuration -> the node's desired kernel state.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use ipnet::IpNet;
use kube_ipvs::dump::ClusterDump;
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
health-check ports, iptables inputs, and every rejected or skipped object with its reason.";

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

    /// Print the ops that would be applied to this node's kernel (needs the kernel clients).
    #[arg(long)]
    against_kernel: bool,
}

fn config(args: &PlanArgs, dump: &ClusterDump) -> anyhow::Result<PlannerConfig> {
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
    cfg.node_addresses = if args.node_address.is_empty() {
        info.internal_ips
            .iter()
            .chain(&info.external_ips)
            .copied()
            .collect()
    } else {
        args.node_address.clone()
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

/// Runs `kube-ipvs plan`.
pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    if args.against_kernel {
        bail!(
            "--against-kernel is not available yet: it needs the kernel clients (ipvs-netlink, nodenet) \
             that are being written; run without it to see the desired state"
        );
    }
    let dump = load(&args.files)?;
    let cfg = config(args, &dump)?;
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
