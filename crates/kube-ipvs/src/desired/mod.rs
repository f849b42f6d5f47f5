//! The desired node state: virtual servers, local addresses and routes, ipset members, health-check
//! ports and iptables inputs, kept per Service so one change recomputes one Service.
//!
//! Families are independent: every key carries its family, so IPv4 and IPv6 never share an entry.

pub mod cidrs;
mod iptables;
mod members;
mod service;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

pub use iptables::IptablesInputs;
pub use service::{DesiredVs, HealthCheck, NodeContext, ServiceDesired, service_desired};

use crate::model::{ClusterIndex, ObjectKind, ObjectRef, Rejection};
use crate::planner_config::PlannerConfig;
use crate::types::{Family, IpsetEntry, IpsetName, ServiceName, VsKey};

/// What a change touched: the planner diffs exactly these keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Virtual servers.
    pub vs: BTreeSet<VsKey>,
    /// Dummy-device addresses.
    pub addrs: BTreeSet<IpAddr>,
    /// ipset members.
    pub ipset: BTreeSet<(IpsetName, IpsetEntry)>,
    /// The `local` routes (a kernel read found them changed).
    pub routes: bool,
}

impl Touched {
    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.vs.is_empty() && self.addrs.is_empty() && self.ipset.is_empty() && !self.routes
    }

    fn add(&mut self, d: &ServiceDesired) {
        self.vs.extend(d.vs.iter().map(|v| v.key));
        self.addrs.extend(d.bound.iter().copied());
        self.ipset.extend(d.ipset.iter().copied());
    }

    /// Merges another set of touched keys.
    pub fn extend(&mut self, other: Touched) {
        self.vs.extend(other.vs);
        self.addrs.extend(other.addrs);
        self.ipset.extend(other.ipset);
        self.routes |= other.routes;
    }
}

/// The whole desired state of the node.
#[derive(Debug, Default)]
pub struct NodeState {
    ctx: NodeContext,
    routes: BTreeSet<IpNet>,
    /// Service CIDRs refused a route (their ClusterIPs are bound), with where each came from.
    refused: BTreeMap<ObjectRef, Rejection>,
    /// The same CIDRs: a route of ours for one of them goes at once, not after its addresses
    /// are bound in batches.
    unsafe_cidrs: BTreeSet<IpNet>,
    services: HashMap<ServiceName, ServiceDesired>,
    vs: BTreeMap<VsKey, Arc<DesiredVs>>,
    /// Claims that lost a conflict over a virtual server (rare; kept to promote on removal).
    /// Ordered, so reports name the same conflict on every run.
    losers: BTreeMap<VsKey, Vec<Arc<DesiredVs>>>,
    bound: BTreeMap<IpAddr, u32>,
    ipsets: BTreeMap<IpsetName, BTreeMap<IpsetEntry, u32>>,
    health: BTreeMap<ServiceName, HealthCheck>,
}

