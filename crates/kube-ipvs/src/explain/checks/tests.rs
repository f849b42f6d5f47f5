//! One test (or more) per check, on constructed state: the healthy fixture with one thing broken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::super::inputs::{HttpAnswer, KernelRs, ProbeResult, Target};
use super::super::report::{Check, Verdict};
use super::fixture::{self, WEB, check, edit, healthy, report, subject};
use super::{cluster, kernel, node};
use crate::agent::ChangeKind;
use crate::failures::{FailedOp, Failures};
use crate::types::{Proto, RsKey, VsKey};

fn has(c: &Check, text: &str) -> bool {
    c.summary.contains(text)
        || c.details.iter().any(|d| d.contains(text))
        || c.reason.as_deref().is_some_and(|r| r.contains(text))
        || c.fix.as_deref().is_some_and(|f| f.contains(text))
}

#[track_caller]
fn assert_check(c: &Check, verdict: Verdict, texts: &[&str]) {
    assert_eq!(c.verdict, verdict, "{c:#?}");
    for t in texts {
        assert!(has(c, t), "{t:?} not in {c:#?}");
    }
}

fn vs(addr: &str, port: u16) -> VsKey {
    VsKey::new(Proto::Tcp, addr.parse().unwrap(), port)
}

fn rs(addr: &str, port: u16) -> RsKey {
    RsKey {
        addr: addr.parse().unwrap(),
        port,
    }
}

#[test]
fn a_healthy_service_passes_every_check_and_exits_0() {
    let r = report(&healthy(WEB));
    for c in &r.checks {
        assert!(matches!(c.verdict, Verdict::Pass | Verdict::Skip), "{c:#?}");
    }
    assert_eq!(r.exit_status(), 0);
    assert_eq!(r.service.as_deref(), Some("shop/web"));
    // The order a person goes through them.
    let ids: Vec<&str> = r.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "service",
            "accepted",
            "endpoints",
            "ports",
            "reachable",
            "selection",
            "ipvs",
            "address",
            "nodeports",
            "healthcheck",
            "ipset",
            "spread",
            "conntrack",
            "agent"
        ]
    );
}

// ---- service -----------------------------------------------------------------------------

#[test]
fn service_describes_type_ports_and_policies() {
    let c = check(&healthy(WEB), cluster::service);
    assert_check(
        &c,
        Verdict::Pass,
        &[
            "NodePort 10.96.0.20",
            "http 80/TCP -> 8080 (nodePort 30080)",
            "internalTrafficPolicy Cluster, externalTrafficPolicy Cluster",
            "selector app=web",
        ],
    );
}

#[test]
fn service_not_found_fails_with_where_to_look() {
    let mut i = healthy(WEB);
    i.cluster.as_mut().unwrap().service = None;
    i.target = Target::Service {
        namespace: "shop".into(),
        name: "webb".into(),
    };
    let r = report(&i);
    assert_check(
        r.check("service").unwrap(),
        Verdict::Fail,
        &["shop/webb not found", "kubectl -n shop get services"],
    );
    assert_eq!(r.check("endpoints").unwrap().verdict, Verdict::Skip);
    assert_eq!(r.exit_status(), 1);
}

#[test]
fn an_address_nobody_owns_names_the_foreign_virtual_server() {
    let mut i = healthy(WEB);
    i.cluster.as_mut().unwrap().service = None;
    i.target = "10.0.0.9:443".parse().unwrap();
    i.kernel.as_mut().unwrap().vs.insert(
        vs("10.0.0.9", 443),
        super::super::inputs::KernelVs {
            spec: None,
            scheduler: "wlc".into(),
            reals: Vec::new(),
        },
    );
    let c = check(&i, cluster::service);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "no Service answers 10.0.0.9:443",
            "TCP  10.0.0.9:443 (wlc",
            "another tool",
        ],
    );
}

