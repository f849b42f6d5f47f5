//! The cluster index: Services, EndpointSlices, the node's Node and ServiceCIDRs, held as compact
//! validated values with `apply / delete / reset` per kind (fed by watchers or a file).
//!
//! An invalid object never replaces the last valid version of itself and never touches another
//! object: it is recorded with a typed [`Rejection`].

mod endpoints;
mod node;
mod reject;
mod service;
mod slice;
mod summary;
pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;

pub use endpoints::{
    Categorized, PortEndpoint, Topology, categorize, local_addresses, pick, port_endpoints,
};
pub use node::{
    LABEL_ZONE, NodeInfo, TO_BE_DELETED_TAINT, convert_node, convert_service_cidr, node_eligible,
};
pub use reject::{ObjectKind, ObjectRef, Rejection, SkipReason};
pub use service::{
    Converted, DEFAULT_AFFINITY_TIMEOUT, SCHEDULER_ANNOTATION, SCHEDULER_FLAGS_ANNOTATION,
    SchedulerOverride, Service, ServicePort, convert_service,
};
pub use slice::{
    ConvertedSlice, Endpoint, Interner, LABEL_SERVICE_NAME, Slice, SlicePort, convert_slice,
};

use crate::types::ServiceName;

/// `namespace/name` of an EndpointSlice.
pub type SliceKey = ServiceName;

/// What an index change affects, so only that is recomputed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affected {
    /// These Services (possibly none).
    Services(Vec<ServiceName>),
    /// Everything (node labels, service CIDRs, a re-list).
    All,
}

/// A Service and the slices that name it, kept together so the full rebuild reaches a Service's
/// slices without a lookup per slice. Either may be absent (a slice can arrive before its Service).
#[derive(Debug, Default)]
struct Entry {
    service: Option<Arc<Service>>,
    /// Linked slices, sorted by slice key (the order slices are joined in).
    slices: Vec<(SliceKey, Arc<Slice>)>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.service.is_none() && self.slices.is_empty()
    }
}

/// The index of everything the proxier reads from the cluster.
#[derive(Debug)]
pub struct ClusterIndex {
    node_name: Arc<str>,
    services: HashMap<ServiceName, Entry>,
    slices: HashMap<SliceKey, Arc<Slice>>,
    node: NodeInfo,
    service_cidrs: BTreeMap<String, Vec<IpNet>>,
    rejected: BTreeMap<ObjectRef, Rejection>,
    skipped: BTreeMap<ObjectRef, SkipReason>,
    /// Zone and port names.
    names: Interner,
    /// What the cluster-wide report counts, kept current per change.
    summary: summary::Summary,
}

fn obj(kind: ObjectKind, ns: Option<&str>, name: Option<&str>) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: ns.unwrap_or_default().to_owned(),
        name: name.unwrap_or_default().to_owned(),
    }
}

