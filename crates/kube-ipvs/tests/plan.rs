//! Planner behaviour on a fake kernel: order, drains, UDP cleanup, weight restore, ownership,
//! idempotence and incremental == full.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::{cfg, converge, engine};
use kube_ipvs::kernel::PartialRead;
use kube_ipvs::plan::{ObservedState, Op};
use kube_ipvs::types::{
    Family, Forward, IpsetEntry, IpsetName, Proto, RealServer, RsKey, Scheduler, SetKind, VsKey,
    VsSpec,
};
use kube_ipvs::{Engine, PlannerConfig};

const T0: Duration = Duration::from_secs(1000);

fn yaml(eps: &str, proto: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{namespace: d, name: x}}
spec: {{clusterIP: 10.96.0.1, externalIPs: [198.51.100.1], ports: [{{name: p, port: 80, protocol: {proto}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{namespace: d, name: x-1, labels: {{kubernetes.io/service-name: x}}}}
addressType: IPv4
ports: [{{name: p, port: 8080, protocol: {proto}}}]
endpoints: {eps}
"
    )
}

fn vs(addr: &str, proto: Proto) -> VsKey {
    VsKey::new(proto, addr.parse().unwrap(), 80)
}

fn rs(addr: &str) -> RsKey {
    RsKey {
        addr: addr.parse().unwrap(),
        port: 8080,
    }
}

fn reals(e: &Engine, key: &VsKey) -> Vec<(String, u32)> {
    e.observed()
        .virtual_server(key)
        .unwrap()
        .reals
        .iter()
        .map(|r| (r.key.to_string(), r.weight))
        .collect()
}

/// Replaces the cluster with new YAML and runs the incremental path.
fn change(e: &mut Engine, y: &str, now: Duration) -> Vec<Op> {
    let mut dump = kube_ipvs::dump::ClusterDump::default();
    dump.parse(y, "t").unwrap();
    for s in &dump.services {
        e.apply_service(s);
    }
    for s in &dump.slices {
        e.apply_slice(s);
    }
    let ops = e.plan_incremental(now);
    e.commit(&ops).unwrap();
    ops
}

/// The drain tick: reads every draining virtual server (the kernel's answer is the cached view,
/// with the counters the test set there) and plans what it read.
fn drain_tick(e: &mut Engine, now: Duration) -> Vec<Op> {
    let keys = e.draining_vs();
    read_tick(e, &keys, now)
}

/// A drain tick that reads `keys` only.
fn read_tick(e: &mut Engine, keys: &[VsKey], now: Duration) -> Vec<Op> {
    let vs = keys
        .iter()
        .map(|k| (*k, e.observed().virtual_server(k).map(|v| v.reals.clone())))
        .collect();
    let read = PartialRead { vs, table: None };
    let ops = e.plan_read(read, &[], false, now);
    e.commit(&ops).unwrap();
    ops
}

fn phases(ops: &[Op]) -> Vec<u8> {
    ops.iter().map(Op::phase).collect()
}

#[test]
fn order_is_addresses_vs_destinations_then_removals() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    let ops = converge(&mut e, T0);
    let p = phases(&ops);
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "ops out of phase order: {ops:#?}"
    );
    let bind = ops
        .iter()
        .position(|o| matches!(o, Op::BindAddr { .. }))
        .unwrap();
    let add_vs = ops
        .iter()
        .position(|o| matches!(o, Op::AddVs { .. }))
        .unwrap();
    let add_rs = ops
        .iter()
        .position(|o| matches!(o, Op::AddRs { .. }))
        .unwrap();
    assert!(bind < add_vs && add_vs < add_rs);
    assert!(e.plan_full(T0).is_empty(), "second plan must be empty");
}