#[test]
fn a_headless_service_is_not_proxied_by_design() {
    let i = healthy(&edit(WEB, "clusterIPs: [10.96.0.20]", "clusterIPs: [None]"));
    let r = report(&i);
    assert_check(
        r.check("service").unwrap(),
        Verdict::Warn,
        &["not proxied", "DNS answers its name with the Pod IPs"],
    );
    assert_eq!(r.check("ipvs").unwrap().verdict, Verdict::Skip);
}

#[test]
fn an_unreadable_cluster_is_unknown_and_exits_2() {
    let mut i = healthy(WEB);
    i.cluster = Err("list services: 403 Forbidden".into());
    let r = report(&i);
    assert_check(
        r.check("service").unwrap(),
        Verdict::Unknown,
        &["403 Forbidden", "--kubeconfig"],
    );
    assert_eq!(r.exit_status(), 2);
}

// ---- accepted ----------------------------------------------------------------------------

#[test]
fn a_rejected_service_names_the_field_and_the_reason() {
    let yaml = edit(
        WEB,
        "  selector: {app: web}\n",
        "  selector: {app: web}\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n",
    );
    let c = check(&healthy(&yaml), cluster::accepted);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: invalid timeout 0",
            "InvalidAffinityTimeout",
            "kubectl -n shop edit service web",
        ],
    );
}

#[test]
fn a_rejected_slice_and_a_contested_virtual_server_fail_accepted() {
    let yaml = edit(WEB, "addresses: [10.244.2.6]", "addresses: [10.244.2.666]");
    let mut i = healthy(&yaml);
    let mut o = crate::owners::Owners::from_desired(subject(&i).desired());
    // The agent programmed the ClusterIP's virtual server for another Service.
    o = crate::owners::Owners::from_json(
        &o.to_json().replace("shop/web:http", "shop/aaa:http"),
        std::path::Path::new("x"),
    )
    .unwrap();
    i.agent.owners = Ok(o);
    let c = check(&i, cluster::accepted);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "EndpointSlice web-1 rejected: endpoints[1].addresses[0]: invalid IP address \"10.244.2.666\"",
            "virtual server TCP  10.96.0.20:80 is programmed for shop/aaa:http",
            "the one whose name sorts first keeps it",
        ],
    );
}

#[test]
fn a_service_of_a_family_the_node_does_not_program_plans_nothing() {
    let yaml = edit(WEB, "clusterIPs: [10.96.0.20]", "clusterIPs: [fd00::20]");
    let yaml = edit(&yaml, "clusterIP: 10.96.0.20", "clusterIP: fd00::20");
    let c = check(&healthy(&yaml), cluster::accepted);
    assert_check(&c, Verdict::Fail, &["nothing to program", "(IPv4)"]);
}

// ---- endpoints ---------------------------------------------------------------------------

#[test]
fn no_slices_fail_with_the_selector() {
    let mut i = healthy(WEB);
    i.cluster.as_mut().unwrap().slices.clear();
    let c = check(&i, cluster::endpoints);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "no EndpointSlices",
            "no Pod matches the selector app=web",
            "kubectl -n shop get pods -l app=web",
        ],
    );
}

#[test]
fn endpoints_that_are_not_ready_fail() {
    let yaml = WEB.replace("conditions: {ready: true}", "conditions: {ready: false}");
    let c = check(&healthy(&yaml), cluster::endpoints);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "no ready endpoints: 2 not ready",
            "EndpointSlice web-1 (IPv4): 2 endpoints: 0 ready, 0 terminating but serving, 2 not ready; 1 on this node",
            "readiness probe",
        ],
    );
    // And the selection check says no endpoint is used.
    let c = check(&healthy(&yaml), cluster::selection);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "ClusterIP (Cluster) -> no usable endpoint",
            "no endpoint is ready or serving",
        ],
    );
    assert!(!has(&c, "only endpoints on this node"), "{c:#?}");
}

