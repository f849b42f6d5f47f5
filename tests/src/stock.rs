//! What stock kube-proxy leaves on a node for a cluster, as input for the stock tools
//! (`ip -batch`, `ipvsadm -R`, `ipset restore`, `iptables-restore --noflush`, `sysctl -w`), so a
//! lab test or bench can start kube-ipvs on exactly the state a node running stock has.
//!
//! Written from kubernetes/kubernetes at the 1.33-1.35 era (read with the search tool):
//! - IPVS mode: `pkg/proxy/ipvs/proxier.go` (`syncProxyRules`, `syncService`, `syncEndpoint`,
//!   `writeIptablesRules`, `acceptIPVSTraffic`, `createAndLinkKubeChain`, `iptablesJumpChain`,
//!   `ipsetWithIptablesChain`), `pkg/proxy/ipvs/ipset.go` (set names and comments),
//!   `pkg/proxy/ipvs/ipset/ipset.go` (`createSet`: `hashsize 1024 maxelem 65536`, `range
//!   0-65535`; entries added one by one, in sorted order, so past `maxelem` the rest fail),
//!   `pkg/proxy/ipvs/util` (persistence: timeout, netmask /32).
//! - iptables mode: `pkg/proxy/iptables/proxier.go` (`syncProxyRules`, `iptablesJumpChains`,
//!   `writeServiceToEndpointRules`, `portProtoHash`: sha256 + base32, 16 characters), the canary
//!   chains of `ipt.Monitor`, `route_localnet` for localhost NodePorts.
//!
//! Supported cluster features (what the tests and benches use): ClusterIP, NodePort (TCP/UDP),
//! externalIPs, LoadBalancer ingress IPs without source ranges, ClientIP affinity, internal and
//! external traffic policy Local (IPVS mode falls back to cluster endpoints, iptables mode
//! drops), ready/serving/terminating endpoints, and real servers left draining at weight 0.
//! IPv4 only. Assumed node settings: `nodePortAddresses` empty, `masqueradeBit` 14, no
//! `clusterCIDR` unless given, scheduler `rr`, `iptables` with `--random-fully`, no nfacct
//! counters (the localhost-NodePort nfacct rule is then not written).
#![allow(clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

/// The node stock kube-proxy runs on.
#[derive(Clone, Debug)]
pub struct Node {
    /// `--hostname-override`: endpoints with this `nodeName` are local.
    pub name: String,
    /// Its addresses (all links but `kube-ipvs0` and `lo`): NodePorts listen on them.
    pub addresses: Vec<Ipv4Addr>,
    /// `clusterCIDR` (detect-local mode ClusterCIDR), if configured.
    pub cluster_cidr: Option<String>,
    /// Real servers stock left draining at weight 0 when it stopped (removed endpoints with
    /// connections): `(proto, vip, port, endpoint, endpoint port)`.
    pub draining: Vec<(Proto, Ipv4Addr, u16, Ipv4Addr, u16)>,
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn lower(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    fn ipvsadm(self) -> &'static str {
        match self {
            Self::Tcp => "-t",
            Self::Udp => "-u",
        }
    }
}

#[derive(Clone, Debug)]
struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
    local: bool,
    ready: bool,
    serving: bool,
    terminating: bool,
}

impl Endpoint {
    fn hostport(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// One Service port with what stock derives from it.
#[derive(Clone, Debug)]
struct SvcPort {
    /// `namespace/name:port` (`ServicePortName.String()`).
    name: String,
    proto: Proto,
    port: u16,
    node_port: Option<u16>,
    cluster_ip: Ipv4Addr,
    external_ips: Vec<Ipv4Addr>,
    lb_ips: Vec<Ipv4Addr>,
    affinity: Option<u32>,
    internal_local: bool,
    external_local: bool,
    health_check_node_port: Option<u16>,
    endpoints: Vec<Endpoint>,
}

impl SvcPort {
    fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.lb_ips.is_empty()
    }
}

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.pointer(path)
}

fn ipv4(v: &Value) -> Option<Ipv4Addr> {
    v.as_str()?.parse().ok()
}

