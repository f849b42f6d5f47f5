//! The planning engine: index + desired state + cached observed state + planner, with the
//! incremental path (recompute and diff only changed Services) and the full repair path.
//!
//! The agent feeds watch events in, takes ops out, applies them, and [`Engine::commit`]s what
//! succeeded so the cached observed state matches the kernel without another read.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;

use ipnet::IpNet;

use crate::desired::cidrs::route_matters;
use crate::desired::{NodeState, Touched};
use crate::dump::ClusterDump;
use crate::model::{Affected, ClusterIndex};
use crate::plan::PartialRead;
use crate::plan::{ApplyError, ObservedState, Op, Planner};
use crate::planner_config::{NodeRoute, PlannerConfig};
use crate::types::{ServiceName, VsKey};

/// Index, desired state, cached kernel state and planner of one node.
#[derive(Debug)]
pub struct Engine {
    cfg: PlannerConfig,
    index: ClusterIndex,
    desired: NodeState,
    observed: ObservedState,
    planner: Planner,
    dirty: BTreeSet<ServiceName>,
    /// Keys of ops the kernel refused: planned again on the next incremental plan.
    retry: Touched,
    rebuild: bool,
    /// Calls that affected the desired state ([`Engine::change_count`]).
    changes: u64,
    /// The thread freeing the desired or kernel state last replaced.
    retiring: Option<JoinHandle<()>>,
}

impl Engine {
    /// An engine with an empty index and an empty kernel view.
    pub fn new(cfg: PlannerConfig) -> Self {
        let index = ClusterIndex::new(&cfg.node_name);
        Self {
            cfg,
            index,
            desired: NodeState::default(),
            observed: ObservedState::new(),
            planner: Planner::new(),
            dirty: BTreeSet::new(),
            retry: Touched::default(),
            rebuild: true,
            changes: 0,
            retiring: None,
        }
    }

    fn note(&mut self, a: Affected) {
        match a {
            Affected::All => self.rebuild = true,
            Affected::Services(keys) if keys.is_empty() => return,
            Affected::Services(keys) => self.dirty.extend(keys),
        }
        self.changes += 1;
    }

    /// How many `apply_*`/`delete_*` calls so far affected the desired state (an unchanged or
    /// rejected object does not): compare before and after a call to know whether it changed
    /// anything.
    pub fn change_count(&self) -> u64 {
        self.changes
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, s: &core::Service) {
        let a = self.index.apply_service(s);
        self.note(a);
    }

    /// Feeds a cluster dump in, as `kube-ipvs plan` reads one: this node's Node (the one the
    /// config names, when the dump has it: other Nodes are not this engine's), then the
    /// ServiceCIDRs, Services and EndpointSlices in the dump's order. Objects that did not decode
    /// (`dump.bad`) are left out. The same as applying each object with its `apply_*` call.
    pub fn load(&mut self, dump: &ClusterDump) {
        if let Some(n) = dump.node(&self.cfg.node_name) {
            self.apply_node(n);
        }
        for c in &dump.service_cidrs {
            self.apply_service_cidr(c);
        }
        for s in &dump.services {
            self.apply_service(s);
        }
        for s in &dump.slices {
            self.apply_slice(s);
        }
    }