#[test]
fn tcp_endpoint_removal_drains_at_weight_zero() {
    let mut c = cfg();
    c.drain_limit = Some(Duration::from_secs(300));
    let mut e = engine(
        c,
        &yaml("[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]", "TCP"),
    );
    converge(&mut e, T0);
    let key = vs("10.96.0.1", Proto::Tcp);
    e.observed_mut()
        .set_connections(&key, &rs("10.0.0.2"), 3, 1);
    // 10.0.0.2 leaves: weight 0 (it has connections); 10.0.0.1 stays.
    let ops = change(&mut e, &yaml("[{addresses: [10.0.0.1]}]", "TCP"), T0);
    assert!(
        ops.iter().any(
            |o| matches!(o, Op::UpdateRs { rs: r, .. } if r.weight == 0 && r.key == rs("10.0.0.2"))
        ),
        "{ops:#?}"
    );
    assert_eq!(
        reals(&e, &key),
        [("10.0.0.1:8080".into(), 1), ("10.0.0.2:8080".into(), 0)]
    );
    assert!(e.plan_full(T0).is_empty(), "draining is stable");
    // Before the limit nothing happens; after it, the server goes.
    assert!(drain_tick(&mut e, T0 + Duration::from_secs(299)).is_empty());
    let ops = drain_tick(&mut e, T0 + Duration::from_secs(300));
    assert!(
        ops.contains(&Op::DelRs {
            vs: key,
            rs: rs("10.0.0.2")
        }),
        "{ops:#?}"
    );
}

/// Deliberate difference: stock deletes SCTP real servers at once, like UDP
/// (`IsRsGracefulTerminationNeeded`); SCTP associations are connection-oriented, so here they
/// drain at weight 0 like TCP connections.
#[test]
fn sctp_endpoint_removal_drains_like_tcp() {
    let mut e = engine(
        cfg(),
        &yaml("[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]", "SCTP"),
    );
    converge(&mut e, T0);
    let key = vs("10.96.0.1", Proto::Sctp);
    e.observed_mut()
        .set_connections(&key, &rs("10.0.0.2"), 1, 0);
    let ops = change(&mut e, &yaml("[{addresses: [10.0.0.1]}]", "SCTP"), T0);
    assert!(
        ops.iter().any(
            |o| matches!(o, Op::UpdateRs { rs: r, .. } if r.weight == 0 && r.key == rs("10.0.0.2"))
        ),
        "{ops:#?}"
    );
    // (The idle copy on the externalIP goes at once, as an idle TCP server would.)
    assert!(
        !ops.iter()
            .any(|o| matches!(o, Op::DelRs { vs, .. } if *vs == key)),
        "{ops:#?}"
    );
}

#[test]
fn drained_server_goes_when_idle() {
    let mut e = engine(
        cfg(),
        &yaml("[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]", "TCP"),
    );
    converge(&mut e, T0);
    let key = vs("10.96.0.1", Proto::Tcp);
    e.observed_mut()
        .set_connections(&key, &rs("10.0.0.2"), 1, 0);
    change(&mut e, &yaml("[{addresses: [10.0.0.1]}]", "TCP"), T0);
    e.observed_mut()
        .set_connections(&key, &rs("10.0.0.2"), 0, 0);
    let ops = drain_tick(&mut e, T0 + Duration::from_secs(5));
    assert_eq!(
        ops,
        [Op::DelRs {
            vs: key,
            rs: rs("10.0.0.2")
        }]
    );
}

/// A drain tick plans the draining virtual servers it read, not the whole backlog (which a
/// change would wait behind); one whose drain passed the limit goes unread.
#[test]
fn a_drain_tick_plans_what_it_read_and_what_expired() {
    let mut c = cfg();
    c.drain_limit = Some(Duration::from_secs(300));
    let mut e = engine(
        c,
        &yaml("[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]", "TCP"),
    );
    converge(&mut e, T0);
    let (cluster, external) = (vs("10.96.0.1", Proto::Tcp), vs("198.51.100.1", Proto::Tcp));
    for key in [&cluster, &external] {
        e.observed_mut().set_connections(key, &rs("10.0.0.2"), 1, 0);
    }
    change(&mut e, &yaml("[{addresses: [10.0.0.1]}]", "TCP"), T0);
    assert_eq!(e.draining_vs(), [cluster, external]);
    // Both went idle; the tick reads the external one only: only it is deleted.
    for key in [&cluster, &external] {
        e.observed_mut().set_connections(key, &rs("10.0.0.2"), 0, 0);
    }
    let at = T0 + Duration::from_secs(5);
    assert_eq!(
        read_tick(&mut e, &[external], at),
        [Op::DelRs {
            vs: external,
            rs: rs("10.0.0.2")
        }]
    );
    assert_eq!(e.draining_vs(), [cluster]);
    // Unread, it waits for its turn; past the limit it goes without one.
    assert!(read_tick(&mut e, &[], at).is_empty());
    assert_eq!(
        read_tick(&mut e, &[], T0 + Duration::from_secs(300)),
        [Op::DelRs {
            vs: cluster,
            rs: rs("10.0.0.2")
        }]
    );
    assert!(e.draining_vs().is_empty());
}