/// The node-wide context: routed CIDRs, NodePort addresses, zone; and the service CIDRs
/// refused a route ([`cidrs::vet`]), by the object that named them (a ServiceCIDR, or the Node
/// for `--service-cluster-ip-range`).
pub fn node_context(
    index: &ClusterIndex,
    cfg: &PlannerConfig,
) -> (NodeContext, BTreeSet<IpNet>, Refused) {
    let mut routes = BTreeSet::new();
    let mut refused = BTreeMap::new();
    let mut unsafe_cidrs = BTreeSet::new();
    if !cfg.bind_cluster_ips {
        let flag = cfg
            .service_cidrs
            .iter()
            .map(|c| (ObjectKind::Node, &*cfg.node_name, c));
        let objects = index
            .named_service_cidrs()
            .map(|(name, c)| (ObjectKind::ServiceCidr, name, c));
        for (kind, name, c) in flag.chain(objects) {
            if !cfg.has_family(Family::of(&c.addr())) {
                continue;
            }
            match cidrs::vet(c, cfg, &index.node().pod_cidrs) {
                Ok(()) => {
                    routes.insert(c.trunc());
                }
                Err(why) => {
                    unsafe_cidrs.insert(c.trunc());
                    let oref = ObjectRef {
                        kind,
                        namespace: String::new(),
                        name: name.to_owned(),
                    };
                    refused.insert(
                        oref,
                        Rejection::UnsafeServiceCidr {
                            cidr: c.trunc().to_string(),
                            why: why.to_string(),
                        },
                    );
                }
            }
        }
    }
    let mut cfg_ips = cfg.clone();
    if cfg_ips.primary_node_ips.is_empty() {
        cfg_ips.primary_node_ips = first_per_family(&index.node().internal_ips);
    }
    let ctx = NodeContext {
        routed: routes.iter().copied().collect(),
        node_port_ips: cfg_ips.node_port_ips(),
        zone: index.node().zone.clone(),
        primary_ips: cfg_ips.primary_node_ips.clone(),
    };
    (ctx, routes, (refused, unsafe_cidrs))
}

/// Service CIDRs refused a route: by the object that named them, and as a set.
pub type Refused = (BTreeMap<ObjectRef, Rejection>, BTreeSet<IpNet>);

fn first_per_family(ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in ips {
        if !out.iter().any(|o| Family::of(o) == Family::of(ip)) {
            out.push(*ip);
        }
    }
    out
}

impl NodeState {
    /// Computes the desired state of every Service (the full path). Builds every map in bulk
    /// from sorted vectors: O(n log n) with cache-friendly sorts instead of n tree insertions.
    pub fn build(index: &ClusterIndex, cfg: &PlannerConfig) -> Self {
        let (ctx, routes, (refused, unsafe_cidrs)) = node_context(index, cfg);
        for (obj, why) in &refused {
            tracing::warn!(object = %obj, "{why}");
        }
        // Services in the index's (hash) order: everything below is sorted by a total order
        // (virtual servers by key then owner, members by value), so the result does not depend
        // on it.
        let frags: Vec<(&ServiceName, ServiceDesired)> = index
            .services_with_slices()
            .map(|(svc, slices)| (&svc.key, service_desired(svc, slices, &ctx, cfg)))
            .collect();
        let mut st = NodeState {
            ctx,
            routes,
            refused,
            unsafe_cidrs,
            ..NodeState::default()
        };

        // Keys inline, so comparisons do not chase pointers (owners only break rare ties).
        let mut all: Vec<(VsKey, &Arc<DesiredVs>)> =
            Vec::with_capacity(frags.iter().map(|(_, d)| d.vs.len()).sum());
        all.extend(
            frags
                .iter()
                .flat_map(|(_, d)| d.vs.iter().map(|v| (v.key, v))),
        );
        all.sort_unstable_by(|(a, va), (b, vb)| a.cmp(b).then_with(|| va.owner.cmp(&vb.owner)));
        let mut winners: Vec<(VsKey, Arc<DesiredVs>)> = Vec::with_capacity(all.len());
        for (_, v) in all {
            if winners.last().is_some_and(|(k, _)| *k == v.key) {
                st.losers.entry(v.key).or_default().push(v.clone());
            } else {
                winners.push((v.key, v.clone()));
            }
        }
        st.vs = winners.into_iter().collect();

        let mut bound: Vec<IpAddr> =
            Vec::with_capacity(frags.iter().map(|(_, d)| d.bound.len()).sum());
        bound.extend(frags.iter().flat_map(|(_, d)| d.bound.iter().copied()));
        bound.sort_unstable();
        st.bound = counted(bound);

        // Bucketed by set first (a Service's members are sorted by set, so by runs): a handful
        // of sets, each sorted on its own, compares far less than sorting (set, member) pairs.
        let mut by_set: BTreeMap<IpsetName, Vec<IpsetEntry>> = BTreeMap::new();
        for (_, d) in &frags {
            for run in d.ipset.chunk_by(|a, b| a.0 == b.0) {
                if let Some((set, _)) = run.first() {
                    by_set
                        .entry(*set)
                        .or_default()
                        .extend(run.iter().map(|(_, e)| *e));
                }
            }
        }
        for (set, mut entries) in by_set {
            members::sort(&mut entries);
            st.ipsets.insert(set, counted(entries));
        }

        st.health = frags
            .iter()
            .filter_map(|(key, d)| Some(((*key).clone(), d.health_check?)))
            .collect();
        st.services.reserve(frags.len());
        st.services
            .extend(frags.into_iter().map(|(key, d)| (key.clone(), d)));
        st
    }

