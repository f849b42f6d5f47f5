//! Checks of the cluster objects: is there a Service, does kube-ipvs take it, are its endpoints
//! ready, do their ports match, do they answer, and which ones this node uses.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::inputs::{ProbeResult, Target};
use super::super::report::{Check, Verdict};
use super::super::subject::{Conversion, Subject, parse_owner};
use super::{Ctx, DROPPED_BY_CONNTRACK, count, join};
use crate::model::{
    Categorized, PortEndpoint, ServicePort, SkipReason, Topology, categorize, pick, port_endpoints,
};
use crate::types::{Family, Proto, RsKey};

/// Endpoints probed at most (the first ones, in address order).
pub const MAX_PROBES: usize = 32;

fn spec(raw: &core::Service) -> core::ServiceSpec {
    raw.spec.clone().unwrap_or_default()
}

/// `app=web,tier=front`, or `None` without a selector.
fn selector(raw: &core::Service) -> Option<String> {
    let sel = spec(raw).selector.filter(|s| !s.is_empty())?;
    Some(join(sel.iter().map(|(k, v)| format!("{k}={v}"))))
}

fn target_port(p: &core::ServicePort) -> String {
    match &p.target_port {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => p.port.to_string(),
    }
}

/// `http 80/TCP -> 8080 (nodePort 30080)`.
fn describe_port(p: &core::ServicePort) -> String {
    let mut s = format!(
        "{}{}/{} -> {}",
        p.name
            .as_deref()
            .map(|n| format!("{n} "))
            .unwrap_or_default(),
        p.port,
        p.protocol.as_deref().unwrap_or("TCP"),
        target_port(p)
    );
    if let Some(np) = p.node_port.filter(|n| *n != 0) {
        s.push_str(&format!(" (nodePort {np})"));
    }
    s
}

fn describe(raw: &core::Service) -> (String, Vec<String>) {
    let s = spec(raw);
    let kind = s.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let ips = s
        .cluster_ips
        .clone()
        .filter(|v| !v.is_empty())
        .or_else(|| s.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default();
    let mut summary = kind;
    if !ips.is_empty() {
        summary.push_str(&format!(" {}", ips.join(",")));
    }
    let ports: Vec<String> = s.ports.iter().flatten().map(describe_port).collect();
    if !ports.is_empty() {
        summary.push_str(&format!(", ports {}", ports.join("; ")));
    }
    let mut details = vec![format!(
        "internalTrafficPolicy {}, externalTrafficPolicy {}, sessionAffinity {}",
        s.internal_traffic_policy.as_deref().unwrap_or("Cluster"),
        s.external_traffic_policy.as_deref().unwrap_or("Cluster"),
        s.session_affinity.as_deref().unwrap_or("None"),
    )];
    if let Some(ext) = s.external_ips.as_ref().filter(|v| !v.is_empty()) {
        details.push(format!("externalIPs {}", ext.join(", ")));
    }
    let ingress: Vec<String> = raw
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    if !ingress.is_empty() {
        details.push(format!("load-balancer ingress {}", ingress.join(", ")));
    }
    if let Some(hc) = s.health_check_node_port.filter(|p| *p != 0) {
        details.push(format!("healthCheckNodePort {hc}"));
    }
    details.push(match selector(raw) {
        Some(sel) => format!("selector {sel}"),
        None => "no selector: its EndpointSlices are managed by hand".into(),
    });
    (summary, details)
}

fn skip_reason(r: SkipReason) -> &'static str {
    match r {
        SkipReason::ExternalName => {
            "DNS answers its name with a CNAME to spec.externalName; no proxy is involved"
        }
        SkipReason::Headless | SkipReason::HeadlessLabel => {
            "DNS answers its name with the Pod IPs; clients connect to the Pods directly"
        }
        SkipReason::ServiceProxyName => {
            "another proxy implements it (label service.kubernetes.io/service-proxy-name), as \
             with stock kube-proxy"
        }
        SkipReason::FqdnSlice | SkipReason::DeprecatedIpSlice => "not a Service",
    }
}

