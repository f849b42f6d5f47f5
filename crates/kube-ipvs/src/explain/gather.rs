//! The I/O of `explain`: reads the cluster objects (API server or dump), the kernel, the agent's
//! endpoints and files, conntrack usage, and probes the endpoints, into [`Inputs`]. Read-only;
//! each source that cannot be read becomes an `Err` in its field, not a failure of the whole.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, ListParams};
use nodenet::iptables::backend::{Backend, Tool, parse_version};
use nodenet::iptables::save::SavedTable;
use nodenet::route::OUR_PROTOCOL;
use tokio::net::TcpStream;

use super::checks::probe_targets;
use super::inputs::{
    AgentView, Cluster, ConntrackView, Gathered, HttpAnswer, Inputs, KernelRs, KernelView,
    KernelVs, Probe, ProbeResult, Resolved, Rules, Settings, Target,
};
use super::subject::{Subject, resolve_by_owners, resolve_by_services};
use crate::agent::settings as agent_settings;
use crate::config::{Config, NodeNameError, NodePortAddresses, Source};
use crate::dump::ClusterDump;
use crate::failures::Failures;
use crate::kernel::convert;
use crate::model::LABEL_SERVICE_NAME;
use crate::owners::Owners;
use crate::types::{Family, Proto, ServiceName, VsKey};

/// Conntrack tables larger than this are not listed to count the Service's entries.
const CONNTRACK_LIST_MAX: u64 = 65_536;
/// Services read per page when looking for an address among all Services.
const PAGE: u32 = 500;
/// Bound on each `iptables` tool run (as the agent's: a large rule set takes seconds to save).
const IPTABLES_TIMEOUT: Duration = Duration::from_secs(30);

/// What to gather.
#[derive(Clone, Debug)]
pub struct Options {
    /// What was asked.
    pub target: Target,
    /// Cluster dump files (instead of the API server).
    pub files: Vec<PathBuf>,
    /// The agent's owners file.
    pub owners: PathBuf,
    /// The agent's failures file.
    pub failures: PathBuf,
    /// Whether to connect to the endpoints.
    pub probe: bool,
    /// Bound on each network exchange (API request, HTTP request, netlink wait, TCP connect).
    pub timeout: Duration,
}

/// Nothing can be checked without these.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// The node's name cannot be found.
    #[error("finding this node's name: {0}")]
    NodeName(#[from] NodeNameError),
}

/// Gathers everything the checks read.
pub async fn gather(cfg: &Config, opts: &Options) -> Result<Inputs, GatherError> {
    let node = cfg.node_name()?.name;
    let host = host_addresses(cfg, opts.timeout).await;
    let families = agent_settings::families(cfg, host.as_deref().unwrap_or_default());
    let mut planner = agent_settings::Settings::from_config(
        cfg,
        &node,
        families,
        host.clone().unwrap_or_default(),
    )
    .planner;
    let owners = Owners::read(&opts.owners).map_err(|e| e.to_string());
    let failures = Failures::read(&opts.failures).map_err(|e| e.to_string());
    let (cluster, resolved) = cluster(cfg, opts, &node, &planner, owners.as_ref().ok()).await;
    if host.is_err()
        && let Ok(Some(n)) = cluster.as_ref().map(|c| c.node.as_ref())
    {
        // The Node's addresses stand in for the kernel's (as `list --services -f` does).
        let info = crate::model::convert_node(n);
        planner.node_addresses = info
            .internal_ips
            .iter()
            .chain(&info.external_ips)
            .copied()
            .collect();
    }
    let subject = cluster
        .as_ref()
        .ok()
        .and_then(|c| Subject::derive(c, &planner));
    let kernel = match &host {
        Ok(h) => read_kernel(cfg, opts, h, subject.as_ref()).await,
        Err(e) => Err(e.clone()),
    };
    let settings = Settings {
        sync_period: cfg.sync.period,
        min_sync_period: cfg.sync.min,
        node_port_addresses: match &cfg.node_port_addresses {
            NodePortAddresses::All => "all (not set)".into(),
            NodePortAddresses::Primary => "primary".into(),
            NodePortAddresses::Cidrs(c) => c
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        },
        dummy_device: cfg.dummy_device.as_str().to_string(),
        healthz: cfg.healthz_bind_address.map(loopback_if_unspecified),
        metrics: cfg.metrics_bind_address.map(loopback_if_unspecified),
        conntrack_max_per_core: cfg.conntrack.max_per_core,
        conntrack_min: cfg.conntrack.min,
        planner,
    };
    let agent = agent(&settings, opts, owners, failures, subject.as_ref()).await;
    let conntrack = conntrack(subject.as_ref(), opts.timeout).await;
    let probes = match (&subject, opts.probe) {
        (Some(sub), true) => Some(probe(&probe_targets(sub), opts.timeout).await),
        _ => None,
    };
    Ok(Inputs {
        target: opts.target.clone(),
        resolved,
        cluster,
        settings,
        kernel,
        agent,
        conntrack,
        probes,
    })
}