    /// Recomputes one Service (the incremental path): O(that Service).
    pub fn update_service(
        &mut self,
        index: &ClusterIndex,
        cfg: &PlannerConfig,
        key: &ServiceName,
    ) -> Touched {
        let new = index
            .service(key)
            .map(|svc| service_desired(svc, index.slices_of(key), &self.ctx, cfg));
        let mut touched = Touched::default();
        let old = self.services.get(key);
        if old == new.as_ref() {
            return touched;
        }
        if let Some(old) = self.services.remove(key) {
            touched.add(&old);
            self.remove(key, &old);
        }
        if let Some(new) = new {
            touched.add(&new);
            self.insert(key.clone(), new);
        }
        touched
    }

    fn insert(&mut self, key: ServiceName, d: ServiceDesired) {
        for v in &d.vs {
            match self.vs.get(&v.key) {
                None => {
                    self.vs.insert(v.key, v.clone());
                }
                Some(cur) if v.owner < cur.owner => {
                    let loser = cur.clone();
                    self.vs.insert(v.key, v.clone());
                    self.losers.entry(v.key).or_default().push(loser);
                }
                Some(_) => self.losers.entry(v.key).or_default().push(v.clone()),
            }
        }
        for a in &d.bound {
            *self.bound.entry(*a).or_default() += 1;
        }
        for (set, e) in &d.ipset {
            *self.ipsets.entry(*set).or_default().entry(*e).or_default() += 1;
        }
        if let Some(hc) = d.health_check {
            self.health.insert(key.clone(), hc);
        }
        self.services.insert(key, d);
    }

    fn remove(&mut self, key: &ServiceName, d: &ServiceDesired) {
        for v in &d.vs {
            let ours = self
                .vs
                .get(&v.key)
                .is_some_and(|cur| cur.owner.service == *key);
            let losers = self.losers.get_mut(&v.key);
            if ours {
                match losers.and_then(promote) {
                    Some(next) => self.vs.insert(v.key, next),
                    None => self.vs.remove(&v.key),
                };
            } else if let Some(l) = losers {
                l.retain(|c| c.owner.service != *key);
            }
            if self.losers.get(&v.key).is_some_and(Vec::is_empty) {
                self.losers.remove(&v.key);
            }
        }
        for a in &d.bound {
            decrement(&mut self.bound, a);
        }
        for (set, e) in &d.ipset {
            if let Some(members) = self.ipsets.get_mut(set) {
                decrement(members, e);
            }
        }
        self.health.remove(key);
    }

    /// Desired virtual servers.
    pub fn virtual_servers(&self) -> &BTreeMap<VsKey, Arc<DesiredVs>> {
        &self.vs
    }

    /// One desired virtual server.
    pub fn virtual_server(&self, key: &VsKey) -> Option<&DesiredVs> {
        self.vs.get(key).map(|v| &**v)
    }

    /// `local` routes, one per service CIDR.
    pub fn routes(&self) -> &BTreeSet<IpNet> {
        &self.routes
    }

    /// Service CIDRs refused a route, by the object that named them (reported like rejected
    /// objects: a Warning Event each, `kube_ipvs_rejected_objects{reason="UnsafeServiceCIDR"}`).
    pub fn refused_cidrs(&self) -> &BTreeMap<ObjectRef, Rejection> {
        &self.refused
    }