    /// Removes a Service.
    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        let a = self.index.delete_service(namespace, name);
        self.note(a);
    }

    /// Adds or replaces an EndpointSlice.
    pub fn apply_slice(&mut self, s: &discovery::EndpointSlice) {
        let a = self.index.apply_slice(s);
        self.note(a);
    }

    /// Records an object whose latest version cannot be used (it did not decode); its last valid
    /// version stays in effect ([`ClusterIndex::reject`]).
    pub fn reject(&mut self, object: crate::model::ObjectRef, why: crate::model::Rejection) {
        let a = self.index.reject(object, why);
        self.note(a);
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        let a = self.index.delete_slice(namespace, name);
        self.note(a);
    }

    /// Applies the node's Node object.
    pub fn apply_node(&mut self, n: &core::Node) {
        let a = self.index.apply_node(n);
        self.note(a);
    }

    /// Forgets the node's Node object.
    pub fn delete_node(&mut self) {
        let a = self.index.delete_node();
        self.note(a);
    }

    /// Sets the node's own addresses (NodePorts listen on them); a change rebuilds everything.
    /// Returns whether they changed.
    pub fn set_node_addresses(&mut self, mut addrs: Vec<IpAddr>) -> bool {
        addrs.sort_unstable();
        addrs.dedup();
        if addrs == self.cfg.node_addresses {
            return false;
        }
        self.cfg.node_addresses = addrs;
        self.rebuild = true;
        true
    }

    /// Sets the node's routes (the service CIDR safety check reads them); rebuilds only if a
    /// route bearing on a service CIDR changed (CNIs add and remove routes all the time).
    /// Returns whether it rebuilds.
    pub fn set_node_routes(&mut self, mut routes: Vec<NodeRoute>) -> bool {
        routes.sort_unstable();
        routes.dedup();
        if routes == self.cfg.node_routes {
            return false;
        }
        let candidates: Vec<IpNet> = self
            .cfg
            .service_cidrs
            .iter()
            .chain(self.index.service_cidrs())
            .copied()
            .collect();
        let relevant = |rs: &[NodeRoute]| -> Vec<NodeRoute> {
            rs.iter()
                .filter(|r| candidates.iter().any(|c| route_matters(c, r)))
                .copied()
                .collect()
        };
        let changed = relevant(&routes) != relevant(&self.cfg.node_routes);
        self.cfg.node_routes = routes;
        self.rebuild |= changed;
        changed
    }

    /// Whether cluster changes are waiting for a plan (a node-wide change or changed Services).
    pub fn has_changes(&self) -> bool {
        self.rebuild || !self.dirty.is_empty()
    }

    /// Whether ops the kernel refused are waiting to be planned again.
    pub fn has_retries(&self) -> bool {
        !self.retry.is_empty()
    }

    /// Adds or replaces a ServiceCIDR.
    pub fn apply_service_cidr(&mut self, c: &networking::ServiceCIDR) {
        let a = self.index.apply_service_cidr(c);
        self.note(a);
    }

    /// Removes a ServiceCIDR.
    pub fn delete_service_cidr(&mut self, name: &str) {
        let a = self.index.delete_service_cidr(name);
        self.note(a);
    }

    /// Direct access to the index (re-lists use its `reset_*`); marks everything for rebuild.
    pub fn index_mut(&mut self) -> &mut ClusterIndex {
        self.rebuild = true;
        &mut self.index
    }

    /// Replaces the cached kernel state with a fresh full read.
    pub fn set_observed(&mut self, observed: ObservedState) {
        let services = self.desired.service_count();
        let previous = std::mem::replace(&mut self.observed, observed);
        if let Some(t) = retire(previous, services) {
            // The desired state's free (if still running) is detached, not lost.
            self.retiring = Some(t);
        }
    }

    /// The full repair plan: rebuild the desired state from the index, diff everything.
    ///
    /// The previous desired state is freed on a background thread once the plan is made: at
    /// 50,000 Services that is several hundred thousand frees (a quarter of a repair's CPU) that
    /// nobody needs to wait for, and they then run while the plan is applied.
    pub fn plan_full(&mut self, now: Duration) -> Vec<Op> {
        let previous =
            std::mem::replace(&mut self.desired, NodeState::build(&self.index, &self.cfg));
        self.dirty.clear();
        self.retry = Touched::default();
        self.rebuild = false;
        let ops = self
            .planner
            .plan(&self.cfg, &self.desired, &self.observed, now);
        let services = previous.service_count();
        self.retiring = retire(previous, services);
        ops
    }

    /// The periodic repair: every desired object against the (fresh) kernel view. The desired
    /// state is kept current incrementally (property-tested equal to a rebuild), so only the
    /// first plan and node-wide changes rebuild it; a repair of an unchanged cluster costs the
    /// diff alone.
    pub fn plan_repair(&mut self, now: Duration) -> Vec<Op> {
        if self.rebuild {
            return self.plan_full(now);
        }
        self.update_dirty();
        self.retry = Touched::default();
        self.planner
            .plan(&self.cfg, &self.desired, &self.observed, now)
    }

    /// A partial read of the kernel (a verification slice, or the drain tick's virtual servers)
    /// is merged into the cached view, the ops applied since it began are replayed over it, and
    /// what it found different is planned with the draining virtual servers it read (and those
    /// past the drain limit), and with `changes`, the pending changes and retries: the cost
    /// follows the read and the changes, not the table or the drain backlog. It deletes at most
    /// [`crate::plan::READ_COMPLETIONS`] drained real servers; the rest go in later reads.
    pub fn plan_read(
        &mut self,
        read: PartialRead,
        replay: &[Op],
        changes: bool,
        now: Duration,
    ) -> Vec<Op> {
        let read_vs: BTreeSet<VsKey> = read.vs.iter().map(|(k, _)| *k).collect();
        let (touched, spent) = self.observed.merge(read);
        if let Some(spent) = spent {
            // Freeing a whole table's worth of tree nodes is not the loop's work.
            self.retiring = retire(spent, self.desired.service_count()).or(self.retiring.take());
        }
        for op in replay {
            self.observed.replay(op);
        }
        let ops = if changes && self.rebuild {
            self.plan_full(now)
        } else {
            self.plan_merged(touched, &read_vs, changes, now)
        };
        // Its counters are planned: until the next read they count as busy.
        self.observed.assume_busy(Some(&read_vs));
        ops
    }

    /// [`Engine::plan_read`]'s plan once the read is merged.
    fn plan_merged(
        &mut self,
        mut touched: Touched,
        read_vs: &BTreeSet<VsKey>,
        changes: bool,
        now: Duration,
    ) -> Vec<Op> {
        if changes {
            touched.extend(std::mem::take(&mut self.retry));
            touched.extend(self.update_dirty());
        }
        touched.extend(
            self.planner
                .draining_read(read_vs, self.cfg.drain_limit, now),
        );
        if touched.is_empty() {
            return Vec::new();
        }
        self.planner.plan_touched(
            &self.cfg,
            &self.desired,
            &self.observed,
            &touched,
            now,
            Some(crate::plan::READ_COMPLETIONS),
        )
    }

    /// Brings the desired state of every Service changed since the last plan up to date;
    /// returns what that touched.
    fn update_dirty(&mut self) -> Touched {
        let mut touched = Touched::default();
        for key in std::mem::take(&mut self.dirty) {
            touched.extend(self.desired.update_service(&self.index, &self.cfg, &key));
        }
        touched
    }

    /// Waits until the desired state replaced by the last full plan is freed (benchmarks use it
    /// to measure that work, or to keep it out of the next measurement).
    pub fn wait_retired(&mut self) {
        if let Some(t) = self.retiring.take()
            && t.join().is_err()
        {
            tracing::warn!("freeing the previous desired state panicked");
        }
    }

    /// The incremental plan: only Services changed since the last plan (a full plan if a
    /// node-wide input changed).
    pub fn plan_incremental(&mut self, now: Duration) -> Vec<Op> {
        if self.rebuild {
            return self.plan_full(now);
        }
        let mut touched = std::mem::take(&mut self.retry);
        touched.extend(self.update_dirty());
        if touched.is_empty() {
            return Vec::new();
        }
        self.planner.plan_touched(
            &self.cfg,
            &self.desired,
            &self.observed,
            &touched,
            now,
            None,
        )
    }

    /// The next batch of at most `max` address changes a route makes moot (see
    /// `plan::retire`): against the cached kernel view, off the change path.
    pub fn plan_retire(&mut self, max: usize) -> Vec<Op> {
        self.planner
            .plan_retire(&self.cfg, &self.desired, &self.observed, max)
    }

    /// Whether address changes wait for [`Engine::plan_retire`].
    pub fn retire_pending(&self) -> bool {
        self.planner.retire_pending()
    }

    /// Records ops the kernel refused: their keys are planned again by the next incremental plan
    /// (a refused route change needs the full plan, which also re-plans routes).
    pub fn retry<'a>(&mut self, failed: impl IntoIterator<Item = &'a Op>) {
        for op in failed {
            match op {
                Op::AddVs { key, .. } | Op::UpdateVs { key, .. } | Op::DelVs { key } => {
                    self.retry.vs.insert(*key);
                }
                Op::AddRs { vs, .. }
                | Op::UpdateRs { vs, .. }
                | Op::DelRs { vs, .. }
                | Op::ClearConntrack { vs, .. } => {
                    self.retry.vs.insert(*vs);
                }
                Op::BindAddr { addr } | Op::UnbindAddr { addr } => {
                    self.retry.addrs.insert(*addr);
                }
                Op::IpsetAdd { set, entry } | Op::IpsetDel { set, entry } => {
                    self.retry.ipset.insert((*set, *entry));
                }
                Op::AddRoute { .. } | Op::DelRoute { .. } => self.rebuild = true,
            }
        }
    }

    /// Records ops the kernel accepted into the cached observed state.
    pub fn commit<'a>(&mut self, ops: impl IntoIterator<Item = &'a Op>) -> Result<(), ApplyError> {
        self.observed.apply_all(ops)
    }

    /// The configuration.
    pub fn config(&self) -> &PlannerConfig {
        &self.cfg
    }

    /// The index.
    pub fn index(&self) -> &ClusterIndex {
        &self.index
    }

    /// The desired state (as of the last plan).
    pub fn desired(&self) -> &NodeState {
        &self.desired
    }

    /// The cached kernel state.
    pub fn observed(&self) -> &ObservedState {
        &self.observed
    }

    /// The cached kernel state, for refreshing counters.
    pub fn observed_mut(&mut self) -> &mut ObservedState {
        &mut self.observed
    }

    /// The virtual servers the drain tick re-plans (their counters are what it reads).
    pub fn draining_vs(&self) -> Vec<VsKey> {
        self.planner.draining().into_iter().collect()
    }

    /// Real servers draining now.
    pub fn drain_backlog(&self) -> usize {
        self.planner.drain_backlog()
    }
}

