//! Kubernetes objects for tests, as JSON: the shape most tests need, in one place. JSON rather than
//! typed objects because k8s-openapi's version feature is enabled in the binary only
//! (crates/kube-ipvs); a caller that wants a typed object decodes it with [`typed`], a fake API
//! server takes the JSON as it is. A test that needs more sets fields on the value
//! ([`labeled`], [`annotated`], or `v["spec"]["type"] = json!("NodePort")`).

use serde_json::{Value, json};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Service `namespace/name`: ClusterIP `cluster_ip`, TCP port 80.
pub fn service(namespace: &str, name: &str, cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": [{"port": 80, "protocol": "TCP"}]},
    })
}

/// EndpointSlice `namespace/name` of Service `service`: IPv4, TCP port 8080, one endpoint per
/// address (no conditions: ready, as the API reads a missing `ready`).
pub fn slice(namespace: &str, name: &str, service: &str, addresses: &[&str]) -> Value {
    let endpoints: Vec<Value> = addresses.iter().map(|a| endpoint(a)).collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "name": name,
                     "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

/// An endpoint of one address, without conditions.
pub fn endpoint(address: &str) -> Value {
    json!({"addresses": [address]})
}

/// Node `name`, nothing else.
pub fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

/// `object` with `metadata.labels` set to `labels` (a JSON object).
pub fn labeled(object: Value, labels: Value) -> Value {
    set_metadata(object, "labels", labels)
}

/// `object` with `metadata.annotations` set to `annotations` (a JSON object).
pub fn annotated(object: Value, annotations: Value) -> Value {
    set_metadata(object, "annotations", annotations)
}

fn set_metadata(mut object: Value, key: &str, value: Value) -> Value {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("an object with metadata")
        .insert(key.to_owned(), value);
    object
}

/// Decodes `v` into a typed object; panics with the decoder's message if it does not fit.
pub fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("test object does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_names_its_service_and_lists_each_address() {
        let s = slice("default", "web-1", "web", &["10.0.0.1", "10.0.0.2"]);
        assert_eq!(s["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(s["endpoints"][1]["addresses"][0], "10.0.0.2");
        assert_eq!(
            service("default", "web", "10.96.0.1")["spec"]["clusterIP"],
            "10.96.0.1"
        );
    }
}