    /// Whether a CIDR was refused a route as unsafe.
    pub fn is_unsafe_cidr(&self, cidr: &IpNet) -> bool {
        self.unsafe_cidrs.contains(cidr)
    }

    /// Whether an address is covered by a desired local route.
    pub fn routed(&self, ip: &IpAddr) -> bool {
        self.routes.iter().any(|r| r.contains(ip))
    }

    /// Addresses bound to the dummy device.
    pub fn bound(&self) -> impl Iterator<Item = &IpAddr> {
        self.bound.keys()
    }

    /// Addresses bound to the dummy device, from `start` on (in address order).
    pub fn bound_from(&self, start: std::ops::Bound<IpAddr>) -> impl Iterator<Item = &IpAddr> {
        self.bound
            .range((start, std::ops::Bound::Unbounded))
            .map(|(a, _)| a)
    }

    /// Addresses desired on the dummy device inside a CIDR.
    pub fn bound_in(&self, cidr: &IpNet) -> impl Iterator<Item = &IpAddr> {
        self.bound
            .range(cidr.network()..=cidr.broadcast())
            .map(|(a, _)| a)
    }

    /// Whether an address is desired on the dummy device.
    pub fn is_bound(&self, ip: &IpAddr) -> bool {
        self.bound.contains_key(ip)
    }

    /// ipset members per set (sets with no members are absent).
    pub fn ipsets(&self) -> impl Iterator<Item = (&IpsetName, impl Iterator<Item = &IpsetEntry>)> {
        self.ipsets
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, m)| (n, m.keys()))
    }

    /// Number of desired ipset members, over all sets.
    pub fn member_count(&self) -> usize {
        self.ipsets.values().map(BTreeMap::len).sum()
    }

    /// Whether a member is desired.
    pub fn has_member(&self, set: &IpsetName, e: &IpsetEntry) -> bool {
        self.ipsets.get(set).is_some_and(|m| m.contains_key(e))
    }

    /// Health-check servers by Service.
    pub fn health_checks(&self) -> &BTreeMap<ServiceName, HealthCheck> {
        &self.health
    }

    /// NodePort addresses in effect.
    pub fn node_port_ips(&self) -> &[IpAddr] {
        &self.ctx.node_port_ips
    }

    /// Service ports that lost a virtual-server conflict, each with its first lost virtual server.
    pub fn conflicts(&self) -> BTreeMap<String, Rejection> {
        let mut out = BTreeMap::new();
        for (key, losers) in &self.losers {
            let owner = self
                .vs
                .get(key)
                .map(|v| v.owner.to_string())
                .unwrap_or_default();
            for l in losers {
                out.entry(l.owner.to_string()).or_insert_with(|| {
                    Rejection::VirtualServerConflict {
                        vs: key.to_string(),
                        owner: owner.clone(),
                    }
                });
            }
        }
        out
    }

    /// Inputs of the constant iptables rule set, per family.
    pub fn iptables_inputs(&self) -> BTreeMap<Family, IptablesInputs> {
        iptables::inputs(self)
    }

    /// Number of Services with desired state.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }
}

/// A sorted vector as a multiset.
fn counted<K: Ord + Copy>(sorted: Vec<K>) -> BTreeMap<K, u32> {
    let mut runs: Vec<(K, u32)> = Vec::with_capacity(sorted.len());
    for k in sorted {
        match runs.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => runs.push((k, 1)),
        }
    }
    runs.into_iter().collect()
}

fn promote(losers: &mut Vec<Arc<DesiredVs>>) -> Option<Arc<DesiredVs>> {
    let (i, _) = losers
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.owner.cmp(&b.1.owner))?;
    Some(losers.swap_remove(i))
}

fn decrement<K: Ord>(m: &mut BTreeMap<K, u32>, k: &K) {
    if let Some(n) = m.get_mut(k) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            m.remove(k);
        }
    }
}