/// A read deletes at most `READ_COMPLETIONS` drained real servers (kernel work a change would
/// wait behind); the rest keep draining at weight 0 and go in the next reads.
#[test]
fn a_read_deletes_a_bounded_number_of_drained_servers() {
    let eps = |n: u32| {
        let list: Vec<String> = (0..n)
            .map(|i| format!("{{addresses: [10.0.{}.{}]}}", i / 200, i % 200 + 1))
            .collect();
        format!("[{}]", list.join(", "))
    };
    let mut e = engine(cfg(), &yaml(&eps(100), "TCP"));
    converge(&mut e, T0);
    let keys = [vs("10.96.0.1", Proto::Tcp), vs("198.51.100.1", Proto::Tcp)];
    let busy = |e: &mut Engine, n: u32| {
        for key in &keys {
            for r in e
                .observed()
                .virtual_server(key)
                .unwrap()
                .reals
                .clone()
                .iter()
            {
                e.observed_mut().set_connections(key, &r.key, n, 0);
            }
        }
    };
    busy(&mut e, 1);
    change(&mut e, &yaml("[]", "TCP"), T0);
    assert_eq!(e.draining_vs(), keys);
    busy(&mut e, 0);
    let at = T0 + Duration::from_secs(5);
    let deleted = |ops: &[Op]| ops.iter().filter(|o| matches!(o, Op::DelRs { .. })).count();
    let first = read_tick(&mut e, &keys, at);
    assert_eq!(
        deleted(&first),
        kube_ipvs::plan::READ_COMPLETIONS,
        "{first:#?}"
    );
    assert_eq!(first.len(), kube_ipvs::plan::READ_COMPLETIONS);
    let left: usize = keys
        .iter()
        .map(|k| e.observed().virtual_server(k).unwrap().reals.len())
        .sum();
    assert_eq!(left, 200 - kube_ipvs::plan::READ_COMPLETIONS);
    // In plan order: the ClusterIP's 100 went, 28 of the externalIP's; its other 72 drain on.
    assert_eq!(e.draining_vs(), keys[1..], "the rest still drain");
    // (The kernel's counters are still 0: the cache marked the unread ones busy again.)
    busy(&mut e, 0);
    let second = read_tick(&mut e, &keys, at);
    assert_eq!(deleted(&second), 200 - kube_ipvs::plan::READ_COMPLETIONS);
    assert!(e.draining_vs().is_empty());
    assert!(read_tick(&mut e, &keys, at).is_empty());
}

#[test]
fn idle_tcp_server_removed_at_once() {
    let mut e = engine(
        cfg(),
        &yaml("[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]", "TCP"),
    );
    converge(&mut e, T0);
    let ops = change(&mut e, &yaml("[{addresses: [10.0.0.1]}]", "TCP"), T0);
    assert!(ops.contains(&Op::DelRs {
        vs: vs("10.96.0.1", Proto::Tcp),
        rs: rs("10.0.0.2")
    }));
}

#[test]
fn udp_removed_at_once_with_conntrack_cleanup() {
    let mut e = engine(
        cfg(),
        &yaml("[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]", "UDP"),
    );
    let first = converge(&mut e, T0);
    // 0 -> N: a new UDP virtual server with endpoints clears stale flows to it.
    let key = vs("10.96.0.1", Proto::Udp);
    assert!(first.contains(&Op::ClearConntrack {
        vs: key,
        reply_src: None
    }));
    e.observed_mut()
        .set_connections(&key, &rs("10.0.0.2"), 0, 9);
    let ops = change(&mut e, &yaml("[{addresses: [10.0.0.1]}]", "UDP"), T0);
    assert!(ops.contains(&Op::DelRs {
        vs: key,
        rs: rs("10.0.0.2")
    }));
    assert!(ops.contains(&Op::ClearConntrack {
        vs: key,
        reply_src: Some("10.0.0.2".parse().unwrap())
    }));
    let last = ops.iter().map(Op::phase).max().unwrap();
    assert_eq!(
        last, 8,
        "conntrack cleanup comes after the destination removal"
    );
}