/// An address to connect to for a bind address (`0.0.0.0` -> `127.0.0.1`, `::` -> `::1`).
fn loopback_if_unspecified(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v) if v.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, a.port())),
        IpAddr::V6(v) if v.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, a.port())),
        _ => a,
    }
}

async fn host_addresses(cfg: &Config, timeout: Duration) -> Gathered<Vec<IpAddr>> {
    let mut links = nodenet::link::Links::connect(timeout)
        .await
        .map_err(|e| format!("rtnetlink: {e}"))?;
    let dummy = links
        .link_index(cfg.dummy_device.as_str())
        .await
        .map_err(|e| format!("rtnetlink: {e}"))?;
    Ok(links
        .node_addresses(dummy)
        .await
        .map_err(|e| format!("rtnetlink: {e}"))?
        .into_iter()
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Cluster objects

/// The cluster objects of the target, and how an address target resolved.
async fn cluster(
    cfg: &Config,
    opts: &Options,
    node: &str,
    planner: &crate::PlannerConfig,
    owners: Option<&Owners>,
) -> (Gathered<Cluster>, Option<Resolved>) {
    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.clone()
    } else if let Source::File(path) = &cfg.source {
        match crate::source::file::files(path) {
            Ok(f) => f,
            Err(e) => return (Err(e.to_string()), None),
        }
    } else {
        Vec::new()
    };
    // An address is looked up in the agent's owners file first: no API call needed.
    let by_owners = match &opts.target {
        Target::Address { addr, port, proto } => {
            owners.and_then(|o| resolve_by_owners(o, *addr, *port, *proto))
        }
        Target::Service { .. } => None,
    };
    if files.is_empty() {
        from_api(cfg, opts, node, planner, by_owners).await
    } else {
        from_dump(&files, &opts.target, node, planner, by_owners)
    }
}

fn name_of(target: &Target, found: Option<&(ServiceName, Resolved)>) -> Option<ServiceName> {
    match (target, found) {
        (Target::Service { namespace, name }, _) => Some(ServiceName::new(namespace, name)),
        (Target::Address { .. }, Some((k, _))) => Some(k.clone()),
        (Target::Address { .. }, None) => None,
    }
}

fn from_dump(
    files: &[PathBuf],
    target: &Target,
    node: &str,
    planner: &crate::PlannerConfig,
    by_owners: Option<(ServiceName, Resolved)>,
) -> (Gathered<Cluster>, Option<Resolved>) {
    let mut dump = ClusterDump::default();
    for f in files {
        let read = if f.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("reading stdin: {e}"))
                .and_then(|_| dump.parse(&text, "<stdin>").map_err(|e| e.to_string()))
        } else {
            dump.read_file(f).map_err(|e| e.to_string())
        };
        if let Err(e) = read {
            return (Err(e), None);
        }
    }
    let found = by_owners.or_else(|| match target {
        Target::Address { addr, port, proto } => resolve_by_services(
            &dump.services,
            *addr,
            *port,
            *proto,
            &planner.node_addresses,
        ),
        Target::Service { .. } => None,
    });
    let key = name_of(target, found.as_ref());
    let is = |ns: Option<&String>, name: Option<&String>, key: &ServiceName| {
        ns.map(String::as_str) == Some(key.namespace())
            && name.map(String::as_str) == Some(key.name())
    };
    let mut cluster = Cluster {
        source: format!(
            "the dump {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        node: dump.node(node).cloned(),
        service_cidrs: dump.service_cidrs.clone(),
        ..Cluster::default()
    };
    if let Some(key) = &key {
        cluster.service = dump
            .services
            .iter()
            .find(|s| is(s.metadata.namespace.as_ref(), s.metadata.name.as_ref(), key))
            .cloned();
        cluster.slices = dump
            .slices
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(key.namespace())
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_SERVICE_NAME))
                        .map(String::as_str)
                        == Some(key.name())
            })
            .cloned()
            .collect();
    }
    (Ok(cluster), found.map(|(_, r)| r))
}

