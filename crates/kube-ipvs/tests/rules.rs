//! Table-driven cases for every model and desired-state rule. Each case names the stock
//! kube-proxy behaviour it pins, or the deliberate difference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{bound, cfg, engine, members, rejected, table};
use kube_ipvs::{Engine, PlannerConfig};

struct Case {
    name: &'static str,
    pins: &'static str,
    config: fn(&mut PlannerConfig),
    yaml: &'static str,
    check: fn(&Engine),
}

fn none(_: &mut PlannerConfig) {}

const SVC_WEB: &str = "
apiVersion: v1
kind: Service
metadata: {namespace: default, name: web}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
";

fn slice(name: &str, endpoints: &str) -> String {
    format!(
        "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: default
  name: {name}
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: {endpoints}
"
    )
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "externalname-skipped",
            pins: "stock: type ExternalName is never programmed",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: ExternalName, externalName: a.b}\n",
            check: |e| {
                assert!(table(e).is_empty());
                assert_eq!(e.index().skipped().len(), 1);
            },
        },
        Case {
            name: "headless-skipped",
            pins: "stock: clusterIP None is skipped",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: None, ports: [{port: 80}]}\n",
            check: |e| assert!(table(e).is_empty()),
        },
        Case {
            name: "service-proxy-name-label-skipped",
            pins: "stock: watch selector !service.kubernetes.io/service-proxy-name",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x, labels: {service.kubernetes.io/service-proxy-name: other}}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n",
            check: |e| assert!(table(e).is_empty()),
        },
        Case {
            name: "headless-label-skipped",
            pins: "stock: watch selector !service.kubernetes.io/headless",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x, labels: {service.kubernetes.io/headless: ''}}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n",
            check: |e| assert!(table(e).is_empty()),
        },
        Case {
            name: "slices-joined-and-deduplicated",
            pins: "stock: slices joined by kubernetes.io/service-name, duplicates across slices removed, first address only",
            config: none,
            yaml: concat!(
                "apiVersion: v1\nkind: Service\nmetadata: {namespace: default, name: web}\nspec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}\n",
                "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: default, name: a, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.0.0.1, 10.0.0.99]}, {addresses: [10.0.0.2]}]\n",
                "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: default, name: b, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.0.0.2]}, {addresses: [10.0.0.3]}]\n",
                "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: default, name: c, labels: {kubernetes.io/service-name: web}}\naddressType: FQDN\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [db.example.com]}]\n",
            ),
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080"]
                );
            },
        },
        Case {
            name: "port-matched-by-name-and-protocol",
            pins: "stock: a slice port matches the Service port by name and protocol",
            config: none,
            yaml: concat!(
                "apiVersion: v1\nkind: Service\nmetadata: {namespace: default, name: web}\nspec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]}\n",
                "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: default, name: a, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]\nendpoints: [{addresses: [10.0.0.1]}]\n",
            ),
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.10:80 rr -> 10.0.0.1:8080",
                        "UDP 10.96.0.10:53 rr -> 10.0.0.1:5353"
                    ]
                );
            },
        },
        Case {
            name: "conditions-ready-only",
            pins: "stock: ready nil means true; not-ready endpoints unused while ready ones exist",
            config: none,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080 10.0.0.2:8080"]
                )
            },
        },
        Case {
            name: "serving-terminating-fallback",
            pins: "stock: with no ready endpoint, serving+terminating ones are used (not terminating-only)",
            config: none,
            yaml: "",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.10:80 rr -> 10.0.0.2:8080"]),
        },
        Case {
            name: "local-serving-terminating-fallback",
            pins: "stock CategorizeEndpoints: the Local list is local Ready endpoints, else local serving+terminating ones (independently of the Cluster list, which has a remote Ready one)",
            config: none,
            yaml: "",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080"]),
        },
        Case {
            name: "zone-hints-used",
            pins: "stock topology.go: hints used when every ready endpoint has one and one matches the zone",
            config: none,
            yaml: "",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080"]),
        },
        Case {
            name: "zone-hints-ignored-when-incomplete",
            pins: "stock topology.go: one ready endpoint without hints disables topology",
            config: none,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080 10.0.0.2:8080"]
                )
            },
        },
        Case {
            name: "node-hints-off",
            pins: "stock before 1.34 (PreferSameTrafficDistribution off): node hints ignored; here topology_node_hints = false",
            config: |c| c.topology_node_hints = false,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080 10.0.0.2:8080"]
                )
            },
        },
        Case {
            name: "node-hints-on-by-default",
            pins: "stock topologyModeFromHints with PreferSameTrafficDistribution (beta, on by default in 1.34; GA in 1.35): endpoints hinted for this node only",
            config: none,
            yaml: "",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.10:80 rr -> 10.0.0.2:8080"]),
        },
        Case {
            name: "internal-local-uses-local",
            pins: "stock: internalTrafficPolicy Local uses node-local endpoints",
            config: none,
            yaml: "",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080"]),
        },
        Case {
            name: "internal-local-no-fallback-for-clusterip-only",
            pins: "stock CategorizeEndpoints: ITP Local on a ClusterIP-only Service never uses cluster endpoints, so no fallback",
            config: none,
            yaml: "",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.10:80 rr ->"]),
        },
        Case {
            name: "external-local-falls-back",
            pins: "stock IPVS (kubernetes#97081): ETP Local without local endpoints falls back to cluster endpoints",
            config: none,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.10:80 rr -> 10.0.0.2:8080",
                        "TCP 192.168.1.10:30080 rr -> 10.0.0.2:8080"
                    ]
                );
                assert_eq!(members(e, "KUBE-NODE-PORT-LOCAL-TCP"), ["30080"]);
            },
        },
        Case {
            name: "internal-and-external-local-fall-back",
            pins: "stock UsesClusterEndpoints (serviceport.go): an externally accessible Service needs cluster endpoints even with ETP Local, so ITP Local + ETP Local without a local endpoint falls back on every VS (syncEndpoint, kubernetes#97081)",
            config: none,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.10:80 rr -> 10.0.0.2:8080",
                        "TCP 192.168.1.10:30080 rr -> 10.0.0.2:8080"
                    ]
                );
            },
        },
        Case {
            name: "external-local-strict-drops",
            pins: "deliberate difference (strict_local): ETP Local without local endpoints has no real servers, like iptables mode",
            config: |c| c.strict_local = true,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.10:80 rr -> 10.0.0.2:8080",
                        "TCP 192.168.1.10:30080 rr ->"
                    ]
                );
            },
        },
        Case {
            name: "affinity-default-timeout",
            pins: "stock: ClientIP affinity -> persistent, timeout 10800, netmask /32 (v4) and /128 (v6)",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIPs: [10.96.0.1, 'fd00:96::1'], sessionAffinity: ClientIP, ports: [{port: 80}]}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.1:80 rr persistent=10800/32 ->",
                        "TCP [fd00:96::1]:80 rr persistent=10800/128 ->"
                    ]
                );
            },
        },
        Case {
            name: "affinity-timeout",
            pins: "stock: sessionAffinityConfig.clientIP.timeoutSeconds is the persistence timeout",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}, ports: [{port: 80}]}\n",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.1:80 rr persistent=60/32 ->"]),
        },
        Case {
            name: "affinity-timeout-invalid",
            pins: "validation: timeoutSeconds outside 1-86400 rejects the Service with a reason",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}, ports: [{port: 80}]}\n",
            check: |e| {
                assert!(table(e).is_empty());
                assert_eq!(
                    rejected(e),
                    [
                        "Service d/x: spec.sessionAffinityConfig.clientIP.timeoutSeconds: invalid timeout 0"
                    ]
                );
            },
        },
        Case {
            name: "dual-stack-one-vs-per-family",
            pins: "stock: one proxier per family; IPv6 sets named KUBE-6-*",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIPs: [10.96.0.1, 'fd00:96::1'], ports: [{port: 80}]}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.1:80 rr ->", "TCP [fd00:96::1]:80 rr ->"]
                );
                assert_eq!(members(e, "KUBE-6-CLUSTER-IP"), ["fd00:96::1,tcp:80"]);
            },
        },
        Case {
            name: "addresses-per-family",
            pins: "stock newBaseServiceInfo: externalIPs, LB ingress IPs and source ranges are split by family (trimmed of spaces); a family without a ClusterIP gets nothing (serviceToServiceMap)",
            config: |c| c.primary_node_ips = vec!["192.168.1.10".parse().unwrap()],
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: LoadBalancer, clusterIPs: [10.96.0.1], externalIPs: [198.51.100.1, '2001:db8::1'], loadBalancerSourceRanges: [' 192.168.0.0/16 ', '2001:db8::/32'], ports: [{port: 80, nodePort: 30080}]}\nstatus: {loadBalancer: {ingress: [{ip: 203.0.113.1}, {ip: '2001:db8::2'}]}}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.1:80 rr ->",
                        "TCP 192.168.1.10:30080 rr ->",
                        "TCP 198.51.100.1:80 rr ->",
                        "TCP 203.0.113.1:80 rr ->"
                    ]
                );
                assert_eq!(
                    members(e, "KUBE-LOAD-BALANCER-SOURCE-CIDR"),
                    ["203.0.113.1,tcp:80,192.168.0.0/16"]
                );
                assert!(members(e, "KUBE-6-LOAD-BALANCER-SOURCE-CIDR").is_empty());
            },
        },
        Case {
            name: "family-disabled",
            pins: "a node programming only IPv4 ignores IPv6 ClusterIPs",
            config: |c| c.families = vec![kube_ipvs::types::Family::V4],
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIPs: [10.96.0.1, 'fd00:96::1'], ports: [{port: 80}]}\n",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.1:80 rr ->"]),
        },
        Case {
            name: "load-balancer-ingress",
            pins: "stock: LB ingress IPs get a VS, are bound and in KUBE-LOAD-BALANCER; ipMode Proxy skipped (KEP-1860)",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.1, ports: [{port: 80}]}\nstatus: {loadBalancer: {ingress: [{ip: 203.0.113.1}, {ip: 203.0.113.2, ipMode: Proxy}, {hostname: lb.example.com}]}}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.1:80 rr ->", "TCP 203.0.113.1:80 rr ->"]
                );
                assert_eq!(bound(e), ["203.0.113.1"]);
                assert_eq!(members(e, "KUBE-LOAD-BALANCER"), ["203.0.113.1,tcp:80"]);
                assert_eq!(members(e, "KUBE-IPVS-IPS"), ["203.0.113.1"]);
            },
        },
        Case {
            name: "lb-source-ranges",
            pins: "stock: source ranges fill KUBE-LOAD-BALANCER-FW/-SOURCE-CIDR, and -SOURCE-IP when a range holds the node IP",
            config: |c| c.primary_node_ips = vec!["192.168.1.10".parse().unwrap()],
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.1, loadBalancerSourceRanges: [192.168.0.0/16], ports: [{port: 80}]}\nstatus: {loadBalancer: {ingress: [{ip: 203.0.113.1}]}}\n",
            check: |e| {
                assert_eq!(members(e, "KUBE-LOAD-BALANCER-FW"), ["203.0.113.1,tcp:80"]);
                assert_eq!(
                    members(e, "KUBE-LOAD-BALANCER-SOURCE-CIDR"),
                    ["203.0.113.1,tcp:80,192.168.0.0/16"]
                );
                assert_eq!(
                    members(e, "KUBE-LOAD-BALANCER-SOURCE-IP"),
                    ["203.0.113.1,tcp:80,203.0.113.1"]
                );
            },
        },
        Case {
            name: "lb-source-ranges-refuse-the-node",
            pins: "stock syncProxyRules (kubernetes#119656): an LB IP:port whose source ranges leave out the node IP is refused to the node too (KUBE-IPVS-OUT-FILTER); one whose range holds it is not",
            config: |c| c.primary_node_ips = vec!["192.168.1.10".parse().unwrap()],
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.1, loadBalancerSourceRanges: [198.51.100.0/24], ports: [{port: 80}, {name: dns, port: 53, protocol: UDP}]}\nstatus: {loadBalancer: {ingress: [{ip: 203.0.113.1}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: yy}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.2, loadBalancerSourceRanges: [192.168.0.0/16], ports: [{port: 80}]}\nstatus: {loadBalancer: {ingress: [{ip: 203.0.113.2}]}}\n",
            check: |e| {
                let inputs = e.desired().iptables_inputs();
                let refused: Vec<String> = inputs[&kube_ipvs::types::Family::V4]
                    .lb_no_node_access
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                assert_eq!(refused, ["TCP  203.0.113.1:80", "UDP  203.0.113.1:53"]);
            },
        },
        Case {
            name: "external-ips",
            pins: "stock: each externalIP gets a VS, is bound, and is in KUBE-EXTERNAL-IP (-LOCAL with ETP Local)",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, externalIPs: [198.51.100.1, 192.168.1.10], externalTrafficPolicy: Local, ports: [{port: 80}]}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.1:80 rr ->",
                        "TCP 192.168.1.10:80 rr ->",
                        "TCP 198.51.100.1:80 rr ->"
                    ]
                );
                // A node address is already local: never bound to the dummy device.
                assert_eq!(bound(e), ["198.51.100.1"]);
                assert_eq!(
                    members(e, "KUBE-EXTERNAL-IP-LOCAL"),
                    ["192.168.1.10,tcp:80", "198.51.100.1,tcp:80"]
                );
            },
        },
        Case {
            name: "external-ips-local-not-masqueraded",
            pins: "stock syncProxyRules: an externalIP goes to KUBE-EXTERNAL-IP-LOCAL with ETP Local, else to KUBE-EXTERNAL-IP (masqueraded): never both, so Local keeps the client address",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, externalIPs: [198.51.100.1], externalTrafficPolicy: Local, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: yy}\nspec: {clusterIP: 10.96.0.2, externalIPs: [198.51.100.2], ports: [{port: 80}]}\n",
            check: |e| {
                assert_eq!(members(e, "KUBE-EXTERNAL-IP"), ["198.51.100.2,tcp:80"]);
                assert_eq!(
                    members(e, "KUBE-EXTERNAL-IP-LOCAL"),
                    ["198.51.100.1,tcp:80"]
                );
            },
        },
        Case {
            name: "node-ports-on-node-addresses",
            pins: "stock: NodePort VS on every node address of the family but loopback; bitmap sets per protocol; SCTP hash set per address",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: NodePort, clusterIP: 10.96.0.1, ports: [{name: a, port: 80, nodePort: 30080}, {name: b, port: 53, protocol: UDP, nodePort: 30053}, {name: c, port: 99, protocol: SCTP, nodePort: 30099}]}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    [
                        "TCP 10.96.0.1:80 rr ->",
                        "TCP 192.168.1.10:30080 rr ->",
                        "UDP 10.96.0.1:53 rr ->",
                        "UDP 192.168.1.10:30053 rr ->",
                        "SCTP 10.96.0.1:99 rr ->",
                        "SCTP 192.168.1.10:30099 rr ->",
                    ]
                );
                assert_eq!(members(e, "KUBE-NODE-PORT-TCP"), ["30080"]);
                assert_eq!(members(e, "KUBE-NODE-PORT-UDP"), ["30053"]);
                assert_eq!(
                    members(e, "KUBE-NODE-PORT-SCTP-HASH"),
                    ["192.168.1.10,sctp:30099"]
                );
            },
        },
        Case {
            name: "node-port-addresses-filter",
            pins: "stock: nodePortAddresses restricts NodePort VSs to matching node addresses",
            config: |c| {
                c.node_addresses.push("10.1.0.5".parse().unwrap());
                c.node_port_addresses = vec!["10.1.0.0/16".parse().unwrap()];
            },
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: NodePort, clusterIP: 10.96.0.1, ports: [{port: 80, nodePort: 30080}]}\n",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.1.0.5:30080 rr ->", "TCP 10.96.0.1:80 rr ->"]
                )
            },
        },
        Case {
            name: "health-check-node-port",
            pins: "stock: LB with ETP Local serves healthCheckNodePort; port in KUBE-HEALTH-CHECK-NODE-PORT",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.1, externalTrafficPolicy: Local, healthCheckNodePort: 32000, ports: [{port: 80, nodePort: 30080}]}\n",
            check: |e| {
                let hc = e.desired().health_checks();
                assert_eq!(hc.len(), 1);
                assert_eq!(hc.values().next().unwrap().port, 32000);
                assert_eq!(members(e, "KUBE-HEALTH-CHECK-NODE-PORT"), ["32000"]);
            },
        },
        Case {
            name: "health-check-node-port-by-type",
            pins: "stock NeedsHealthCheck (pkg/api/v1/service): type LoadBalancer + ETP Local, whatever the addresses: no node ports (allocateLoadBalancerNodePorts: false), no ingress yet, or only a hostname / ipMode Proxy ingress",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.1, externalTrafficPolicy: Local, allocateLoadBalancerNodePorts: false, healthCheckNodePort: 32000, ports: [{port: 80}]}\nstatus: {loadBalancer: {ingress: [{hostname: lb.example}, {ip: 203.0.113.9, ipMode: Proxy}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: np}\nspec: {type: NodePort, clusterIP: 10.96.0.2, externalTrafficPolicy: Local, healthCheckNodePort: 32001, ports: [{port: 80, nodePort: 30080}]}\n",
            check: |e| {
                let hc: Vec<(String, u16)> = e
                    .desired()
                    .health_checks()
                    .iter()
                    .map(|(k, h)| (k.to_string(), h.port))
                    .collect();
                assert_eq!(hc, [("d/x".to_owned(), 32000)]);
                assert_eq!(members(e, "KUBE-HEALTH-CHECK-NODE-PORT"), ["32000"]);
            },
        },
        Case {
            name: "health-check-only-where-programmed",
            pins: "stock ServicePortMap.HealthCheckNodePorts: only Services the proxier programs (a ClusterIP of a family the node serves) get a health check",
            config: |c| c.families = vec![kube_ipvs::types::Family::V4],
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: v6}\nspec: {type: LoadBalancer, clusterIPs: ['fd00:96::1'], externalTrafficPolicy: Local, healthCheckNodePort: 32000, ports: [{port: 80, nodePort: 30080}]}\n",
            check: |e| {
                assert!(e.desired().health_checks().is_empty());
                assert!(members(e, "KUBE-HEALTH-CHECK-NODE-PORT").is_empty());
            },
        },
        Case {
            name: "health-check-counts-local-ready-ips",
            pins: "stock EndpointsMap.LocalReadyEndpoints: local Ready endpoints only (a node with only terminating local endpoints answers 503), counted once per IP over all ports",
            config: none,
            yaml: "",
            check: |e| {
                let counts: Vec<(String, u32)> = e
                    .desired()
                    .health_checks()
                    .iter()
                    .map(|(k, h)| (k.to_string(), h.local_endpoints))
                    .collect();
                assert_eq!(
                    counts,
                    [
                        ("default/terminating".to_owned(), 0),
                        ("default/web".to_owned(), 3)
                    ]
                );
            },
        },
        Case {
            name: "duplicate-endpoint-prefers-non-terminating",
            pins: "stock EndpointSliceCache.addEndpoints: an address in two slices (a reused pod IP) takes the non-terminating copy's conditions, whatever the slice order",
            config: none,
            yaml: "",
            check: |e| {
                assert_eq!(
                    table(e),
                    ["TCP 10.96.0.10:80 rr -> 10.0.0.1:8080 10.0.0.2:8080"]
                )
            },
        },
        Case {
            name: "scheduler-annotation",
            pins: "ours: kube-ipvs.io/scheduler + scheduler-flags (kubernetes#115526: sh hashing on ports)",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x, annotations: {kube-ipvs.io/scheduler: sh, kube-ipvs.io/scheduler-flags: 'sh-fallback, sh-port'}}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.1:80 sh flags=0x18 ->"]),
        },
        Case {
            name: "scheduler-flags-mismatch-rejected",
            pins: "validation: a flag of another scheduler rejects the Service",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x, annotations: {kube-ipvs.io/scheduler: rr, kube-ipvs.io/scheduler-flags: sh-port}}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n",
            check: |e| {
                assert!(table(e).is_empty());
                assert_eq!(rejected(e).len(), 1);
            },
        },
        Case {
            name: "default-mh-gets-mh-port",
            pins: "stock: the mh scheduler is programmed with mh-port",
            config: |c| *c = c.clone().with_scheduler(kube_ipvs::types::Scheduler::Mh),
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n",
            check: |e| assert_eq!(table(e), ["TCP 10.96.0.1:80 mh flags=0x10 ->"]),
        },
        Case {
            name: "invalid-ip-rejected-others-unaffected",
            pins: "bad input: an invalid clusterIP rejects that Service only",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: bad}\nspec: {clusterIP: 10.96.0.999, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: good}\nspec: {clusterIP: 10.96.0.2, ports: [{name: a, port: 80}, {name: b, port: 81, protocol: HTTP}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: ok}\nspec: {clusterIP: 10.96.0.3, ports: [{port: 80}]}\n",
            check: |e| {
                assert_eq!(table(e), ["TCP 10.96.0.3:80 rr ->"]);
                assert_eq!(
                    rejected(e),
                    [
                        "Service d/bad: spec.clusterIPs[0]: invalid IP address \"10.96.0.999\"",
                        "Service d/good: spec.ports[1].protocol: unsupported protocol \"HTTP\"",
                    ]
                );
            },
        },
        Case {
            name: "slice-without-service",
            pins: "bad input: a slice without its Service is reported, not programmed",
            config: none,
            yaml: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: d, name: s, labels: {kubernetes.io/service-name: gone}}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\n",
            check: |e| assert_eq!(rejected(e), ["EndpointSlice d/s: no usable Service d/gone"]),
        },
        Case {
            name: "slice-without-service-label",
            pins: "stock endpointSliceCacheKeys: a slice without kubernetes.io/service-name is ignored (here also reported)",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: d, name: s}\naddressType: IPv4\nports: [{name: '', port: 8080}]\nendpoints: [{addresses: [10.0.0.1]}]\n",
            check: |e| {
                assert_eq!(table(e), ["TCP 10.96.0.1:80 rr ->"]);
                assert_eq!(rejected(e).len(), 1);
            },
        },
        Case {
            name: "slice-endpoint-of-another-family-rejected",
            pins: "stock addEndpoints skips an endpoint whose address is not of the slice's family (with an Event); the API server refuses such slices, so here the slice is rejected with a reason and its Service keeps its other slices",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: d, name: bad, labels: {kubernetes.io/service-name: x}}\naddressType: IPv4\nports: [{name: '', port: 8080}]\nendpoints: [{addresses: ['fd00::1']}, {addresses: [10.0.0.9]}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: d, name: good, labels: {kubernetes.io/service-name: x}}\naddressType: IPv4\nports: [{name: '', port: 8080}]\nendpoints: [{addresses: [10.0.0.1]}]\n",
            check: |e| {
                assert_eq!(table(e), ["TCP 10.96.0.1:80 rr -> 10.0.0.1:8080"]);
                assert_eq!(rejected(e).len(), 1);
            },
        },
        Case {
            name: "cluster-ips-routed-not-bound",
            pins: "deliberate difference: ClusterIPs inside a service CIDR are made local by one route per CIDR; strays are bound",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: yy}\nspec: {clusterIP: 10.200.0.1, ports: [{port: 80}]}\n",
            check: |e| {
                let routes: Vec<String> = e
                    .desired()
                    .routes()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                assert_eq!(routes, ["10.96.0.0/16", "fd00:96::/112"]);
                assert_eq!(bound(e), ["10.200.0.1"]);
            },
        },
        Case {
            name: "bind-cluster-ips",
            pins: "stock-compatible option: every ClusterIP bound to kube-ipvs0, no routes",
            config: |c| c.bind_cluster_ips = true,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n",
            check: |e| {
                assert!(e.desired().routes().is_empty());
                assert_eq!(bound(e), ["10.96.0.1"]);
            },
        },
        Case {
            name: "service-cidr-objects",
            pins: "ServiceCIDR objects (networking.k8s.io/v1) add routed CIDRs",
            config: |c| c.service_cidrs.clear(),
            yaml: "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\nspec: {cidrs: [10.200.0.0/16]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: yy}\nspec: {clusterIP: 10.200.0.1, ports: [{port: 80}]}\n",
            check: |e| {
                assert!(bound(e).is_empty());
                assert_eq!(e.desired().routes().len(), 1);
            },
        },
        Case {
            name: "loop-back-set",
            pins: "stock: every local endpoint is in KUBE-LOOP-BACK as ip,proto:port,ip (hairpin masquerade)",
            config: none,
            yaml: "",
            check: |e| assert_eq!(members(e, "KUBE-LOOP-BACK"), ["10.0.0.1,tcp:8080,10.0.0.1"]),
        },
        Case {
            name: "vs-conflict",
            pins: "two Services claiming one VS: the first by name keeps it, the other is reported",
            config: none,
            yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: b}\nspec: {clusterIP: 10.96.0.2, externalIPs: [198.51.100.1], ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: a}\nspec: {clusterIP: 10.96.0.1, externalIPs: [198.51.100.1], ports: [{port: 80}]}\n",
            check: |e| {
                let owner = e
                    .desired()
                    .virtual_servers()
                    .values()
                    .find(|v| v.key.to_string().contains("198.51"))
                    .unwrap()
                    .owner
                    .to_string();
                assert_eq!(owner, "d/a:");
                assert_eq!(e.desired().conflicts().len(), 1);
            },
        },
    ]
}

