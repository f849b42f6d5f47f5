//! Address changes a route makes moot, done in bounded batches off the change path.
//!
//! A node taken over from stock kube-proxy has every ClusterIP bound to the dummy device, and
//! kube-ipvs wants one `local` route per service CIDR instead. Unbinding 50,000 addresses is
//! minutes of kernel time (the kernel walks the device's address list on every change), so it
//! must not sit in one sync that changes wait behind. It also need not: once the route is in the
//! kernel, an address it covers is local whether bound or not. So the plans leave such an
//! address (and its `KUBE-IPVS-IPS` member) alone, and [`Planner::plan_retire`] unbinds them a
//! batch at a time, on a timer of its own, between change syncs.
//!
//! The same holds the other way (`--bind-cluster-ips`, or a ServiceCIDR gone): addresses the
//! route still covers are bound in batches, and the route goes once nothing it covers is
//! waiting for its binding. A route refused as unsafe ([`crate::desired::cidrs`]) does not
//! wait: its addresses are bound and it is removed in one plan.

use std::net::IpAddr;
use std::ops::Bound;

use ipnet::IpNet;

use super::{Ctx, Op, Ops, Planner};
use crate::desired::NodeState;
use crate::plan::ObservedState;
use crate::planner_config::PlannerConfig;
use crate::types::{Family, IpsetEntry, IpsetName, SetKind};

/// Whether binding or unbinding `a` (to reach `want`) changes nothing for traffic: a route
/// covers it before and after. Unbinding waits for the route to be in the kernel (the plan that
/// adds it may fail); binding under a route that is going away waits unless the route is unsafe.
pub(super) fn moot(ctx: &Ctx<'_>, a: &IpAddr, want: bool) -> bool {
    if want {
        !ctx.desired.routed(a)
            && observed_route(ctx.observed, a).is_some_and(|r| !ctx.desired.is_unsafe_cidr(&r))
    } else {
        ctx.desired.routed(a)
    }
}

/// The address a `KUBE-IPVS-IPS` member stands for (it follows the address's binding).
pub(super) fn address_member(set: &IpsetName, e: &IpsetEntry) -> Option<IpAddr> {
    match (set.kind, e) {
        (SetKind::IpvsIps, IpsetEntry::Ip(a)) => Some(*a),
        _ => None,
    }
}

/// Whether a route no longer desired may be removed now: it is unsafe, or every address it
/// covers that is desired bound is bound already.
pub(super) fn route_can_go(ctx: &Ctx<'_>, r: &IpNet) -> bool {
    ctx.desired.is_unsafe_cidr(r)
        || ctx
            .desired
            .bound_in(r)
            .all(|a| ctx.observed.bound().contains(a))
}

fn observed_route(observed: &ObservedState, a: &IpAddr) -> Option<IpNet> {
    observed.routes().iter().find(|r| r.contains(a)).copied()
}

impl Planner {
    /// Whether address changes wait for [`Planner::plan_retire`].
    pub fn retire_pending(&self) -> bool {
        self.retire_pending
    }

