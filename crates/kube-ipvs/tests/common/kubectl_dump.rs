//! Cluster dumps in the exact shape `kubectl get svc,endpointslices -A -o yaml` (and `-o json`)
//! prints them for a cluster of N Services with M endpoints each: one `List`, keys in kubectl's
//! sorted order, the fields the API server fills (uid, resourceVersion, clusterIPs, ipFamilies,
//! internalTrafficPolicy, owner references, pod target references, zones), no managedFields
//! (kubectl hides them by default since 1.21). Shared by the dump tests and
//! `cargo run --release -p kube-ipvs --example kubectl-dump`.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-o yaml`.
    Yaml,
    /// `-o json`.
    Json,
}

fn cluster_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a60_0000 + i) // 10.96.0.0/12
}

fn pod_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0af4_0000 + n) // 10.244.0.0/14
}

fn uid(kind: u32, i: u32) -> String {
    format!(
        "{kind:08x}-{:04x}-4{:03x}-8{:03x}-{i:012x}",
        i >> 16,
        i & 0xfff,
        kind
    )
}

/// One Service and its EndpointSlice as kubectl's YAML list items (indented under `items:`).
fn yaml_pair(out: &mut String, i: u32, eps: u32) {
    let ns = format!("ns-{}", i % 200);
    let name = format!("svc-{i}");
    let ip = cluster_ip(i);
    let _ = write!(
        out,
        "- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: \"2026-11-02T10:15:31Z\"
    labels:
      app: {name}
    name: {name}
    namespace: {ns}
    resourceVersion: \"{rv}\"
    uid: {uid}
  spec:
    clusterIP: {ip}
    clusterIPs:
    - {ip}
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: 8080
    selector:
      app: {name}
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {{}}
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
",
        rv = 1000 + 2 * i,
        uid = uid(1, i),
    );
    for k in 0..eps {
        let _ = write!(
            out,
            "  - addresses:
    - {addr}
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: node-{node}
    targetRef:
      kind: Pod
      name: {name}-7d9c6b5f4-{k:05}
      namespace: {ns}
      uid: {puid}
    zone: zone-{zone}
",
            addr = pod_ip(i * eps + k),
            node = (i + k) % 500,
            puid = uid(3, i * eps + k),
            zone = (i + k) % 3,
        );
    }
    let _ = write!(
        out,
        "  kind: EndpointSlice
  metadata:
    annotations:
      endpoints.kubernetes.io/last-change-trigger-time: \"2026-11-02T10:15:40Z\"
    creationTimestamp: \"2026-11-02T10:15:31Z\"
    generateName: {name}-
    generation: 3
    labels:
      app: {name}
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: {name}
    name: {name}-x7k2p
    namespace: {ns}
    ownerReferences:
    - apiVersion: v1
      blockOwnerDeletion: true
      controller: true
      kind: Service
      name: {name}
      uid: {suid}
    resourceVersion: \"{rv}\"
    uid: {uid}
  ports:
  - name: http
    port: 8080
    protocol: TCP
",
        rv = 1001 + 2 * i,
        suid = uid(1, i),
        uid = uid(2, i),
    );
}

fn json_pair(i: u32, eps: u32) -> [serde_json::Value; 2] {
    use serde_json::json;
    let ns = format!("ns-{}", i % 200);
    let name = format!("svc-{i}");
    let ip = cluster_ip(i).to_string();
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "creationTimestamp": "2026-11-02T10:15:31Z",
            "labels": {"app": name},
            "name": name,
            "namespace": ns,
            "resourceVersion": (1000 + 2 * i).to_string(),
            "uid": uid(1, i),
        },
        "spec": {
            "clusterIP": ip,
            "clusterIPs": [ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": name},
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    });
    let endpoints: Vec<_> = (0..eps)
        .map(|k| {
            json!({
                "addresses": [pod_ip(i * eps + k).to_string()],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": format!("node-{}", (i + k) % 500),
                "targetRef": {
                    "kind": "Pod",
                    "name": format!("{name}-7d9c6b5f4-{k:05}"),
                    "namespace": ns,
                    "uid": uid(3, i * eps + k),
                },
                "zone": format!("zone-{}", (i + k) % 3),
            })
        })
        .collect();
    let slice = json!({
        "addressType": "IPv4",
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": endpoints,
        "kind": "EndpointSlice",
        "metadata": {
            "annotations": {
                "endpoints.kubernetes.io/last-change-trigger-time": "2026-11-02T10:15:40Z"
            },
            "creationTimestamp": "2026-11-02T10:15:31Z",
            "generateName": format!("{name}-"),
            "generation": 3,
            "labels": {
                "app": name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": name,
            },
            "name": format!("{name}-x7k2p"),
            "namespace": ns,
            "ownerReferences": [{
                "apiVersion": "v1", "blockOwnerDeletion": true, "controller": true,
                "kind": "Service", "name": name, "uid": uid(1, i),
            }],
            "resourceVersion": (1001 + 2 * i).to_string(),
            "uid": uid(2, i),
        },
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    });
    [svc, slice]
}

/// The dump of `services` Services with `eps` endpoints each, written to `out`.
pub fn write(
    out: &mut impl std::io::Write,
    services: u32,
    eps: u32,
    format: Format,
) -> std::io::Result<()> {
    match format {
        Format::Yaml => {
            out.write_all(b"apiVersion: v1\nitems:\n")?;
            let mut chunk = String::new();
            for i in 0..services {
                yaml_pair(&mut chunk, i, eps);
                if chunk.len() > 1 << 20 {
                    out.write_all(chunk.as_bytes())?;
                    chunk.clear();
                }
            }
            out.write_all(chunk.as_bytes())?;
            out.write_all(b"kind: List\nmetadata:\n  resourceVersion: \"\"\n")
        }
        Format::Json => {
            // kubectl prints JSON with four-space indentation.
            out.write_all(b"{\n    \"apiVersion\": \"v1\",\n    \"items\": [")?;
            for i in 0..services {
                for (j, obj) in json_pair(i, eps).iter().enumerate() {
                    if i > 0 || j > 0 {
                        out.write_all(b",")?;
                    }
                    let mut buf = Vec::new();
                    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
                    serde::Serialize::serialize(obj, &mut ser).map_err(std::io::Error::other)?;
                    out.write_all(b"\n        ")?;
                    out.write_all(&buf)?;
                }
            }
            out.write_all(b"\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n")
        }
    }
}

/// The dump as a string.
pub fn text(services: u32, eps: u32, format: Format) -> String {
    let mut out = Vec::new();
    write(&mut out, services, eps, format).expect("writing to memory");
    String::from_utf8(out).expect("UTF-8")
}