#[test]
fn deleted_service_drains_then_unbinds() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    converge(&mut e, T0);
    let ext = vs("198.51.100.1", Proto::Tcp);
    e.observed_mut()
        .set_connections(&ext, &rs("10.0.0.1"), 2, 0);
    e.delete_service("d", "x");
    let ops = e.plan_incremental(T0);
    e.commit(&ops).unwrap();
    // The busy external VS stays at weight 0 and keeps its address; the idle ClusterIP VS goes.
    assert!(ops.contains(&Op::DelVs {
        key: vs("10.96.0.1", Proto::Tcp)
    }));
    assert!(
        !ops.iter().any(|o| matches!(o, Op::UnbindAddr { .. })),
        "{ops:#?}"
    );
    assert_eq!(reals(&e, &ext), [("10.0.0.1:8080".into(), 0)]);
    assert!(e.plan_full(T0).is_empty());
    e.observed_mut()
        .set_connections(&ext, &rs("10.0.0.1"), 0, 0);
    let ops = drain_tick(&mut e, T0);
    assert_eq!(
        phases(&ops),
        [4, 5, 7],
        "delete destination, then VS, then unbind: {ops:#?}"
    );
    assert!(ops.contains(&Op::UnbindAddr {
        addr: "198.51.100.1".parse().unwrap()
    }));
}

#[test]
fn deleted_service_at_once_when_configured() {
    let mut c = cfg();
    c.drain_deleted_services = false;
    let mut e = engine(c, &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    converge(&mut e, T0);
    e.observed_mut()
        .set_connections(&vs("198.51.100.1", Proto::Tcp), &rs("10.0.0.1"), 2, 0);
    e.delete_service("d", "x");
    let ops = e.plan_incremental(T0);
    assert!(ops.contains(&Op::DelVs {
        key: vs("198.51.100.1", Proto::Tcp)
    }));
    assert!(ops.contains(&Op::UnbindAddr {
        addr: "198.51.100.1".parse().unwrap()
    }));
}

#[test]
fn weights_left_at_zero_are_restored() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    let mut o = ObservedState::new();
    let key = vs("10.96.0.1", Proto::Tcp);
    let stuck = RealServer {
        weight: 0,
        ..RealServer::masq("10.0.0.1".parse().unwrap(), 8080)
    };
    o.insert_vs(key, VsSpec::plain(Scheduler::Rr, Family::V4), vec![stuck]);
    e.set_observed(o);
    let ops = converge(&mut e, T0);
    assert!(ops.contains(&Op::UpdateRs {
        vs: key,
        rs: RealServer::masq("10.0.0.1".parse().unwrap(), 8080)
    }));
}

#[test]
fn restart_against_unchanged_kernel_is_a_no_op() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    converge(&mut e, T0);
    let kernel = e.observed().clone();
    let mut restarted = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    restarted.set_observed(kernel);
    assert!(restarted.plan_full(T0).is_empty());
}

