//! Property tests: for random clusters and random starting kernel states, a plan applies cleanly
//! to the fake kernel and planning again yields zero ops; the incremental path after a random
//! change leaves the kernel exactly where a full plan would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::cfg;
use kube_ipvs::Engine;
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::plan::ObservedState;
use kube_ipvs::types::{
    Family, Forward, IpsetEntry, IpsetName, Proto, RealServer, Scheduler, SetKind, VsKey, VsSpec,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const VIPS: [&str; 6] = [
    "10.96.0.1",
    "10.96.0.2",
    "10.96.0.3",
    "10.200.0.1",
    "198.51.100.1",
    "192.168.1.10",
];
const EPS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
const PROTOS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const PORTS: [u16; 4] = [80, 53, 443, 30001];

#[derive(Clone, Debug)]
struct Svc {
    vip: usize,
    v6: bool,
    kind: usize,
    ports: Vec<(usize, usize)>,
    external: Vec<usize>,
    ext_local: bool,
    int_local: bool,
    affinity: bool,
    sched: Option<usize>,
    eps: Vec<(usize, bool, bool, bool, bool)>,
}

fn svc() -> impl Strategy<Value = Svc> {
    (
        (0..4usize, any::<bool>(), 0..3usize),
        prop::collection::vec((0..3usize, 0..4usize), 1..3),
        prop::collection::vec(3..6usize, 0..2),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::of(0..3usize),
        prop::collection::vec(
            (
                0..5usize,
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            0..4,
        ),
    )
        .prop_map(
            |((vip, v6, kind), ports, external, (ext_local, int_local, affinity), sched, eps)| {
                Svc {
                    vip,
                    v6,
                    kind,
                    ports,
                    external,
                    ext_local,
                    int_local,
                    affinity,
                    sched,
                    eps,
                }
            },
        )
}

fn objects(svcs: &[Svc]) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, s) in svcs.iter().enumerate() {
        let mut ports: Vec<Value> = Vec::new();
        let mut seen = Vec::new();
        for (j, (proto, port)) in s.ports.iter().enumerate() {
            if seen.contains(&(proto, port)) {
                continue;
            }
            seen.push((proto, port));
            let mut p =
                json!({"name": format!("p{j}"), "port": PORTS[*port], "protocol": PROTOS[*proto]});
            if s.kind > 0 {
                p["nodePort"] = json!(30100 + 10 * i + j);
            }
            ports.push(p);
        }
        let mut ips = vec![json!(VIPS[s.vip])];
        if s.v6 {
            ips.push(json!(format!("fd00:96::{}", s.vip + 1)));
        }
        let types = ["ClusterIP", "NodePort", "LoadBalancer"];
        let mut annotations = json!({});
        if let Some(k) = s.sched {
            annotations["kube-ipvs.io/scheduler"] = json!(["lc", "sh", "mh"][k]);
        }
        out.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "ns", "name": format!("s{i}"), "annotations": annotations},
            "spec": {
                "type": types[s.kind], "clusterIPs": ips, "ports": ports,
                "externalIPs": s.external.iter().map(|e| VIPS[*e]).collect::<Vec<_>>(),
                "externalTrafficPolicy": if s.ext_local { "Local" } else { "Cluster" },
                "internalTrafficPolicy": if s.int_local { "Local" } else { "Cluster" },
                "sessionAffinity": if s.affinity { "ClientIP" } else { "None" },
            },
            "status": if s.kind == 2 { json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}]}}) } else { json!({}) },
        }));
        let slice_ports: Vec<Value> = ports
            .iter()
            .map(|p| json!({"name": p["name"], "port": 8000 + p["port"].as_u64().unwrap(), "protocol": p["protocol"]}))
            .collect();
        let eps: Vec<Value> = s
            .eps
            .iter()
            .map(|(a, local, ready, serving, term)| {
                json!({
                    "addresses": [EPS[*a]],
                    "nodeName": if *local { "node-a" } else { "node-b" },
                    "conditions": {"ready": ready, "serving": serving, "terminating": term},
                })
            })
            .collect();
        out.push(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "ns", "name": format!("s{i}-x"), "labels": {"kubernetes.io/service-name": format!("s{i}")}},
            "addressType": "IPv4", "ports": slice_ports, "endpoints": eps,
        }));
    }
    out
}

#[derive(Clone, Debug)]
struct KernelVs {
    addr: usize,
    proto: usize,
    port: usize,
    sched: usize,
    reals: Vec<(usize, u32, u32, bool)>,
}

fn kernel_vs() -> impl Strategy<Value = KernelVs> {
    (
        0..8usize,
        0..3usize,
        0..5usize,
        0..3usize,
        prop::collection::vec((0..5usize, 0..3u32, 0..2u32, any::<bool>()), 0..3),
    )
        .prop_map(|(addr, proto, port, sched, reals)| KernelVs {
            addr,
            proto,
            port,
            sched,
            reals,
        })
}

