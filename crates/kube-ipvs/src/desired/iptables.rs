//! Inputs of the constant iptables rule set: which sets have members (stock writes a rule per
//! non-empty set) and which CIDRs the host-port filter covers.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::Serialize;

use super::NodeState;
use crate::types::{Family, IpsetName};

/// What the iptables rules of one family depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IptablesInputs {
    /// Sets with at least one member (rules matching empty sets are omitted, as stock does).
    pub non_empty_sets: BTreeSet<IpsetName>,
    /// Service CIDRs made local by a route: new connections to them on a port that is no
    /// Service are rejected (`KUBE-IPVS-FILTER`, kubernetes#72236), like `KUBE-IPVS-IPS` members.
    pub filter_cidrs: Vec<IpNet>,
}

pub(super) fn inputs(st: &NodeState) -> BTreeMap<Family, IptablesInputs> {
    let mut out: BTreeMap<Family, IptablesInputs> = BTreeMap::new();
    for (set, _) in st.ipsets() {
        out.entry(set.family)
            .or_default()
            .non_empty_sets
            .insert(*set);
    }
    for r in st.routes() {
        out.entry(Family::of(&r.addr()))
            .or_default()
            .filter_cidrs
            .push(*r);
    }
    out
}
