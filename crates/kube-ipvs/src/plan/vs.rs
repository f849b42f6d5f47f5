//! Planning one virtual server: create, update, drain, delete.

use super::{Ctx, Ops, Planner};
use crate::desired::DesiredVs;
use crate::plan::observed::ObservedVs;
use crate::plan::op::Op;
use crate::plan::ownership::planner_owns;
use crate::types::{Proto, RealServer, VsKey};

impl Planner {
    /// Plans one virtual server given its desired and observed versions (looked up by the caller:
    /// the full plan walks both tables in step).
    pub(super) fn plan_vs(
        &mut self,
        ctx: &Ctx<'_>,
        key: &VsKey,
        desired: Option<&DesiredVs>,
        observed: Option<&ObservedVs>,
        ops: &mut Ops,
    ) {
        let mut retained = false;
        match (desired, observed) {
            (Some(d), None) => create(d, ops),
            (Some(d), Some(o)) => self.update(ctx, d, o, ops),
            (None, Some(o)) if planner_owns(ctx, key) => retained = self.remove(ctx, key, o, ops),
            _ => {}
        }
        if let Some(a) = key.addr() {
            if retained {
                self.draining_vs.entry(a).or_default().insert(*key);
            } else if !self.draining_vs.is_empty()
                && let Some(set) = self.draining_vs.get_mut(&a)
            {
                set.remove(key);
                if set.is_empty() {
                    self.draining_vs.remove(&a);
                }
            }
        }
    }

    fn update(&mut self, ctx: &Ctx<'_>, d: &DesiredVs, o: &ObservedVs, ops: &mut Ops) {
        if !d.spec.matches(&o.spec) {
            ops.push(Op::UpdateVs {
                key: d.key,
                spec: d.spec,
            });
        }
        for rs in d.reals.iter() {
            match o.real(&rs.key) {
                None => ops.push(Op::AddRs { vs: d.key, rs: *rs }),
                // Restores weights left at 0 by a drain or a previous run (kubernetes#92019).
                Some(cur) if cur.weight != rs.weight || cur.forward != rs.forward => {
                    ops.push(Op::UpdateRs { vs: d.key, rs: *rs });
                }
                Some(_) => {}
            }
            // Hashing every real server's key costs more than the rest of a no-op repair.
            if !self.drains.is_empty() {
                self.drains.remove(&(d.key, rs.key));
            }
        }
        let mut serving = 0usize;
        for cur in &o.reals {
            if d.reals.binary_search_by_key(&cur.key, |r| r.key).is_err() {
                self.remove_rs(ctx, &d.key, cur, ops);
            } else if cur.weight > 0 {
                serving += 1;
            }
        }
        // UDP 0 -> N: flows recorded while the Service had no endpoint would black-hole.
        if d.key.proto() == Some(Proto::Udp) && serving == 0 && !d.reals.is_empty() {
            ops.push(Op::ClearConntrack {
                vs: d.key,
                reply_src: None,
            });
        }
    }

    /// Removes an owned virtual server nobody wants; returns whether it stays (draining).
    fn remove(&mut self, ctx: &Ctx<'_>, key: &VsKey, o: &ObservedVs, ops: &mut Ops) -> bool {
        let drains = key.proto().is_some_and(Proto::drains) && ctx.cfg.drain_deleted_services;
        if !drains {
            ops.push(Op::DelVs { key: *key });
            for rs in &o.reals {
                self.drains.remove(&(*key, rs.key));
            }
            if key.proto() == Some(Proto::Udp) {
                ops.push(Op::ClearConntrack {
                    vs: *key,
                    reply_src: None,
                });
            }
            return false;
        }
        let remaining = o
            .reals
            .iter()
            .filter(|rs| !self.remove_rs(ctx, key, rs, ops))
            .count();
        if remaining == 0 {
            ops.push(Op::DelVs { key: *key });
            return false;
        }
        true
    }

    /// Removes a real server: at once for UDP (plus conntrack cleanup) or when idle, else weight 0
    /// then deletion once its connections end or the drain limit passes. Returns whether it is
    /// deleted by this plan.
    fn remove_rs(&mut self, ctx: &Ctx<'_>, vs: &VsKey, rs: &RealServer, ops: &mut Ops) -> bool {
        let id = (*vs, rs.key);
        let udp = vs.proto() == Some(Proto::Udp);
        let expired = || {
            let since = self.drains.get(&id).copied().unwrap_or(ctx.now);
            ctx.cfg
                .drain_limit
                .is_some_and(|limit| ctx.now.saturating_sub(since) >= limit)
        };
        if udp || rs.connections() == 0 || expired() {
            // A drain that ended (weight already 0) may wait for a later plan: `completions`.
            if !udp && rs.weight == 0 && !ops.take_completion() {
                self.drains.entry(id).or_insert(ctx.now);
                return false;
            }
            ops.push(Op::DelRs {
                vs: *vs,
                rs: rs.key,
            });
            if udp {
                ops.push(Op::ClearConntrack {
                    vs: *vs,
                    reply_src: Some(rs.key.addr),
                });
            }
            self.drains.remove(&id);
            return true;
        }
        if rs.weight != 0 {
            ops.push(Op::UpdateRs {
                vs: *vs,
                rs: RealServer { weight: 0, ..*rs },
            });
        }
        self.drains.entry(id).or_insert(ctx.now);
        false
    }
}

fn create(d: &DesiredVs, ops: &mut Ops) {
    ops.push(Op::AddVs {
        key: d.key,
        spec: d.spec,
        owner: d.owner.clone(),
    });
    for rs in d.reals.iter() {
        ops.push(Op::AddRs { vs: d.key, rs: *rs });
    }
    if d.key.proto() == Some(Proto::Udp) && !d.reals.is_empty() {
        ops.push(Op::ClearConntrack {
            vs: d.key,
            reply_src: None,
        });
    }
}