/// Inline slices for the cases whose YAML is empty (they share the `web` Service shape).
fn fixture(name: &str) -> String {
    let svc = |extra: &str| SVC_WEB.replace("  ports:", &format!("{extra}  ports:"));
    match name {
        "conditions-ready-only" => svc("")
            + &slice("a", "[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: true}}, {addresses: [10.0.0.3], conditions: {ready: false}}]"),
        "serving-terminating-fallback" => svc("")
            + &slice("a", "[{addresses: [10.0.0.1], conditions: {ready: false, serving: false, terminating: true}}, {addresses: [10.0.0.2], conditions: {ready: false, serving: true, terminating: true}}, {addresses: [10.0.0.3], conditions: {ready: false}}]"),
        "local-serving-terminating-fallback" => svc("  internalTrafficPolicy: Local\n")
            + &slice("a", "[{addresses: [10.0.0.1], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}, {addresses: [10.0.0.2], nodeName: node-b}, {addresses: [10.0.0.3], nodeName: node-a, conditions: {ready: false, serving: false, terminating: true}}]"),
        "zone-hints-used" => zone_node() + &svc("")
            + &slice("a", "[{addresses: [10.0.0.1], hints: {forZones: [{name: z1}]}}, {addresses: [10.0.0.2], hints: {forZones: [{name: z2}]}}]"),
        "zone-hints-ignored-when-incomplete" => zone_node() + &svc("")
            + &slice("a", "[{addresses: [10.0.0.1], hints: {forZones: [{name: z1}]}}, {addresses: [10.0.0.2]}]"),
        "node-hints-off" | "node-hints-on-by-default" => svc("")
            + &slice("a", "[{addresses: [10.0.0.1], hints: {forNodes: [{name: node-b}]}}, {addresses: [10.0.0.2], hints: {forNodes: [{name: node-a}]}}]"),
        "internal-local-uses-local" => svc("  internalTrafficPolicy: Local\n")
            + &slice("a", "[{addresses: [10.0.0.1], nodeName: node-a}, {addresses: [10.0.0.2], nodeName: node-b}]"),
        "internal-local-no-fallback-for-clusterip-only" => svc("  internalTrafficPolicy: Local\n")
            + &slice("a", "[{addresses: [10.0.0.2], nodeName: node-b}]"),
        "external-local-falls-back" | "external-local-strict-drops" => {
            SVC_WEB.replace("  ports: [{name: http, port: 80}]", "  type: NodePort\n  externalTrafficPolicy: Local\n  ports: [{name: http, port: 80, nodePort: 30080}]")
                + &slice("a", "[{addresses: [10.0.0.2], nodeName: node-b}]")
        }
        "internal-and-external-local-fall-back" => {
            SVC_WEB.replace("  ports: [{name: http, port: 80}]", "  type: NodePort\n  internalTrafficPolicy: Local\n  externalTrafficPolicy: Local\n  ports: [{name: http, port: 80, nodePort: 30080}]")
                + &slice("a", "[{addresses: [10.0.0.2], nodeName: node-b}]")
        }
        "health-check-counts-local-ready-ips" => {
            let lb = |name: &str, hc: u16| {
                SVC_WEB.replace("name: web", &format!("name: {name}")).replace(
                    "  ports: [{name: http, port: 80}]",
                    &format!("  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: {hc}\n  ports: [{{name: http, port: 80, nodePort: 30080}}, {{name: https, port: 443, nodePort: 30443}}]"),
                )
            };
            let slice_of = |svc: &str, name: &str, port: &str, eps: &str| {
                slice(name, eps)
                    .replace("service-name: web", &format!("service-name: {svc}"))
                    .replace("name: http, port: 8080", port)
            };
            // web: 10.0.0.1 serves http and https (one IP), 10.0.0.5 http only, 10.0.0.3 https
            // only: 3 IPs; a remote and a local terminating endpoint do not count.
            lb("web", 32000)
                + &slice_of("web", "a", "name: http, port: 8080", "[{addresses: [10.0.0.1], nodeName: node-a}, {addresses: [10.0.0.5], nodeName: node-a}, {addresses: [10.0.0.2], nodeName: node-b}, {addresses: [10.0.0.4], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}]")
                + &slice_of("web", "b", "name: https, port: 8443", "[{addresses: [10.0.0.1], nodeName: node-a}, {addresses: [10.0.0.3], nodeName: node-a}]")
                + "---\n"
                + &lb("terminating", 32001)
                + &slice_of("terminating", "t", "name: http, port: 8080", "[{addresses: [10.0.1.1], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}]")
        }
        "duplicate-endpoint-prefers-non-terminating" => svc("")
            // Slice a (first by name) still lists the old, terminating pod at the reused IP.
            + &slice("a", "[{addresses: [10.0.0.1], conditions: {ready: false, serving: true, terminating: true}}, {addresses: [10.0.0.2]}]")
            + &slice("b", "[{addresses: [10.0.0.1]}]"),
        "loop-back-set" => svc("") + &slice("a", "[{addresses: [10.0.0.1], nodeName: node-a}, {addresses: [10.0.0.2], nodeName: node-b}]"),
        _ => String::new(),
    }
}

