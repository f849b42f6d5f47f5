//! Checks of the kernel against the plan: virtual and real servers, local addresses, NodePort
//! addresses, ipset members and the iptables rules that use them, load spread.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use nodenet::iptables::save::{SavedTable, normalize};
use nodenet::iptables::{KubeSet, RuleSet, render};

use super::super::inputs::{KernelRs, Rules};
use super::super::report::{Check, Verdict};
use super::super::subject::{Subject, parse_owner};
use super::{Ctx, count, join, metric};
use crate::kernel::convert;
use crate::model::Service;
use crate::types::{Family, Forward, Scheduler, VsFlags, VsKey, VsSpec};

/// A virtual server's spread is judged from this many connections per real server on.
const MIN_CONNS_PER_RS: u64 = 10;

/// Why the kernel may differ from the plan, from what the agent says, and what to do.
fn drift(ctx: &Ctx<'_>, sub: &Subject) -> (String, String) {
    let agent = &ctx.inputs.agent;
    let pending = agent
        .metrics
        .as_ref()
        .and_then(|m| m.as_ref().ok())
        .map_or(0.0, |m| {
            metric(m, "kubeproxy_sync_proxy_rules_service_changes_pending").unwrap_or(0.0)
                + metric(m, "kubeproxy_sync_proxy_rules_endpoint_changes_pending").unwrap_or(0.0)
        });
    let refused = agent
        .failures
        .as_ref()
        .is_ok_and(|f| f.of(&sub.targets()).next().is_some());
    let down = matches!(agent.healthz, Some(Err(_)));
    let period = ctx.inputs.settings.sync_period.as_secs();
    let why = if down {
        "the agent does not answer on this node, so nothing keeps the kernel in step (see agent)"
            .to_string()
    } else if refused {
        "the kernel refused some of the agent's ops for this Service (see agent)".to_string()
    } else if pending > 0.0 {
        format!("the agent has {pending} changes queued that it has not synced yet")
    } else {
        "the kernel is not what the agent programmed: another tool changed it (ipvsadm, a \
         second proxy, a reloaded module), or the agent's view of the cluster is behind"
            .to_string()
    };
    let fix = format!(
        "the agent's full repair (every syncPeriod, {period}s) restores the plan; if the \
         difference stays, look for another tool changing IPVS, routes or ipsets, and at the \
         agent's log"
    );
    (why, fix)
}

fn spec_text(s: &VsSpec) -> String {
    let mut t = s.scheduler.to_string();
    if let Some(f) = s.flags.sched_flag_names(s.scheduler) {
        t.push_str(&format!(" ({f})"));
    }
    if s.flags.has(VsFlags::PERSISTENT) {
        t.push_str(&format!(" persistent {}s", s.timeout));
    }
    t
}

/// Whether a kernel virtual server the plan does not have belongs to this Service: on one of its
/// ClusterIPs, a NodePort of it on a node address, or published as its own by the agent.
fn ours(ctx: &Ctx<'_>, sub: &Subject, svc: &Service, key: &VsKey) -> bool {
    let VsKey::Service { addr, port, .. } = *key else {
        return false;
    };
    let published = ctx.inputs.agent.owners.as_ref().is_ok_and(|o| {
        o.get(key)
            .and_then(parse_owner)
            .is_some_and(|(k, _)| k == sub.key)
    });
    published
        || svc.cluster_ips.contains(&addr)
        || (sub.config().node_addresses.contains(&addr)
            && svc.ports.iter().any(|p| p.node_port == Some(port)))
}