#[test]
fn only_terminating_endpoints_warn() {
    let yaml = WEB.replace(
        "conditions: {ready: true}",
        "conditions: {ready: false, serving: true, terminating: true}",
    );
    let i = healthy(&yaml);
    assert_check(
        &check(&i, cluster::endpoints),
        Verdict::Warn,
        &["only terminating endpoints serve (2)"],
    );
    assert_check(
        &check(&i, cluster::selection),
        Verdict::Pass,
        &["the terminating ones still serving"],
    );
    let c = check(&healthy(WEB), cluster::endpoints);
    assert_check(&c, Verdict::Pass, &["2 endpoints, all ready"]);
}

// ---- ports -------------------------------------------------------------------------------

#[test]
fn a_slice_port_named_differently_fails() {
    let yaml = edit(
        WEB,
        "ports: [{name: http, port: 8080, protocol: TCP}]",
        "ports: [{name: web, port: 8080, protocol: TCP}]",
    );
    let c = check(&healthy(&yaml), cluster::ports);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "EndpointSlice web-1 has no port \"http\"/TCP (it has: \"web\"/TCP 8080)",
            "joined by name and protocol",
            "must name their ports exactly like the Service's",
        ],
    );
}

#[test]
fn a_named_target_port_no_pod_declares_points_at_the_container_port() {
    let yaml = edit(WEB, "targetPort: 8080", "targetPort: web");
    let yaml = edit(
        &yaml,
        "ports: [{name: http, port: 8080, protocol: TCP}]",
        "ports: []",
    );
    let c = check(&healthy(&yaml), cluster::ports);
    assert_check(
        &c,
        Verdict::Fail,
        &["(it has: none)", "no container port named \"web\""],
    );
}

#[test]
fn a_slice_port_other_than_the_numeric_target_port_warns() {
    let yaml = edit(WEB, "targetPort: 8080", "targetPort: 9090");
    let c = check(&healthy(&yaml), cluster::ports);
    assert_check(
        &c,
        Verdict::Warn,
        &["port \"http\"/TCP is 8080, the Service's targetPort is 9090"],
    );
    assert_check(
        &check(&healthy(WEB), cluster::ports),
        Verdict::Pass,
        &["http 80/TCP -> 8080"],
    );
}

// ---- reachable ---------------------------------------------------------------------------

#[test]
fn endpoints_refusing_connections_point_at_the_target_port() {
    let mut i = healthy(WEB);
    for p in i.probes.as_mut().unwrap() {
        p.result = ProbeResult::Refused;
    }
    let c = check(&i, cluster::reachable);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "2 of 2 endpoints do not accept connections",
            "10.244.1.5:8080: refused (nothing listens)",
            "nothing listens on port 8080",
            "targetPort (80 -> 8080)",
            "correct the targetPort",
        ],
    );
}

#[test]
fn an_endpoint_that_does_not_answer_points_at_the_network() {
    let mut i = healthy(WEB);
    i.probes.as_mut().unwrap()[1].result = ProbeResult::Timeout;
    let c = check(&i, cluster::reachable);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "1 of 2 endpoints",
            "10.244.2.6:8080: no answer",
            "NetworkPolicy",
        ],
    );
    assert!(!has(&c, "nothing listens"), "{c:#?}");
    i.probes = None;
    assert_check(
        &check(&i, cluster::reachable),
        Verdict::Skip,
        &["--no-probe"],
    );
    assert_check(
        &check(&healthy(WEB), cluster::reachable),
        Verdict::Pass,
        &["all 2 endpoints accept"],
    );
}

// ---- selection ---------------------------------------------------------------------------