/// Below this many Services a desired state frees in well under a millisecond: not worth a thread.
const RETIRE_IN_BACKGROUND: usize = 1_000;

/// Drops a replaced desired state off the planning thread (inline when small, or when no thread
/// can be started: the closure, and with it the state, is then dropped here).
fn retire<T: Send + 'static>(previous: T, services: usize) -> Option<JoinHandle<()>> {
    if services < RETIRE_IN_BACKGROUND {
        return None;
    }
    std::thread::Builder::new()
        .name("desired-drop".into())
        .spawn(move || drop(previous))
        .inspect_err(|e| tracing::debug!(error = %e, "freed the previous desired state inline"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example cluster, as `kube-ipvs plan -f examples/cluster.yaml --node node-a` reads it.
    fn example() -> (ClusterDump, PlannerConfig) {
        let mut dump = ClusterDump::default();
        dump.parse(
            include_str!("../../../examples/cluster.yaml"),
            "examples/cluster.yaml",
        )
        .unwrap();
        assert!(dump.bad.is_empty(), "{:?}", dump.bad);
        (dump, PlannerConfig::new("node-a"))
    }

    #[test]
    fn loading_a_dump_equals_applying_its_objects_one_by_one() {
        let (dump, cfg) = example();
        assert!(dump.nodes.len() > 1, "the example has other nodes to skip");
        let mut loaded = Engine::new(cfg.clone());
        loaded.load(&dump);

        let mut by_hand = Engine::new(cfg);
        by_hand.apply_node(dump.node("node-a").unwrap());
        (dump.service_cidrs.iter()).for_each(|c| by_hand.apply_service_cidr(c));
        (dump.services.iter()).for_each(|s| by_hand.apply_service(s));
        (dump.slices.iter()).for_each(|s| by_hand.apply_slice(s));

        assert_eq!(loaded.change_count(), by_hand.change_count());
        let ops = loaded.plan_full(Duration::ZERO);
        assert!(ops.len() > 10, "{ops:?}");
        assert_eq!(ops, by_hand.plan_full(Duration::ZERO));
    }

    #[test]
    fn loading_skips_other_nodes_and_works_without_ours() {
        let (dump, _) = example();
        let mut loaded = Engine::new(PlannerConfig::new("not-in-the-dump"));
        loaded.load(&dump);
        let mut without_node = Engine::new(PlannerConfig::new("not-in-the-dump"));
        let mut no_nodes = dump.clone();
        no_nodes.nodes.clear();
        without_node.load(&no_nodes);
        assert_eq!(
            loaded.plan_full(Duration::ZERO),
            without_node.plan_full(Duration::ZERO)
        );
    }
}
