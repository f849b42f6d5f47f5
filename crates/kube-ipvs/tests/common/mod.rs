//! Helpers shared by the integration tests: clusters from inline YAML, compact table views.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::plan::{ObservedState, Op};
use kube_ipvs::{Engine, PlannerConfig};
use lab_kit::objects::{self, typed};

/// The node all tests plan for.
pub const NODE: &str = "node-a";

/// A config for node-a with service CIDR 10.96.0.0/16 + fd00:96::/112 and node addresses.
pub fn cfg() -> PlannerConfig {
    let mut c = PlannerConfig::new(NODE);
    c.service_cidrs = vec![
        "10.96.0.0/16".parse().unwrap(),
        "fd00:96::/112".parse().unwrap(),
    ];
    c.node_addresses = vec![
        "192.168.1.10".parse().unwrap(),
        "fd00:1::10".parse().unwrap(),
        "127.0.0.1".parse().unwrap(),
    ];
    c
}

/// Service default/`name` at ClusterIP `ip`, TCP port 80.
pub fn svc(name: &str, ip: &str) -> Service {
    typed(objects::service("default", name, ip))
}

/// EndpointSlice default/`name` of Service `svc`: TCP port 8080 on each of `ips`.
pub fn slice(name: &str, svc: &str, ips: &[&str]) -> EndpointSlice {
    typed(objects::slice("default", name, svc, ips))
}

/// Loads YAML documents into an engine and runs a full plan against an empty kernel.
pub fn engine(cfg: PlannerConfig, yaml: &str) -> Engine {
    let mut dump = ClusterDump::default();
    dump.parse(yaml, "test").unwrap();
    assert!(
        dump.bad.is_empty(),
        "undecodable test objects: {:?}",
        dump.bad
    );
    let mut e = Engine::new(cfg);
    e.load(&dump);
    e.plan_full(Duration::ZERO);
    e
}

/// One line per desired virtual server: `TCP 10.96.0.1:80 rr -> 10.0.0.1:8080 10.0.0.2:8080`
/// (scheduler flags and persistence appended as `flags=0x..`, `persistent=T/M`).
pub fn table(e: &Engine) -> Vec<String> {
    e.desired()
        .virtual_servers()
        .values()
        .map(|v| {
            let mut s = format!("{} {}", v.key, v.spec.scheduler).replace("  ", " ");
            if v.spec.flags.0 & !1 != 0 {
                s += &format!(" flags={:#x}", v.spec.flags.0 & !1);
            }
            if v.spec.flags.0 & 1 != 0 {
                s += &format!(" persistent={}/{}", v.spec.timeout, v.spec.netmask);
            }
            s += " ->";
            for r in v.reals.iter() {
                s += &format!(" {}", r.key);
            }
            s
        })
        .collect()
}

/// Bound addresses as strings.
pub fn bound(e: &Engine) -> Vec<String> {
    e.desired().bound().map(ToString::to_string).collect()
}

/// Members of one set as strings.
pub fn members(e: &Engine, set: &str) -> Vec<String> {
    e.desired()
        .ipsets()
        .filter(|(n, _)| n.to_string() == set)
        .flat_map(|(_, m)| m.map(ToString::to_string).collect::<Vec<_>>())
        .collect()
}

/// Rejection reasons as `object: reason` strings.
pub fn rejected(e: &Engine) -> Vec<String> {
    e.index()
        .rejections()
        .iter()
        .map(|(o, r)| format!("{o}: {r}"))
        .collect()
}

/// Plans fully against `observed`, applies to it (must succeed), returns the ops.
pub fn converge(e: &mut Engine, now: Duration) -> Vec<Op> {
    let ops = e.plan_full(now);
    e.commit(&ops)
        .unwrap_or_else(|err| panic!("plan does not apply: {err}\n{ops:#?}"));
    ops
}

/// A fresh kernel with the engine's cache replaced by `o`.
pub fn with_kernel(e: &mut Engine, o: ObservedState) {
    e.set_observed(o);
}

pub mod kubectl_dump;
