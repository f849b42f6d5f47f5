//! The core bench's workload, shared with `examples/engine-memory.rs`: Service `i` has two TCP
//! ports (80, 443) and one EndpointSlice of two endpoints on other nodes.
#![allow(dead_code)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_ipvs::PlannerConfig;

pub const NODE: &str = "node-0";

pub fn ip4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

pub fn service(i: u32) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(format!("ns{}", i % 100)),
            name: Some(format!("svc{i}")),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip4(0x0a60_0000 + i)),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("https".into()),
                    port: 443,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn slice(i: u32, generation: u32) -> EndpointSlice {
    let ep = |n: u32, node: u32| Endpoint {
        addresses: vec![ip4(0x0af4_0000 + n)],
        node_name: Some(format!("node-{node}")),
        ..Default::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(format!("ns{}", i % 100)),
            name: Some(format!("svc{i}-abcde")),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                format!("svc{i}"),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![
            EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            EndpointPort {
                name: Some("https".into()),
                port: Some(8443),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        endpoints: vec![ep(2 * i + generation, i % 7), ep(2 * i + 1, (i + 1) % 7)],
    }
}

pub fn config() -> PlannerConfig {
    let mut cfg = PlannerConfig::new(NODE);
    cfg.service_cidrs = vec!["10.96.0.0/12".parse().unwrap()];
    cfg
}