    /// The next batch of at most `max` moot address changes (each with its `KUBE-IPVS-IPS`
    /// member), in address order from where the previous batch stopped, and the removal of
    /// routes that no longer wait for anything. Unbinding waits until the covering route is in
    /// the kernel. An empty batch after a whole pass clears [`Planner::retire_pending`].
    pub fn plan_retire(
        &mut self,
        cfg: &PlannerConfig,
        desired: &NodeState,
        observed: &ObservedState,
        max: usize,
    ) -> Vec<Op> {
        let ctx = Ctx {
            cfg,
            desired,
            observed,
            now: std::time::Duration::ZERO,
        };
        let whole_pass = self.retire_cursor.is_none();
        let start = self.retire_cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let want = desired.bound_from(start).map(|a| (a, ()));
        let have = observed
            .bound()
            .range((start, Bound::Unbounded))
            .map(|a| (a, ()));
        let mut ops = Ops::default();
        let mut n = 0;
        let mut last = None;
        let mut waiting = false;
        for (a, want, have) in super::merge_join(want, have) {
            if n == max {
                break;
            }
            last = Some(*a);
            let (want, have) = (want.is_some(), have.is_some());
            if want == have || !moot(&ctx, a, want) {
                continue;
            }
            let member = IpsetName::new(SetKind::IpvsIps, Family::of(a));
            let entry = IpsetEntry::Ip(*a);
            if want {
                ops.push(Op::BindAddr { addr: *a });
                if !observed.has_member(&member, &entry) {
                    ops.push(Op::IpsetAdd { set: member, entry });
                }
            } else if observed_route(observed, a).is_some() {
                ops.push(Op::UnbindAddr { addr: *a });
                if observed.has_member(&member, &entry) {
                    ops.push(Op::IpsetDel { set: member, entry });
                }
            } else {
                // The route is not in the kernel yet: the next full plan adds it.
                waiting = true;
                continue;
            }
            n += 1;
        }
        let mut held = waiting;
        for r in observed.routes().difference(desired.routes()) {
            if route_can_go(&ctx, r) {
                ops.push(Op::DelRoute { cidr: *r });
            } else {
                held = true;
            }
        }
        if n == max {
            self.retire_cursor = last;
        } else {
            self.retire_cursor = None;
            if whole_pass && n == 0 && !held {
                self.retire_pending = false;
            }
        }
        ops.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::types::{Proto, VsKey};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// What stock kube-proxy leaves for `n` ClusterIP Services in 10.96.0.0/16 (one port each):
    /// every ClusterIP bound to the dummy device and in `KUBE-IPVS-IPS`, its virtual server,
    /// no route.
    fn stock_node(n: u8) -> (crate::model::ClusterIndex, ObservedState) {
        let mut index = crate::model::ClusterIndex::new("n");
        let mut st = ObservedState::new();
        let ips = IpsetName::new(SetKind::IpvsIps, Family::V4);
        for i in 1..=n {
            let vip = format!("10.96.0.{i}");
            let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(
                serde_json::json!({"metadata": {"name": format!("s{i}"), "namespace": "d"},
                    "spec": {"clusterIP": vip, "ports": [{"port": 80, "protocol": "TCP"}]}}),
            )
            .unwrap();
            index.apply_service(&svc);
            let a = ip(&vip);
            st.insert_bound(a);
            st.insert_member(ips, IpsetEntry::Ip(a));
            st.insert_member(
                IpsetName::new(SetKind::ClusterIp, Family::V4),
                IpsetEntry::IpPort(a, Proto::Tcp, 80),
            );
            let spec = crate::types::VsSpec {
                scheduler: crate::types::Scheduler::Rr,
                flags: crate::types::VsFlags::default(),
                timeout: 0,
                netmask: 32,
            };
            st.insert_vs(VsKey::new(Proto::Tcp, a, 80), spec, Vec::new());
        }
        (index, st)
    }

    fn routed_cfg() -> PlannerConfig {
        let mut cfg = PlannerConfig::new("n");
        cfg.families = vec![Family::V4];
        cfg.service_cidrs = vec!["10.96.0.0/16".parse().unwrap()];
        cfg
    }

    fn kinds(ops: &[Op]) -> Vec<&'static str> {
        ops.iter().map(Op::kind).collect()
    }

    #[test]
    fn taking_over_a_bound_node_adds_the_route_and_unbinds_in_batches_afterwards() {
        let (index, mut kernel) = stock_node(5);
        let cfg = routed_cfg();
        let desired = NodeState::build(&index, &cfg);
        let mut p = Planner::new();
        // The first plan adds the route and leaves every bound address (and member) alone.
        let first = p.plan(&cfg, &desired, &kernel, Duration::ZERO);
        assert_eq!(kinds(&first), ["add_route"], "{first:?}");
        assert!(p.retire_pending());
        // Until the route is in the kernel, nothing is unbound.
        assert!(p.plan_retire(&cfg, &desired, &kernel, 2).is_empty());
        kernel.apply_all(&first).unwrap();
        let mut batches = Vec::new();
        while p.retire_pending() {
            let batch = p.plan_retire(&cfg, &desired, &kernel, 2);
            kernel.apply_all(&batch).unwrap();
            batches.push(batch);
            assert!(batches.len() < 10, "never ends: {batches:?}");
        }
        let unbinds: Vec<usize> = batches
            .iter()
            .map(|b| b.iter().filter(|o| o.kind() == "unbind_addr").count())
            .collect();
        assert_eq!(unbinds, [2, 2, 1, 0]);
        assert!(kernel.bound().is_empty());
        let ips = IpsetName::new(SetKind::IpvsIps, Family::V4);
        assert!(kernel.ipsets().get(&ips).is_none_or(|m| m.is_empty()));
        // Converged: a full plan has nothing left to do.
        assert!(p.plan(&cfg, &desired, &kernel, Duration::ZERO).is_empty());
        assert!(!p.retire_pending());
    }

