//! Everything `explain` looks at, gathered once (by [`super::gather`], or built by tests): the
//! cluster objects, the configuration, the kernel's state for the Service, the agent's state,
//! conntrack usage and endpoint probes. Plain data: the checks are pure functions of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;
use nodenet::iptables::save::SavedTable;

use crate::failures::Failures;
use crate::owners::Owners;
use crate::planner_config::PlannerConfig;
use crate::types::{Family, Forward, IpsetEntry, IpsetName, Proto, RsKey, VsKey, VsSpec};

/// A value that was read, or why it could not be.
pub type Gathered<T> = Result<T, String>;

/// What was asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `namespace/name`.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `IP:PORT[/PROTO]`: what answers this address.
    Address {
        /// Address.
        addr: IpAddr,
        /// Port.
        port: u16,
        /// Protocol, when given.
        proto: Option<Proto>,
    },
}

impl FromStr for Target {
    type Err = String;

    /// `namespace/name`, `IP:PORT`, `[IPv6]:PORT`, each address form optionally `/tcp|udp|sctp`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, proto) = match s.rsplit_once('/') {
            Some((a, p)) if Proto::from_k8s(&p.to_ascii_uppercase()).is_some() => {
                (a, Proto::from_k8s(&p.to_ascii_uppercase()))
            }
            _ => (s, None),
        };
        if let Ok(sa) = addr.parse::<SocketAddr>() {
            if sa.port() == 0 {
                return Err(format!("{s:?}: port 0 is not a Service port"));
            }
            return Ok(Target::Address {
                addr: sa.ip(),
                port: sa.port(),
                proto,
            });
        }
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Target::Service {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?}: expected NAMESPACE/NAME, or IP:PORT[/PROTO] ([IPv6]:PORT for IPv6)"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Service { namespace, name } => write!(f, "{namespace}/{name}"),
            Target::Address { addr, port, proto } => {
                let at = RsKey {
                    addr: *addr,
                    port: *port,
                };
                write!(f, "{at}")?;
                match proto {
                    Some(p) => write!(f, "/{}", p.upper()),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The cluster objects of the Service, as the API server (or a dump) has them now.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Where they came from (`the API server`, `dump a.yaml`).
    pub source: String,
    /// The Service (absent: not found).
    pub service: Option<core::Service>,
    /// Its EndpointSlices (label `kubernetes.io/service-name`).
    pub slices: Vec<discovery::EndpointSlice>,
    /// This node's Node.
    pub node: Option<core::Node>,
    /// ServiceCIDRs (their CIDRs are routed local).
    pub service_cidrs: Vec<networking::ServiceCIDR>,
}

/// How an address target was resolved to a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// `namespace/name:port` (port name) that owns the address.
    pub owner: String,
    /// How it was found (`the owners file`, `the Services`).
    pub via: String,
}

/// The configuration the agent runs with, as far as the checks need it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The planner's configuration (node name, node addresses from the kernel, CIDRs, ...).
    pub planner: PlannerConfig,
    /// `syncPeriod`: the full repair interval.
    pub sync_period: Duration,
    /// `minSyncPeriod`.
    pub min_sync_period: Duration,
    /// `nodePortAddresses` as configured (`all`, `primary`, or the CIDRs).
    pub node_port_addresses: String,
    /// The dummy device.
    pub dummy_device: String,
    /// `healthzBindAddress` (where explain asked).
    pub healthz: Option<SocketAddr>,
    /// `metricsBindAddress` (where explain asked).
    pub metrics: Option<SocketAddr>,
    /// `conntrack.maxPerCore`, `conntrack.min` (for the fix of a full table).
    pub conntrack_max_per_core: Option<u32>,
    /// `conntrack.min`.
    pub conntrack_min: u32,
}

/// One real server as the kernel has it, with its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRs {
    /// Address and port.
    pub key: RsKey,
    /// Weight.
    pub weight: u32,
    /// Forwarding method.
    pub forward: Forward,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// Connections scheduled to it since it was added.
    pub conns: u64,
    /// Bytes in (client to server).
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
}

/// One virtual server as the kernel has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVs {
    /// Its properties (`None`: a scheduler kube-ipvs does not know, named in `scheduler`).
    pub spec: Option<VsSpec>,
    /// The scheduler's name as the kernel reports it.
    pub scheduler: String,
    /// Real servers, sorted.
    pub reals: Vec<KernelRs>,
}

