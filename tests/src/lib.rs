//! End-to-end scenarios for kube-ipvs; they run inside the kernel lab (`cargo xtask test`).
//! Helpers shared by the scenarios: backends and clients in network namespaces of their own.
#![forbid(unsafe_code)]
// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

pub use lab_kit::backend::SERVER;

/// Connects `n` times to `vip`:`port` from the namespace of `pid`; the greetings received (fewer
/// than `n` when connections fail).
pub fn ask_vip(pid: u32, vip: &str, port: u16, n: usize) -> Vec<String> {
    let script = format!(
        "import socket\nfor _ in range({n}):\n    try:\n        c = socket.create_connection(('{vip}', {port}), timeout=5)\n        print(c.makefile().readline().strip(), flush=True)\n        c.close()\n    except OSError:\n        pass\n"
    );
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "python3", "-c", &script])
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The node the scenarios run as.
pub const NODE: &str = "node-a";
/// The ClusterIP of Service default/web.
pub const VIP: &str = "10.96.0.10";

/// Backend `i`'s address (as [`spawn_in_netns`] wires it).
pub fn backend_ip(i: u8) -> std::net::IpAddr {
    std::net::IpAddr::from([10, 0, i, 1])
}

/// The scenarios' cluster as a YAML stream: Node [`NODE`] (10.0.200.1) and Service default/web at
/// [`VIP`] (http: 80 -> 8080).
pub fn cluster_yaml() -> String {
    format!(
        r#"
apiVersion: v1
kind: Node
metadata: {{name: {NODE}}}
status:
  addresses: [{{type: InternalIP, address: 10.0.200.1}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  type: ClusterIP
  clusterIP: {VIP}
  clusterIPs: [{VIP}]
  ipFamilies: [IPv4]
  ports: [{{name: http, port: 80, protocol: TCP, targetPort: 8080}}]
"#
    )
}

/// web's EndpointSlice as YAML: backends `i` ([`backend_ip`], on node-b), ready.
pub fn slice_yaml(backends: &[u8]) -> String {
    let eps: Vec<String> = backends
        .iter()
        .map(|i| {
            format!(
                "  - addresses: [{}]\n    conditions: {{ready: true, serving: true, terminating: false}}\n    nodeName: node-b\n",
                backend_ip(*i)
            )
        })
        .collect();
    format!(
        r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: default
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
{}"#,
        eps.concat()
    )
}

pub mod lab;
pub mod stock;

pub use lab::{Procs, sh, spawn_in_netns};
