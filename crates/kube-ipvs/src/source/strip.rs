//! Dropping what the model never reads before an object is kept or forwarded, so a node agent
//! watching 50,000 Services holds a fraction of the API server's JSON.

use k8s_openapi::api::core::v1::{Node, NodeStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotations with this prefix are ours (scheduler overrides) and are kept; all others go.
pub const OUR_ANNOTATION_PREFIX: &str = "kube-ipvs.io/";

/// The EndpointSlice controller's `last-change-trigger-time`: kept on slices so the agent can
/// measure network-programming latency from the change that caused it, as kube-proxy does.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Removes fields the model does not need.
pub trait Strip {
    /// Strips in place.
    fn strip(&mut self);
}

/// managedFields, foreign annotations (incl. `kubectl.kubernetes.io/last-applied-configuration`),
/// owner references, finalizers, generateName.
pub fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k.starts_with(OUR_ANNOTATION_PREFIX));
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

impl Strip for Service {
    /// Also the pod selector (the proxier reads EndpointSlices, not pods). Status stays: it holds the
    /// load-balancer ingress IPs.
    fn strip(&mut self) {
        strip_meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.selector = None;
        }
        if let Some(st) = self.status.as_mut() {
            st.conditions = None;
        }
    }
}

impl Strip for EndpointSlice {
    /// Also each endpoint's pod reference, hostname and deprecated topology map. Keeps
    /// [`LAST_CHANGE_TRIGGER_TIME`].
    fn strip(&mut self) {
        let trigger = self
            .metadata
            .annotations
            .as_mut()
            .and_then(|a| a.remove_entry(LAST_CHANGE_TRIGGER_TIME));
        strip_meta(&mut self.metadata);
        if let Some((k, v)) = trigger {
            self.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(k, v);
        }
        for ep in &mut self.endpoints {
            ep.target_ref = None;
            ep.hostname = None;
            ep.deprecated_topology = None;
        }
    }
}

impl Strip for Node {
    /// Keeps labels (topology) and status addresses; drops spec and the rest of status (images,
    /// conditions, capacity: most of a Node's size).
    fn strip(&mut self) {
        strip_meta(&mut self.metadata);
        self.spec = None;
        self.status = self
            .status
            .take()
            .map(|s| NodeStatus {
                addresses: s.addresses,
                ..NodeStatus::default()
            })
            .filter(|s| s.addresses.is_some());
    }
}

impl Strip for ServiceCIDR {
    /// Keeps the spec (the CIDRs); drops status conditions.
    fn strip(&mut self) {
        strip_meta(&mut self.metadata);
        self.status = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_keeps_what_the_model_reads() {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "default", "labels": {"app": "web"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                    "kube-ipvs.io/scheduler": "mh",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u"}],
            },
            "spec": {"clusterIP": "10.0.0.1", "selector": {"app": "web"}, "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
        }))
        .unwrap();
        s.strip();
        assert!(s.metadata.managed_fields.is_none());
        assert!(s.metadata.owner_references.is_none());
        assert_eq!(
            s.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["kube-ipvs.io/scheduler"]
        );
        assert_eq!(s.metadata.labels.unwrap()["app"], "web");
        let spec = s.spec.unwrap();
        assert!(spec.selector.is_none());
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.1"));
        assert!(s.status.unwrap().load_balancer.unwrap().ingress.is_some());
    }

    #[test]
    fn node_keeps_labels_and_addresses_only() {
        let mut n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z"},
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}],
                       "images": [{"names": ["a"], "sizeBytes": 1}]},
        }))
        .unwrap();
        n.strip();
        assert!(n.metadata.annotations.is_none());
        assert!(n.spec.is_none());
        let st = n.status.unwrap();
        assert!(st.images.is_none());
        assert_eq!(st.addresses.unwrap().len(), 1);
    }

    #[test]
    fn slice_drops_pod_references() {
        let mut s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "d", "labels": {"kubernetes.io/service-name": "web"},
                         "annotations": {LAST_CHANGE_TRIGGER_TIME: "2025-01-02T03:04:05Z", "foo": "bar"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.1"], "nodeName": "n1", "zone": "z", "hostname": "h",
                           "targetRef": {"kind": "Pod", "name": "p", "namespace": "d"}}],
        }))
        .unwrap();
        s.strip();
        let ep = &s.endpoints[0];
        assert!(ep.target_ref.is_none() && ep.hostname.is_none());
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert_eq!(ep.zone.as_deref(), Some("z"));
        let a = s.metadata.annotations.unwrap();
        assert_eq!(
            a.into_iter().collect::<Vec<_>>(),
            [(
                LAST_CHANGE_TRIGGER_TIME.to_owned(),
                "2025-01-02T03:04:05Z".to_owned()
            )]
        );
    }
}