async fn timed<T, E: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {}s",
            timeout.as_secs_f64()
        )),
    }
}

/// Reads the target from the API server with list calls the agent's ClusterRole already grants
/// (a list with a field or label selector: see the test `api_reads_are_lists_the_cluster_role_grants`).
async fn from_api(
    cfg: &Config,
    opts: &Options,
    node: &str,
    planner: &crate::PlannerConfig,
    by_owners: Option<(ServiceName, Resolved)>,
) -> (Gathered<Cluster>, Option<Resolved>) {
    let client = match crate::source::kubernetes::client(cfg.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => return (Err(e.to_string()), None),
    };
    let t = opts.timeout;
    let found = match (&opts.target, by_owners) {
        (_, Some(f)) => Some(f),
        (Target::Address { addr, port, proto }, None) => {
            match find_by_address(&client, t, *addr, *port, *proto, &planner.node_addresses).await {
                Ok(f) => f,
                Err(e) => return (Err(e), None),
            }
        }
        (Target::Service { .. }, None) => None,
    };
    let resolved = found.as_ref().map(|(_, r)| r.clone());
    let mut cluster = Cluster {
        source: "the API server".into(),
        ..Cluster::default()
    };
    let read = async {
        let nodes: Api<Node> = Api::all(client.clone());
        let by_name = ListParams::default().fields(&format!("metadata.name={node}"));
        cluster.node = timed(t, "list nodes", nodes.list(&by_name))
            .await?
            .items
            .into_iter()
            .next();
        // ServiceCIDRs are optional (not served before Kubernetes 1.31, or not allowed).
        let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
        cluster.service_cidrs = timed(t, "list servicecidrs", cidrs.list(&ListParams::default()))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let Some(key) = name_of(&opts.target, found.as_ref()) else {
            return Ok::<(), String>(());
        };
        let svcs: Api<Service> = Api::namespaced(client.clone(), key.namespace());
        let by_name = ListParams::default().fields(&format!("metadata.name={}", key.name()));
        cluster.service = timed(t, "list services", svcs.list(&by_name))
            .await?
            .items
            .into_iter()
            .next();
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), key.namespace());
        let of = ListParams::default().labels(&format!("{LABEL_SERVICE_NAME}={}", key.name()));
        cluster.slices = timed(t, "list endpointslices", slices.list(&of))
            .await?
            .items;
        Ok(())
    };
    match read.await {
        Ok(()) => (Ok(cluster), resolved),
        Err(e) => (Err(e), resolved),
    }
}

