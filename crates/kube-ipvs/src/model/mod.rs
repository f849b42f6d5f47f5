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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;

pub use endpoints::{
    Categorized, PortEndpoint, Topology, categorize, local_addresses, pick, port_endpoints,
};
pub use node::{LABEL_ZONE, NodeInfo, convert_node, convert_service_cidr};
pub use reject::{ObjectKind, ObjectRef, Rejection, SkipReason};
pub use service::{
    Converted, DEFAULT_AFFINITY_TIMEOUT, SCHEDULER_ANNOTATION, SCHEDULER_FLAGS_ANNOTATION,
    SchedulerOverride, Service, ServicePort, convert_service,
};
pub use slice::{
    ConvertedSlice, Endpoint, Interner, LABEL_SERVICE_NAME, Slice, SlicePort, convert_slice,
};

use crate::types::ServiceKey;

/// `namespace/name` of an EndpointSlice.
pub type SliceKey = ServiceKey;

/// What an index change affects, so only that is recomputed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affected {
    /// These Services (possibly none).
    Services(Vec<ServiceKey>),
    /// Everything (node labels, service CIDRs, a re-list).
    All,
}

/// The index of everything the proxier reads from the cluster.
#[derive(Debug)]
pub struct ClusterIndex {
    node_name: Arc<str>,
    services: HashMap<ServiceKey, Arc<Service>>,
    slices: HashMap<SliceKey, Arc<Slice>>,
    by_service: HashMap<ServiceKey, Vec<SliceKey>>,
    node: NodeInfo,
    service_cidrs: BTreeMap<String, Vec<IpNet>>,
    rejected: BTreeMap<ObjectRef, Rejection>,
    skipped: BTreeMap<ObjectRef, SkipReason>,
    zones: Interner,
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
            by_service: HashMap::new(),
            node: NodeInfo::default(),
            service_cidrs: BTreeMap::new(),
            rejected: BTreeMap::new(),
            skipped: BTreeMap::new(),
            zones: Interner::default(),
        }
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
        let key = ServiceKey::new(&oref.namespace, &oref.name);
        match convert_service(svc) {
            Ok(Converted::Service(s)) => {
                self.rejected.remove(&oref);
                self.skipped.remove(&oref);
                let changed = self.services.get(&key).is_none_or(|old| **old != s);
                self.services.insert(key.clone(), Arc::new(s));
                Affected::Services(if changed { vec![key] } else { Vec::new() })
            }
            Ok(Converted::Skip(reason)) => {
                self.rejected.remove(&oref);
                self.skipped.insert(oref, reason);
                let was = self.services.remove(&key).is_some();
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
        let key = ServiceKey::new(namespace, name);
        let was = self.services.remove(&key).is_some();
        Affected::Services(if was { vec![key] } else { Vec::new() })
    }

    /// Replaces all Services (after a re-list).
    pub fn reset_services<'a>(
        &mut self,
        svcs: impl IntoIterator<Item = &'a core::Service>,
    ) -> Affected {
        self.services.clear();
        self.rejected.retain(|o, _| o.kind != ObjectKind::Service);
        self.skipped.retain(|o, _| o.kind != ObjectKind::Service);
        for s in svcs {
            self.apply_service(s);
        }
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
        match convert_slice(s, &self.node_name, &mut self.zones) {
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
                let links = self.by_service.entry(slice.service.clone()).or_default();
                if let Err(pos) = links.binary_search(&key) {
                    links.insert(pos, key.clone());
                }
                self.slices.insert(key, Arc::new(slice));
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
        self.by_service.clear();
        self.rejected
            .retain(|o, _| o.kind != ObjectKind::EndpointSlice);
        self.skipped
            .retain(|o, _| o.kind != ObjectKind::EndpointSlice);
        for s in slices {
            self.apply_slice(s);
        }
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

    fn unlink(&mut self, svc: &ServiceKey, slice: &SliceKey) {
        if let Some(links) = self.by_service.get_mut(svc) {
            links.retain(|k| k != slice);
            if links.is_empty() {
                self.by_service.remove(svc);
            }
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

    /// A Service.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key).map(|s| &**s)
    }

    /// All Services (unordered).
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().map(|s| &**s)
    }

    /// Number of Services and of Service ports.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.services.len(),
            self.services.values().map(|s| s.ports.len()).sum(),
        )
    }

    /// The slices of a Service, in slice-name order.
    pub fn slices_of<'a>(
        &'a self,
        key: &ServiceKey,
    ) -> impl Iterator<Item = &'a Slice> + Clone + 'a {
        self.by_service
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k).map(|s| &**s))
    }

    /// The node's zone and addresses.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// CIDRs of all ServiceCIDR objects.
    pub fn service_cidrs(&self) -> impl Iterator<Item = &IpNet> {
        self.service_cidrs.values().flatten()
    }

    /// Objects rejected, with the reason, including slices whose Service is unknown.
    pub fn rejections(&self) -> BTreeMap<ObjectRef, Rejection> {
        let mut out = self.rejected.clone();
        for (svc, slices) in &self.by_service {
            let svc_ref = obj(ObjectKind::Service, Some(svc.namespace()), Some(svc.name()));
            if self.services.contains_key(svc) || self.skipped.contains_key(&svc_ref) {
                continue;
            }
            for k in slices {
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

    /// Objects deliberately skipped.
    pub fn skipped(&self) -> &BTreeMap<ObjectRef, SkipReason> {
        &self.skipped
    }
}