/// The virtual servers this node should have vs the ones the kernel has.
pub fn ipvs(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "ipvs";
    let (sub, svc, k) = match ctx.programmed_in_kernel(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let mut draining = Vec::new();
    let mut planned = 0;
    for d in sub.virtual_servers() {
        planned += 1;
        let Some(kv) = k.vs.get(&d.key) else {
            problems.push(format!(
                "missing virtual server {} ({} -> {})",
                d.key,
                spec_text(&d.spec),
                count(d.reals.len(), "real server")
            ));
            continue;
        };
        match &kv.spec {
            None => problems.push(format!(
                "{}: scheduler {} (unknown to kube-ipvs), {} wanted",
                d.key,
                kv.scheduler,
                spec_text(&d.spec)
            )),
            Some(s) if !d.spec.matches(s) => problems.push(format!(
                "{}: {} in the kernel, {} wanted",
                d.key,
                spec_text(s),
                spec_text(&d.spec)
            )),
            Some(_) => {}
        }
        for r in d.reals.iter() {
            match kv.reals.iter().find(|kr| kr.key == r.key) {
                None => problems.push(format!("{} -> {}: real server missing", d.key, r.key)),
                Some(kr) if kr.weight == 0 && r.weight > 0 => problems.push(format!(
                    "{} -> {}: weight 0 (draining), but it is a ready endpoint",
                    d.key, r.key
                )),
                Some(kr) if kr.weight != r.weight => problems.push(format!(
                    "{} -> {}: weight {}, {} wanted",
                    d.key, r.key, kr.weight, r.weight
                )),
                Some(kr) if kr.forward != Forward::Masq => problems.push(format!(
                    "{} -> {}: forwarding {}, Masq wanted",
                    d.key,
                    r.key,
                    kr.forward.name()
                )),
                Some(_) => {}
            }
        }
        for kr in kv.reals.iter() {
            if d.reals.iter().any(|r| r.key == kr.key) {
                continue;
            }
            if kr.weight == 0 {
                draining.push(format!(
                    "{} -> {}: draining (weight 0, {} active, {} inactive connections)",
                    d.key, kr.key, kr.active, kr.inactive
                ));
            } else {
                problems.push(format!(
                    "{} -> {}: not an endpoint, but weight {}",
                    d.key, kr.key, kr.weight
                ));
            }
        }
        details.push(format!(
            "{} {} -> {}",
            d.key,
            kv.spec.as_ref().map_or(kv.scheduler.clone(), spec_text),
            count(kv.reals.len(), "real server")
        ));
    }
    for key in k.vs.keys() {
        if sub.desired().virtual_server(key).is_none() && ours(ctx, sub, svc, key) {
            problems.push(format!(
                "extra virtual server {key}: the Service has no such port on this node"
            ));
        }
    }
    if problems.is_empty() {
        return Check::pass(
            ID,
            format!("{} as planned", count(planned, "virtual server")),
        )
        .details(details.into_iter().chain(draining));
    }
    let (why, fix) = drift(ctx, sub);
    Check::fail(
        ID,
        format!("{} from the plan", count(problems.len(), "difference")),
    )
    .details(problems.into_iter().chain(draining))
    .because(why)
    .fix(fix)
}

/// ClusterIP local route or address present; external and load-balancer IPs bound.
pub fn address(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "address";
    let (sub, svc, k) = match ctx.programmed_in_kernel(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let d = sub.desired();
    let device = &ctx.inputs.settings.dummy_device;
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    let families = &sub.config().families;
    let ips = svc
        .cluster_ips
        .iter()
        .map(|ip| ("ClusterIP", ip))
        .chain(svc.external_ips.iter().map(|ip| ("external IP", ip)))
        .chain(svc.lb_ips.iter().map(|ip| ("load-balancer IP", ip)))
        .filter(|(_, ip)| families.contains(&Family::of(ip)));
    for (what, ip) in ips {
        if let Some(route) = d.routes().iter().find(|r| r.contains(ip)) {
            if k.routes.iter().any(|r| r.contains(ip)) {
                ok.push(format!(
                    "{what} {ip}: local through the route {route} (on lo)"
                ));
            } else {
                problems.push(format!(
                    "{what} {ip}: the local route {route} is missing from table local"
                ));
            }
        } else if d.is_bound(ip) {
            match &k.dummy {
                None => problems.push(format!("{what} {ip}: the device {device} does not exist")),
                Some(a) if a.contains(ip) => ok.push(format!("{what} {ip}: on {device}")),
                Some(_) => problems.push(format!("{what} {ip}: not on {device}")),
            }
        } else {
            ok.push(format!("{what} {ip}: a node address"));
        }
    }
    if problems.is_empty() {
        return Check::pass(ID, "the Service's addresses are local to this node").details(ok);
    }
    let (why, fix) = drift(ctx, sub);
    Check::fail(
        ID,
        format!("{} not local", count(problems.len(), "address")),
    )
    .details(problems.into_iter().chain(ok))
    .because(format!(
        "packets to an address that is not local are routed away instead of reaching IPVS; {why}"
    ))
    .fix(format!(
        "{fix} (ip route show table local proto static; ip addr show {device})"
    ))
}

/// The NodePort addresses this node serves (`nodePortAddresses` vs the node's addresses).
pub fn nodeports(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "nodeports";
    let (sub, svc) = match ctx.programmed(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let ports: Vec<String> = svc
        .ports
        .iter()
        .filter_map(|p| p.node_port.map(|np| format!("{np}/{}", p.proto)))
        .collect();
    if ports.is_empty() {
        return Check::skip(ID, "no NodePort");
    }
    let cfg = sub.config();
    let served: Vec<IpAddr> = sub
        .desired()
        .node_port_ips()
        .iter()
        .copied()
        .filter(|ip| svc.cluster_ip(Family::of(ip)).is_some())
        .collect();
    let setting = &ctx.inputs.settings.node_port_addresses;
    let node = join(&cfg.node_addresses);
    let details = vec![
        format!("nodePortAddresses: {setting}"),
        format!(
            "node addresses: {}",
            if node.is_empty() { "none".into() } else { node }
        ),
    ];
    if served.is_empty() {
        let why = if cfg.node_addresses.is_empty() {
            "the kernel lists no usable address on this node".to_string()
        } else {
            format!(
                "nodePortAddresses ({setting}) matches none of this node's addresses of the \
                 Service's families"
            )
        };
        return Check::fail(
            ID,
            format!(
                "NodePort {} is served on no address of this node",
                join(&ports)
            ),
        )
        .details(details)
        .because(why)
        .fix(
            "set nodePortAddresses in the kube-proxy configuration to CIDRs that contain this \
             node's addresses (or leave it empty for all of them), then restart the agent",
        );
    }
    Check::pass(
        ID,
        format!("NodePort {} on {}", join(&ports), join(&served)),
    )
    .details(details)
}

/// The set names a rule matches (`--match-set NAME`) and the user chains it jumps to.
fn rule_refs(rule: &str) -> (Vec<String>, Option<String>) {
    let t = normalize(rule);
    let mut sets = Vec::new();
    let mut jump = None;
    for w in t.windows(2) {
        if let [a, b] = w {
            match a.as_str() {
                "--match-set" => sets.push(b.clone()),
                "-j" | "-g" | "--jump" | "--goto" => jump = Some(b.clone()),
                _ => {}
            }
        }
    }
    (sets, jump)
}

/// A chain of a table: `nat KUBE-SERVICES`.
type Place = (&'static str, String);

/// For each set matched by a rule of a chain reachable from a built-in chain: where, and from
/// which built-in chains.
fn matched_sets(rules: &Rules) -> BTreeMap<String, BTreeMap<Place, BTreeSet<&'static str>>> {
    const BUILTIN: [(&str, &[&str]); 2] = [
        ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
        ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ];
    let mut out: BTreeMap<String, BTreeMap<Place, BTreeSet<&'static str>>> = BTreeMap::new();
    for (table, builtins) in BUILTIN {
        let saved: &SavedTable = if table == "nat" {
            &rules.nat
        } else {
            &rules.filter
        };
        for from in builtins {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.to_string()];
            while let Some(chain) = todo.pop() {
                if !seen.insert(chain.clone()) {
                    continue;
                }
                for r in saved.rules(&chain) {
                    let (sets, jump) = rule_refs(r);
                    for s in sets {
                        out.entry(s)
                            .or_default()
                            .entry((table, chain.clone()))
                            .or_default()
                            .insert(from);
                    }
                    if let Some(j) = jump.filter(|j| saved.has_chain(j)) {
                        todo.push(j);
                    }
                }
            }
        }
    }
    out
}

/// Where kube-ipvs's own rules match each of these sets (its renderer, with these sets
/// non-empty): the chains whose rules the Service relies on.
fn expected_places(family: Family, sets: &BTreeSet<KubeSet>) -> BTreeMap<String, BTreeSet<Place>> {
    let mut desc = RuleSet::new(family.into());
    desc.nonempty_sets = sets.clone();
    let (nat, filter) = render::render(&desc);
    let mut out: BTreeMap<String, BTreeSet<Place>> = BTreeMap::new();
    for (table, rules) in [("nat", nat), ("filter", filter)] {
        for (chain, bodies) in &rules.chains {
            for b in bodies {
                for set in rule_refs(b).0 {
                    out.entry(set)
                        .or_default()
                        .insert((table, (*chain).to_string()));
                }
            }
        }
    }
    out
}

/// ipset membership of the Service's entries, and the iptables rules that use those sets.
pub fn ipset(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "ipset";
    let (sub, _, k) = match ctx.programmed_in_kernel(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let mut details = Vec::new();
    let mut by_family: BTreeMap<Family, BTreeMap<String, usize>> = BTreeMap::new();
    for (set, members) in sub.desired().ipsets() {
        for e in members {
            match k.ipset.get(&(*set, *e)) {
                Some(Ok(true)) => {
                    *by_family
                        .entry(set.family)
                        .or_default()
                        .entry(set.to_string())
                        .or_default() += 1;
                }
                Some(Ok(false)) => problems.push(format!("{set} lacks {e}")),
                Some(Err(err)) => unknown.push(format!("{set} {e}: {err}")),
                None => unknown.push(format!("{set} {e}: not read")),
            }
        }
    }
    for (family, sets) in &by_family {
        let rules = match k.iptables.get(family) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                unknown.push(format!("{family} iptables rules: {e}"));
                continue;
            }
            None => {
                unknown.push(format!("{family} iptables rules: not read"));
                continue;
            }
        };
        let matched = matched_sets(rules);
        let kinds: BTreeSet<KubeSet> = sub
            .desired()
            .ipsets()
            .filter(|(s, _)| s.family == *family)
            .map(|(s, _)| convert::kube_set(s.kind))
            .collect();
        let expected = expected_places(*family, &kinds);
        for (set, n) in sets {
            let found = matched.get(set);
            let missing: Vec<String> = expected
                .get(set)
                .into_iter()
                .flatten()
                .filter(|p| !found.is_some_and(|f| f.contains_key(*p)))
                .map(|(t, c)| format!("{t} {c}"))
                .collect();
            if missing.is_empty() {
                let at = found.map_or_else(
                    || "not used by the rules".to_string(),
                    |f| {
                        format!(
                            "matched in {}",
                            join(
                                f.iter()
                                    .map(|((t, c), from)| format!("{t} {c} (from {})", join(from)))
                            )
                        )
                    },
                );
                details.push(format!("{set}: {} present; {at}", count(*n, "member")));
            } else {
                problems.push(format!(
                    "{set}: no rule of {} matches it, reached from a built-in chain (a jump to a \
                     KUBE-* chain, or the chain's rules, are missing)",
                    join(&missing)
                ));
            }
        }
    }
    let planned: usize = sub.desired().member_count();
    if !problems.is_empty() {
        let (why, fix) = drift(ctx, sub);
        return Check::fail(
            ID,
            format!("{} in ipsets or iptables", count(problems.len(), "gap")),
        )
        .details(problems.into_iter().chain(unknown).chain(details))
        .because(format!(
            "kube-ipvs's iptables rules match traffic to Services by these sets (masquerade, \
             NodePorts, firewalls); {why}"
        ))
        .fix(format!(
            "{fix} (ipset list NAME; iptables-save -t nat | grep KUBE-)"
        ));
    }
    if !unknown.is_empty() {
        return Check::unknown(ID, "could not read every set or rule", join(&unknown))
            .details(details)
            .fix("run explain as root on the node (ipset and iptables need CAP_NET_ADMIN)");
    }
    Check::pass(
        ID,
        format!(
            "{} in place, each set matched by the rules",
            count(planned, "ipset member")
        ),
    )
    .details(details)
}

/// `1.5 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    let mut frac = 0;
    while v >= 1024 && unit + 1 < UNITS.len() {
        frac = (v % 1024) * 10 / 1024;
        v /= 1024;
        unit += 1;
    }
    let u = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{v} {u}")
    } else {
        format!("{v}.{frac} {u}")
    }
}