#[test]
fn selection_says_which_endpoints_each_policy_uses() {
    let c = check(&healthy(WEB), cluster::selection);
    assert_check(
        &c,
        Verdict::Pass,
        &[
            "http 80/TCP IPv4: ClusterIP (Cluster) -> 2, every ready endpoint; external (Cluster) -> 2",
        ],
    );
    // externalTrafficPolicy Local, no endpoint here: falls back (stock IPVS), flagged.
    let yaml = edit(
        WEB,
        "  selector: {app: web}\n",
        "  selector: {app: web}\n  externalTrafficPolicy: Local\n",
    );
    let yaml = yaml.replace("nodeName: node-a", "nodeName: node-c");
    let c = check(&healthy(&yaml), cluster::selection);
    assert_check(
        &c,
        Verdict::Warn,
        &[
            "external (Local) -> none on this node: falls back to 2 cluster endpoints",
            "externalTrafficPolicy Local",
        ],
    );
    // internalTrafficPolicy Local on a ClusterIP-only Service: nothing to fall back to.
    let yaml = edit(
        WEB,
        "  type: NodePort\n",
        "  internalTrafficPolicy: Local\n",
    );
    let yaml = yaml
        .replace(", nodePort: 30080", "")
        .replace("nodeName: node-a", "nodeName: node-c");
    let c = check(&healthy(&yaml), cluster::selection);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "ClusterIP (Local) -> none on this node",
            "run a Pod of the Service on this node",
        ],
    );
}

#[test]
fn selection_names_topology_hints() {
    let yaml = WEB
        .replace(
            "nodeName: node-a, conditions: {ready: true}",
            "nodeName: node-a, conditions: {ready: true}, hints: {forZones: [{name: z1}]}",
        )
        .replace(
            "nodeName: node-b, conditions: {ready: true}",
            "nodeName: node-b, conditions: {ready: true}, hints: {forZones: [{name: z2}]}",
        )
        .replace(
            "metadata: {name: node-a}",
            "metadata: {name: node-a, labels: {topology.kubernetes.io/zone: z1}}",
        );
    let c = check(&healthy(&yaml), cluster::selection);
    assert_check(
        &c,
        Verdict::Pass,
        &["topology hints: the 1 hinted for zone z1 (of 2 ready)"],
    );
}

// ---- ipvs --------------------------------------------------------------------------------

#[test]
fn a_real_server_deleted_behind_the_agents_back_fails_ipvs() {
    let mut i = healthy(WEB);
    let k = i.kernel.as_mut().unwrap();
    k.vs.get_mut(&vs("10.96.0.20", 80))
        .unwrap()
        .reals
        .retain(|r| r.key != rs("10.244.2.6", 8080));
    let c = check(&i, kernel::ipvs);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "1 difference from the plan",
            "TCP  10.96.0.20:80 -> 10.244.2.6:8080: real server missing",
            "another tool changed it",
            "every syncPeriod, 30s",
        ],
    );
    // With changes queued, that is the reason given.
    i.agent.metrics = Some(Ok(fixture::agent_metrics(&[
        (ChangeKind::Endpoints, fixture::NOW - 3),
        (ChangeKind::Endpoints, fixture::NOW - 2),
        (ChangeKind::Service, fixture::NOW - 1),
    ])));
    assert_check(
        &check(&i, kernel::ipvs),
        Verdict::Fail,
        &["3 changes queued"],
    );
}

#[test]
fn extra_and_different_virtual_servers_fail_ipvs_and_draining_ones_are_listed() {
    let mut i = healthy(WEB);
    let k = i.kernel.as_mut().unwrap();
    let mut extra = k.vs[&vs("10.96.0.20", 80)].clone();
    k.vs.insert(vs("10.96.0.20", 81), extra.clone());
    extra.spec.as_mut().unwrap().scheduler = crate::types::Scheduler::Sh;
    k.vs.insert(vs("10.96.0.20", 80), extra);
    let node_port = k.vs.get_mut(&vs("192.168.1.10", 30080)).unwrap();
    node_port.reals.push(KernelRs {
        key: rs("10.244.9.9", 8080),
        weight: 0,
        forward: crate::types::Forward::Masq,
        active: 2,
        inactive: 1,
        conns: 40,
        bytes_in: 0,
        bytes_out: 0,
    });
    let c = check(&i, kernel::ipvs);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "extra virtual server TCP  10.96.0.20:81",
            "TCP  10.96.0.20:80: sh in the kernel, rr wanted",
            "TCP  192.168.1.10:30080 -> 10.244.9.9:8080: draining (weight 0, 2 active, 1 inactive connections)",
        ],
    );
    assert_check(
        &check(&healthy(WEB), kernel::ipvs),
        Verdict::Pass,
        &[
            "2 virtual servers as planned",
            "TCP  10.96.0.20:80 rr -> 2 real servers",
        ],
    );
}

