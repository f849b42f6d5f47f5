//! Checks of the node and the agent: the health-check node port, conntrack usage, and the
//! agent's health, last sync, queued changes and refused ops.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::super::inputs::HttpAnswer;
use super::super::report::{Check, Verdict};
use super::super::subject::parse_owner;
use super::{Ctx, DROPPED_BY_CONNTRACK, count, join, metric};
use crate::types::VsKey;

/// Conntrack usage from which the table counts as full (the kernel starts dropping at 100%).
const CONNTRACK_FULL_PERCENT: u64 = 90;
/// Conntrack usage worth a warning.
const CONNTRACK_HIGH_PERCENT: u64 = 75;

/// A field of a JSON body (`Null` when the body is not JSON or has no such field).
fn field(body: &str, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// The health-check node port's answer (externalTrafficPolicy Local).
pub fn healthcheck(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "healthcheck";
    let (sub, _) = match ctx.programmed(ID) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let Some(hc) = sub.desired().health_checks().get(&sub.key) else {
        return Check::skip(
            ID,
            "no healthCheckNodePort (only LoadBalancer Services with externalTrafficPolicy Local)",
        );
    };
    let port = hc.port;
    let answer = match &ctx.inputs.agent.health_check {
        None => return Check::skip(ID, format!("health-check node port {port} not asked")),
        Some(Err(e)) => {
            return Check::fail(
                ID,
                format!("nothing answers on health-check node port {port}"),
            )
            .because(format!(
                "{e}: the agent serves it on the NodePort addresses of every node; it is not \
                     running here, or another process holds the port"
            ))
            .fix(format!(
                "check the agent (below) and what listens on the port: ss -ltnp | grep :{port}"
            ));
        }
        Some(Ok(a)) => a,
    };
    let reported = field(&answer.body, "localEndpoints").as_u64();
    let healthy = field(&answer.body, "serviceProxyHealthy").as_bool();
    let said = format!(
        "port {port} answers {} (localEndpoints {})",
        answer.status,
        reported.map_or("?".into(), |n| n.to_string())
    );
    let local = u64::from(hc.local_endpoints);
    match (answer.status, local > 0) {
        (200, true) => Check::pass(ID, format!("{said}: load balancers send traffic here")),
        (503, false) => Check::new(ID, Verdict::Warn, format!("{said}: no local endpoint"))
            .because(
                "with externalTrafficPolicy Local only nodes with an endpoint of the Service get \
                 load-balancer traffic; load balancers skip this node, by design",
            )
            .fix("if this node should serve it, run a Pod of the Service here"),
        (503, true) if healthy == Some(false) => Check::fail(
            ID,
            format!("{said} although {local} local endpoints are ready"),
        )
        .because("the agent reports itself unhealthy (see agent): load balancers skip this node")
        .fix("make the agent healthy again (see agent)"),
        (status, _) => Check::fail(
            ID,
            format!("{said}, but this node has {local} usable local endpoints"),
        )
        .because(format!(
            "the agent's view of the endpoints is behind the cluster's (status {status})"
        ))
        .fix("see the agent check: queued changes, a stale watch, or a restart of the agent"),
    }
}

/// Conntrack table usage vs `nf_conntrack_max`.
pub fn conntrack(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "conntrack";
    let v = match &ctx.inputs.conntrack {
        Err(e) => {
            return Check::unknown(ID, "could not read the conntrack table's usage", e.clone());
        }
        Ok(None) => return Check::skip(ID, "nf_conntrack is not loaded: no table to fill"),
        Ok(Some(v)) => v,
    };
    let percent = (v.count * 100).checked_div(v.max).unwrap_or(0);
    let mut details = Vec::new();
    match &v.to_service {
        Some(Ok(n)) => details.push(format!("{n} entries for this Service's virtual servers")),
        Some(Err(e)) => details.push(format!("entries for this Service not counted: {e}")),
        None => {
            details.push("entries for this Service not counted (table too large to list)".into())
        }
    }
    let usage = format!("{} of {} entries, {percent}%", v.count, v.max);
    let s = &ctx.inputs.settings;
    let limits = format!(
        "conntrack.maxPerCore ({}) and conntrack.min ({}) in the kube-proxy configuration (the \
         agent sets nf_conntrack_max = max(maxPerCore x CPUs, min) when it starts), or sysctl -w \
         net.netfilter.nf_conntrack_max=N; conntrack -S and conntrack -L show what fills it",
        s.conntrack_max_per_core
            .map_or("unset: the agent leaves the limit".into(), |n| n
                .to_string()),
        s.conntrack_min
    );
    if percent >= CONNTRACK_FULL_PERCENT {
        return Check::fail(ID, format!("conntrack table full: {usage}"))
            .details(details)
            .because(
                "a full table drops the first packet of every new connection (the kernel logs \
                 \"nf_conntrack: table full, dropping packet\")",
            )
            .fix(format!("raise the limit: {limits}"));
    }
    if percent >= CONNTRACK_HIGH_PERCENT {
        return Check::new(
            ID,
            Verdict::Warn,
            format!("conntrack table filling up: {usage}"),
        )
        .details(details)
        .because("new connections are dropped once it is full")
        .fix(format!("raise the limit before it fills: {limits}"));
    }
    Check::pass(ID, format!("conntrack table {usage}")).details(details)
}

fn ago(now: SystemTime, unix: f64) -> String {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let d = (now - unix).max(0.0);
    if d < 120.0 {
        format!("{d:.0}s ago")
    } else {
        format!("{:.0}m ago", d / 60.0)
    }
}

fn kind_of(answer: &HttpAnswer) -> (bool, Option<bool>) {
    (
        answer.status == 200,
        field(&answer.body, "nodeEligible").as_bool(),
    )
}

/// The agent's health, last sync, queued changes, refused ops for this Service, and whether
/// what it last published for this Service matches the plan.
pub fn agent(ctx: &Ctx<'_>) -> Check {
    const ID: &str = "agent";
    let a = &ctx.inputs.agent;
    let s = &ctx.inputs.settings;
    let node = s.planner.node_name.to_string();
    let period = s.sync_period;
    let mut fails: Vec<(String, String, String)> = Vec::new();
    let mut warns: Vec<(String, String, String)> = Vec::new();
    let mut facts = Vec::new();
    let mut unknown = Vec::new();
    let pod = format!(
        "kubectl -n kube-system get pods -o wide --field-selector spec.nodeName={node}, then its \
         log (explain must be given the agent's flags: --healthz-bind-address, \
         --metrics-bind-address, --config)"
    );
    match &a.healthz {
        None => facts.push("healthz disabled (healthzBindAddress empty)".to_string()),
        Some(Err(e)) if ctx.conntrack_full() => fails.push((
            format!("the agent does not answer on {}", opt_addr(s.healthz)),
            format!("{e}: {DROPPED_BY_CONNTRACK}"),
            "see conntrack".into(),
        )),
        Some(Err(e)) => fails.push((
            format!("the agent does not answer on {}", opt_addr(s.healthz)),
            format!("{e}: kube-ipvs is not running on this node, or listens elsewhere"),
            pod.clone(),
        )),
        Some(Ok(h)) => match kind_of(h) {
            (true, _) => facts.push(format!("/healthz {}", h.status)),
            (false, Some(false)) => warns.push((
                "the node is being deleted or tainted ToBeDeletedByClusterAutoscaler".into(),
                "/healthz answers 503 so that load balancers drain the node".into(),
                "nothing to do if the node is on its way out".into(),
            )),
            (false, _) => fails.push((
                format!("unhealthy (/healthz {})", h.status),
                format!(
                    "a change has waited longer than 2 x syncPeriod ({}s) for a sync",
                    period.as_secs() * 2
                ),
                format!("the agent cannot finish its syncs: {pod}"),
            )),
        },
    }
    match &a.metrics {
        None => facts.push("metrics disabled (metricsBindAddress empty)".to_string()),
        Some(Err(e)) => unknown.push(format!("metrics: {e}")),
        Some(Ok(m)) => {
            let get = |k: &str| metric(m, k);
            match get("kubeproxy_sync_proxy_rules_last_timestamp_seconds") {
                Some(t) if t > 0.0 => facts.push(format!("last sync {}", ago(a.now, t))),
                _ => warns.push((
                    "no sync yet".into(),
                    "the agent waits for its first complete list of every kind".into(),
                    pod.clone(),
                )),
            }
            let pending = get("kubeproxy_sync_proxy_rules_service_changes_pending").unwrap_or(0.0)
                + get("kubeproxy_sync_proxy_rules_endpoint_changes_pending").unwrap_or(0.0);
            if pending > 0.0 {
                let queued = get("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds");
                facts.push(format!(
                    "{pending} changes queued{}",
                    queued.map_or(String::new(), |q| format!(", the last {}", ago(a.now, q)))
                ));
            } else {
                facts.push("no change queued".into());
            }
            let failed: f64 = m
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("kube_ipvs_ops_total{") && k.contains("result=\"failed\"")
                })
                .map(|(_, v)| v)
                .sum();
            if failed > 0.0 {
                facts.push(format!("{failed} ops refused by the kernel since start-up"));
            }
        }
    }
    let sub = ctx.programmed(ID).ok().map(|(s, _)| s);
    match (&a.failures, sub) {
        (Err(e), _) => unknown.push(format!("failed ops: {e}")),
        (Ok(f), Some(sub)) => {
            let targets = sub.targets();
            let mine: Vec<_> = f.of(&targets).collect();
            if !mine.is_empty() {
                let errors: BTreeSet<&str> = mine.iter().map(|m| m.error.as_str()).collect();
                let lines = mine
                    .iter()
                    .take(10)
                    .map(|m| format!("{}: {} ({} attempts)", m.op, m.error, m.attempts))
                    .collect::<Vec<_>>();
                fails.push((
                    format!(
                        "the kernel refuses {} for this Service: {}",
                        count(mine.len(), "op"),
                        lines.join("; ")
                    ),
                    "the agent retries refused ops at every sync; until one is accepted the \
                     kernel lacks that part of the Service"
                        .into(),
                    refusal_fix(&errors),
                ));
            }
            let others = f.total.saturating_sub(mine.len() as u64);
            if others > 0 {
                facts.push(format!("{others} refused ops of other Services"));
            }
        }
        (Ok(f), None) if f.total > 0 => facts.push(format!("{} refused ops", f.total)),
        (Ok(_), None) => {}
    }
    if let (Ok(o), Some(sub)) = (&a.owners, sub) {
        if !o.node().is_empty() && o.node() != node {
            warns.push((
                format!("the owners file is for node {}, not {node}", o.node()),
                "explain reads another node's files, or the node name differs (--hostname-override)"
                    .into(),
                "give explain the agent's --hostname-override".into(),
            ));
        }
        let published: BTreeSet<VsKey> = o
            .iter()
            .filter(|(_, owner)| parse_owner(owner).is_some_and(|(k, _)| k == sub.key))
            .map(|(k, _)| *k)
            .collect();
        let planned: BTreeSet<VsKey> = sub.desired().virtual_servers().keys().copied().collect();
        if published != planned {
            let missing = join(planned.difference(&published));
            let extra = join(published.difference(&planned));
            let mut what = Vec::new();
            if !missing.is_empty() {
                what.push(format!("not yet {missing}"));
            }
            if !extra.is_empty() {
                what.push(format!("still {extra}"));
            }
            warns.push((
                format!(
                    "the agent's last published virtual servers for this Service differ from \
                     the plan: {}",
                    what.join("; ")
                ),
                "the agent has not synced the latest state of the Service, or sees an older one \
                 (a stale watch)"
                    .into(),
                format!(
                    "if it lasts longer than syncPeriod ({}s): {pod}",
                    period.as_secs()
                ),
            ));
        }
    } else if let Err(e) = &a.owners {
        unknown.push(format!("owners file: {e}"));
    }
    let mut details = facts;
    details.extend(unknown.iter().cloned());
    let (verdict, list) = if !fails.is_empty() {
        // Worth knowing too, though not what fails.
        details.extend(warns.into_iter().map(|(s, _, _)| s));
        (Verdict::Fail, fails)
    } else if !warns.is_empty() {
        (Verdict::Warn, warns)
    } else if a.healthz.is_none() && a.metrics.is_none() && !unknown.is_empty() {
        return Check::unknown(ID, "nothing tells how the agent is doing", join(&unknown))
            .details(details)
            .fix("give explain the agent's --healthz-bind-address and --metrics-bind-address");
    } else {
        return Check::pass(ID, "the agent is healthy and in step").details(details);
    };
    let summary = join(list.iter().map(|(s, _, _)| s));
    let why = join(list.iter().map(|(_, w, _)| w));
    let fix: Vec<&str> = list.iter().map(|(_, _, f)| f.as_str()).collect();
    let mut fix_unique = Vec::new();
    for f in fix {
        if !fix_unique.contains(&f) {
            fix_unique.push(f);
        }
    }
    Check::new(ID, verdict, summary)
        .details(details)
        .because(why)
        .fix(fix_unique.join("; "))
}

fn opt_addr(a: Option<std::net::SocketAddr>) -> String {
    a.map_or("-".into(), |a| a.to_string())
}

/// What to do about the kernel refusing ops, by its errors.
fn refusal_fix(errors: &BTreeSet<&str>) -> String {
    let any = |needle: &str| errors.iter().any(|e| e.contains(needle));
    if any("ENOMEM") || any("Cannot allocate memory") {
        "the kernel is short of memory for IPVS or ipset entries: free memory on the node, or \
         check ipset maxelem (ipset list -t)"
            .into()
    } else if any("EPERM") || any("EACCES") || any("ermission") {
        "the agent lacks CAP_NET_ADMIN: run it privileged (deploy/daemonset.yaml)".into()
    } else {
        "the agent's log names each refused op and the kernel's error (\"kernel refused op\")"
            .into()
    }
}