/// Whether connections are spread unevenly: one serving real server has more than twice, or
/// less than half, its share.
fn uneven(reals: &[&KernelRs], total: u64) -> bool {
    let n = reals.len() as u64;
    reals
        .iter()
        .any(|r| r.conns * n > 2 * total || r.conns * 2 * n < total)
}

/// Connection and byte spread across real servers, flagged when uneven.
pub fn spread(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "spread";
    let (sub, svc, k) = match ctx.programmed_in_kernel(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut details = Vec::new();
    let mut judged = 0;
    let mut flagged = Vec::new();
    let mut hashing = BTreeSet::new();
    for key in sub.desired().virtual_servers().keys() {
        let Some(kv) = k.vs.get(key) else { continue };
        let serving: Vec<&KernelRs> = kv.reals.iter().filter(|r| r.weight > 0).collect();
        let total: u64 = serving.iter().map(|r| r.conns).sum();
        if total == 0 {
            continue;
        }
        details.push(format!(
            "{key}: {}",
            join(serving.iter().map(|r| format!(
                "{} {} conns ({}%), {} in, {} out",
                r.key,
                r.conns,
                r.conns * 100 / total,
                bytes(r.bytes_in),
                bytes(r.bytes_out)
            )))
        ));
        if serving.len() < 2 || total < MIN_CONNS_PER_RS * serving.len() as u64 {
            continue;
        }
        judged += 1;
        if uneven(&serving, total) {
            flagged.push(key.to_string());
            if let Some(s) = &kv.spec
                && matches!(
                    s.scheduler,
                    Scheduler::Sh
                        | Scheduler::Mh
                        | Scheduler::Dh
                        | Scheduler::Lblc
                        | Scheduler::Lblcr
                )
            {
                hashing.insert(s.scheduler.to_string());
            }
        }
    }
    if judged == 0 {
        return Check::pass(ID, "too little traffic to judge the spread").details(details);
    }
    if flagged.is_empty() {
        return Check::pass(
            ID,
            format!(
                "connections spread evenly over the real servers of {}",
                count(judged, "virtual server")
            ),
        )
        .details(details);
    }
    let summary = format!("uneven connection spread on {}", join(&flagged));
    let explained = if let Some(t) = svc.affinity_timeout {
        Some(format!(
            "sessionAffinity ClientIP sends each client to the same endpoint for {t}s, so a \
             few busy clients load a few endpoints"
        ))
    } else if !hashing.is_empty() {
        Some(format!(
            "scheduler {} picks the endpoint by hashing the client or destination, not in turn",
            join(&hashing)
        ))
    } else {
        None
    };
    match explained {
        Some(why) => Check::pass(ID, format!("{summary}, as expected"))
            .details(details)
            .because(why),
        None => Check::new(ID, Verdict::Warn, summary)
            .details(details)
            .because(
                "counters start when a real server is added (compare after a while), and \
                 long-lived connections (HTTP/2, gRPC, pooled clients) are balanced once per \
                 connection, not per request",
            )
            .fix(
                "for long-lived connections balance requests in the client or a proxy; \
                 otherwise compare again after a while",
            ),
    }
}