#[test]
fn an_unreadable_kernel_is_unknown_with_the_capability_named() {
    let mut i = healthy(WEB);
    i.kernel = Err("permission denied (IPVS needs CAP_NET_ADMIN)".into());
    let r = report(&i);
    assert_check(
        r.check("ipvs").unwrap(),
        Verdict::Unknown,
        &["CAP_NET_ADMIN", "as root"],
    );
    assert_eq!(r.exit_status(), 2);
}

// ---- address -----------------------------------------------------------------------------

#[test]
fn a_missing_local_route_or_address_fails() {
    let mut i = healthy(WEB);
    i.kernel.as_mut().unwrap().routes.clear();
    assert_check(
        &check(&i, kernel::address),
        Verdict::Fail,
        &[
            "ClusterIP 10.96.0.20: the local route 10.96.0.0/16 is missing",
            "routed away",
        ],
    );
    // Bound like stock (no service CIDR route): on kube-ipvs0.
    let mut i = healthy(WEB);
    i.settings.planner.service_cidrs.clear();
    i.kernel = Ok(fixture::kernel_of(&subject(&i)));
    assert_check(
        &check(&i, kernel::address),
        Verdict::Pass,
        &["ClusterIP 10.96.0.20: on kube-ipvs0"],
    );
    i.kernel.as_mut().unwrap().dummy = Some(Default::default());
    assert_check(
        &check(&i, kernel::address),
        Verdict::Fail,
        &[
            "ClusterIP 10.96.0.20: not on kube-ipvs0",
            "ip addr show kube-ipvs0",
        ],
    );
    i.kernel.as_mut().unwrap().dummy = None;
    assert_check(
        &check(&i, kernel::address),
        Verdict::Fail,
        &["does not exist"],
    );
}

// ---- nodeports ---------------------------------------------------------------------------

#[test]
fn node_port_addresses_matching_no_node_address_fail() {
    let mut i = healthy(WEB);
    i.settings.planner.node_port_addresses = vec!["192.0.2.0/24".parse().unwrap()];
    i.settings.node_port_addresses = "192.0.2.0/24".into();
    let c = check(&i, kernel::nodeports);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "NodePort 30080/TCP is served on no address of this node",
            "nodePortAddresses (192.0.2.0/24) matches none",
            "node addresses: 192.168.1.10",
            "set nodePortAddresses",
        ],
    );
    assert_check(
        &check(&healthy(WEB), kernel::nodeports),
        Verdict::Pass,
        &["NodePort 30080/TCP on 192.168.1.10"],
    );
    let yaml = edit(WEB, "  type: NodePort\n", "").replace(", nodePort: 30080", "");
    assert_check(
        &check(&healthy(&yaml), kernel::nodeports),
        Verdict::Skip,
        &["no NodePort"],
    );
}

// ---- ipset -------------------------------------------------------------------------------

