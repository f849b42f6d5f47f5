//! `plan(desired, observed) -> Vec<Op>`: the minimal, ordered set of kernel changes.
//!
//! Pure: no I/O. The full plan walks every key (the periodic repair path); the touched plan walks
//! only the keys a change touched (the incremental path). Both call the same per-key functions,
//! so they agree. Ownership: only virtual servers on addresses we own are changed or removed.

mod merge;
mod observed;
mod op;
pub mod ownership;
mod retire;
mod vs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

pub use observed::{ApplyError, ObservedState, ObservedVs, PartialRead, ReadScope};
pub use op::Op;

use crate::desired::{NodeState, Touched};
use crate::planner_config::PlannerConfig;
use crate::types::{IpsetEntry, IpsetName, RsKey, VsKey};
use merge::merge_join;

/// Ops collected per phase, concatenated in phase order, and what the plan may still do.
#[derive(Debug, Default)]
struct Ops {
    phases: [Vec<Op>; 9],
    /// Drain completions (deleting a real server whose drain ended) this plan may still make;
    /// `None`: no limit. See [`READ_COMPLETIONS`].
    completions_left: Option<usize>,
}

impl Ops {
    /// Ops for a plan that makes at most `completions` drain completions.
    fn limited(completions: Option<usize>) -> Self {
        Self {
            completions_left: completions,
            ..Self::default()
        }
    }

    fn push(&mut self, op: Op) {
        if let Some(v) = self.phases.get_mut(usize::from(op.phase())) {
            v.push(op);
        }
    }

    /// Takes one drain completion from the plan's allowance; false once it is spent.
    fn take_completion(&mut self) -> bool {
        match &mut self.completions_left {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// Room for a full plan against an empty kernel (the largest one): one AddVs per desired
    /// virtual server, at least as many AddRs, one IpsetAdd per member. Growing these vectors
    /// by doubling costs more than the rest of planning them.
    fn reserve_full(&mut self, desired: &NodeState) {
        let vs = desired.virtual_servers().len();
        let phases = [(1, desired.member_count()), (2, vs), (3, vs)];
        for (phase, n) in phases {
            if let Some(v) = self.phases.get_mut(phase) {
                v.reserve(n);
            }
        }
    }

    fn into_vec(self) -> Vec<Op> {
        let mut out = Vec::with_capacity(self.phases.iter().map(Vec::len).sum());
        for phase in self.phases {
            out.extend(phase);
        }
        out
    }
}

/// The planner: configuration plus the drain bookkeeping that outlives one plan.
#[derive(Debug, Default)]
pub struct Planner {
    /// When each real server was first seen draining (weight 0, not desired).
    drains: HashMap<(VsKey, RsKey), Duration>,
    /// Undesired virtual servers kept while their real servers drain, by address.
    draining_vs: BTreeMap<IpAddr, BTreeSet<VsKey>>,
    /// Address changes a route makes moot were left to [`Planner::plan_retire`] (see `retire`).
    retire_pending: bool,
    /// Where the next retire batch starts.
    retire_cursor: Option<IpAddr>,
}

/// Drained real servers one partial read's plan deletes at most (a drain tick's window of
/// virtual servers; [`Planner::plan_touched`]'s `completions`). Deleting them is kernel work on
/// the loop: a verification slice that found 532 drains ended deleted them in one 42 ms apply at
/// 50,000 Services, and a change waited behind it. The others stay at weight 0, draining, and go
/// in later drain ticks.
pub const READ_COMPLETIONS: usize = 128;

struct Ctx<'a> {
    cfg: &'a PlannerConfig,
    desired: &'a NodeState,
    observed: &'a ObservedState,
    now: Duration,
}

impl Planner {
    /// A planner with no drain history (after a restart every weight-0 server starts its drain now).
    pub fn new() -> Self {
        Self::default()
    }

    /// The full plan: every virtual server, address, route and ipset member.
    pub fn plan(
        &mut self,
        cfg: &PlannerConfig,
        desired: &NodeState,
        observed: &ObservedState,
        now: Duration,
    ) -> Vec<Op> {
        let ctx = Ctx {
            cfg,
            desired,
            observed,
            now,
        };
        let mut ops = Ops::default();
        ops.reserve_full(desired);
        // Both sides are ordered maps: walk them in step instead of building their union and
        // looking each key up on both sides.
        let desired_vs = desired.virtual_servers().iter().map(|(k, v)| (k, &**v));
        for (key, d, o) in merge_join(desired_vs, observed.virtual_servers()) {
            self.plan_vs(&ctx, key, d, o, &mut ops);
        }
        if !self.drains.is_empty() {
            self.drains.retain(|(vs, _), _| {
                desired.virtual_server(vs).is_some() || observed.virtual_server(vs).is_some()
            });
        }
        let want = desired.bound().map(|a| (a, ()));
        let have = observed.bound().iter().map(|a| (a, ()));
        for (a, want, have) in merge_join(want, have) {
            self.addr_op(&ctx, a, want.is_some(), have.is_some(), &mut ops);
        }
        self.plan_routes(&ctx, &mut ops);
        for (set, want, have) in merge_join(desired.ipsets(), observed.ipsets()) {
            let want = want.into_iter().flatten().map(|e| (e, ()));
            let have = have.into_iter().flatten().map(|e| (e, ()));
            for (e, want, have) in merge_join(want, have) {
                self.member_op(&ctx, set, e, want.is_some(), have.is_some(), &mut ops);
            }
        }
        ops.into_vec()
    }