impl ClusterIndex {
    /// An empty index for node `node_name` (endpoints on that node are local).
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: Arc::from(node_name),
            services: HashMap::new(),
            slices: HashMap::new(),
            node: NodeInfo::default(),
            service_cidrs: BTreeMap::new(),
            rejected: BTreeMap::new(),
            skipped: BTreeMap::new(),
            names: Interner::default(),
            summary: summary::Summary::default(),
        }
    }

    /// Brings the report's facts of one Service up to date with its entry.
    fn summarize(&mut self, key: &ServiceName) {
        let entry = self.services.get(key);
        self.summary.update(
            key,
            entry.and_then(|e| e.service.as_deref()),
            entry
                .into_iter()
                .flat_map(|e| e.slices.iter().map(|(_, s)| &**s)),
        );
    }

    /// Recomputes the report's facts of every Service (after a re-list, which is O(cluster)
    /// anyway).
    fn summarize_all(&mut self) {
        let mut summary = summary::Summary::default();
        for (key, e) in &self.services {
            summary.update(
                key,
                e.service.as_deref(),
                e.slices.iter().map(|(_, s)| &**s),
            );
        }
        self.summary = summary;
    }

    /// The node this index is for.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, svc: &core::Service) -> Affected {
        let m = &svc.metadata;
        let oref = obj(
            ObjectKind::Service,
            m.namespace.as_deref(),
            m.name.as_deref(),
        );
        let key = ServiceName::new(&oref.namespace, &oref.name);
        match convert_service(svc) {
            Ok(Converted::Service(mut s)) => {
                for p in s.ports.iter_mut() {
                    p.name = self.names.get(&p.name);
                }
                self.rejected.remove(&oref);
                self.skipped.remove(&oref);
                let entry = self.services.entry(key.clone()).or_default();
                let changed = entry.service.as_ref().is_none_or(|old| **old != s);
                entry.service = Some(Arc::new(s));
                if changed {
                    self.summarize(&key);
                }
                Affected::Services(if changed { vec![key] } else { Vec::new() })
            }
            Ok(Converted::Skip(reason)) => {
                self.rejected.remove(&oref);
                self.skipped.insert(oref, reason);
                let was = self.remove_service(&key);
                Affected::Services(if was { vec![key] } else { Vec::new() })
            }
            Err(r) => {
                self.rejected.insert(oref, r);
                Affected::Services(Vec::new())
            }
        }
    }

    /// Removes a Service.
    pub fn delete_service(&mut self, namespace: &str, name: &str) -> Affected {
        let oref = obj(ObjectKind::Service, Some(namespace), Some(name));
        self.rejected.remove(&oref);
        self.skipped.remove(&oref);
        let key = ServiceName::new(namespace, name);
        let was = self.remove_service(&key);
        Affected::Services(if was { vec![key] } else { Vec::new() })
    }

    /// Forgets a Service (keeping its slices linked); returns whether it was there.
    fn remove_service(&mut self, key: &ServiceName) -> bool {
        let Some(entry) = self.services.get_mut(key) else {
            return false;
        };
        let was = entry.service.take().is_some();
        if entry.is_empty() {
            self.services.remove(key);
        }
        self.summarize(key);
        was
    }

    /// Replaces all Services (after a re-list).
    pub fn reset_services<'a>(
        &mut self,
        svcs: impl IntoIterator<Item = &'a core::Service>,
    ) -> Affected {
        self.services.retain(|_, e| {
            e.service = None;
            !e.is_empty()
        });
        self.rejected.retain(|o, _| o.kind != ObjectKind::Service);
        self.skipped.retain(|o, _| o.kind != ObjectKind::Service);
        for s in svcs {
            self.apply_service(s);
        }
        self.names.prune();
        self.summarize_all();
        Affected::All
    }

    /// Adds or replaces an EndpointSlice.
    pub fn apply_slice(&mut self, s: &discovery::EndpointSlice) -> Affected {
        let m = &s.metadata;
        let oref = obj(
            ObjectKind::EndpointSlice,
            m.namespace.as_deref(),
            m.name.as_deref(),
        );
        let key = SliceKey::new(&oref.namespace, &oref.name);
        match convert_slice(s, &self.node_name, &mut self.names) {
            Ok(ConvertedSlice::Slice(slice)) => {
                self.rejected.remove(&oref);
                self.skipped.remove(&oref);
                let mut affected = vec![slice.service.clone()];
                if let Some(old) = self.slices.get(&key) {
                    if **old == slice {
                        return Affected::Services(Vec::new());
                    }
                    if old.service != slice.service {
                        let old_svc = old.service.clone();
                        self.unlink(&old_svc, &key);
                        affected.push(old_svc);
                    }
                }
                let slice = Arc::new(slice);
                let links = &mut self
                    .services
                    .entry(slice.service.clone())
                    .or_default()
                    .slices;
                match links.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(pos) => {
                        if let Some(link) = links.get_mut(pos) {
                            link.1 = slice.clone();
                        }
                    }
                    Err(pos) => links.insert(pos, (key.clone(), slice.clone())),
                }
                self.summarize(&slice.service);
                self.slices.insert(key, slice);
                Affected::Services(affected)
            }
            Ok(ConvertedSlice::Skip(reason)) => {
                self.rejected.remove(&oref);
                self.skipped.insert(oref.clone(), reason);
                self.remove_slice(&key)
            }
            Err(r) => {
                self.rejected.insert(oref, r);
                Affected::Services(Vec::new())
            }
        }
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&mut self, namespace: &str, name: &str) -> Affected {
        let oref = obj(ObjectKind::EndpointSlice, Some(namespace), Some(name));
        self.rejected.remove(&oref);
        self.skipped.remove(&oref);
        self.remove_slice(&SliceKey::new(namespace, name))
    }

    /// Replaces all EndpointSlices (after a re-list).
    pub fn reset_slices<'a>(
        &mut self,
        slices: impl IntoIterator<Item = &'a discovery::EndpointSlice>,
    ) -> Affected {
        self.slices.clear();
        self.services.retain(|_, e| {
            e.slices.clear();
            !e.is_empty()
        });
        self.rejected
            .retain(|o, _| o.kind != ObjectKind::EndpointSlice);
        self.skipped
            .retain(|o, _| o.kind != ObjectKind::EndpointSlice);
        for s in slices {
            self.apply_slice(s);
        }
        self.names.prune();
        self.summarize_all();
        Affected::All
    }

    fn remove_slice(&mut self, key: &SliceKey) -> Affected {
        match self.slices.remove(key) {
            Some(old) => {
                self.unlink(&old.service, key);
                Affected::Services(vec![old.service.clone()])
            }
            None => Affected::Services(Vec::new()),
        }
    }

    fn unlink(&mut self, svc: &ServiceName, slice: &SliceKey) {
        if let Some(entry) = self.services.get_mut(svc) {
            entry.slices.retain(|(k, _)| k != slice);
            if entry.is_empty() {
                self.services.remove(svc);
            }
            self.summarize(svc);
        }
    }

    /// Applies the node's own Node object (zone label, addresses).
    pub fn apply_node(&mut self, node: &core::Node) -> Affected {
        let info = convert_node(node);
        if info == self.node {
            return Affected::Services(Vec::new());
        }
        self.node = info;
        Affected::All
    }

    /// Forgets the Node object.
    pub fn delete_node(&mut self) -> Affected {
        self.node = NodeInfo::default();
        Affected::All
    }

    /// Adds or replaces a ServiceCIDR.
    pub fn apply_service_cidr(&mut self, c: &networking::ServiceCIDR) -> Affected {
        let oref = obj(ObjectKind::ServiceCidr, None, c.metadata.name.as_deref());
        match convert_service_cidr(c) {
            Ok(cidrs) => {
                self.rejected.remove(&oref);
                if self.service_cidrs.get(&oref.name) == Some(&cidrs) {
                    return Affected::Services(Vec::new());
                }
                self.service_cidrs.insert(oref.name, cidrs);
                Affected::All
            }
            Err(r) => {
                self.rejected.insert(oref, r);
                Affected::Services(Vec::new())
            }
        }
    }

    /// Removes a ServiceCIDR.
    pub fn delete_service_cidr(&mut self, name: &str) -> Affected {
        self.rejected
            .remove(&obj(ObjectKind::ServiceCidr, None, Some(name)));
        match self.service_cidrs.remove(name) {
            Some(_) => Affected::All,
            None => Affected::Services(Vec::new()),
        }
    }

    /// Records that the latest version of an object cannot be used at all (it did not decode):
    /// like an invalid object's, its last valid version stays in effect, and nothing else moves.
    pub fn reject(&mut self, object: ObjectRef, why: Rejection) -> Affected {
        self.rejected.insert(object, why);
        Affected::Services(Vec::new())
    }

    /// A Service.
    pub fn service(&self, key: &ServiceName) -> Option<&Service> {
        self.services.get(key)?.service.as_deref()
    }

    /// All Services (unordered).
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().filter_map(|e| e.service.as_deref())
    }

    /// All Services with their slices (unordered; slices in slice-name order, as
    /// [`Self::slices_of`]): the full rebuild's walk, without a lookup per Service or slice.
    pub fn services_with_slices(
        &self,
    ) -> impl Iterator<Item = (&Service, impl Iterator<Item = &Slice> + Clone)> {
        self.services.values().filter_map(|e| {
            let svc = e.service.as_deref()?;
            Some((svc, e.slices.iter().map(|(_, s)| &**s)))
        })
    }

    /// Number of Services and of Service ports.
    pub fn counts(&self) -> (usize, usize) {
        self.services()
            .fold((0, 0), |(n, p), s| (n + 1, p + s.ports.len()))
    }

    /// The slices of a Service, in slice-name order.
    pub fn slices_of<'a>(
        &'a self,
        key: &ServiceName,
    ) -> impl Iterator<Item = &'a Slice> + Clone + 'a {
        self.services
            .get(key)
            .into_iter()
            .flat_map(|e| e.slices.iter().map(|(_, s)| &**s))
    }

    /// The node's zone and addresses.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// CIDRs of all ServiceCIDR objects.
    pub fn service_cidrs(&self) -> impl Iterator<Item = &IpNet> {
        self.service_cidrs.values().flatten()
    }

    /// CIDRs of all ServiceCIDR objects, with the name of the object that holds each.
    pub fn named_service_cidrs(&self) -> impl Iterator<Item = (&str, &IpNet)> {
        self.service_cidrs
            .iter()
            .flat_map(|(name, cidrs)| cidrs.iter().map(move |c| (name.as_str(), c)))
    }

    /// Objects rejected, with the reason, including slices whose Service is unknown. Costs the
    /// rejections, not the cluster.
    pub fn rejections(&self) -> BTreeMap<ObjectRef, Rejection> {
        let mut out = self.rejected.clone();
        for svc in self.summary.orphans() {
            let Some(entry) = self.services.get(svc) else {
                continue;
            };
            let svc_ref = obj(ObjectKind::Service, Some(svc.namespace()), Some(svc.name()));
            if self.skipped.contains_key(&svc_ref) {
                continue;
            }
            for (k, _) in &entry.slices {
                out.insert(
                    obj(
                        ObjectKind::EndpointSlice,
                        Some(k.namespace()),
                        Some(k.name()),
                    ),
                    Rejection::SliceWithoutService {
                        service: svc.to_string(),
                    },
                );
            }
        }
        out
    }

    /// Services with a Local traffic policy and no usable local endpoint while endpoints exist
    /// elsewhere, (internal, external) (`kubeproxy_sync_proxy_rules_no_local_endpoints_total`).
    /// Kept current per change: O(1).
    pub fn no_local_endpoints(&self) -> (u64, u64) {
        self.summary.no_local_endpoints()
    }

    /// Objects deliberately skipped.
    pub fn skipped(&self) -> &BTreeMap<ObjectRef, SkipReason> {
        &self.skipped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use lab_kit::objects::{self, typed};

    use super::*;

    fn svc(name: &str) -> core::Service {
        typed(objects::service("ns", name, "10.96.0.1"))
    }

    fn slice(name: &str, svc: &str, ip: &str) -> discovery::EndpointSlice {
        typed(objects::slice("ns", name, svc, &[ip]))
    }

    fn eps(idx: &ClusterIndex, svc: &str) -> Vec<String> {
        idx.slices_of(&ServiceName::new("ns", svc))
            .flat_map(|s| s.endpoints.iter().map(|e| e.addr.to_string()))
            .collect()
    }

    fn walk(idx: &ClusterIndex) -> Vec<(String, usize)> {
        let mut out: Vec<_> = idx
            .services_with_slices()
            .map(|(s, slices)| (s.key.to_string(), slices.count()))
            .collect();
        out.sort();
        out
    }

    /// The report's figures, as the walk over every Service that `summary` replaces computed
    /// them: the reference the kept-current figures are checked against.
    fn walked(idx: &ClusterIndex) -> ((u64, u64), Vec<String>) {
        let (mut internal, mut external) = (0, 0);
        for svc in idx
            .services()
            .filter(|s| s.internal_local || s.external_local)
        {
            let usable = |local_only: bool| {
                idx.slices_of(&svc.key).any(|sl| {
                    sl.endpoints.iter().any(|e| {
                        (!local_only || e.local) && (e.ready || (e.serving && e.terminating))
                    })
                })
            };
            if usable(false) && !usable(true) {
                internal += u64::from(svc.internal_local);
                external += u64::from(svc.external_local);
            }
        }
        let mut orphans: Vec<String> = idx
            .services
            .iter()
            .filter(|(_, e)| e.service.is_none() && !e.slices.is_empty())
            .map(|(k, _)| k.to_string())
            .collect();
        orphans.sort();
        ((internal, external), orphans)
    }

    /// The cluster-wide report's figures (Local-policy Services without a local endpoint,
    /// slices without their Service) are kept current per change, and equal a walk of the whole
    /// index after every kind of change: Services and slices added, changed, moved, skipped and
    /// deleted in a scrambled order, and re-lists.
    #[test]
    fn the_report_figures_follow_every_change() {
        let local_svc = |name: &str, external: bool| {
            let mut v = objects::service("ns", name, "10.96.0.1");
            v["spec"]["internalTrafficPolicy"] = "Local".into();
            if external {
                v["spec"]["externalIPs"] = serde_json::json!(["198.51.100.1"]);
                v["spec"]["externalTrafficPolicy"] = "Local".into();
            }
            typed::<core::Service>(v)
        };
        let on = |name: &str, svc: &str, node: &str, ready: bool| {
            let mut v = objects::slice("ns", name, svc, &["10.0.0.1"]);
            v["endpoints"][0]["nodeName"] = node.into();
            v["endpoints"][0]["conditions"] = serde_json::json!({"ready": ready});
            typed::<discovery::EndpointSlice>(v)
        };
        let skipped = {
            let mut v = objects::service("ns", "c", "None");
            v["spec"]["clusterIP"] = "None".into();
            typed::<core::Service>(v)
        };
        let mut idx = ClusterIndex::new("node-a");
        type Step<'a> = Box<dyn Fn(&mut ClusterIndex) + 'a>;
        let steps: Vec<Step> = vec![
            Box::new(|i| drop(i.apply_slice(&on("a-1", "a", "node-b", true)))),
            Box::new(|i| drop(i.apply_service(&local_svc("a", true)))),
            Box::new(|i| drop(i.apply_service(&local_svc("b", false)))),
            Box::new(|i| drop(i.apply_slice(&on("b-1", "b", "node-b", true)))),
            Box::new(|i| drop(i.apply_slice(&on("a-2", "a", "node-a", true)))),
            Box::new(|i| drop(i.apply_slice(&on("a-2", "a", "node-a", false)))),
            Box::new(|i| drop(i.apply_slice(&on("b-1", "a", "node-b", true)))),
            Box::new(|i| drop(i.apply_service(&local_svc("a", false)))),
            Box::new(|i| drop(i.apply_slice(&on("c-1", "c", "node-b", true)))),
            Box::new(|i| drop(i.apply_service(&skipped))),
            Box::new(|i| drop(i.delete_service("ns", "a"))),
            Box::new(|i| drop(i.delete_slice("ns", "a-2"))),
            Box::new(|i| drop(i.apply_service(&svc("a")))),
            Box::new(|i| drop(i.apply_service(&local_svc("a", true)))),
            Box::new(|i| {
                drop(i.reset_slices([
                    &on("a-9", "a", "node-b", true),
                    &on("d-1", "d", "node-b", true),
                ]))
            }),
            Box::new(|i| drop(i.reset_services([&local_svc("d", true)]))),
            Box::new(|i| drop(i.delete_slice("ns", "a-9"))),
            Box::new(|i| drop(i.delete_slice("ns", "d-1"))),
            Box::new(|i| drop(i.delete_service("ns", "d"))),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (n, step) in steps.iter().enumerate() {
            step(&mut idx);
            let (counts, orphans) = walked(&idx);
            assert_eq!(idx.no_local_endpoints(), counts, "after step {n}");
            let kept: Vec<String> = idx.summary.orphans().map(ToString::to_string).collect();
            assert_eq!(kept, orphans, "after step {n}");
            seen.insert((counts, orphans.len()));
        }
        assert!(idx.services.is_empty(), "nothing left behind");
        assert_eq!(idx.summary.orphans().count(), 0);
        // The sequence exercised both policies and orphans, not just zeros.
        assert!(seen.iter().any(|((i, e), _)| *i > 0 && *e > 0), "{seen:?}");
        assert!(seen.iter().any(|(_, o)| *o > 0), "{seen:?}");
    }

    /// Services and their slices share one entry; every change keeps the two views in step.
    #[test]
    fn slices_follow_their_service_through_every_change() {
        let mut idx = ClusterIndex::new("node-a");
        idx.apply_slice(&slice("a-2", "a", "10.0.0.2"));
        idx.apply_slice(&slice("a-1", "a", "10.0.0.1"));
        assert!(idx.service(&ServiceName::new("ns", "a")).is_none());
        assert_eq!(idx.rejections().len(), 2, "slices without their Service");
        assert!(walk(&idx).is_empty());

        idx.apply_service(&svc("a"));
        assert_eq!(eps(&idx, "a"), ["10.0.0.1", "10.0.0.2"], "slice-name order");
        assert!(idx.rejections().is_empty());
        assert_eq!(walk(&idx), [("ns/a".to_owned(), 2)]);

        idx.apply_slice(&slice("a-1", "a", "10.0.0.9"));
        assert_eq!(
            eps(&idx, "a"),
            ["10.0.0.9", "10.0.0.2"],
            "replaced in place"
        );
        idx.apply_slice(&slice("a-2", "b", "10.0.0.2"));
        assert_eq!(eps(&idx, "a"), ["10.0.0.9"]);
        assert_eq!(eps(&idx, "b"), ["10.0.0.2"], "moved to its new Service");

        idx.delete_service("ns", "a");
        assert_eq!(idx.counts(), (0, 0));
        assert_eq!(eps(&idx, "a"), ["10.0.0.9"], "slices outlive their Service");
        idx.apply_service(&svc("a"));
        assert_eq!(walk(&idx), [("ns/a".to_owned(), 1)]);

        idx.reset_slices([&slice("a-3", "a", "10.0.0.3")]);
        assert_eq!(eps(&idx, "a"), ["10.0.0.3"]);
        assert!(eps(&idx, "b").is_empty());
        idx.reset_services([]);
        assert_eq!(idx.counts(), (0, 0));
        assert_eq!(eps(&idx, "a"), ["10.0.0.3"]);
        idx.delete_slice("ns", "a-3");
        assert!(
            idx.services.is_empty() && idx.slices.is_empty(),
            "nothing left behind"
        );
    }
}