#[test]
fn a_missing_member_or_an_unreachable_set_fails() {
    let mut i = healthy(WEB);
    let k = i.kernel.as_mut().unwrap();
    let key = *k
        .ipset
        .keys()
        .find(|(s, _)| s.to_string() == "KUBE-CLUSTER-IP")
        .unwrap();
    k.ipset.insert(key, Ok(false));
    assert_check(
        &check(&i, kernel::ipset),
        Verdict::Fail,
        &["KUBE-CLUSTER-IP lacks 10.96.0.20,tcp:80"],
    );

    // The jumps into KUBE-SERVICES removed (as a firewall reload that flushes nat would).
    let mut i = healthy(WEB);
    let mut rules = fixture::golden_rules();
    let text = "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\n\
                -A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n\
                -A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ\n\
                :PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";
    rules.nat = nodenet::iptables::save::SavedTable::parse(text);
    i.kernel
        .as_mut()
        .unwrap()
        .iptables
        .insert(crate::types::Family::V4, Ok(rules));
    assert_check(
        &check(&i, kernel::ipset),
        Verdict::Fail,
        &[
            "KUBE-CLUSTER-IP: no rule of nat KUBE-SERVICES matches it, reached from a built-in chain",
            "KUBE-LOOP-BACK: no rule of nat KUBE-POSTROUTING matches it",
        ],
    );

    let c = check(&healthy(WEB), kernel::ipset);
    assert_check(
        &c,
        Verdict::Pass,
        &[
            "KUBE-CLUSTER-IP: 1 member present; matched in filter KUBE-IPVS-FILTER (from INPUT), nat KUBE-SERVICES (from OUTPUT, PREROUTING)",
            "KUBE-NODE-PORT-TCP: 1 member present; matched in nat KUBE-NODE-PORT (from OUTPUT, PREROUTING)",
        ],
    );
    let mut i = healthy(WEB);
    i.kernel
        .as_mut()
        .unwrap()
        .iptables
        .insert(crate::types::Family::V4, Err("iptables: not found".into()));
    assert_check(
        &check(&i, kernel::ipset),
        Verdict::Unknown,
        &["iptables: not found"],
    );
}

// ---- spread ------------------------------------------------------------------------------

fn traffic(i: &mut super::super::inputs::Inputs, conns: &[u64]) {
    let k = i.kernel.as_mut().unwrap();
    let v = k.vs.get_mut(&vs("10.96.0.20", 80)).unwrap();
    for (r, n) in v.reals.iter_mut().zip(conns) {
        r.conns = *n;
        r.bytes_in = n * 100;
        r.bytes_out = n * 3000;
    }
}

#[test]
fn uneven_spread_is_flagged_unless_affinity_explains_it() {
    let mut i = healthy(WEB);
    traffic(&mut i, &[90, 10]);
    assert_check(
        &check(&i, kernel::spread),
        Verdict::Warn,
        &[
            "uneven connection spread on TCP  10.96.0.20:80",
            "10.244.1.5:8080 90 conns (90%), 8.7 KiB in, 263.6 KiB out",
            "long-lived connections",
        ],
    );
    let yaml = edit(
        WEB,
        "  selector: {app: web}\n",
        "  selector: {app: web}\n  sessionAffinity: ClientIP\n",
    );
    let mut i = healthy(&yaml);
    traffic(&mut i, &[90, 10]);
    assert_check(
        &check(&i, kernel::spread),
        Verdict::Pass,
        &[
            "as expected",
            "sessionAffinity ClientIP sends each client to the same endpoint for 10800s",
        ],
    );
    let mut i = healthy(WEB);
    traffic(&mut i, &[52, 48]);
    assert_check(
        &check(&i, kernel::spread),
        Verdict::Pass,
        &["spread evenly"],
    );
    traffic(&mut i, &[3, 1]);
    assert_check(
        &check(&i, kernel::spread),
        Verdict::Pass,
        &["too little traffic"],
    );
}

// ---- healthcheck -------------------------------------------------------------------------

fn load_balancer_local(local_node: &str) -> String {
    edit(
        WEB,
        "  type: NodePort\n",
        "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 32000\n",
    )
    .replace("nodeName: node-a", &format!("nodeName: {local_node}"))
}