    #[test]
    fn an_incremental_plan_leaves_a_moot_unbind_to_the_batches_too() {
        let (mut index, kernel) = stock_node(2);
        let mut kernel = kernel;
        kernel.insert_route("10.96.0.0/16".parse().unwrap());
        let cfg = routed_cfg();
        let mut desired = NodeState::build(&index, &cfg);
        let mut p = Planner::new();
        index.delete_service("d", "s1");
        let key = crate::types::ServiceName::new("d", "s1");
        let touched = desired.update_service(&index, &cfg, &key);
        let ops = p.plan_touched(&cfg, &desired, &kernel, &touched, Duration::ZERO, None);
        assert_eq!(kinds(&ops), ["del_vs", "ipset_del"], "{ops:?}");
        assert!(p.retire_pending());
        kernel.apply_all(&ops).unwrap();
        let batch = p.plan_retire(&cfg, &desired, &kernel, 10);
        assert_eq!(
            kinds(&batch),
            ["ipset_del", "ipset_del", "unbind_addr", "unbind_addr"]
        );
    }

    #[test]
    fn back_to_binding_binds_in_batches_then_drops_the_route() {
        let (index, mut kernel) = stock_node(3);
        let cidr: IpNet = "10.96.0.0/16".parse().unwrap();
        // A routed node: no address bound.
        let routed = NodeState::build(&index, &routed_cfg());
        let mut p = Planner::new();
        let to_routes = p.plan(&routed_cfg(), &routed, &kernel, Duration::ZERO);
        kernel.apply_all(&to_routes).unwrap();
        while p.retire_pending() {
            let b = p.plan_retire(&routed_cfg(), &routed, &kernel, 10);
            kernel.apply_all(&b).unwrap();
        }
        assert!(kernel.bound().is_empty() && kernel.routes().contains(&cidr));
        // Now --bind-cluster-ips.
        let mut cfg = routed_cfg();
        cfg.bind_cluster_ips = true;
        let bound = NodeState::build(&index, &cfg);
        let first = p.plan(&cfg, &bound, &kernel, Duration::ZERO);
        assert!(
            first.is_empty(),
            "the route stays, binding waits: {first:?}"
        );
        let b1 = p.plan_retire(&cfg, &bound, &kernel, 2);
        assert_eq!(
            kinds(&b1),
            ["bind_addr", "bind_addr", "ipset_add", "ipset_add"]
        );
        kernel.apply_all(&b1).unwrap();
        let b2 = p.plan_retire(&cfg, &bound, &kernel, 2);
        assert_eq!(kinds(&b2), ["bind_addr", "ipset_add"]);
        kernel.apply_all(&b2).unwrap();
        // Everything it covered is bound: the route goes.
        let b3 = p.plan_retire(&cfg, &bound, &kernel, 2);
        assert_eq!(b3, [Op::DelRoute { cidr }]);
        kernel.apply_all(&b3).unwrap();
        assert!(p.plan_retire(&cfg, &bound, &kernel, 2).is_empty());
        assert!(!p.retire_pending());
        assert!(p.plan(&cfg, &bound, &kernel, Duration::ZERO).is_empty());
    }

    #[test]
    fn an_unsafe_route_goes_at_once_after_binding_in_the_same_plan() {
        let (index, mut kernel) = stock_node(2);
        let cidr: IpNet = "10.96.0.0/16".parse().unwrap();
        kernel.insert_route(cidr);
        let ips = IpsetName::new(SetKind::IpvsIps, Family::V4);
        for a in kernel.bound().clone() {
            kernel.apply(&Op::UnbindAddr { addr: a }).unwrap();
            kernel
                .apply(&Op::IpsetDel {
                    set: ips,
                    entry: IpsetEntry::Ip(a),
                })
                .unwrap();
        }
        let mut cfg = routed_cfg();
        // The node now has an address inside the range: the route is unsafe.
        cfg.node_addresses = vec![ip("10.96.200.1")];
        let desired = NodeState::build(&index, &cfg);
        assert!(desired.is_unsafe_cidr(&cidr));
        let ops = Planner::new().plan(&cfg, &desired, &kernel, Duration::ZERO);
        assert_eq!(
            kinds(&ops),
            [
                "bind_addr",
                "bind_addr",
                "ipset_add",
                "ipset_add",
                "del_route"
            ]
        );
    }
}