/// The saved nat and filter tables of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// `iptables-save -t nat`.
    pub nat: SavedTable,
    /// `iptables-save -t filter`.
    pub filter: SavedTable,
}

/// The kernel's state as far as the Service is concerned.
#[derive(Clone, Debug, Default)]
pub struct KernelView {
    /// The node's addresses (every link but the dummy device).
    pub node_addresses: Vec<IpAddr>,
    /// The dummy device's addresses (`None`: no such device).
    pub dummy: Option<BTreeSet<IpAddr>>,
    /// kube-ipvs's `local` routes (on `lo`, `proto static`).
    pub routes: BTreeSet<IpNet>,
    /// Virtual servers: the Service's (planned or on its ClusterIPs / its NodePorts), and those at
    /// an asked-for address.
    pub vs: BTreeMap<VsKey, KernelVs>,
    /// Whether each planned ipset member is in its set.
    pub ipset: BTreeMap<(IpsetName, IpsetEntry), Gathered<bool>>,
    /// The iptables rules, per family of the Service.
    pub iptables: BTreeMap<Family, Gathered<Rules>>,
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
}

/// What the running agent says about itself.
#[derive(Clone, Debug)]
pub struct AgentView {
    /// `/healthz` (`None`: no healthz address configured).
    pub healthz: Option<Gathered<HttpAnswer>>,
    /// `/metrics`, parsed to `name{labels}` -> value (`None`: no metrics address).
    pub metrics: Option<Gathered<BTreeMap<String, f64>>>,
    /// The owners file.
    pub owners: Gathered<Owners>,
    /// The failures file.
    pub failures: Gathered<Failures>,
    /// The Service's health-check node port answer (`None`: it has none, or not asked).
    pub health_check: Option<Gathered<HttpAnswer>>,
    /// When explain ran.
    pub now: SystemTime,
}

impl Default for AgentView {
    fn default() -> Self {
        Self {
            healthz: None,
            metrics: None,
            owners: Err("not read".into()),
            failures: Err("not read".into()),
            health_check: None,
            now: SystemTime::UNIX_EPOCH,
        }
    }
}

/// Conntrack table usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConntrackView {
    /// `nf_conntrack_count` (this network namespace).
    pub count: u64,
    /// `nf_conntrack_max`.
    pub max: u64,
    /// Entries whose original destination is one of the Service's virtual servers (`None`: not
    /// counted, the table was too large to read).
    pub to_service: Option<Gathered<u64>>,
}

/// The result of one TCP connect to an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The connection was accepted.
    Open,
    /// RST: nothing listens.
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// Another error (unreachable, ...).
    Error(String),
}

/// One endpoint probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The endpoint's address and target port.
    pub endpoint: RsKey,
    /// What happened.
    pub result: ProbeResult,
}

/// Everything the checks read.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// What was asked.
    pub target: Target,
    /// For an address target: the Service it resolved to (`None`: none found).
    pub resolved: Option<Resolved>,
    /// The cluster objects.
    pub cluster: Gathered<Cluster>,
    /// The configuration.
    pub settings: Settings,
    /// The kernel.
    pub kernel: Gathered<KernelView>,
    /// The agent.
    pub agent: AgentView,
    /// Conntrack usage (`Ok(None)`: nf_conntrack is not loaded).
    pub conntrack: Gathered<Option<ConntrackView>>,
    /// TCP probes of the endpoints (`None`: not probed).
    pub probes: Option<Vec<Probe>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_names_or_addresses() {
        let svc = |ns: &str, n: &str| Target::Service {
            namespace: ns.into(),
            name: n.into(),
        };
        assert_eq!("shop/web".parse(), Ok(svc("shop", "web")));
        assert_eq!(
            "10.96.0.1:443".parse(),
            Ok(Target::Address {
                addr: [10, 96, 0, 1].into(),
                port: 443,
                proto: None
            })
        );
        assert_eq!(
            "[fd00::1]:53/udp".parse::<Target>().unwrap().to_string(),
            "[fd00::1]:53/UDP"
        );
        assert_eq!(
            "10.96.0.1:53/UDP".parse::<Target>().unwrap().to_string(),
            "10.96.0.1:53/UDP"
        );
        for bad in ["web", "/web", "a/b/c", "10.96.0.1:0", "10.96.0.1", "a/"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