/// Pages through every Service for the one answering `addr:port`.
async fn find_by_address(
    client: &kube::Client,
    t: Duration,
    addr: IpAddr,
    port: u16,
    proto: Option<Proto>,
    node_addresses: &[IpAddr],
) -> Result<Option<(ServiceName, Resolved)>, String> {
    let all: Api<Service> = Api::all(client.clone());
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(c) = &token {
            lp = lp.continue_token(c);
        }
        let page = timed(t, "list services", all.list(&lp)).await?;
        if let Some(f) = resolve_by_services(&page.items, addr, port, proto, node_addresses) {
            return Ok(Some(f));
        }
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            return Ok(None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel

fn ipvs_text(e: &ipvs_netlink::Error) -> String {
    match e {
        ipvs_netlink::Error::ModuleNotLoaded => {
            "the ip_vs module is not loaded (modprobe ip_vs)".into()
        }
        e if matches!(e.errno().map(|n| n.get()), Some(1 | 13)) => {
            format!("permission denied (IPVS needs CAP_NET_ADMIN): {e}")
        }
        e => format!("IPVS: {e}"),
    }
}

/// Which kernel virtual servers concern the explanation.
fn wanted_keys(
    sub: Option<&Subject>,
    target: &Target,
    node_addresses: &[IpAddr],
) -> impl Fn(&VsKey) -> bool {
    let mut planned = BTreeSet::new();
    let mut cluster_ips = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    if let Some(sub) = sub {
        planned.extend(sub.desired().virtual_servers().keys().copied());
        if let Some(svc) = sub.service() {
            cluster_ips.extend(svc.cluster_ips.iter().copied());
            node_ports.extend(svc.ports.iter().filter_map(|p| p.node_port));
        }
    }
    let at = match target {
        Target::Address { addr, port, .. } => Some((*addr, *port)),
        Target::Service { .. } => None,
    };
    let node: BTreeSet<IpAddr> = node_addresses.iter().copied().collect();
    move |k: &VsKey| {
        let VsKey::Service { addr, port, .. } = *k else {
            return false;
        };
        planned.contains(k)
            || cluster_ips.contains(&addr)
            || (node.contains(&addr) && node_ports.contains(&port))
            || at == Some((addr, port))
    }
}

async fn read_kernel(
    cfg: &Config,
    opts: &Options,
    host: &[IpAddr],
    sub: Option<&Subject>,
) -> Gathered<KernelView> {
    let mut view = KernelView {
        node_addresses: host.to_vec(),
        ..KernelView::default()
    };
    let ipvs_opts = ipvs_netlink::ClientOptions {
        timeout: opts.timeout,
        ..ipvs_netlink::ClientOptions::default()
    };
    let mut ipvs = ipvs_netlink::Client::with_options(ipvs_opts)
        .await
        .map_err(|e| ipvs_text(&e))?;
    let wanted = wanted_keys(sub, &opts.target, host);
    let mut services = Vec::new();
    ipvs.visit_services(|s| {
        if wanted(&convert::vs_key(&s.key)) {
            services.push(s);
        }
    })
    .await
    .map_err(|e| ipvs_text(&e))?;
    for s in services {
        let dests = ipvs
            .list_destinations(&s.key)
            .await
            .map_err(|e| ipvs_text(&e))?;
        let mut reals = dests
            .iter()
            .map(|d| {
                let r = convert::real_server(d);
                let st = |f: fn(&ipvs_netlink::Stats) -> u64| d.stats.as_ref().map_or(0, f);
                KernelRs {
                    key: r.key,
                    weight: r.weight,
                    forward: r.forward,
                    active: r.active,
                    inactive: r.inactive,
                    conns: st(|s| s.conns),
                    bytes_in: st(|s| s.inbytes),
                    bytes_out: st(|s| s.outbytes),
                }
            })
            .collect::<Vec<_>>();
        reals.sort_by_key(|r| r.key);
        view.vs.insert(
            convert::vs_key(&s.key),
            KernelVs {
                spec: convert::vs_spec(&s),
                scheduler: s.scheduler.to_string(),
                reals,
            },
        );
    }
    let link = |e: nodenet::link::LinkError| format!("rtnetlink: {e}");
    let mut links = nodenet::link::Links::connect(opts.timeout)
        .await
        .map_err(link)?;
    if let Some(index) = links
        .link_index(cfg.dummy_device.as_str())
        .await
        .map_err(link)?
    {
        let addrs = links.addresses(index).await.map_err(link)?;
        view.dummy = Some(addrs.iter().map(ipnet::IpNet::addr).collect());
    }
    let lo = links.link_index("lo").await.map_err(link)?;
    view.routes = links
        .local_prefix_routes()
        .await
        .map_err(link)?
        .into_iter()
        .filter(|r| Some(r.ifindex) == lo && r.protocol == u8::from(OUR_PROTOCOL))
        .map(|r| r.prefix)
        .collect();
    let Some(sub) = sub else {
        return Ok(view);
    };
    let mut families = BTreeSet::new();
    match nodenet::ipset::IpsetClient::connect().await {
        Ok(mut ipset) => {
            for (set, members) in sub.desired().ipsets() {
                families.insert(set.family);
                for e in members {
                    let r = ipset
                        .test(&convert::set_name(set), &convert::entry(e))
                        .await
                        .map_err(|err| format!("ipset test: {err}"));
                    view.ipset.insert((*set, *e), r);
                }
            }
        }
        Err(e) => {
            for (set, members) in sub.desired().ipsets() {
                families.insert(set.family);
                for m in members {
                    view.ipset.insert((*set, *m), Err(format!("ipset: {e}")));
                }
            }
        }
    }
    for family in families {
        view.iptables.insert(family, iptables(family).await);
    }
    Ok(view)
}

/// Runs a tool; its stdout, or why not.
async fn run_tool(bin: &str, args: &[&str]) -> Result<String, String> {
    let cmd = std::iter::once(bin)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let run = tokio::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(IPTABLES_TIMEOUT, run)
        .await
        .map_err(|_| format!("{cmd}: no result within {}s", IPTABLES_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The tables of one `iptables-save` (every table), by name.
fn split_tables(text: &str) -> BTreeMap<String, SavedTable> {
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            current = Some(name.trim().to_string());
        } else if let Some(t) = &current {
            let body = sections.entry(t.clone()).or_default();
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
        .into_iter()
        .map(|(t, body)| (t, SavedTable::parse(&body)))
        .collect()
}

/// The nat and filter tables, read with one `iptables-save` of the back end `iptables
/// --version` names (the other back end's only if that one holds no kube-ipvs chain): two
/// processes, where the agent's full detection would start seven.
async fn iptables(family: Family) -> Gathered<Rules> {
    let fam: nodenet::AddressFamily = family.into();
    let base = nodenet::iptables::backend::command(fam);
    let version = run_tool(base, &["--version"]).await?;
    let default = parse_version(&version)
        .and_then(|(_, b)| b)
        .ok_or_else(|| format!("{base} --version: unexpected output {version:?}"))?;
    let other = match default {
        Backend::Nft => Backend::Legacy,
        Backend::Legacy => Backend::Nft,
    };
    let mut first = None;
    for backend in [default, other] {
        let text = run_tool(&backend.binary(fam, Tool::Save), &[]).await;
        let mut tables = match text {
            Ok(t) => split_tables(&t),
            Err(e) if first.is_none() => return Err(e),
            Err(_) => break,
        };
        let rules = Rules {
            nat: tables.remove("nat").unwrap_or_default(),
            filter: tables.remove("filter").unwrap_or_default(),
        };
        if rules.nat.has_chain("KUBE-SERVICES") {
            return Ok(rules);
        }
        first.get_or_insert(rules);
    }
    Ok(first.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Agent

/// One GET over HTTP/1.1.
pub async fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Gathered<HttpAnswer> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        driver.abort();
        Ok::<_, String>(HttpAnswer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r.map_err(|e| format!("GET http://{addr}{path}: {e}")),
        Err(_) => Err(format!(
            "GET http://{addr}{path}: no answer within {}s",
            timeout.as_secs_f64()
        )),
    }
}

/// The Prometheus text format as `name{labels}` -> value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let split = l.rfind('}').map_or_else(|| l.find(' '), |i| Some(i + 1))?;
            let (name, rest) = l.split_at(split);
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.trim().to_string(), value))
        })
        .collect()
}

async fn agent(
    s: &Settings,
    opts: &Options,
    owners: Gathered<Owners>,
    failures: Gathered<Failures>,
    sub: Option<&Subject>,
) -> AgentView {
    let t = opts.timeout;
    let healthz = match s.healthz {
        Some(a) => Some(http_get(a, "/healthz", t).await),
        None => None,
    };
    let metrics = match s.metrics {
        Some(a) => Some(
            http_get(a, "/metrics", t)
                .await
                .map(|r| parse_metrics(&r.body)),
        ),
        None => None,
    };
    let health_check = match sub.and_then(|sub| sub.desired().health_checks().get(&sub.key)) {
        Some(hc) => {
            let cfg = &s.planner;
            let all = cfg.node_port_addresses.is_empty() && !cfg.node_port_primary;
            let ip = if all {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            } else {
                sub.and_then(|s| s.desired().node_port_ips().first().copied())
            };
            match ip {
                Some(ip) => Some(http_get(SocketAddr::new(ip, hc.port), "/", t).await),
                None => Some(Err("no NodePort address to ask on".into())),
            }
        }
        None => None,
    };
    AgentView {
        healthz,
        metrics,
        owners,
        failures,
        health_check,
        now: SystemTime::now(),
    }
}

// ---------------------------------------------------------------------------------------------
// Conntrack and probes

fn read_u64(path: &Path) -> Result<Option<u64>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

async fn conntrack(sub: Option<&Subject>, timeout: Duration) -> Gathered<Option<ConntrackView>> {
    const DIR: &str = "/proc/sys/net/netfilter";
    let count = read_u64(&Path::new(DIR).join("nf_conntrack_count"))?;
    let max = read_u64(&Path::new(DIR).join("nf_conntrack_max"))?;
    let (Some(count), Some(max)) = (count, max) else {
        return Ok(None);
    };
    let to_service = match sub {
        Some(sub) if count <= CONNTRACK_LIST_MAX => Some(service_flows(sub, timeout).await),
        _ => None,
    };
    Ok(Some(ConntrackView {
        count,
        max,
        to_service,
    }))
}

/// Entries whose original destination is one of the Service's virtual servers.
async fn service_flows(sub: &Subject, timeout: Duration) -> Gathered<u64> {
    let keys: BTreeSet<(u8, IpAddr, u16)> = sub
        .desired()
        .virtual_servers()
        .keys()
        .filter_map(|k| match *k {
            VsKey::Service { proto, addr, port } => Some((proto.number(), addr, port)),
            VsKey::Fwmark { .. } => None,
        })
        .collect();
    let families: BTreeSet<Family> = keys.iter().map(|(_, a, _)| Family::of(a)).collect();
    let mut ct = nodenet::conntrack::Conntrack::connect(timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for f in families {
        let flows = ct.flows(f.into()).await.map_err(|e| e.to_string())?;
        n += flows
            .iter()
            .filter(|fl| keys.contains(&(fl.protocol, fl.orig.dst, fl.orig.dport)))
            .count() as u64;
    }
    Ok(n)
}

/// A TCP connect to each endpoint, all at once, each bounded by `timeout`.
pub async fn probe(endpoints: &[crate::types::RsKey], timeout: Duration) -> Vec<Probe> {
    let one = |ep: crate::types::RsKey| async move {
        let result = match tokio::time::timeout(
            timeout,
            TcpStream::connect(SocketAddr::new(ep.addr, ep.port)),
        )
        .await
        {
            Ok(Ok(_)) => ProbeResult::Open,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => ProbeResult::Refused,
            Ok(Err(e)) => ProbeResult::Error(e.to_string()),
            Err(_) => ProbeResult::Timeout,
        };
        Probe {
            endpoint: ep,
            result,
        }
    };
    futures::future::join_all(endpoints.iter().copied().map(one)).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_parses_names_labels_and_values() {
        let m = parse_metrics(
            "# HELP x y\n# TYPE x gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7e9\n\
             kube_ipvs_ops_total{kind=\"add_rs\",result=\"failed\"} 3\nweird{a=\"b c\"} 2 1234\n",
        );
        assert_eq!(
            m["kubeproxy_sync_proxy_rules_last_timestamp_seconds"],
            1.7e9
        );
        assert_eq!(
            m["kube_ipvs_ops_total{kind=\"add_rs\",result=\"failed\"}"],
            3.0
        );
        assert_eq!(m["weird{a=\"b c\"}"], 2.0);
        assert_eq!(m.len(), 3);
    }

    /// Every API request explain sends is a list the agent's ClusterRole grants
    /// (`source::access::API_ACCESS`, itself checked against `deploy/clusterrole.yaml`), so it
    /// runs with the agent's ServiceAccount; and the objects are the target's.
    #[tokio::test]
    async fn api_reads_are_lists_the_cluster_role_grants() {
        use crate::source::access::{Verb, classify, declared};
        let fake = fake_apiserver::FakeApiServer::start().await.unwrap();
        let other = super::super::checks::fixture::WEB
            .replace("name: web, namespace: shop", "name: api, namespace: shop")
            .replace("10.96.0.20", "10.96.0.21")
            .replace("name: web-1", "name: api-1")
            .replace("service-name: web", "service-name: api");
        fake.apply_bytes(other.as_bytes()).unwrap();
        fake.apply_bytes(super::super::checks::fixture::WEB.as_bytes())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("explain-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, fake.kubeconfig_yaml()).unwrap();
        let cfg = Config {
            kubeconfig: Some(kubeconfig),
            ..Config::default()
        };
        let mut opts = Options {
            target: "shop/web".parse().unwrap(),
            files: Vec::new(),
            owners: dir.join("owners.json"),
            failures: dir.join("failures.json"),
            probe: false,
            timeout: Duration::from_secs(10),
        };
        let planner = crate::PlannerConfig::new("node-a");
        let (c, _) = from_api(&cfg, &opts, "node-a", &planner, None).await;
        let c = c.unwrap();
        assert_eq!(c.service.unwrap().metadata.name.as_deref(), Some("web"));
        assert_eq!(c.slices.len(), 1);
        assert_eq!(c.slices[0].metadata.name.as_deref(), Some("web-1"));
        assert_eq!(c.node.unwrap().metadata.name.as_deref(), Some("node-a"));

        // An address no owners file knows: found among the Services.
        opts.target = "10.96.0.20:80/tcp".parse().unwrap();
        let (c, resolved) = from_api(&cfg, &opts, "node-a", &planner, None).await;
        assert_eq!(resolved.unwrap().owner, "shop/web:http");
        assert_eq!(c.unwrap().slices.len(), 1);

        let log = fake.request_log();
        assert!(log.len() >= 8, "{log:?}");
        for r in log {
            let (g, res, verb) = classify(&r.method, &r.path, r.watch)
                .unwrap_or_else(|| panic!("not a resource request: {} {}", r.method, r.path));
            assert_eq!(verb, Verb::List, "{} {}", r.method, r.path);
            assert!(
                declared(&g, &res, verb),
                "{} {} needs {g}/{res} list",
                r.method,
                r.path
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One `iptables-save` prints every table; each is parsed on its own (a real layout: the
    /// iptables mode's leftovers, mangle, nat and filter).
    #[test]
    fn a_whole_iptables_save_splits_into_its_tables() {
        let text = include_str!("../../tests/fixtures/iptables-mode-leftovers.rules");
        let t = split_tables(text);
        assert_eq!(
            t.keys().map(String::as_str).collect::<Vec<_>>(),
            ["filter", "mangle", "nat"]
        );
        let nat = &t["nat"];
        assert_eq!(
            nat.rules("PREROUTING"),
            ["-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"]
        );
        assert!(nat.has_chain("KUBE-SVC-7EJNTS7AENER2WX5") && !nat.has_chain("KUBE-FORWARD"));
        assert!(t["filter"].has_chain("KUBE-FORWARD"));
        assert!(t["mangle"].rules("PREROUTING").is_empty());
    }

    #[test]
    fn bind_addresses_are_asked_on_loopback() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            loopback_if_unspecified(a("0.0.0.0:10256")),
            a("127.0.0.1:10256")
        );
        assert_eq!(loopback_if_unspecified(a("[::]:10256")), a("[::1]:10256"));
        assert_eq!(
            loopback_if_unspecified(a("10.0.0.1:10249")),
            a("10.0.0.1:10249")
        );
    }
}
