//! `kube-ipvs list`: the kernel's IPVS table in `ipvsadm -Ln` layout, optionally with owners.
//!
//! Reads IPVS over generic netlink (never `/proc/net/ip_vs`, which mixes network namespaces);
//! needs CAP_NET_ADMIN only and never writes.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use ipvs_netlink::{
    AddressFamily, Client, ClientOptions, Info, Protocol, TableService, Timeouts, VirtualServiceKey,
};
use kube_ipvs::PlannerConfig;
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::kernel::vs_key;
use kube_ipvs::owners::{DEFAULT_PATH, Owners};
use kube_ipvs::render::kernel_table::timeout_line;
use kube_ipvs::render::{Annotation, Columns, ListFormat, json_table, kernel_table};

const AFTER_HELP: &str = "\
Examples:
  kube-ipvs list                         # exactly `ipvsadm -Ln`
  kube-ipvs list --stats --exact         # `ipvsadm -Ln --stats --exact`
  kube-ipvs list -t 10.96.0.1:443        # one service (also -u, --sctp-service, -f MARK [-6])
  kube-ipvs list --services              # + `# namespace/name:port` or `# foreign` per service
  kube-ipvs list --services -f dump.yaml --node node-a
  kube-ipvs list --services --json
  kube-ipvs list --watch 1               # redraw every second until Ctrl-C

Owners (--services) come from the cluster dump given with -f/--filename (as `kube-ipvs plan -f`),
else from the file the agent publishes after every sync (--owners, default /run/kube-ipvs/owners.json).
-f takes a firewall mark when its value is a number (ipvsadm's -f), a dump file otherwise.
Needs CAP_NET_ADMIN in the network namespace (IPVS answers only to it); works without the agent.";

/// Arguments of `kube-ipvs list`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ListArgs {
    /// Numeric output (accepted for ipvsadm compatibility; always on).
    #[arg(short = 'n', long)]
    numeric: bool,
    /// Counters: connections, packets and bytes in and out (`ipvsadm --stats`).
    #[arg(long)]
    stats: bool,
    /// Rates: connections, packets and bytes per second (`ipvsadm --rate`).
    #[arg(long)]
    rate: bool,
    /// Counters in full instead of K/M/G/T (`ipvsadm --exact`).
    #[arg(short = 'X', long)]
    exact: bool,
    /// Upper and lower connection thresholds (`ipvsadm --thresholds`).
    #[arg(long)]
    thresholds: bool,
    /// Persistent connections (`ipvsadm --persistent-conn`).
    #[arg(long)]
    persistent_conn: bool,
    /// Tunnel type and parameters (`ipvsadm --tun-info`).
    #[arg(long)]
    tun_info: bool,
    /// Sort (accepted for ipvsadm compatibility; output is always sorted as ipvsadm sorts).
    #[arg(long)]
    sort: bool,
    /// Print the tcp, tcpfin and udp connection timeouts (`ipvsadm -L --timeout`).
    #[arg(long)]
    timeout: bool,
    /// Only this TCP service.
    #[arg(short = 't', long = "tcp-service", value_name = "ADDR:PORT")]
    tcp: Option<SocketAddr>,
    /// Only this UDP service.
    #[arg(short = 'u', long = "udp-service", value_name = "ADDR:PORT")]
    udp: Option<SocketAddr>,
    /// Only this SCTP service.
    #[arg(long = "sctp-service", value_name = "ADDR:PORT")]
    sctp: Option<SocketAddr>,
    /// A firewall-mark service to list (a number), or cluster dump file(s) for --services.
    #[arg(short = 'f', long = "fwmark-service", value_name = "MARK|FILE", num_args = 1..)]
    fwmark_or_file: Vec<String>,
    /// The firewall-mark service is IPv6 (`ipvsadm -f MARK -6`).
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,
    /// Cluster dump file(s) for --services (YAML or JSON, as `kube-ipvs plan -f`; `-` is stdin).
    #[arg(long = "filename", value_name = "FILE", num_args = 1..)]
    filename: Vec<PathBuf>,
    /// Name each virtual server's Service port (`# namespace/name:port`), or `# foreign`.
    #[arg(long)]
    services: bool,
    /// The node whose view a cluster dump is planned for (default: NODE_NAME, else hostname).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// The owners file the agent publishes (used by --services without a dump).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PATH)]
    owners: PathBuf,
    /// Print JSON: services, destinations, owners, and counters with --stats/--rate.
    #[arg(long)]
    json: bool,
    /// Redraw every SECS seconds (default 2) until interrupted.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
    /// Read the IPVS table of this network namespace (e.g. /run/netns/NAME).
    #[arg(long, value_name = "PATH")]
    netns: Option<PathBuf>,
}

/// What to list: everything, or one service (`-t/-u/--sctp-service/-f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    All,
    One(VirtualServiceKey),
}