fn port(v: Option<&Value>) -> Option<u16> {
    v?.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// Stock's `CategorizeEndpoints` without topology: ready endpoints, or if none is ready, the
/// serving terminating ones.
fn usable(eps: &[Endpoint]) -> Vec<Endpoint> {
    let ready: Vec<Endpoint> = eps.iter().filter(|e| e.ready).cloned().collect();
    if !ready.is_empty() {
        return ready;
    }
    eps.iter()
        .filter(|e| e.serving && e.terminating)
        .cloned()
        .collect()
}

/// The Service ports of a cluster dump (Services and EndpointSlices as JSON objects), with
/// their endpoints, sorted by name. Services stock skips (headless, ExternalName, the
/// `service-proxy-name` label, other families) are left out.
fn service_ports(objects: &[Value], node: &Node) -> Vec<SvcPort> {
    let mut slices: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for o in objects {
        if o.get("kind").and_then(Value::as_str) != Some("EndpointSlice") {
            continue;
        }
        let ns = s(o, "/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(svc) =
            s(o, "/metadata/labels/kubernetes.io~1service-name").and_then(Value::as_str)
        {
            slices
                .entry((ns.to_owned(), svc.to_owned()))
                .or_default()
                .push(o);
        }
    }
    let mut out = Vec::new();
    for o in objects {
        if o.get("kind").and_then(Value::as_str) != Some("Service") {
            continue;
        }
        let ns = s(o, "/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = s(o, "/metadata/name").and_then(Value::as_str).unwrap_or("");
        let labels = s(o, "/metadata/labels");
        if labels.is_some_and(|l| l.get("service.kubernetes.io/service-proxy-name").is_some()) {
            continue;
        }
        let Some(cluster_ip) = s(o, "/spec/clusterIP").and_then(ipv4) else {
            continue;
        };
        let ty = s(o, "/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let external_ips: Vec<Ipv4Addr> = s(o, "/spec/externalIPs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(ipv4).collect())
            .unwrap_or_default();
        let lb_ips: Vec<Ipv4Addr> = s(o, "/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.get("ip").and_then(ipv4))
                    .collect()
            })
            .unwrap_or_default();
        let affinity = (s(o, "/spec/sessionAffinity").and_then(Value::as_str) == Some("ClientIP"))
            .then(|| {
                s(o, "/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
                    .and_then(Value::as_u64)
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(10800)
            });
        let external_local = matches!(ty, "NodePort" | "LoadBalancer")
            && s(o, "/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
        let internal_local =
            s(o, "/spec/internalTrafficPolicy").and_then(Value::as_str) == Some("Local");
        let hc = port(s(o, "/spec/healthCheckNodePort")).filter(|_| external_local);
        let svc_slices = slices
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default();
        for p in s(o, "/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let proto = match p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") {
                "TCP" => Proto::Tcp,
                "UDP" => Proto::Udp,
                _ => continue,
            };
            let Some(svc_port) = port(p.get("port")) else {
                continue;
            };
            let pname = p.get("name").and_then(Value::as_str).unwrap_or("");
            let mut endpoints: Vec<Endpoint> = Vec::new();
            let mut seen = BTreeSet::new();
            for sl in &svc_slices {
                if sl.get("addressType").and_then(Value::as_str) != Some("IPv4") {
                    continue;
                }
                let ep_port = sl
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|sp| sp.get("name").and_then(Value::as_str).unwrap_or("") == pname)
                    .and_then(|sp| port(sp.get("port")));
                let Some(ep_port) = ep_port else { continue };
                for e in sl
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(ip) = s(e, "/addresses/0").and_then(ipv4) else {
                        continue;
                    };
                    if !seen.insert((ip, ep_port)) {
                        continue;
                    }
                    let cond = |k: &str| s(e, &format!("/conditions/{k}")).and_then(Value::as_bool);
                    let ready = cond("ready").unwrap_or(true);
                    endpoints.push(Endpoint {
                        ip,
                        port: ep_port,
                        local: e.get("nodeName").and_then(Value::as_str)
                            == Some(node.name.as_str()),
                        ready,
                        serving: cond("serving").unwrap_or(ready),
                        terminating: cond("terminating").unwrap_or(false),
                    });
                }
            }
            out.push(SvcPort {
                // `ServicePortName.String()`: no colon for an unnamed port.
                name: if pname.is_empty() {
                    format!("{ns}/{name}")
                } else {
                    format!("{ns}/{name}:{pname}")
                },
                proto,
                port: svc_port,
                node_port: port(p.get("nodePort")).filter(|_| ty != "ClusterIP"),
                cluster_ip,
                external_ips: external_ips.clone(),
                lb_ips: lb_ips.clone(),
                affinity,
                internal_local,
                external_local,
                health_check_node_port: hc,
                endpoints,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.proto.cmp(&b.proto)));
    out
}

/// Stock IPVS mode's state, as the stock tools' input.
#[derive(Clone, Debug, Default)]
pub struct IpvsState {
    /// Addresses bound to `kube-ipvs0` (`/32`).
    pub bound: Vec<Ipv4Addr>,
    /// `ipvsadm -R` input.
    pub ipvsadm: String,
    /// `ipset restore` input (sets created, then members).
    pub ipset: String,
    /// `iptables-restore --noflush` input.
    pub iptables: String,
    /// Virtual servers, real servers and set members, for reports.
    pub counts: (usize, usize, usize),
}

/// Stock's set names, types and comments (pkg/proxy/ipvs/ipset.go, `ipsetInfo`).
const SETS: [(&str, &str, &str); 17] = [
    (
        "KUBE-LOOP-BACK",
        "hash:ip,port,ip",
        "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose",
    ),
    (
        "KUBE-CLUSTER-IP",
        "hash:ip,port",
        "Kubernetes service cluster ip + port for masquerade purpose",
    ),
    (
        "KUBE-EXTERNAL-IP",
        "hash:ip,port",
        "Kubernetes service external ip + port for masquerade and filter purpose",
    ),
    (
        "KUBE-EXTERNAL-IP-LOCAL",
        "hash:ip,port",
        "Kubernetes service external ip + port with externalTrafficPolicy=local",
    ),
    (
        "KUBE-LOAD-BALANCER",
        "hash:ip,port",
        "Kubernetes service lb portal",
    ),
    (
        "KUBE-LOAD-BALANCER-FW",
        "hash:ip,port",
        "Kubernetes service load balancer ip + port for load balancer with sourceRange",
    ),
    (
        "KUBE-LOAD-BALANCER-LOCAL",
        "hash:ip,port",
        "Kubernetes service load balancer ip + port with externalTrafficPolicy=local",
    ),
    (
        "KUBE-LOAD-BALANCER-SOURCE-IP",
        "hash:ip,port,ip",
        "Kubernetes service load balancer ip + port + source IP for packet filter purpose",
    ),
    (
        "KUBE-LOAD-BALANCER-SOURCE-CIDR",
        "hash:ip,port,net",
        "Kubernetes service load balancer ip + port + source cidr for packet filter purpose",
    ),
    (
        "KUBE-NODE-PORT-TCP",
        "bitmap:port",
        "Kubernetes nodeport TCP port for masquerade purpose",
    ),
    (
        "KUBE-NODE-PORT-LOCAL-TCP",
        "bitmap:port",
        "Kubernetes nodeport TCP port with externalTrafficPolicy=local",
    ),
    (
        "KUBE-NODE-PORT-UDP",
        "bitmap:port",
        "Kubernetes nodeport UDP port for masquerade purpose",
    ),
    (
        "KUBE-NODE-PORT-LOCAL-UDP",
        "bitmap:port",
        "Kubernetes nodeport UDP port with externalTrafficPolicy=local",
    ),
    (
        "KUBE-NODE-PORT-SCTP-HASH",
        "hash:ip,port",
        "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'",
    ),
    (
        "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
        "hash:ip,port",
        "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'",
    ),
    (
        "KUBE-HEALTH-CHECK-NODE-PORT",
        "bitmap:port",
        "Kubernetes health check node port",
    ),
    ("KUBE-IPVS-IPS", "hash:ip", "Kubernetes service IPs"),
];

/// `maxelem` of stock's hash sets.
pub const STOCK_MAXELEM: usize = 65_536;

fn comment(set: &str) -> String {
    let c = SETS
        .iter()
        .find(|(n, _, _)| *n == set)
        .map_or("", |(_, _, c)| c);
    format!("\"{c}\"")
}

/// The IPVS real servers of one virtual server: the policy's endpoints, falling back to the
/// cluster's when the node has no local one (stock IPVS, kubernetes#97081).
fn reals(p: &SvcPort, local_policy: bool) -> Vec<Endpoint> {
    let cluster = usable(&p.endpoints);
    if !local_policy {
        return cluster;
    }
    let local: Vec<Endpoint> = usable(
        &p.endpoints
            .iter()
            .filter(|e| e.local)
            .cloned()
            .collect::<Vec<_>>(),
    );
    if local.is_empty() { cluster } else { local }
}

/// Protocol, address, port of a virtual server.
type VsKey = (Proto, Ipv4Addr, u16);
/// Persistence timeout and real servers (address, port) with their weights.
type VsEntry = (Option<u32>, BTreeMap<(Ipv4Addr, u16), u8>);

/// Stock IPVS mode's state for a cluster dump on `node`.
pub fn ipvs_mode(objects: &[Value], node: &Node) -> IpvsState {
    let ports = service_ports(objects, node);
    let mut vs: BTreeMap<VsKey, VsEntry> = BTreeMap::new();
    let mut sets: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut bound: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut add_vs = |key, affinity, eps: &[Endpoint]| {
        let e = vs.entry(key).or_insert_with(|| (affinity, BTreeMap::new()));
        for ep in eps {
            e.1.insert((ep.ip, ep.port), 1);
        }
    };
    let node_ips: BTreeSet<Ipv4Addr> = node.addresses.iter().copied().collect();
    for p in &ports {
        let proto = p.proto.lower();
        for ep in p.endpoints.iter().filter(|e| e.local) {
            sets.entry("KUBE-LOOP-BACK")
                .or_default()
                .insert(format!("{},{proto}:{},{}", ep.ip, ep.port, ep.ip));
        }
        let entry = |ip: Ipv4Addr| format!("{ip},{proto}:{}", p.port);
        sets.entry("KUBE-CLUSTER-IP")
            .or_default()
            .insert(entry(p.cluster_ip));
        add_vs(
            (p.proto, p.cluster_ip, p.port),
            p.affinity,
            &reals(p, p.internal_local),
        );
        bound.insert(p.cluster_ip);
        let external = reals(p, p.external_local);
        for ip in &p.external_ips {
            let set = if p.external_local {
                "KUBE-EXTERNAL-IP-LOCAL"
            } else {
                "KUBE-EXTERNAL-IP"
            };
            sets.entry(set).or_default().insert(entry(*ip));
            add_vs((p.proto, *ip, p.port), p.affinity, &external);
            if !node_ips.contains(ip) {
                bound.insert(*ip);
            }
        }
        for ip in &p.lb_ips {
            sets.entry("KUBE-LOAD-BALANCER")
                .or_default()
                .insert(entry(*ip));
            if p.external_local {
                sets.entry("KUBE-LOAD-BALANCER-LOCAL")
                    .or_default()
                    .insert(entry(*ip));
            }
            add_vs((p.proto, *ip, p.port), p.affinity, &external);
            if !node_ips.contains(ip) {
                bound.insert(*ip);
            }
        }
        if let Some(np) = p.node_port {
            let (set, local) = match p.proto {
                Proto::Tcp => ("KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-LOCAL-TCP"),
                Proto::Udp => ("KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP"),
            };
            sets.entry(set).or_default().insert(np.to_string());
            if p.external_local {
                sets.entry(local).or_default().insert(np.to_string());
            }
            for ip in &node.addresses {
                add_vs((p.proto, *ip, np), p.affinity, &external);
            }
        }
        if let Some(hc) = p.health_check_node_port {
            sets.entry("KUBE-HEALTH-CHECK-NODE-PORT")
                .or_default()
                .insert(hc.to_string());
        }
    }
    for (proto, vip, port, ep, ep_port) in &node.draining {
        if let Some(v) = vs.get_mut(&(*proto, *vip, *port)) {
            v.1.entry((*ep, *ep_port)).or_insert(0);
        }
    }
    sets.entry("KUBE-IPVS-IPS")
        .or_default()
        .extend(bound.iter().map(ToString::to_string));

    let mut st = IpvsState {
        bound: bound.iter().copied().collect(),
        ..IpvsState::default()
    };
    for ((proto, vip, port), (affinity, rs)) in &vs {
        let p = proto.ipvsadm();
        let _ = write!(st.ipvsadm, "-A {p} {vip}:{port} -s rr");
        if let Some(t) = affinity {
            let _ = write!(st.ipvsadm, " -p {t}");
        }
        st.ipvsadm.push('\n');
        for ((ep, ep_port), w) in rs {
            let _ = writeln!(
                st.ipvsadm,
                "-a {p} {vip}:{port} -r {ep}:{ep_port} -m -w {w}"
            );
            st.counts.1 += 1;
        }
        st.counts.0 += 1;
    }
    for (name, ty, _) in SETS {
        let _ = match ty {
            "bitmap:port" => writeln!(st.ipset, "create {name} {ty} range 0-65535"),
            _ => writeln!(
                st.ipset,
                "create {name} {ty} family inet hashsize 1024 maxelem {STOCK_MAXELEM}"
            ),
        };
    }
    for (name, members) in &sets {
        // Stock adds the missing members one `ipset add` each in sorted order; past maxelem
        // every further add fails.
        for m in members.iter().take(STOCK_MAXELEM) {
            let _ = writeln!(st.ipset, "add {name} {m}");
            st.counts.2 += 1;
        }
    }
    st.iptables = ipvs_iptables(&sets, node);
    st
}

/// The jumps stock ensures (`iptablesJumpChain`, each prepended, so the last listed ends up
/// first), and its chains (`iptablesChains`).
const IPVS_JUMPS: [(&str, &str, &str, &str); 9] = [
    (
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ),
    (
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ),
    (
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-NODE-PORT",
        "kubernetes health check rules",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-IPVS-FILTER",
        "kubernetes ipvs access filter",
    ),
    (
        "filter",
        "OUTPUT",
        "KUBE-IPVS-OUT-FILTER",
        "kubernetes ipvs access filter",
    ),
];
const IPVS_NAT_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-POSTROUTING",
    "KUBE-NODE-PORT",
    "KUBE-LOAD-BALANCER",
    "KUBE-MARK-MASQ",
];
const IPVS_FILTER_CHAINS: [&str; 6] = [
    "KUBE-FORWARD",
    "KUBE-NODE-PORT",
    "KUBE-PROXY-FIREWALL",
    "KUBE-SOURCE-RANGES-FIREWALL",
    "KUBE-IPVS-FILTER",
    "KUBE-IPVS-OUT-FILTER",
];
const MASQ: &str = "0x004000";

fn ipvs_iptables(sets: &BTreeMap<&str, BTreeSet<String>>, node: &Node) -> String {
    let has = |set: &str| sets.get(set).is_some_and(|m| !m.is_empty());
    let (mut nat, mut filter) = (Vec::<String>::new(), Vec::<String>::new());
    nat.push("-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN".into());
    // ipsetWithIptablesChain, in its order.
    let with_chain: [(&str, bool, &str, &str, &str, &str); 12] = [
        (
            "KUBE-LOOP-BACK",
            true,
            "KUBE-POSTROUTING",
            "MASQUERADE",
            "dst,dst,src",
            "",
        ),
        (
            "KUBE-LOAD-BALANCER",
            true,
            "KUBE-SERVICES",
            "KUBE-LOAD-BALANCER",
            "dst,dst",
            "",
        ),
        (
            "KUBE-LOAD-BALANCER-LOCAL",
            true,
            "KUBE-LOAD-BALANCER",
            "RETURN",
            "dst,dst",
            "",
        ),
        (
            "KUBE-NODE-PORT-LOCAL-TCP",
            true,
            "KUBE-NODE-PORT",
            "RETURN",
            "dst",
            "tcp",
        ),
        (
            "KUBE-NODE-PORT-TCP",
            true,
            "KUBE-NODE-PORT",
            "KUBE-MARK-MASQ",
            "dst",
            "tcp",
        ),
        (
            "KUBE-NODE-PORT-LOCAL-UDP",
            true,
            "KUBE-NODE-PORT",
            "RETURN",
            "dst",
            "udp",
        ),
        (
            "KUBE-NODE-PORT-UDP",
            true,
            "KUBE-NODE-PORT",
            "KUBE-MARK-MASQ",
            "dst",
            "udp",
        ),
        (
            "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
            true,
            "KUBE-NODE-PORT",
            "RETURN",
            "dst,dst",
            "sctp",
        ),
        (
            "KUBE-NODE-PORT-SCTP-HASH",
            true,
            "KUBE-NODE-PORT",
            "KUBE-MARK-MASQ",
            "dst,dst",
            "sctp",
        ),
        (
            "KUBE-LOAD-BALANCER-FW",
            false,
            "KUBE-PROXY-FIREWALL",
            "KUBE-SOURCE-RANGES-FIREWALL",
            "dst,dst",
            "",
        ),
        (
            "KUBE-LOAD-BALANCER-SOURCE-CIDR",
            false,
            "KUBE-SOURCE-RANGES-FIREWALL",
            "RETURN",
            "dst,dst,src",
            "",
        ),
        (
            "KUBE-LOAD-BALANCER-SOURCE-IP",
            false,
            "KUBE-SOURCE-RANGES-FIREWALL",
            "RETURN",
            "dst,dst,src",
            "",
        ),
    ];
    for (set, is_nat, from, to, m, proto) in with_chain {
        if !has(set) {
            continue;
        }
        let p = if proto.is_empty() {
            String::new()
        } else {
            format!(" -p {proto}")
        };
        let rule = format!(
            "-A {from}{p} -m comment --comment {} -m set --match-set {set} {m} -j {to}",
            comment(set)
        );
        if is_nat {
            nat.push(rule)
        } else {
            filter.push(rule)
        }
    }
    if has("KUBE-CLUSTER-IP") {
        let base = format!(
            "-A KUBE-SERVICES -m comment --comment {} -m set --match-set KUBE-CLUSTER-IP",
            comment("KUBE-CLUSTER-IP")
        );
        nat.push(match &node.cluster_cidr {
            Some(c) => format!("{base} dst,dst ! -s {c} -j KUBE-MARK-MASQ"),
            None => format!("{base} src,dst -j KUBE-MARK-MASQ"),
        });
    }
    for (set, masq) in [
        ("KUBE-EXTERNAL-IP", true),
        ("KUBE-EXTERNAL-IP-LOCAL", false),
    ] {
        if !has(set) {
            continue;
        }
        let args = format!(
            "-A KUBE-SERVICES -m comment --comment {} -m set --match-set {set} dst,dst",
            comment(set)
        );
        if masq {
            nat.push(format!("{args} -j KUBE-MARK-MASQ"));
        }
        nat.push(format!(
            "{args} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"
        ));
        nat.push(format!("{args} -m addrtype --dst-type LOCAL -j ACCEPT"));
    }
    nat.push("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT".into());
    nat.push("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ".into());
    filter.push("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP".into());
    for set in ["KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"] {
        if has(set) {
            nat.push(format!(
                "-A KUBE-SERVICES -m set --match-set {set} dst,dst -j ACCEPT"
            ));
        }
    }
    filter.push(format!("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ}/{MASQ} -j ACCEPT"));
    filter.push("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".into());
    filter.push(format!(
        "-A KUBE-NODE-PORT -m comment --comment {} -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT",
        comment("KUBE-HEALTH-CHECK-NODE-PORT")
    ));
    for (set, m) in [
        ("KUBE-LOAD-BALANCER", "dst,dst"),
        ("KUBE-CLUSTER-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP-LOCAL", "dst,dst"),
        ("KUBE-HEALTH-CHECK-NODE-PORT", "dst"),
    ] {
        filter.push(format!(
            "-A KUBE-IPVS-FILTER -m set --match-set {set} {m} -j RETURN"
        ));
    }
    filter.push("-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT".into());
    nat.push(format!(
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ}/{MASQ} -j RETURN"
    ));
    nat.push(format!("-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ}"));
    nat.push("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully".into());
    nat.push(format!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ}"));

    let mut out = String::new();
    for (table, chains, rules) in [
        ("nat", &IPVS_NAT_CHAINS[..], &nat),
        ("filter", &IPVS_FILTER_CHAINS[..], &filter),
    ] {
        let _ = writeln!(out, "*{table}");
        for c in chains {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for r in rules {
            let _ = writeln!(out, "{r}");
        }
        for (t, from, to, c) in IPVS_JUMPS {
            if t == table {
                let _ = writeln!(out, "-I {from} 1 -m comment --comment \"{c}\" -j {to}");
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// The sysctls stock IPVS mode sets (`NewProxier`; `conn_reuse_mode` is left alone from kernel
/// 5.9 on).
pub const IPVS_SYSCTLS: [(&str, &str); 4] = [
    ("net.ipv4.vs.conntrack", "1"),
    ("net.ipv4.vs.expire_nodest_conn", "1"),
    ("net.ipv4.vs.expire_quiescent_template", "1"),
    ("net.ipv4.ip_forward", "1"),
];

/// The sysctls stock iptables mode sets (`route_localnet` for localhost NodePorts, which are on
/// while `nodePortAddresses` is empty).
pub const IPTABLES_SYSCTLS: [(&str, &str); 1] = [("net.ipv4.conf.all.route_localnet", "1")];

/// A shell script that programs `st` with the stock tools, reading its inputs from `dir`
/// (where it writes them first). The dummy device is created down, as stock's netlink call does.
pub fn ipvs_script(st: &IpvsState, dir: &std::path::Path) -> String {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write stock input");
        p.display().to_string()
    };
    let mut addrs = String::new();
    for a in &st.bound {
        let _ = writeln!(addrs, "address add {a}/32 dev kube-ipvs0");
    }
    let addrs = w("stock-addresses.batch", &addrs);
    let ipvs = w("stock-ipvsadm.rules", &st.ipvsadm);
    let sets = w("stock-ipset.rules", &st.ipset);
    let ipt = w("stock-iptables.rules", &st.iptables);
    let sysctls: Vec<String> = IPVS_SYSCTLS
        .iter()
        .map(|(k, v)| format!("sysctl -qw {k}={v}"))
        .collect();
    format!(
        "set -e\nmodprobe ip_vs 2>/dev/null || true\n{}\nip link add kube-ipvs0 type dummy\n\
         ip -batch {addrs}\nipvsadm -R < {ipvs}\nipset restore < {sets}\n\
         iptables-restore -w --noflush < {ipt}\n",
        sysctls.join("\n")
    )
}

/// `portProtoHash`: base32(sha256(servicePortName + protocol))[:16].
fn proto_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut bits: u64 = 0;
    let mut nbits = 0;
    let mut out = String::new();
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    for b in digest.as_ref() {
        bits = (bits << 8) | u64::from(*b);
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            let i = usize::try_from((bits >> nbits) & 31).unwrap_or(0);
            out.push(char::from(ALPHABET.get(i).copied().unwrap_or(b'A')));
            if out.len() == 16 {
                return out;
            }
        }
    }
    out
}

/// `computeProbability`: `%0.10f` of 1/n.
fn probability(n: usize) -> String {
    #[allow(clippy::cast_precision_loss)]
    let p = 1.0 / n as f64;
    format!("{p:.10}")
}

/// Stock iptables mode's rules for a cluster dump on `node` (`iptables-restore --noflush`
/// input, tables filter, nat, mangle), jumps included.
#[allow(clippy::too_many_lines)]
pub fn iptables_mode(objects: &[Value], node: &Node) -> String {
    let ports = service_ports(objects, node);
    let total_eps: usize = ports.iter().map(|p| p.endpoints.len()).sum();
    let large = total_eps > 1000;
    let cmt = |c: &str| {
        if large {
            String::new()
        } else {
            format!(" -m comment --comment {c}")
        }
    };
    let (mut fc, mut fr, mut nc, mut nr) = (
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    );
    for c in [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
    ] {
        fc.push(c.into());
    }
    for c in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ] {
        nc.push(c.into());
    }
    nr.push(format!(
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ}/{MASQ} -j RETURN"
    ));
    nr.push(format!("-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ}"));
    nr.push("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully".into());
    nr.push(format!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ}"));
    // localhostNodePorts (nodePortAddresses empty includes 127.0.0.1).
    fc.push("KUBE-FIREWALL".into());
    fr.push("-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP".into());
    for p in &ports {
        let proto = p.proto.lower();
        let name = &p.name;
        let hash = proto_hash(&format!("{name}{proto}"));
        let (svc, svl, ext) = (
            format!("KUBE-SVC-{hash}"),
            format!("KUBE-SVL-{hash}"),
            format!("KUBE-EXT-{hash}"),
        );
        let cluster = usable(&p.endpoints);
        let local = usable(
            &p.endpoints
                .iter()
                .filter(|e| e.local)
                .cloned()
                .collect::<Vec<_>>(),
        );
        let has_endpoints = !cluster.is_empty();
        // `UsesClusterEndpoints` / `UsesLocalEndpoints`.
        let uses_cluster = has_endpoints
            && (!p.internal_local || (p.externally_accessible() && !p.external_local));
        let uses_local = !local.is_empty()
            && (p.internal_local || (p.externally_accessible() && p.external_local));
        let (internal_chain, has_internal) = if p.internal_local {
            (&svl, has_endpoints && !local.is_empty())
        } else {
            (&svc, has_endpoints)
        };
        let (external_policy, has_external) = if p.external_local {
            (&svl, has_endpoints && !local.is_empty())
        } else {
            (&svc, has_endpoints)
        };
        let (int_target, int_comment, ext_target, ext_comment) = if !has_endpoints {
            let c = format!("\"{name} has no endpoints\"");
            ("REJECT", c.clone(), "REJECT", c)
        } else {
            let c = format!("\"{name} has no local endpoints\"");
            ("DROP", c.clone(), "DROP", c)
        };
        let dport =
            |ip: Ipv4Addr, port: u16| format!("-m {proto} -p {proto} -d {ip} --dport {port}");
        if has_internal {
            nr.push(format!("-A KUBE-SERVICES -m comment --comment \"{name} cluster IP\" {} -j {internal_chain}", dport(p.cluster_ip, p.port)));
        } else {
            fr.push(format!(
                "-A KUBE-SERVICES -m comment --comment {int_comment} {} -j {int_target}",
                dport(p.cluster_ip, p.port)
            ));
        }
        for ip in &p.external_ips {
            if has_endpoints {
                nr.push(format!(
                    "-A KUBE-SERVICES -m comment --comment \"{name} external IP\" {} -j {ext}",
                    dport(*ip, p.port)
                ));
            }
            if !has_external {
                fr.push(format!("-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} {} -j {ext_target}", dport(*ip, p.port)));
            }
        }
        for ip in &p.lb_ips {
            if has_endpoints {
                nr.push(format!(
                    "-A KUBE-SERVICES -m comment --comment \"{name} loadbalancer IP\" {} -j {ext}",
                    dport(*ip, p.port)
                ));
            }
        }
        if !has_external {
            for ip in &p.lb_ips {
                fr.push(format!("-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} {} -j {ext_target}", dport(*ip, p.port)));
            }
        }
        if let Some(np) = p.node_port {
            if has_endpoints {
                nr.push(format!("-A KUBE-NODEPORTS -m comment --comment {name} -m {proto} -p {proto} --dport {np} -j {ext}"));
            }
            if !has_external {
                fr.push(format!("-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {np} -j {ext_target}"));
            }
        }
        if let Some(hc) = p.health_check_node_port {
            fr.push(format!("-A KUBE-NODEPORTS -m comment --comment \"{name} health check node port\" -m tcp -p tcp --dport {hc} -j ACCEPT"));
        }
        if has_internal {
            let args = format!(
                "-m comment --comment \"{name} cluster IP\" {}",
                dport(p.cluster_ip, p.port)
            );
            if let Some(c) = &node.cluster_cidr {
                nr.push(format!(
                    "-A {internal_chain} {args} ! -s {c} -j KUBE-MARK-MASQ"
                ));
            }
        }
        if has_endpoints && p.externally_accessible() {
            nc.push(ext.clone());
            if p.external_local {
                if let Some(c) = &node.cluster_cidr {
                    nr.push(format!("-A {ext} -m comment --comment \"pod traffic for {name} external destinations\" -s {c} -j {svc}"));
                }
                nr.push(format!("-A {ext} -m comment --comment \"masquerade LOCAL traffic for {name} external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"));
                nr.push(format!("-A {ext} -m comment --comment \"route LOCAL traffic for {name} external destinations\" -m addrtype --src-type LOCAL -j {svc}"));
            } else {
                nr.push(format!("-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"));
            }
            if has_external {
                nr.push(format!("-A {ext} -j {external_policy}"));
            }
        }
        let sep = |e: &Endpoint| {
            let h = proto_hash(&format!("{name}{proto}{}", e.hostport()));
            format!("KUBE-SEP-{h}")
        };
        let to_endpoints =
            |chain: &str, eps: &[Endpoint], nc: &mut Vec<String>, nr: &mut Vec<String>| {
                nc.push(chain.to_owned());
                if let Some(t) = p.affinity {
                    for e in eps {
                        nr.push(format!(
                            "-A {chain}{} -m recent --name {} --rcheck --seconds {t} --reap -j {}",
                            cmt(&format!("\"{name} -> {}\"", e.hostport())),
                            sep(e),
                            sep(e)
                        ));
                    }
                }
                for (i, e) in eps.iter().enumerate() {
                    let stat = if i + 1 < eps.len() {
                        format!(
                            " -m statistic --mode random --probability {}",
                            probability(eps.len() - i)
                        )
                    } else {
                        String::new()
                    };
                    nr.push(format!(
                        "-A {chain}{}{stat} -j {}",
                        cmt(&format!("\"{name} -> {}\"", e.hostport())),
                        sep(e)
                    ));
                }
            };
        if uses_cluster {
            to_endpoints(&svc, &cluster, &mut nc, &mut nr);
        }
        if uses_local {
            to_endpoints(&svl, &local, &mut nc, &mut nr);
        }
        let mut reachable: Vec<&Endpoint> = Vec::new();
        if uses_cluster {
            reachable.extend(&cluster);
        }
        if uses_local {
            reachable.extend(
                local
                    .iter()
                    .filter(|l| !cluster.iter().any(|c| c.hostport() == l.hostport())),
            );
        }
        for e in reachable {
            let chain = sep(e);
            nc.push(chain.clone());
            let base = format!("-A {chain}{}", cmt(name));
            nr.push(format!("{base} -s {} -j KUBE-MARK-MASQ", e.ip));
            let recent = p.affinity.map_or(String::new(), |_| {
                format!(" -m recent --name {chain} --set")
            });
            nr.push(format!(
                "{base}{recent} -m {proto} -p {proto} -j DNAT --to-destination {}",
                e.hostport()
            ));
        }
    }
    nr.push("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS".into());
    fr.push("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP".into());
    fr.push(format!("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ}/{MASQ} -j ACCEPT"));
    fr.push("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".into());

    // iptablesJumpChains then the kubelet duplicates, each prepended.
    let jumps: [(&str, &str, &str, &str, &str); 14] = [
        (
            "filter",
            "INPUT",
            "KUBE-EXTERNAL-SERVICES",
            "kubernetes externally-visible service portals",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-EXTERNAL-SERVICES",
            "kubernetes externally-visible service portals",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "INPUT",
            "KUBE-NODEPORTS",
            "kubernetes health check service ports",
            "",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-SERVICES",
            "kubernetes service portals",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-FORWARD",
            "kubernetes forwarding rules",
            "",
        ),
        (
            "filter",
            "INPUT",
            "KUBE-PROXY-FIREWALL",
            "kubernetes load balancer firewall",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "OUTPUT",
            "KUBE-PROXY-FIREWALL",
            "kubernetes load balancer firewall",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-PROXY-FIREWALL",
            "kubernetes load balancer firewall",
            "-m conntrack --ctstate NEW ",
        ),
        (
            "nat",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
            "",
        ),
        (
            "nat",
            "PREROUTING",
            "KUBE-SERVICES",
            "kubernetes service portals",
            "",
        ),
        (
            "nat",
            "POSTROUTING",
            "KUBE-POSTROUTING",
            "kubernetes postrouting rules",
            "",
        ),
        ("filter", "INPUT", "KUBE-FIREWALL", "", ""),
        ("filter", "OUTPUT", "KUBE-FIREWALL", "", ""),
    ];
    let mut out = String::new();
    for (table, chains, rules) in [("filter", &fc, &fr), ("nat", &nc, &nr)] {
        let _ = writeln!(out, "*{table}");
        for c in chains {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        let _ = writeln!(out, ":KUBE-PROXY-CANARY - [0:0]");
        for r in rules {
            let _ = writeln!(out, "{r}");
        }
        for (t, from, to, c, extra) in jumps {
            if t == table {
                let c = if c.is_empty() {
                    String::new()
                } else {
                    format!("-m comment --comment \"{c}\" ")
                };
                let _ = writeln!(out, "-I {from} 1 {extra}{c}-j {to}");
            }
        }
        out.push_str("COMMIT\n");
    }
    out.push_str("*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n");
    out
}

/// A cluster IP or endpoint address as an `IpAddr`.
pub fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Node {
        Node {
            name: "node-a".into(),
            addresses: vec!["10.0.100.254".parse().unwrap()],
            cluster_cidr: None,
            draining: vec![],
        }
    }

    fn cluster() -> Vec<Value> {
        vec![
            json!({"kind": "Service", "metadata": {"namespace": "default", "name": "web"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}}),
            json!({"kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"namespace": "default", "name": "web-1",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.0.1.1"], "conditions": {"ready": true}, "nodeName": "node-b"},
                    {"addresses": ["10.0.2.1"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "node-b"}]}),
            json!({"kind": "Service", "metadata": {"namespace": "default", "name": "empty"},
                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20",
                         "ports": [{"name": "", "port": 53, "protocol": "UDP"}]}}),
        ]
    }

    #[test]
    fn ipvs_mode_matches_stock_for_a_small_cluster() {
        let st = ipvs_mode(&cluster(), &node());
        assert_eq!(
            st.ipvsadm,
            "-A -t 10.0.100.254:30080 -s rr\n-a -t 10.0.100.254:30080 -r 10.0.1.1:8080 -m -w 1\n\
             -A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.0.1.1:8080 -m -w 1\n\
             -A -u 10.96.0.20:53 -s rr\n"
        );
        assert_eq!(
            st.bound,
            [
                "10.96.0.10".parse::<Ipv4Addr>().unwrap(),
                "10.96.0.20".parse().unwrap()
            ]
        );
        for line in [
            "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536",
            "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535",
            "add KUBE-CLUSTER-IP 10.96.0.10,tcp:80",
            "add KUBE-CLUSTER-IP 10.96.0.20,udp:53",
            "add KUBE-NODE-PORT-TCP 30080",
            "add KUBE-IPVS-IPS 10.96.0.10",
        ] {
            assert!(st.ipset.lines().any(|l| l == line), "{line}\n{}", st.ipset);
        }
        for line in [
            "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ",
            "-A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
            "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT",
            "-I INPUT 1 -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER",
        ] {
            assert!(
                st.iptables.lines().any(|l| l == line),
                "{line}\n{}",
                st.iptables
            );
        }
    }

    #[test]
    fn a_full_set_holds_what_stock_could_add() {
        let mut objects = Vec::new();
        for i in 0..(STOCK_MAXELEM / 2 + 10) {
            let ip = Ipv4Addr::from(
                u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + u32::try_from(i).unwrap(),
            );
            objects.push(json!({"kind": "Service", "metadata": {"namespace": "b", "name": format!("s{i}")},
                "spec": {"clusterIP": ip.to_string(), "ports": [
                    {"name": "a", "port": 80, "protocol": "TCP"}, {"name": "b", "port": 443, "protocol": "TCP"}]}}));
        }
        let st = ipvs_mode(&objects, &node());
        let cluster_ip = st
            .ipset
            .lines()
            .filter(|l| l.starts_with("add KUBE-CLUSTER-IP "))
            .count();
        assert_eq!(cluster_ip, STOCK_MAXELEM);
    }

    #[test]
    fn iptables_mode_chain_names_are_stocks() {
        // From kubernetes pkg/proxy/iptables/proxier_test.go's expectations for ns1/svc1:p80 tcp.
        assert_eq!(proto_hash("ns1/svc1:p80tcp"), "XPGD46QRK7WJZT7O");
        let rules = iptables_mode(&cluster(), &node());
        assert!(rules.contains("-A KUBE-SERVICES -m comment --comment \"default/empty has no endpoints\" -m udp -p udp -d 10.96.0.20 --dport 53 -j REJECT"), "{rules}");
        assert!(rules.contains("--to-destination 10.0.1.1:8080"));
        assert!(rules.contains("-I INPUT 1 -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"));
        assert!(
            !rules.contains("10.0.2.1"),
            "a terminating endpoint is unused while one is ready"
        );
    }
}