fn kernel(vss: &[KernelVs], bound: &[usize], members: &[usize], route: bool) -> ObservedState {
    let addrs = |i: usize| -> std::net::IpAddr {
        let extra = ["172.16.0.9", "10.96.0.9"];
        VIPS.get(i)
            .copied()
            .unwrap_or_else(|| extra[i - VIPS.len()])
            .parse()
            .unwrap()
    };
    let mut o = ObservedState::new();
    for v in vss {
        let proto = [Proto::Tcp, Proto::Udp, Proto::Sctp][v.proto];
        let port = [80, 53, 443, 30001, 22][v.port];
        let key = VsKey::new(proto, addrs(v.addr), port);
        let spec = VsSpec::plain(
            [Scheduler::Rr, Scheduler::Wrr, Scheduler::Sh][v.sched],
            Family::V4,
        );
        let reals = v
            .reals
            .iter()
            .map(|(a, w, conns, route)| RealServer {
                weight: [0, 1, 5][*w as usize],
                active: *conns * 3,
                forward: if *route {
                    Forward::Route
                } else {
                    Forward::Masq
                },
                ..RealServer::masq(EPS[*a].parse().unwrap(), 8080)
            })
            .collect();
        o.insert_vs(key, spec, reals);
    }
    for b in bound {
        o.insert_bound(addrs(*b));
    }
    for m in members {
        o.insert_member(
            IpsetName::new(SetKind::ClusterIp, Family::V4),
            IpsetEntry::IpPort(addrs(*m), Proto::Tcp, 80),
        );
    }
    if route {
        o.insert_route("10.96.0.0/16".parse().unwrap());
    }
    o
}

fn load(e: &mut Engine, objs: &[Value]) {
    let mut dump = ClusterDump::default();
    dump.parse(&Value::Array(objs.to_vec()).to_string(), "prop")
        .unwrap();
    assert!(dump.bad.is_empty(), "{:?}", dump.bad);
    for s in &dump.services {
        e.apply_service(s);
    }
    for s in &dump.slices {
        e.apply_slice(s);
    }
}

const NOW: Duration = Duration::from_secs(100);

/// An engine converged on `before` over the kernel `vss`, then changed (not yet planned): new
/// versions of the first Services from `after`, and the Services beyond `after` deleted where
/// `deleted` says so.
fn converged_then_changed(
    before: &[Svc],
    after: &[Svc],
    vss: &[KernelVs],
    deleted: &[bool],
) -> Engine {
    let mut e = Engine::new(cfg());
    load(&mut e, &objects(before));
    e.set_observed(kernel(vss, &[], &[], true));
    let ops = e.plan_full(NOW);
    e.commit(&ops).unwrap();
    load(&mut e, &objects(after));
    for (i, del) in deleted.iter().enumerate().take(before.len()) {
        if *del && i >= after.len() {
            e.delete_service("ns", &format!("s{i}"));
            e.delete_slice("ns", &format!("s{i}-x"));
        }
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn plan_apply_plan_is_empty(
        svcs in prop::collection::vec(svc(), 0..6),
        vss in prop::collection::vec(kernel_vs(), 0..6),
        bound in prop::collection::vec(0..8usize, 0..3),
        members in prop::collection::vec(0..8usize, 0..3),
        route in any::<bool>(),
        strict in any::<bool>(),
        drain_deleted in any::<bool>(),
    ) {
        let mut c = cfg();
        c.strict_local = strict;
        c.drain_deleted_services = drain_deleted;
        let mut e = Engine::new(c);
        load(&mut e, &objects(&svcs));
        e.set_observed(kernel(&vss, &bound, &members, route));
        let ops = e.plan_full(NOW);
        let phases: Vec<u8> = ops.iter().map(|o| o.phase()).collect();
        prop_assert!(phases.windows(2).all(|w| w[0] <= w[1]));
        if let Err(err) = e.commit(&ops) {
            return Err(TestCaseError::fail(format!("plan does not apply: {err}\n{ops:#?}")));
        }
        let again = e.plan_full(NOW);
        prop_assert!(again.is_empty(), "second plan not empty: {:#?}", again);
    }

    #[test]
    fn incremental_equals_full(
        before in prop::collection::vec(svc(), 1..6),
        after in prop::collection::vec(svc(), 1..6),
        vss in prop::collection::vec(kernel_vs(), 0..4),
        deleted in prop::collection::vec(any::<bool>(), 6),
    ) {
        let mut e = converged_then_changed(&before, &after, &vss, &deleted);
        let inc = e.plan_incremental(NOW);
        if let Err(err) = e.commit(&inc) {
            return Err(TestCaseError::fail(format!("incremental plan does not apply: {err}\n{inc:#?}")));
        }
        let full = e.plan_full(NOW);
        prop_assert!(full.is_empty(), "full plan after incremental not empty: {:#?}", full);
    }

    #[test]
    fn repair_equals_rebuild(
        before in prop::collection::vec(svc(), 1..6),
        after in prop::collection::vec(svc(), 1..6),
        vss in prop::collection::vec(kernel_vs(), 0..4),
        drift in prop::collection::vec(kernel_vs(), 0..4),
        deleted in prop::collection::vec(any::<bool>(), 6),
    ) {
        // Two engines through the same history; then a repair against a drifted kernel: the
        // incrementally kept desired state plans exactly what a rebuilt one plans.
        let run = |repair: bool| {
            let mut e = converged_then_changed(&before, &after, &vss, &deleted);
            e.set_observed(kernel(&drift, &[0], &[0], false));
            if repair { e.plan_repair(NOW) } else { e.plan_full(NOW) }
        };
        prop_assert_eq!(run(true), run(false));
    }
}