/// `-f` values: numbers are firewall marks (ipvsadm), anything else a dump file.
fn split_f(values: &[String]) -> (Vec<u32>, Vec<PathBuf>) {
    let mut marks = Vec::new();
    let mut files = Vec::new();
    for v in values {
        match v.parse::<u32>() {
            Ok(m) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => marks.push(m),
            _ => files.push(PathBuf::from(v)),
        }
    }
    (marks, files)
}

fn selection(args: &ListArgs, marks: &[u32]) -> anyhow::Result<Selection> {
    let inet = |protocol, sa: SocketAddr| VirtualServiceKey::Inet {
        protocol,
        addr: sa.ip(),
        port: sa.port(),
    };
    let mut picked: Vec<VirtualServiceKey> = [
        args.tcp.map(|s| inet(Protocol::Tcp, s)),
        args.udp.map(|s| inet(Protocol::Udp, s)),
        args.sctp.map(|s| inet(Protocol::Sctp, s)),
    ]
    .into_iter()
    .flatten()
    .collect();
    for &mark in marks {
        if mark == 0 {
            bail!("-f 0: a firewall mark must be greater than zero");
        }
        picked.push(VirtualServiceKey::Fwmark {
            family: if args.ipv6 {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            },
            mark,
        });
    }
    if args.ipv6 && marks.is_empty() {
        bail!("-6 is only valid with -f MARK");
    }
    match picked.as_slice() {
        [] => Ok(Selection::All),
        [one] => Ok(Selection::One(*one)),
        _ => bail!("give at most one of -t, -u, --sctp-service, -f MARK"),
    }
}

/// One read of the kernel: services and destinations in the kernel's dump order (ipvsadm's
/// sort depends on it).
struct Snapshot {
    info: Info,
    services: Vec<TableService>,
    timeouts: Option<Timeouts>,
}

async fn read(client: &mut Client, timeouts: bool) -> Result<Snapshot, ipvs_netlink::Error> {
    let info = client.info().await?;
    if timeouts {
        return Ok(Snapshot {
            info,
            services: Vec::new(),
            timeouts: Some(client.timeouts().await?),
        });
    }
    let mut services = Vec::new();
    for service in client.list_services().await? {
        let destinations = client.list_destinations(&service.key).await?;
        services.push(TableService {
            service,
            destinations,
        });
    }
    Ok(Snapshot {
        info,
        services,
        timeouts: None,
    })
}

/// A kernel error in words an operator acts on.
pub(super) fn ipvs_error(e: ipvs_netlink::Error) -> anyhow::Error {
    match e {
        ipvs_netlink::Error::ModuleNotLoaded => anyhow::anyhow!(
            "the ip_vs module is not loaded (no generic netlink family \"IPVS\" in this kernel): \
             load it with `modprobe ip_vs`"
        ),
        e if is_permission(&e) => anyhow::anyhow!(
            "permission denied: reading or changing IPVS needs CAP_NET_ADMIN in this network \
             namespace (run as root or grant the capability): {e}"
        ),
        e => anyhow::Error::new(e),
    }
}

/// EPERM or EACCES, whether from the kernel's answer or from opening the socket.
fn is_permission(e: &ipvs_netlink::Error) -> bool {
    use ipvs_netlink::Errno;
    matches!(e.errno(), Some(Errno::EPERM | Errno::EACCES))
}

fn node_name(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(n) = given {
        return Ok(n.to_string());
    }
    let env = std::env::var("NODE_NAME").ok();
    let n = kube_ipvs::config::resolve_node_name(
        None,
        env.as_deref(),
        kube_ipvs::config::system_hostname,
    )?;
    Ok(n.name)
}

/// The node addresses NodePort virtual servers listen on, as the agent sees them.
async fn kernel_node_addresses() -> Option<Vec<std::net::IpAddr>> {
    let mut links = nodenet::link::Links::connect(nodenet::link::DEFAULT_TIMEOUT)
        .await
        .ok()?;
    let dummy = links
        .link_index(nodenet::link::DEFAULT_DUMMY_NAME)
        .await
        .ok()?;
    Some(
        links
            .node_addresses(dummy)
            .await
            .ok()?
            .into_iter()
            .collect(),
    )
}

fn load_dump(files: &[PathBuf]) -> anyhow::Result<ClusterDump> {
    let mut dump = ClusterDump::default();
    for f in files {
        if f.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading stdin")?;
            dump.parse(&text, "<stdin>")?;
        } else {
            dump.read_file(f)?;
        }
    }
    Ok(dump)
}