#[test]
fn the_health_check_node_port_answer_is_checked_against_local_endpoints() {
    let i = healthy(&load_balancer_local("node-a"));
    assert_check(
        &check(&i, node::healthcheck),
        Verdict::Pass,
        &["port 32000 answers 200 (localEndpoints 1)"],
    );
    let i = healthy(&load_balancer_local("node-c"));
    assert_check(
        &check(&i, node::healthcheck),
        Verdict::Warn,
        &[
            "answers 503 (localEndpoints 0): no local endpoint",
            "by design",
        ],
    );
    let mut i = healthy(&load_balancer_local("node-a"));
    i.agent.health_check = Some(Err("connection refused".into()));
    assert_check(
        &check(&i, node::healthcheck),
        Verdict::Fail,
        &[
            "nothing answers on health-check node port 32000",
            "ss -ltnp | grep :32000",
        ],
    );
    i.agent.health_check = Some(Ok(HttpAnswer {
        status: 503,
        body: "{\"localEndpoints\": 0, \"serviceProxyHealthy\": true}".into(),
    }));
    assert_check(
        &check(&i, node::healthcheck),
        Verdict::Fail,
        &["but this node has 1 usable local endpoints", "behind"],
    );
    assert_check(
        &check(&healthy(WEB), node::healthcheck),
        Verdict::Skip,
        &["no healthCheckNodePort"],
    );
}

// ---- conntrack ---------------------------------------------------------------------------

#[test]
fn a_full_conntrack_table_fails_with_the_limits_to_raise() {
    let mut i = healthy(WEB);
    let v = i.conntrack.as_mut().unwrap().as_mut().unwrap();
    v.count = 262_000;
    assert_check(
        &check(&i, node::conntrack),
        Verdict::Fail,
        &[
            "conntrack table full: 262000 of 262144 entries, 99%",
            "table full, dropping packet",
            "conntrack.maxPerCore (32768) and conntrack.min (131072)",
            "3 entries for this Service",
        ],
    );
    // A full table drops explain's own connections too: what gets no answer says so.
    let v = i.conntrack.as_mut().unwrap().as_mut().unwrap();
    v.count = v.max + 6;
    i.probes.as_mut().unwrap()[0].result = ProbeResult::Timeout;
    i.agent.healthz = Some(Err(
        "GET http://127.0.0.1:10256/healthz: no answer within 3s".into(),
    ));
    let r = report(&i);
    for id in ["reachable", "agent"] {
        assert_check(
            r.check(id).unwrap(),
            Verdict::Fail,
            &["the conntrack table is full (see conntrack)"],
        );
    }
    assert!(!has(r.check("agent").unwrap(), "not running"));
    let v = i.conntrack.as_mut().unwrap().as_mut().unwrap();
    v.count = 210_000;
    assert_check(&check(&i, node::conntrack), Verdict::Warn, &["filling up"]);
    i.conntrack = Ok(None);
    assert_check(&check(&i, node::conntrack), Verdict::Skip, &["not loaded"]);
    assert_check(
        &check(&healthy(WEB), node::conntrack),
        Verdict::Pass,
        &["100 of 262144 entries, 0%"],
    );
}

// ---- agent -------------------------------------------------------------------------------

#[test]
fn an_agent_that_does_not_answer_fails() {
    let mut i = healthy(WEB);
    i.agent.healthz = Some(Err(
        "GET http://127.0.0.1:10256/healthz: Connection refused".into(),
    ));
    let c = check(&i, node::agent);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "the agent does not answer on 127.0.0.1:10256",
            "not running on this node",
            "--field-selector spec.nodeName=node-a",
        ],
    );
    // And a kernel difference is then blamed on it.
    i.kernel.as_mut().unwrap().vs.clear();
    assert_check(
        &check(&i, kernel::ipvs),
        Verdict::Fail,
        &["the agent does not answer"],
    );
}

