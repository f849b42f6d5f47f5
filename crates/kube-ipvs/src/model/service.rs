//! A Service reduced to the values the proxier uses, validated.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;

use super::reject::{Rejection, SkipReason};
use super::validate::{NameRule, check_name, usable_ip};
use crate::types::{Family, Proto, Scheduler, ServiceName, VsFlags};

/// Annotation overriding the scheduler of one Service.
pub const SCHEDULER_ANNOTATION: &str = "kube-ipvs.io/scheduler";
/// Annotation with comma-separated scheduler flags (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`).
pub const SCHEDULER_FLAGS_ANNOTATION: &str = "kube-ipvs.io/scheduler-flags";
const LABEL_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Stock default of `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
const MAX_AFFINITY_TIMEOUT: i32 = 86400;

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port name (empty when unnamed).
    pub name: Arc<str>,
    /// Protocol.
    pub proto: Proto,
    /// The virtual port.
    pub port: u16,
    /// The NodePort, if allocated.
    pub node_port: Option<u16>,
}

/// Per-Service scheduler override from annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerOverride {
    /// `kube-ipvs.io/scheduler`, if set.
    pub scheduler: Option<Scheduler>,
    /// Flags from `kube-ipvs.io/scheduler-flags`, with the scheduler they are valid for.
    pub flags: Option<(Scheduler, VsFlags)>,
}

/// A validated Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `namespace/name`.
    pub key: ServiceName,
    /// ClusterIPs, at most one per family (the first of each, as stock).
    pub cluster_ips: Box<[IpAddr]>,
    /// spec.externalIPs.
    pub external_ips: Box<[IpAddr]>,
    /// status.loadBalancer.ingress IPs, without `ipMode: Proxy` ones.
    pub lb_ips: Box<[IpAddr]>,
    /// spec.loadBalancerSourceRanges.
    pub lb_source_ranges: Box<[IpNet]>,
    /// Ports.
    pub ports: Box<[ServicePort]>,
    /// internalTrafficPolicy: Local.
    pub internal_local: bool,
    /// externalTrafficPolicy: Local on an externally accessible Service.
    pub external_local: bool,
    /// sessionAffinity ClientIP with this timeout.
    pub affinity_timeout: Option<u32>,
    /// healthCheckNodePort (LoadBalancer with externalTrafficPolicy Local).
    pub health_check_node_port: Option<u16>,
    /// Scheduler annotations.
    pub scheduler: SchedulerOverride,
}

impl Service {
    /// The ClusterIP of a family.
    pub fn cluster_ip(&self, family: Family) -> Option<IpAddr> {
        self.cluster_ips
            .iter()
            .copied()
            .find(|ip| Family::of(ip) == family)
    }

    /// Whether the Service uses its cluster-wide endpoint list anywhere (pkg/proxy
    /// `UsesClusterEndpoints`): with a Cluster internal policy, or when reachable from outside
    /// at all (even with ETP Local: stock short-circuits traffic from inside the cluster). Stock
    /// computes the cluster list only then, which decides whether a Local policy without local
    /// endpoints can fall back.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || self.externally_accessible()
    }

    /// Whether any address outside the cluster reaches it (NodePort, externalIPs, LB).
    pub fn externally_accessible(&self) -> bool {
        !self.external_ips.is_empty()
            || !self.lb_ips.is_empty()
            || self.ports.iter().any(|p| p.node_port.is_some())
    }
}

/// The result of converting a Service.
#[derive(Clone, Debug)]
pub enum Converted {
    /// Programmed.
    Service(Service),
    /// Deliberately ignored.
    Skip(SkipReason),
}

fn field(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A virtual server address: parsed as Kubernetes does, refused when no proxier may use it.
fn parse_ip(field: String, value: &str) -> Result<IpAddr, Rejection> {
    usable_ip(|| field, value)
}

fn parse_port(field: String, value: i32) -> Result<u16, Rejection> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(Rejection::InvalidPort { field, value })
}

fn parse_proto(field: String, value: Option<&str>) -> Result<Proto, Rejection> {
    let value = value.unwrap_or("TCP");
    Proto::from_k8s(value).ok_or_else(|| Rejection::UnsupportedProtocol {
        field,
        value: value.to_owned(),
    })
}

/// Converts a Service; `Err` names the first invalid field.
pub fn convert_service(svc: &core::Service) -> Result<Converted, Rejection> {
    let meta = &svc.metadata;
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Err(Rejection::MissingName);
    };
    // As the API server validates them, so `a/b` + `c` and `a` + `b/c` cannot share a key.
    check_name("metadata.namespace", ns, NameRule::Label)?;
    check_name("metadata.name", name, NameRule::Label)?;
    if let Some(labels) = &meta.labels {
        if labels.contains_key(LABEL_PROXY_NAME) {
            return Ok(Converted::Skip(SkipReason::ServiceProxyName));
        }
        if labels.contains_key(LABEL_HEADLESS) {
            return Ok(Converted::Skip(SkipReason::HeadlessLabel));
        }
    }
    let default_spec = core::ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    if spec.type_.as_deref() == Some("ExternalName") {
        return Ok(Converted::Skip(SkipReason::ExternalName));
    }
    let raw_ips: Vec<&str> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
        _ => spec.cluster_ip.as_deref().into_iter().collect(),
    };
    if raw_ips
        .first()
        .is_none_or(|ip| ip.is_empty() || *ip == "None")
    {
        return Ok(Converted::Skip(SkipReason::Headless));
    }
    let mut cluster_ips: Vec<IpAddr> = Vec::with_capacity(raw_ips.len());
    for (i, raw) in raw_ips.iter().enumerate() {
        let ip = parse_ip(field("spec.clusterIPs", i), raw)?;
        if !cluster_ips.iter().any(|c| Family::of(c) == Family::of(&ip)) {
            cluster_ips.push(ip);
        }
    }
    let external_ips = spec
        .external_ips
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, ip)| parse_ip(field("spec.externalIPs", i), ip))
        .collect::<Result<Vec<_>, _>>()?;
    let lb_ips = lb_ingress_ips(svc)?;
    let lb_source_ranges = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            c.trim()
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| Rejection::InvalidCidr {
                    field: field("spec.loadBalancerSourceRanges", i),
                    value: c.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ports = convert_ports(spec)?;
    let affinity_timeout = affinity(spec)?;
    let scheduler = scheduler_override(meta.annotations.as_ref())?;
    let mut out = Service {
        key: ServiceName::new(ns, name),
        cluster_ips: cluster_ips.into(),
        external_ips: external_ips.into(),
        lb_ips: lb_ips.into(),
        lb_source_ranges: lb_source_ranges.into(),
        ports: ports.into(),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        external_local: false,
        affinity_timeout,
        health_check_node_port: None,
        scheduler,
    };
    let etp_local = spec.external_traffic_policy.as_deref() == Some("Local");
    out.external_local = out.externally_accessible() && etp_local;
    // Stock `NeedsHealthCheck`: by type, not by addresses (an LB with no node ports and no
    // ingress IP yet still serves its healthCheckNodePort).
    if etp_local && spec.type_.as_deref() == Some("LoadBalancer") {
        out.health_check_node_port = match spec.health_check_node_port {
            None | Some(0) => None,
            Some(p) => Some(parse_port("spec.healthCheckNodePort".into(), p)?),
        };
    }
    Ok(Converted::Service(out))
}

fn lb_ingress_ips(svc: &core::Service) -> Result<Vec<IpAddr>, Rejection> {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut ips = Vec::new();
    for (i, ing) in ingress.into_iter().flatten().enumerate() {
        // ipMode Proxy: the load balancer proxies to the NodePort itself; binding its IP here
        // would short-circuit it (KEP-1860).
        if ing.ip_mode.as_deref() == Some("Proxy") {
            continue;
        }
        if let Some(ip) = ing.ip.as_deref().filter(|s| !s.is_empty()) {
            let ip = parse_ip(format!("status.loadBalancer.ingress[{i}].ip"), ip)?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    Ok(ips)
}

fn convert_ports(spec: &core::ServiceSpec) -> Result<Vec<ServicePort>, Rejection> {
    let mut ports: Vec<ServicePort> = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let name: Arc<str> = Arc::from(p.name.as_deref().unwrap_or(""));
        if ports.iter().any(|q| q.name == name) {
            return Err(Rejection::DuplicatePortName {
                value: name.to_string(),
            });
        }
        if !name.is_empty() {
            check_name(&format!("spec.ports[{i}].name"), &name, NameRule::Label)?;
        }
        let port = parse_port(format!("spec.ports[{i}].port"), p.port)?;
        let proto = parse_proto(format!("spec.ports[{i}].protocol"), p.protocol.as_deref())?;
        // The API server refuses a second port with the same number and protocol; merging them
        // would silently drop one port's endpoints.
        if ports.iter().any(|q| q.port == port && q.proto == proto) {
            return Err(Rejection::DuplicatePort {
                field: format!("spec.ports[{i}]"),
                value: format!("{port}/{}", proto.upper()),
            });
        }
        let node_port = match p.node_port {
            None | Some(0) => None,
            Some(np) => Some(parse_port(format!("spec.ports[{i}].nodePort"), np)?),
        };
        ports.push(ServicePort {
            name,
            proto,
            port,
            node_port,
        });
    }
    Ok(ports)
}

fn affinity(spec: &core::ServiceSpec) -> Result<Option<u32>, Rejection> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return Ok(None);
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    match timeout {
        None => Ok(Some(DEFAULT_AFFINITY_TIMEOUT)),
        Some(t) if (1..=MAX_AFFINITY_TIMEOUT).contains(&t) => {
            Ok(Some(u32::try_from(t).unwrap_or(DEFAULT_AFFINITY_TIMEOUT)))
        }
        Some(t) => Err(Rejection::InvalidAffinityTimeout { value: t }),
    }
}

fn scheduler_override(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<SchedulerOverride, Rejection> {
    let get = |k: &str| {
        annotations
            .and_then(|a| a.get(k))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let scheduler = get(SCHEDULER_ANNOTATION)
        .map(|s| {
            Scheduler::parse(s).ok_or_else(|| Rejection::UnknownScheduler {
                value: s.to_owned(),
            })
        })
        .transpose()?;
    let flags = match get(SCHEDULER_FLAGS_ANNOTATION) {
        None => None,
        Some(list) => {
            // Without a scheduler annotation the flags name their scheduler themselves.
            let first = list.split(',').next().unwrap_or("").trim();
            let target = scheduler.unwrap_or(if first.starts_with("mh-") {
                Scheduler::Mh
            } else {
                Scheduler::Sh
            });
            let mut bits = 0;
            for flag in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                bits |= VsFlags::parse_sched_flag(flag, target).ok_or_else(|| {
                    Rejection::InvalidSchedulerFlag {
                        value: flag.to_owned(),
                        scheduler: target.to_string(),
                    }
                })?;
            }
            Some((target, VsFlags(bits)))
        }
    };
    Ok(SchedulerOverride { scheduler, flags })
}