fn zone_node() -> String {
    "apiVersion: v1\nkind: Node\nmetadata: {name: node-a, labels: {topology.kubernetes.io/zone: z1}}\n---\n".to_owned()
}

#[test]
fn every_rule() {
    let mut failed = Vec::new();
    for case in cases() {
        let mut c = cfg();
        (case.config)(&mut c);
        let yaml = if case.yaml.is_empty() {
            fixture(case.name)
        } else {
            case.yaml.to_owned()
        };
        assert!(!yaml.is_empty(), "case {} has no fixture", case.name);
        let e = engine(c, &yaml);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.check)(&e)));
        if res.is_err() {
            eprintln!(
                "case {:?} ({}) failed; table: {:#?}",
                case.name,
                case.pins,
                table(&e)
            );
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

#[test]
fn rejected_update_keeps_last_valid_version() {
    let good = "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: x}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n";
    let mut e = engine(cfg(), good);
    let mut dump = kube_ipvs::dump::ClusterDump::default();
    dump.parse(&good.replace("port: 80", "port: 70000"), "t")
        .unwrap();
    e.apply_service(&dump.services[0]);
    let ops = e.plan_incremental(std::time::Duration::ZERO);
    assert!(
        ops.is_empty(),
        "a rejected update must not change anything: {ops:?}"
    );
    assert_eq!(table(&e), ["TCP 10.96.0.1:80 rr ->"]);
    assert_eq!(
        rejected(&e),
        ["Service d/x: spec.ports[0].port: invalid port 70000"]
    );
}

/// A Service port that loses several virtual-server conflicts is reported with the first of them
/// (in virtual-server order), the same text on every run: never in hash order.
#[test]
fn conflict_report_is_the_same_every_time() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: b}\nspec: {clusterIP: 10.96.0.2, externalIPs: [198.51.100.2, 198.51.100.1, 198.51.100.3], ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: d, name: a}\nspec: {clusterIP: 10.96.0.1, externalIPs: [198.51.100.3, 198.51.100.1, 198.51.100.2], ports: [{port: 80}]}\n";
    for _ in 0..32 {
        let e = engine(cfg(), yaml);
        let reported: Vec<String> = e
            .desired()
            .conflicts()
            .iter()
            .map(|(port, r)| format!("{port}: {r}"))
            .collect();
        assert_eq!(
            reported,
            ["d/b:: virtual server TCP  198.51.100.1:80 is already owned by d/a:"]
        );
    }
}