async fn owners(args: &ListArgs, files: &[PathBuf]) -> anyhow::Result<Owners> {
    if files.is_empty() {
        return Owners::read(&args.owners).with_context(|| {
            format!(
                "--services needs the owners file the agent publishes ({}), or a cluster dump \
                 given with -f FILE",
                args.owners.display()
            )
        });
    }
    let dump = load_dump(files)?;
    let node = node_name(args.node.as_deref())?;
    let mut cfg = PlannerConfig::new(&node);
    cfg.node_addresses = match kernel_node_addresses().await {
        Some(a) if !a.is_empty() => a,
        _ => {
            let info = dump
                .node(&node)
                .map(kube_ipvs::model::convert_node)
                .unwrap_or_default();
            info.internal_ips
                .iter()
                .chain(&info.external_ips)
                .copied()
                .collect()
        }
    };
    if dump.node(&node).is_none() {
        eprintln!("kube-ipvs: warning: no Node {node:?} in the dump (use --node)");
    }
    Ok(Owners::from_dump(&dump, cfg))
}

fn render(
    snap: &Snapshot,
    sel: Selection,
    fmt: ListFormat,
    json: bool,
    owners: Option<&Owners>,
) -> anyhow::Result<String> {
    if let Some(t) = &snap.timeouts {
        return Ok(if json {
            format!(
                "{}\n",
                serde_json::json!({"tcp": t.tcp, "tcpFin": t.tcp_fin, "udp": t.udp})
            )
        } else {
            timeout_line(t)
        });
    }
    let annotate = |k: &VirtualServiceKey| match owners {
        None => Annotation::None,
        Some(o) => o
            .get(&vs_key(k))
            .map_or(Annotation::Foreign, |n| Annotation::Owner(n.to_string())),
    };
    let (info, services): (Option<&Info>, Vec<&TableService>) = match sel {
        Selection::All => (Some(&snap.info), snap.services.iter().collect()),
        Selection::One(key) => {
            let one: Vec<&TableService> = snap
                .services
                .iter()
                .filter(|t| t.service.key == key)
                .collect();
            if one.is_empty() {
                bail!("no such service: {}", vs_key(&key));
            }
            (None, one)
        }
    };
    if json {
        let stats = matches!(fmt.columns, Columns::Stats | Columns::Rate);
        let mut s = serde_json::to_string_pretty(&json_table(info, services, stats, &annotate))?;
        s.push('\n');
        return Ok(s);
    }
    Ok(kernel_table(info, services, fmt, &annotate))
}

async fn run_async(args: &ListArgs) -> anyhow::Result<()> {
    let (marks, mut files) = split_f(&args.fwmark_or_file);
    files.extend(args.filename.iter().cloned());
    let sel = selection(args, &marks)?;
    if !files.is_empty() && !args.services {
        bail!(
            "a cluster dump ({}) is only used with --services; a firewall mark is a number",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let fmt = ListFormat {
        columns: Columns::from_flags(
            args.stats,
            args.rate,
            args.thresholds,
            args.persistent_conn,
            args.tun_info,
        ),
        exact: args.exact,
    };
    let opts = ClientOptions {
        netns: args.netns.clone(),
        ..ClientOptions::default()
    };
    let mut client = Client::with_options(opts).await.map_err(ipvs_error)?;
    // A dump is read once; the published owners file is re-read on every redraw.
    let from_dump = if args.services && !files.is_empty() {
        Some(owners(args, &files).await?)
    } else {
        None
    };
    let interval = match args.watch {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--watch {s}: the interval must be a positive number of seconds"),
    };
    let mut out = std::io::stdout().lock();
    loop {
        let published = match (&from_dump, args.services) {
            (None, true) => Some(owners(args, &[]).await?),
            _ => None,
        };
        let snap = read(&mut client, args.timeout).await.map_err(ipvs_error)?;
        let text = render(
            &snap,
            sel,
            fmt,
            args.json,
            from_dump.as_ref().or(published.as_ref()),
        )?;
        let Some(every) = interval else {
            out.write_all(text.as_bytes()).context("writing output")?;
            return Ok(());
        };
        // Home, clear, redraw: the whole frame at once so it does not flicker.
        let frame = format!("\x1b[H\x1b[2J{text}");
        out.write_all(frame.as_bytes()).context("writing output")?;
        out.flush().context("writing output")?;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Prints the table.
pub fn run(args: &ListArgs) -> anyhow::Result<()> {
    let _ = (args.numeric, args.sort);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_async(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f_is_a_mark_when_numeric_and_a_file_otherwise() {
        let v: Vec<String> = ["42", "dump.yaml", "./7", "0x10"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let (marks, files) = split_f(&v);
        assert_eq!(marks, vec![42]);
        assert_eq!(
            files,
            vec![
                PathBuf::from("dump.yaml"),
                PathBuf::from("./7"),
                PathBuf::from("0x10")
            ]
        );
    }

    #[test]
    fn kernel_errors_name_the_module_and_the_capability() {
        let e = ipvs_error(ipvs_netlink::Error::ModuleNotLoaded).to_string();
        assert!(e.starts_with("the ip_vs module is not loaded"), "{e}");
        let e = ipvs_error(ipvs_netlink::Error::PermissionDenied {
            op: "list services",
        });
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let e = ipvs_error(ipvs_netlink::Error::Io {
            op: "open netlink socket",
            source: std::io::Error::from_raw_os_error(1),
        });
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
    }
}