/// Service found, its type and traffic policies.
pub fn service(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "service";
    let inputs = ctx.inputs;
    let cluster = match &inputs.cluster {
        Ok(c) => c,
        Err(e) => {
            return Check::unknown(ID, "could not read the cluster objects", e.clone()).fix(
                "run explain in the agent's pod (in-cluster credentials), give --kubeconfig, or \
                 give a dump with -f FILE (kubectl get svc,endpointslices,nodes -A -o yaml)",
            );
        }
    };
    let Some(sub) = ctx.subject else {
        if let Target::Address { addr, .. } = &inputs.target {
            let mut c = Check::fail(ID, format!("no Service answers {}", inputs.target))
                .because(
                    "no Service has this address and port as its ClusterIP, an external IP, a \
                     load-balancer IP, or as a NodePort on this node's addresses",
                )
                .fix(format!(
                    "check the address and port: kubectl get services -A -o wide | grep {addr}"
                ));
            if let Ok(k) = &inputs.kernel {
                c = c.details(
                    k.vs.iter()
                        .filter(|(key, _)| key.addr() == Some(*addr))
                        .map(|(key, vs)| {
                            format!(
                                "the kernel has virtual server {key} ({}, {}), which kube-ipvs \
                                 did not create: another tool programs it",
                                vs.scheduler,
                                count(vs.reals.len(), "real server")
                            )
                        }),
                );
            }
            return c;
        }
        let ns = match &inputs.target {
            Target::Service { namespace, .. } => namespace.as_str(),
            Target::Address { .. } => "",
        };
        return Check::fail(
            ID,
            format!("Service {} not found in {}", inputs.target, cluster.source),
        )
        .fix(format!(
            "check the namespace and the name: kubectl -n {ns} get services"
        ));
    };
    let (summary, details) = describe(&sub.raw);
    match &sub.conversion {
        Conversion::Skipped(r) => Check::new(ID, Verdict::Warn, format!("{summary}: not proxied"))
            .details(details)
            .because(format!("{r}: {}", skip_reason(*r))),
        _ => Check::pass(ID, summary).details(details),
    }
}

/// Rejected by kube-ipvs (the exact reason and field), rejected slices, contested virtual servers.
pub fn accepted(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "accepted";
    let sub = match (&ctx.inputs.cluster, ctx.subject) {
        (Err(e), _) => {
            return Check::unknown(ID, "needs the cluster objects", e.clone());
        }
        (Ok(_), None) => return Check::skip(ID, "no Service"),
        (Ok(_), Some(s)) => s,
    };
    match &sub.conversion {
        Conversion::Rejected(r) => {
            return Check::fail(ID, format!("rejected: {r}"))
                .because(format!(
                    "kube-ipvs does not program a Service with an invalid field (reason {}); the \
                     last valid version it saw, if any, stays programmed, and the agent reports \
                     it as a Warning Event on the Service",
                    r.reason()
                ))
                .fix(format!(
                    "correct the field: kubectl -n {} edit service {}",
                    sub.key.namespace(),
                    sub.key.name()
                ));
        }
        Conversion::Skipped(_) => return Check::skip(ID, "not proxied (see above)"),
        Conversion::Programmed => {}
    }
    let mut problems: Vec<String> = sub
        .rejected_slices()
        .into_iter()
        .map(|(slice, r)| format!("EndpointSlice {slice} rejected: {r}"))
        .collect();
    let slices_bad = !problems.is_empty();
    let mut conflicts = Vec::new();
    if let Ok(owners) = &ctx.inputs.agent.owners {
        for vs in sub.virtual_servers() {
            let Some(owner) = owners.get(&vs.key) else {
                continue;
            };
            if parse_owner(owner).is_some_and(|(k, _)| k != sub.key) {
                conflicts.push(format!(
                    "virtual server {} is programmed for {owner}",
                    vs.key
                ));
            }
        }
    }
    problems.extend(conflicts.iter().cloned());
    let planned = sub.virtual_servers().count();
    if problems.is_empty() && planned == 0 {
        let families = join(&sub.config().families);
        return Check::fail(ID, "accepted, but nothing to program on this node").because(format!(
            "none of the Service's ClusterIPs is of a family this node programs ({families})"
        ))
        .fix("give the Service a ClusterIP of the node's family (spec.ipFamilies, ipFamilyPolicy)");
    }
    if problems.is_empty() {
        return Check::pass(
            ID,
            format!(
                "accepted: {} planned for this node",
                count(planned, "virtual server")
            ),
        );
    }
    let mut c = Check::fail(
        ID,
        format!("accepted, but {}", count(problems.len(), "problem")),
    )
    .details(problems);
    let mut why = Vec::new();
    let mut fix = Vec::new();
    if slices_bad {
        why.push("a rejected EndpointSlice contributes no endpoint (its last valid version stays)");
        fix.push("correct the named field of the EndpointSlice (written by the EndpointSlice controller from the Pods, or by hand)");
    }
    if !conflicts.is_empty() {
        why.push("two Services claim the same address, port and protocol; the one whose name sorts first keeps it");
        fix.push(
            "give each Service its own address and port (shared externalIPs or load-balancer IPs?)",
        );
    }
    c = c.because(why.join("; ")).fix(fix.join("; "));
    c
}