#[test]
fn foreign_and_excluded_entries_are_left_alone() {
    let mut c: PlannerConfig = cfg();
    c.exclude_cidrs = vec!["10.96.99.0/24".parse().unwrap()];
    let mut e = engine(c, &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    let mut o = ObservedState::new();
    let spec = VsSpec::plain(Scheduler::Wrr, Family::V4);
    let keepalived = VsKey::new(Proto::Tcp, "172.16.0.50".parse().unwrap(), 443);
    let excluded = VsKey::new(Proto::Tcp, "10.96.99.1".parse().unwrap(), 80);
    let fwmark = VsKey::Fwmark {
        family: Family::V4,
        mark: 7,
    };
    let stale_ours = VsKey::new(Proto::Tcp, "10.96.5.5".parse().unwrap(), 80);
    let stale_nodeport = VsKey::new(Proto::Tcp, "192.168.1.10".parse().unwrap(), 30999);
    let node_ssh = VsKey::new(Proto::Tcp, "192.168.1.10".parse().unwrap(), 22);
    for k in [
        keepalived,
        excluded,
        fwmark,
        stale_ours,
        stale_nodeport,
        node_ssh,
    ] {
        o.insert_vs(
            k,
            spec,
            vec![RealServer {
                forward: Forward::Route,
                ..RealServer::masq("10.9.9.9".parse().unwrap(), 80)
            }],
        );
    }
    e.set_observed(o);
    let ops = converge(&mut e, T0);
    let deleted: Vec<VsKey> = ops
        .iter()
        .filter_map(|op| {
            if let Op::DelVs { key } = op {
                Some(*key)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        deleted,
        [stale_ours, stale_nodeport],
        "only VSs on owned addresses go"
    );
    for k in [keepalived, excluded, fwmark, node_ssh] {
        assert!(e.observed().virtual_server(&k).is_some());
    }
    assert!(e.plan_full(T0).is_empty());
}

#[test]
fn stale_ipset_members_and_addresses_removed() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    let mut o = ObservedState::new();
    let set = IpsetName::new(SetKind::ClusterIp, Family::V4);
    o.insert_member(
        set,
        IpsetEntry::IpPort("10.96.7.7".parse().unwrap(), Proto::Tcp, 80),
    );
    o.insert_bound("10.96.7.7".parse().unwrap());
    o.insert_route("10.97.0.0/16".parse().unwrap());
    e.set_observed(o);
    let ops = converge(&mut e, T0);
    assert!(ops.contains(&Op::IpsetDel {
        set,
        entry: IpsetEntry::IpPort("10.96.7.7".parse().unwrap(), Proto::Tcp, 80)
    }));
    assert!(ops.contains(&Op::DelRoute {
        cidr: "10.97.0.0/16".parse().unwrap()
    }));
    assert!(ops.contains(&Op::AddRoute {
        cidr: "10.96.0.0/16".parse().unwrap()
    }));
    // 10.96.7.7 is inside the new route: its unbinding is moot, left to the retire tick, which
    // takes it once the route is in the kernel.
    assert!(
        !ops.iter().any(|o| matches!(o, Op::UnbindAddr { .. })),
        "{ops:#?}"
    );
    assert!(e.retire_pending());
    let ops = e.plan_retire(64);
    e.commit(&ops).unwrap();
    assert!(ops.contains(&Op::UnbindAddr {
        addr: "10.96.7.7".parse().unwrap()
    }));
}

#[test]
fn scheduler_change_updates_vs_in_place() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    converge(&mut e, T0);
    let y = yaml("[{addresses: [10.0.0.1]}]", "TCP").replace(
        "name: x}\nspec",
        "name: x, annotations: {kube-ipvs.io/scheduler: lc}}\nspec",
    );
    let ops = change(&mut e, &y, T0);
    assert!(
        ops.iter().all(|o| matches!(o, Op::UpdateVs { .. })),
        "{ops:#?}"
    );
    assert_eq!(ops.len(), 2);
}

#[test]
fn incremental_matches_full() {
    let mut e = engine(cfg(), &yaml("[{addresses: [10.0.0.1]}]", "TCP"));
    converge(&mut e, T0);
    change(
        &mut e,
        &yaml("[{addresses: [10.0.0.2]}, {addresses: [10.0.0.3]}]", "TCP"),
        T0,
    );
    change(&mut e, &yaml("[{addresses: [10.0.0.3]}]", "UDP"), T0);
    assert!(
        e.plan_full(T0).is_empty(),
        "the incremental path left the kernel where the full path would"
    );
}

/// The full path builds in the index's hash order; the plan must not depend on it (nor on the
/// order objects arrived in), including who wins a virtual-server conflict.
#[test]
fn full_plan_is_independent_of_index_order() {
    let docs: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "apiVersion: v1
kind: Service
metadata: {{namespace: n{}, name: s{i}}}
spec: {{clusterIP: 10.96.1.{i}, externalIPs: [198.51.100.{}], ports: [{{name: p, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{namespace: n{}, name: s{i}-1, labels: {{kubernetes.io/service-name: s{i}}}}}
addressType: IPv4
ports: [{{name: p, port: 8080}}]
endpoints: [{{addresses: [10.244.0.{i}]}}]
",
                i % 3,
                i % 7,
                i % 3
            )
        })
        .collect();
    let forward = docs.join("---\n");
    let backward = docs.iter().rev().cloned().collect::<Vec<_>>().join("---\n");
    let plan = |y: &str| {
        let mut e = engine(cfg(), "");
        let mut dump = kube_ipvs::dump::ClusterDump::default();
        dump.parse(y, "test").unwrap();
        for s in &dump.services {
            e.apply_service(s);
        }
        for s in &dump.slices {
            e.apply_slice(s);
        }
        let ops = e.plan_full(T0);
        (ops, e.desired().conflicts())
    };
    let (a, conflicts) = plan(&forward);
    assert_eq!(
        conflicts.len(),
        40 - 7,
        "each externalIP:80 is won by one Service"
    );
    for _ in 0..3 {
        assert_eq!(plan(&backward), (a.clone(), conflicts.clone()));
        assert_eq!(plan(&forward).0, a);
    }
}