#[test]
fn an_unhealthy_agent_and_queued_changes_are_reported() {
    let mut i = healthy(WEB);
    i.agent.healthz = Some(Ok(HttpAnswer {
        status: 503,
        body: "{\"lastUpdated\": \"x\",\"currentTime\": \"y\", \"nodeEligible\": true}".into(),
    }));
    i.agent.metrics = Some(Ok(fixture::agent_metrics(&[
        (ChangeKind::Service, fixture::NOW - 95),
        (ChangeKind::Endpoints, fixture::NOW - 90),
    ])));
    assert_check(
        &check(&i, node::agent),
        Verdict::Fail,
        &[
            "unhealthy (/healthz 503)",
            "longer than 2 x syncPeriod (60s)",
            "2 changes queued, the last 90s ago",
            "last sync 2s ago",
        ],
    );
    i.agent.healthz = Some(Ok(HttpAnswer {
        status: 503,
        body: "{\"nodeEligible\": false}".into(),
    }));
    assert_check(&check(&i, node::agent), Verdict::Warn, &["being deleted"]);
}

#[test]
fn refused_ops_of_this_service_fail_the_agent_check() {
    let mut i = healthy(WEB);
    i.agent.failures = Ok(Failures {
        total: 2,
        failed: vec![
            FailedOp {
                op: "rs add TCP  10.96.0.20:80 -> 10.244.2.6:8080 w 1".into(),
                kind: "add_rs".into(),
                target: "TCP  10.96.0.20:80".into(),
                error: "add destination: ENOMEM".into(),
                since: fixture::NOW - 60,
                attempts: 4,
            },
            FailedOp {
                op: "vs add TCP  10.96.9.9:80".into(),
                kind: "add_vs".into(),
                target: "TCP  10.96.9.9:80".into(),
                error: "EEXIST".into(),
                since: 0,
                attempts: 1,
            },
        ],
        ..Failures::default()
    });
    let c = check(&i, node::agent);
    assert_check(
        &c,
        Verdict::Fail,
        &[
            "the kernel refuses 1 op for this Service: rs add TCP  10.96.0.20:80 -> 10.244.2.6:8080 w 1: add destination: ENOMEM (4 attempts)",
            "short of memory",
            "1 refused ops of other Services",
        ],
    );
    assert_check(&check(&i, kernel::ipvs), Verdict::Pass, &[]);
}

#[test]
fn the_failure_targets_the_agent_writes_match_the_services_own() {
    // Every op that programs the Service names a target explain looks for.
    let i = healthy(WEB);
    let sub = subject(&i);
    let mut engine = crate::Engine::new(i.settings.planner.clone());
    let c = i.cluster.as_ref().unwrap();
    engine.apply_node(c.node.as_ref().unwrap());
    engine.apply_service(c.service.as_ref().unwrap());
    for s in &c.slices {
        engine.apply_slice(s);
    }
    let ops = engine.plan_full(std::time::Duration::ZERO);
    assert!(ops.len() > 5, "{ops:?}");
    let targets = sub.targets();
    for op in &ops {
        assert!(
            targets.contains(&crate::failures::target(op)),
            "{op} -> {:?} not in {targets:?}",
            crate::failures::target(op)
        );
    }
}

#[test]
fn a_published_state_behind_the_plan_warns() {
    let mut i = healthy(WEB);
    i.agent.owners = Ok(crate::owners::Owners::default().with_node("node-a"));
    assert_check(
        &check(&i, node::agent),
        Verdict::Warn,
        &[
            "differ from the plan: not yet TCP  10.96.0.20:80",
            "stale watch",
        ],
    );
    // Behind and not answering: the failure leads, the difference stays listed.
    i.agent.healthz = Some(Err("connection refused".into()));
    assert_check(
        &check(&i, node::agent),
        Verdict::Fail,
        &["does not answer", "differ from the plan"],
    );
    let mut i = healthy(WEB);
    i.agent.healthz = None;
    i.agent.metrics = None;
    i.agent.owners = Err("read /run/kube-ipvs/owners.json: No such file".into());
    assert_check(
        &check(&i, node::agent),
        Verdict::Unknown,
        &["owners file: read"],
    );
    let c = check(&healthy(WEB), node::agent);
    assert_check(
        &c,
        Verdict::Pass,
        &["/healthz 200", "last sync 2s ago", "no change queued"],
    );
}
