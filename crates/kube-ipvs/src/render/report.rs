//! The `kube-ipvs plan` report: the desired IPVS table, then routes, addresses, ipsets,
//! health-check ports, iptables inputs and every rejected or skipped object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::Escaped;
use super::ipvsadm::{TableRow, ipvsadm_table};
use crate::desired::{DesiredVs, HealthCheck, IptablesInputs, NodeState};
use crate::model::ClusterIndex;
use crate::types::{Family, IpsetEntry, IpsetName, ServiceName};

/// Everything `kube-ipvs plan` shows, serializable for `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport<'a> {
    /// The node.
    pub node: &'a str,
    /// Desired virtual servers in `ipvsadm` order.
    pub virtual_servers: Vec<&'a DesiredVs>,
    /// Local routes (one per service CIDR).
    pub local_routes: Vec<IpNet>,
    /// Addresses on the dummy device.
    pub bound_addresses: Vec<IpAddr>,
    /// Node addresses NodePorts listen on.
    pub node_port_addresses: Vec<IpAddr>,
    /// ipset members.
    pub ipsets: BTreeMap<IpsetName, Vec<IpsetEntry>>,
    /// Health-check servers.
    pub health_checks: BTreeMap<ServiceName, HealthCheck>,
    /// Inputs of the iptables rules.
    pub iptables: BTreeMap<Family, IptablesInputs>,
    /// Rejected objects: `Kind namespace/name` -> reason.
    pub rejected: BTreeMap<String, String>,
    /// Skipped objects: `Kind namespace/name` -> reason.
    pub skipped: BTreeMap<String, String>,
}

impl<'a> PlanReport<'a> {
    /// Collects the report; `extra_rejected` adds objects that never reached the index
    /// (undecodable objects of a dump).
    pub fn new(
        st: &'a NodeState,
        index: &'a ClusterIndex,
        extra_rejected: BTreeMap<String, String>,
    ) -> Self {
        let mut rejected: BTreeMap<String, String> = index
            .rejections()
            .into_iter()
            .map(|(o, r)| (o.to_string(), r.to_string()))
            .collect();
        for (owner, r) in st.conflicts() {
            rejected.insert(format!("Service port {owner}"), r.to_string());
        }
        for (o, r) in st.refused_cidrs() {
            rejected.insert(o.to_string(), r.to_string());
        }
        rejected.extend(extra_rejected);
        Self {
            node: index.node_name(),
            virtual_servers: st.virtual_servers().values().map(|v| &**v).collect(),
            local_routes: st.routes().iter().copied().collect(),
            bound_addresses: st.bound().copied().collect(),
            node_port_addresses: st.node_port_ips().to_vec(),
            ipsets: st
                .ipsets()
                .map(|(n, m)| (*n, m.copied().collect()))
                .collect(),
            health_checks: st.health_checks().clone(),
            iptables: st.iptables_inputs(),
            rejected,
            skipped: index
                .skipped()
                .iter()
                .map(|(o, r)| (o.to_string(), r.to_string()))
                .collect(),
        }
    }
}

/// The JSON form.
pub fn plan_json(r: &PlanReport<'_>) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(r).map(|mut s| {
        s.push('\n');
        s
    })
}

fn section<T>(
    out: &mut String,
    title: &str,
    items: impl IntoIterator<Item = T>,
    line: impl Fn(&mut String, T),
) {
    let _ = writeln!(out, "\n{title}:");
    let mut any = false;
    for it in items {
        any = true;
        line(out, it);
    }
    if !any {
        out.push_str("  (none)\n");
    }
}

/// The text form: `ipvsadm -Ln` layout with owners (or without, for exact `ipvsadm` bytes),
/// then the other sections.
pub fn plan_text(r: &PlanReport<'_>, annotate: bool) -> String {
    let mut out = String::new();
    let rows = r.virtual_servers.iter().map(|v| TableRow {
        key: &v.key,
        spec: &v.spec,
        reals: &v.reals,
        owner: annotate.then_some(&v.owner),
    });
    ipvsadm_table(&mut out, rows);
    section(
        &mut out,
        "Local routes (ip route add local CIDR dev lo table local)",
        &r.local_routes,
        |o, c| {
            let _ = writeln!(o, "  local {c}");
        },
    );
    section(
        &mut out,
        "Addresses bound to kube-ipvs0",
        &r.bound_addresses,
        |o, a| {
            let _ = writeln!(o, "  {a}/{}", Family::of(a).host_prefix());
        },
    );
    section(
        &mut out,
        "NodePort addresses",
        &r.node_port_addresses,
        |o, a| {
            let _ = writeln!(o, "  {a}");
        },
    );
    section(&mut out, "IP sets", &r.ipsets, |o, (name, members)| {
        let _ = writeln!(
            o,
            "  {name} ({}, {} members)",
            name.kind.set_type().name(),
            members.len()
        );
        for m in members {
            let _ = writeln!(o, "    {m}");
        }
    });
    section(
        &mut out,
        "Health-check node ports",
        &r.health_checks,
        |o, (svc, hc)| {
            let _ = writeln!(
                o,
                "  {} {svc} (local endpoints: {})",
                hc.port, hc.local_endpoints
            );
        },
    );
    section(&mut out, "iptables inputs", &r.iptables, |o, (fam, i)| {
        let sets: Vec<String> = i.non_empty_sets.iter().map(ToString::to_string).collect();
        let cidrs: Vec<String> = i.filter_cidrs.iter().map(ToString::to_string).collect();
        let _ = writeln!(o, "  {fam}: sets in use: {}", sets.join(" "));
        let _ = writeln!(
            o,
            "  {fam}: host-port filter CIDRs: {}",
            if cidrs.is_empty() {
                "-".into()
            } else {
                cidrs.join(" ")
            }
        );
    });
    section(
        &mut out,
        "Rejected objects",
        &r.rejected,
        |o, (obj, why)| {
            let _ = writeln!(o, "  {}: {}", Escaped(obj), Escaped(why));
        },
    );
    section(&mut out, "Skipped objects", &r.skipped, |o, (obj, why)| {
        let _ = writeln!(o, "  {}: {}", Escaped(obj), Escaped(why));
    });
    out
}