/// Counts of one slice's endpoints.
#[derive(Default)]
struct SliceCounts {
    total: usize,
    ready: usize,
    serving_terminating: usize,
    local: usize,
}

fn slice_counts(s: &discovery::EndpointSlice, node: &str) -> SliceCounts {
    let mut c = SliceCounts::default();
    for ep in &s.endpoints {
        let cond = ep.conditions.clone().unwrap_or_default();
        c.total += 1;
        if cond.ready.unwrap_or(true) {
            c.ready += 1;
        } else if cond.serving.unwrap_or(true) && cond.terminating.unwrap_or(false) {
            c.serving_terminating += 1;
        }
        if ep.node_name.as_deref() == Some(node) {
            c.local += 1;
        }
    }
    c
}

/// Endpoints ready / serving / terminating, per slice.
pub fn endpoints(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "endpoints";
    let (sub, _) = match ctx.programmed(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let slices = ctx.raw_slices();
    let node = sub.config().node_name.to_string();
    let sel = selector(&sub.raw);
    let (ns, name) = (sub.key.namespace(), sub.key.name());
    let pods = match &sel {
        Some(sel) => format!("kubectl -n {ns} get pods -l {sel} -o wide"),
        None => format!("kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={name}"),
    };
    if slices.is_empty() {
        let why = match &sel {
            Some(sel) => format!(
                "no Pod matches the selector {sel}, or the EndpointSlice controller has not \
                 written a slice yet"
            ),
            None => format!(
                "the Service has no selector, so its EndpointSlices must be created by hand \
                 (label kubernetes.io/service-name={name})"
            ),
        };
        return Check::fail(ID, "no EndpointSlices for this Service")
            .because(why)
            .fix(format!(
                "{pods}; compare the Pods' labels with spec.selector"
            ));
    }
    let mut sum = SliceCounts::default();
    let mut details = Vec::new();
    for s in slices {
        let c = slice_counts(s, &node);
        details.push(format!(
            "EndpointSlice {} ({}): {}: {} ready, {} terminating but serving, {} not ready; {} on this node",
            s.metadata.name.as_deref().unwrap_or("?"),
            s.address_type,
            count(c.total, "endpoint"),
            c.ready,
            c.serving_terminating,
            c.total - c.ready - c.serving_terminating,
            c.local
        ));
        sum.total += c.total;
        sum.ready += c.ready;
        sum.serving_terminating += c.serving_terminating;
        sum.local += c.local;
    }
    let not_ready = sum.total - sum.ready - sum.serving_terminating;
    if sum.total == 0 {
        return Check::fail(ID, "the EndpointSlices list no endpoints")
            .details(details)
            .because(match &sel {
                Some(sel) => format!("no running Pod matches the selector {sel}"),
                None => "the hand-made EndpointSlices list no endpoints".into(),
            })
            .fix(pods);
    }
    if sum.ready + sum.serving_terminating == 0 {
        return Check::fail(
            ID,
            format!("no ready endpoints: {} not ready", sum.total),
        )
        .details(details)
        .because(
            "traffic goes only to ready endpoints (or to terminating ones that still serve); \
             none is",
        )
        .fix(format!(
            "{pods}; `kubectl describe pod` shows why they are not ready (readiness probe, crash \
             loop, still starting)"
        ));
    }
    if sum.ready == 0 {
        return Check::new(
            ID,
            Verdict::Warn,
            format!(
                "only terminating endpoints serve ({})",
                sum.serving_terminating
            ),
        )
        .details(details)
        .because("a rollout or scale-down is under way: no new Pod is ready yet");
    }
    let summary = if not_ready == 0 {
        format!("{}, all ready", count(sum.total, "endpoint"))
    } else {
        format!("{} of {} endpoints ready", sum.ready, sum.total)
    };
    Check::pass(ID, summary).details(details)
}

/// `name`/`PROTO` as a slice port or Service port spells it.
fn port_id(name: Option<&str>, proto: Option<&str>) -> String {
    format!("{:?}/{}", name.unwrap_or(""), proto.unwrap_or("TCP"))
}

/// Endpoints whose port name does not match the Service port; slice ports that are not the
/// Service's numeric targetPort.
pub fn ports(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "ports";
    let (sub, _) = match ctx.programmed(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let slices = ctx.raw_slices();
    let sp = spec(&sub.raw);
    let mut missing = Vec::new();
    let mut named_missing = BTreeSet::new();
    let mut moved = Vec::new();
    for p in sp.ports.iter().flatten() {
        let want = port_id(p.name.as_deref(), p.protocol.as_deref());
        for s in slices.iter().filter(|s| !s.endpoints.is_empty()) {
            let slice_name = s.metadata.name.as_deref().unwrap_or("?");
            let ports = s.ports.as_deref().unwrap_or_default();
            let found = ports
                .iter()
                .find(|q| port_id(q.name.as_deref(), q.protocol.as_deref()) == want);
            match (found, &p.target_port) {
                (None, tp) => {
                    let has = join(ports.iter().map(|q| {
                        format!(
                            "{} {}",
                            port_id(q.name.as_deref(), q.protocol.as_deref()),
                            q.port.map_or("-".into(), |n| n.to_string())
                        )
                    }));
                    missing.push(format!(
                        "EndpointSlice {slice_name} has no port {want} (it has: {})",
                        if has.is_empty() { "none".into() } else { has }
                    ));
                    if let Some(IntOrString::String(n)) = tp {
                        named_missing.insert(n.clone());
                    }
                }
                (Some(q), Some(IntOrString::Int(tp))) if q.port.is_some_and(|n| n != *tp) => {
                    moved.push(format!(
                        "EndpointSlice {slice_name}: port {want} is {}, the Service's targetPort is {tp}",
                        q.port.unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
    }
    let described = join(sp.ports.iter().flatten().map(describe_port));
    if !missing.is_empty() {
        let fix = if named_missing.is_empty() {
            "EndpointSlices made by hand must name their ports exactly like the Service's ports \
             (name and protocol)"
                .to_string()
        } else {
            format!(
                "the Pods declare no container port named {}: name the container port so, or \
                 set the Service's targetPort to the port number",
                join(named_missing.iter().map(|n| format!("{n:?}")))
            )
        };
        return Check::fail(
            ID,
            format!(
                "{} without the Service's port",
                count(missing.len(), "slice port")
            ),
        )
        .details(missing.into_iter().chain(moved))
        .because(
            "a Service port and an EndpointSlice port are joined by name and protocol; the \
             endpoints of a slice without the port get no traffic on it",
        )
        .fix(fix);
    }
    if !moved.is_empty() {
        return Check::new(ID, Verdict::Warn, "slice ports differ from the targetPort")
            .details(moved)
            .because(
                "the EndpointSlice controller writes the targetPort into the slices: a \
                 different number means the Service changed and the slices have not caught up \
                 yet, or the slices are managed by hand",
            )
            .fix("if it persists, correct the slices (or the targetPort)");
    }
    Check::pass(
        ID,
        format!("every EndpointSlice carries the Service's ports: {described}"),
    )
}

/// The Service's TCP endpoints a probe connects to: ready (or serving) endpoints of each TCP
/// port and programmed family, sorted, at most [`MAX_PROBES`].
pub fn probe_targets(sub: &Subject) -> Vec<RsKey> {
    let Some(svc) = sub.service() else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    for family in sub.config().families.iter().copied() {
        for port in svc.ports.iter().filter(|p| p.proto == Proto::Tcp) {
            for e in port_endpoints(sub.slices(), port, family) {
                if e.ep.ready || e.ep.serving {
                    out.insert(e.key);
                }
            }
        }
    }
    out.into_iter().take(MAX_PROBES).collect()
}

/// Do the endpoints accept connections on their target port (a TCP connect from this node)?
pub fn reachable(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "reachable";
    let (sub, svc) = match ctx.programmed(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let Some(probes) = &ctx.inputs.probes else {
        return Check::skip(ID, "endpoints not probed (--no-probe)");
    };
    let mut details = Vec::new();
    let other: Vec<String> = svc
        .ports
        .iter()
        .filter(|p| p.proto != Proto::Tcp)
        .map(|p| format!("{}/{}", p.port, p.proto))
        .collect();
    if !other.is_empty() {
        details.push(format!(
            "not probed: {} (no reply is owed to an empty datagram)",
            join(other)
        ));
    }
    if probes.is_empty() {
        return Check::skip(ID, "no TCP endpoint to probe").details(details);
    }
    let bad: Vec<&super::super::inputs::Probe> = probes
        .iter()
        .filter(|p| p.result != ProbeResult::Open)
        .collect();
    for p in probes {
        details.push(format!(
            "{}: {}",
            p.endpoint,
            match &p.result {
                ProbeResult::Open => "accepts connections".to_string(),
                ProbeResult::Refused => "refused (nothing listens)".to_string(),
                ProbeResult::Timeout => "no answer".to_string(),
                ProbeResult::Error(e) => e.clone(),
            }
        ));
    }
    if bad.is_empty() {
        let who = if probes.len() == 1 {
            "the endpoint accepts".to_string()
        } else {
            format!("all {} endpoints accept", probes.len())
        };
        return Check::pass(ID, format!("{who} TCP connections on their target port"))
            .details(details);
    }
    let refused: BTreeSet<u16> = bad
        .iter()
        .filter(|p| p.result == ProbeResult::Refused)
        .map(|p| p.endpoint.port)
        .collect();
    let silent = bad.iter().any(|p| p.result != ProbeResult::Refused);
    let mut why = Vec::new();
    let mut fix = Vec::new();
    if !refused.is_empty() {
        let tps = join(
            spec(&sub.raw)
                .ports
                .iter()
                .flatten()
                .map(|p| format!("{} -> {}", p.port, target_port(p))),
        );
        why.push(format!(
            "nothing listens on port {} of the refusing Pods: the Service's targetPort ({tps}) \
             is not the port the container listens on, or the process is not up",
            join(&refused)
        ));
        fix.push(format!(
            "compare spec.ports[].targetPort with the port the container listens on \
             (kubectl -n {} get pods -o wide, then the container's ports or its own \
             configuration) and correct the targetPort",
            sub.key.namespace()
        ));
    }
    if silent && ctx.conntrack_full() {
        why.push(DROPPED_BY_CONNTRACK.to_string());
        fix.push("see conntrack".to_string());
    } else if silent {
        why.push(
            "an endpoint that does not answer is unreachable from this node (Pod network, \
             NetworkPolicy, firewall) or overloaded"
                .to_string(),
        );
        fix.push(
            "check the Pod network from this node (ping the Pod IP; NetworkPolicies that deny \
             the node)"
                .to_string(),
        );
    }
    Check::fail(
        ID,
        format!(
            "{} of {} endpoints do not accept connections",
            bad.len(),
            probes.len()
        ),
    )
    .details(details)
    .because(why.join("; "))
    .fix(fix.join("; "))
}

/// Why a policy chose what it chose, and the verdict it deserves.
fn why_chosen(
    cat: &Categorized,
    eps: &[PortEndpoint<'_>],
    local_policy: bool,
    strict: bool,
    zone: Option<&str>,
) -> (Verdict, String) {
    let chosen = pick(cat, local_policy, strict);
    let ready = eps.iter().filter(|e| e.ep.ready).count();
    if !cat.has_any {
        return (Verdict::Fail, "no usable endpoint".into());
    }
    if local_policy {
        if !cat.local.is_empty() {
            return (Verdict::Pass, format!("{} on this node", cat.local.len()));
        }
        if chosen.is_empty() {
            let why = if strict {
                "none on this node: traffic is dropped (strictLocal)"
            } else {
                "none on this node, and no cluster endpoint to fall back to: traffic is dropped"
            };
            return (Verdict::Fail, why.into());
        }
        return (
            Verdict::Warn,
            format!(
                "none on this node: falls back to {} cluster endpoints (stock IPVS behaviour; \
                 --strict-local drops instead)",
                chosen.len()
            ),
        );
    }
    if chosen.is_empty() {
        return (Verdict::Fail, "no usable endpoint".into());
    }
    let terminating = chosen.iter().all(|k| {
        eps.iter()
            .any(|e| e.key == *k && !e.ep.ready && e.ep.terminating)
    });
    if terminating {
        return (
            Verdict::Pass,
            format!(
                "{}: no ready endpoint, the terminating ones still serving",
                chosen.len()
            ),
        );
    }
    if chosen.len() < ready {
        let hinted = match zone {
            Some(z) => format!("topology hints: the {} hinted for zone {z}", chosen.len()),
            None => format!("topology hints: the {} hinted for this node", chosen.len()),
        };
        return (Verdict::Pass, format!("{hinted} (of {ready} ready)"));
    }
    (
        Verdict::Pass,
        format!("{}, every ready endpoint", chosen.len()),
    )
}

fn port_label(p: &ServicePort, family: Family) -> String {
    let name = if p.name.is_empty() {
        String::new()
    } else {
        format!("{} ", p.name)
    };
    format!("{name}{}/{} {family}", p.port, p.proto)
}

/// Which endpoints this node uses for each traffic policy, and why.
pub fn selection(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "selection";
    let (sub, svc) = match ctx.programmed(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let cfg = sub.config();
    let zone = sub.index().node().zone.clone();
    let topo = Topology {
        zone: zone.as_deref(),
        node_hints: cfg.topology_node_hints,
    };
    let mut worst = Verdict::Pass;
    let mut lines = Vec::new();
    let mut reasons = Vec::new();
    let mut none_usable = false;
    let policy = |local: bool| if local { "Local" } else { "Cluster" };
    for family in cfg.families.iter().copied() {
        if svc.cluster_ip(family).is_none() {
            continue;
        }
        for port in svc.ports.iter() {
            let eps = port_endpoints(sub.slices(), port, family);
            let cat = categorize(svc, &eps, topo);
            none_usable |= !cat.has_any;
            let mut line = port_label(port, family) + ":";
            let mut sep = " ";
            for (what, name, local) in [
                ("ClusterIP", "internalTrafficPolicy", svc.internal_local),
                ("external", "externalTrafficPolicy", svc.external_local),
            ] {
                if what == "external" && !svc.externally_accessible() {
                    continue;
                }
                let (v, why) = why_chosen(&cat, &eps, local, cfg.strict_local, topo.zone);
                worst = worst.max(v);
                line.push_str(&format!("{sep}{what} ({}) -> {why}", policy(local)));
                sep = "; ";
                if v != Verdict::Pass && local && cat.has_any {
                    reasons.push(format!("{name} Local"));
                }
            }
            lines.push(line);
        }
    }
    let summary = match worst {
        Verdict::Pass => "endpoints chosen for every policy",
        Verdict::Warn => "a Local policy has no endpoint on this node and falls back",
        _ if none_usable => "no endpoint to send traffic to",
        _ => "a traffic policy leaves this node without endpoints",
    };
    let mut c = Check::new(ID, worst, summary).details(lines);
    let (ns, name) = (sub.key.namespace(), sub.key.name());
    if none_usable && worst == Verdict::Fail {
        c = c
            .because("no endpoint is ready or serving (see endpoints)")
            .fix("make the Pods ready (see endpoints)");
    } else if worst != Verdict::Pass {
        reasons.sort();
        reasons.dedup();
        c = c
            .because(format!(
                "{}: only endpoints on this node are used for it",
                join(reasons)
            ))
            .fix(format!(
                "run a Pod of the Service on this node, or set the policy to Cluster \
                 (kubectl -n {ns} edit service {name})"
            ));
    }
    c
}