    /// The incremental plan: only the touched keys, against the cached observed state. With
    /// `completions` (a partial read's plan) it deletes at most that many real servers whose
    /// drain ended; the others keep draining (weight 0, no new connections) and their virtual
    /// servers stay in [`Planner::draining`], so a later drain tick reads and deletes them.
    pub fn plan_touched(
        &mut self,
        cfg: &PlannerConfig,
        desired: &NodeState,
        observed: &ObservedState,
        touched: &Touched,
        now: Duration,
        completions: Option<usize>,
    ) -> Vec<Op> {
        let ctx = Ctx {
            cfg,
            desired,
            observed,
            now,
        };
        let mut ops = Ops::limited(completions);
        // A virtual server on an address that just became ours is ours too, as in a full plan.
        let mut keys = touched.vs.clone();
        for a in &touched.addrs {
            keys.extend(observed.vs_on(a).copied());
        }
        for key in &keys {
            let d = desired.virtual_server(key);
            let o = observed.virtual_server(key);
            self.plan_vs(&ctx, key, d, o, &mut ops);
        }
        let mut addrs = touched.addrs.clone();
        addrs.extend(touched.vs.iter().filter_map(VsKey::addr));
        for a in &addrs {
            self.plan_addr(&ctx, a, &mut ops);
        }
        if touched.routes {
            self.plan_routes(&ctx, &mut ops);
        }
        for (set, e) in &touched.ipset {
            let (want, have) = (desired.has_member(set, e), observed.has_member(set, e));
            self.member_op(&ctx, set, e, want, have, &mut ops);
        }
        ops.into_vec()
    }

    /// Routes: added at once; one no longer wanted goes only once what it covers is bound (else
    /// the retire tick binds that first, see `retire`).
    fn plan_routes(&mut self, ctx: &Ctx<'_>, ops: &mut Ops) {
        for r in ctx.desired.routes().difference(ctx.observed.routes()) {
            ops.push(Op::AddRoute { cidr: *r });
        }
        for r in ctx.observed.routes().difference(ctx.desired.routes()) {
            if retire::route_can_go(ctx, r) {
                ops.push(Op::DelRoute { cidr: *r });
            } else {
                self.retire_pending = true;
            }
        }
    }

    /// The virtual servers with a drain in progress, sorted: the drain tick reads their counters
    /// in turns, and [`Planner::draining_read`] plans those it read.
    pub fn draining(&self) -> BTreeSet<VsKey> {
        let mut vs: BTreeSet<VsKey> = self.drains.keys().map(|(vs, _)| *vs).collect();
        vs.extend(self.draining_vs.values().flatten().copied());
        vs
    }

    /// The draining virtual servers a partial read refreshed (`read`), and those with a drain past
    /// `limit` at `now`. The others' counters have not changed since they were last planned
    /// (reads mark what stays unread busy), so planning them again finds nothing: a drain tick or
    /// verification slice plans what it read, not the whole backlog, which a change would wait
    /// behind (7,000 draining virtual servers planned on every tick took 40-120 ms of the loop at
    /// 50,000 Services).
    pub fn draining_read(
        &self,
        read: &BTreeSet<VsKey>,
        limit: Option<Duration>,
        now: Duration,
    ) -> Touched {
        let expired = |since: Duration| limit.is_some_and(|l| now.saturating_sub(since) >= l);
        let mut t = Touched::default();
        t.vs.extend(
            self.drains
                .iter()
                .filter(|((vs, _), since)| read.contains(vs) || expired(**since))
                .map(|((vs, _), _)| *vs),
        );
        for keys in self.draining_vs.values() {
            t.vs.extend(keys.intersection(read).copied());
        }
        t
    }

    /// Number of real servers currently draining.
    pub fn drain_backlog(&self) -> usize {
        self.drains.len()
    }

    fn plan_addr(&mut self, ctx: &Ctx<'_>, a: &IpAddr, ops: &mut Ops) {
        let want = ctx.desired.is_bound(a);
        let have = ctx.observed.bound().contains(a);
        self.addr_op(ctx, a, want, have, ops);
    }

    fn addr_op(&mut self, ctx: &Ctx<'_>, a: &IpAddr, want: bool, have: bool, ops: &mut Ops) {
        if want != have && retire::moot(ctx, a, want) {
            self.retire_pending = true;
        } else if want && !have {
            ops.push(Op::BindAddr { addr: *a });
        } else if !want && have && !self.holds(a) {
            ops.push(Op::UnbindAddr { addr: *a });
        }
    }

    /// An ipset member op; a `KUBE-IPVS-IPS` member follows its address, so it waits with it.
    fn member_op(
        &mut self,
        ctx: &Ctx<'_>,
        set: &IpsetName,
        e: &IpsetEntry,
        want: bool,
        have: bool,
        ops: &mut Ops,
    ) {
        if want == have {
            return;
        }
        if let Some(a) = retire::address_member(set, e)
            && retire::moot(ctx, &a, want)
        {
            self.retire_pending = true;
            return;
        }
        ops.push(if want {
            Op::IpsetAdd {
                set: *set,
                entry: *e,
            }
        } else {
            Op::IpsetDel {
                set: *set,
                entry: *e,
            }
        });
    }

    /// Whether a draining virtual server still needs the address.
    fn holds(&self, a: &IpAddr) -> bool {
        self.draining_vs.get(a).is_some_and(|s| !s.is_empty())
    }
}
