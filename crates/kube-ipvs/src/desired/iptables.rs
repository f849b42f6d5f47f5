//! Inputs of the constant iptables rule set: which sets have members (stock writes a rule per
//! non-empty set) and which CIDRs the host-port filter covers.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::Serialize;

use super::NodeState;
use crate::types::{Family, IpsetEntry, IpsetName, SetKind, VsKey};

/// What the iptables rules of one family depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IptablesInputs {
    /// Sets with at least one member (rules matching empty sets are omitted, as stock does).
    pub non_empty_sets: BTreeSet<IpsetName>,
    /// Service CIDRs made local by a route: new connections to them on a port that is no
    /// Service are rejected (`KUBE-IPVS-FILTER`, kubernetes#72236), like `KUBE-IPVS-IPS` members.
    pub filter_cidrs: Vec<IpNet>,
    /// LoadBalancer IP:ports whose source ranges leave out the node's primary IP: the node
    /// itself is refused too (`KUBE-IPVS-OUT-FILTER`, stock `lbNoNodeAccessIPPortProtocolEntries`,
    /// kubernetes#119656).
    pub lb_no_node_access: BTreeSet<VsKey>,
}

pub(super) fn inputs(st: &NodeState) -> BTreeMap<Family, IptablesInputs> {
    let mut out: BTreeMap<Family, IptablesInputs> = BTreeMap::new();
    for (set, _) in st.ipsets() {
        out.entry(set.family)
            .or_default()
            .non_empty_sets
            .insert(*set);
    }
    // Exactly the KUBE-LOAD-BALANCER-FW members without their KUBE-LOAD-BALANCER-SOURCE-IP
    // ip,port,ip member (which desired/service.rs adds when a range holds the node IP).
    for (set, members) in st.ipsets() {
        if set.kind != SetKind::LoadBalancerFw {
            continue;
        }
        let allowed = IpsetName::new(SetKind::LoadBalancerSourceIp, set.family);
        for e in members {
            let IpsetEntry::IpPort(ip, proto, port) = *e else {
                continue;
            };
            if !st.has_member(&allowed, &IpsetEntry::IpPortIp(ip, proto, port, ip)) {
                out.entry(set.family)
                    .or_default()
                    .lb_no_node_access
                    .insert(VsKey::new(proto, ip, port));
            }
        }
    }
    for r in st.routes() {
        out.entry(Family::of(&r.addr()))
            .or_default()
            .filter_cidrs
            .push(*r);
    }
    out
}
