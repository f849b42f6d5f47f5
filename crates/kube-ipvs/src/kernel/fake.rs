//! The kernel of the agent tests: an [`ObservedState`] with the kernel's EEXIST/ENOENT semantics,
//! shared with the test through [`FakeKernel::handle`] so it can inspect the state, count ops,
//! stage foreign entries, inject failures and "restart" the agent against the same kernel.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ApplyOutcome, Counters, Kernel, KernelError};
use crate::desired::IptablesInputs;
use crate::plan::{ObservedState, Op};
use crate::planner_config::NodeRoute;
use crate::types::{Family, VsKey};

/// What the fake kernel holds and records.
#[derive(Default)]
pub struct FakeState {
    /// The kernel objects.
    pub state: ObservedState,
    /// The node's addresses.
    pub node_addresses: Vec<IpAddr>,
    /// The node's routes.
    pub node_routes: Vec<NodeRoute>,
    /// Every op applied successfully, in order.
    pub applied: Vec<Op>,
    /// Every `observe` call so far.
    pub observes: usize,
    /// The rule inputs last written, and how many times rules were written.
    pub rules: Option<BTreeMap<Family, IptablesInputs>>,
    /// Number of rule writes.
    pub rule_writes: usize,
    /// Whether `prepare` ran.
    pub prepared: bool,
    /// Ops matching this predicate fail with an injected error.
    #[allow(clippy::type_complexity)]
    pub fail_op: Option<Arc<dyn Fn(&Op) -> bool + Send + Sync>>,
    /// Every call fails while set (a kernel that refuses everything).
    pub fail_all: bool,
    /// A full dump takes its snapshot at once but finishes only after this long (a large
    /// table): ops applied meanwhile are missing from it, as they can be from a real dump.
    pub dump_delay: std::time::Duration,
}

impl std::fmt::Debug for FakeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeState")
            .field("state", &self.state)
            .field("applied", &self.applied.len())
            .field("observes", &self.observes)
            .field("rule_writes", &self.rule_writes)
            .finish_non_exhaustive()
    }
}

/// A fake kernel; clones share one state.
#[derive(Clone, Default)]
pub struct FakeKernel {
    inner: Arc<Mutex<FakeState>>,
}

impl std::fmt::Debug for FakeKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKernel").finish_non_exhaustive()
    }
}

impl FakeKernel {
    /// An empty kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// A kernel that already holds `state` (a node with rules from a previous run, or foreign ones).
    pub fn with_state(state: ObservedState) -> Self {
        let k = Self::new();
        k.handle().state = state;
        k
    }

    /// The shared state, for the test to read or change.
    pub fn handle(&self) -> MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock already failed; keep its state readable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check(&self, what: &str) -> Result<(), KernelError> {
        if self.handle().fail_all {
            return Err(KernelError::Injected(what.to_owned()));
        }
        Ok(())
    }
}

impl Kernel for FakeKernel {
    async fn prepare(&mut self) -> Result<(), KernelError> {
        self.check("prepare")?;
        self.handle().prepared = true;
        Ok(())
    }

    async fn node_addresses(&mut self) -> Result<Vec<IpAddr>, KernelError> {
        self.check("node addresses")?;
        Ok(self.handle().node_addresses.clone())
    }

    async fn node_routes(&mut self) -> Result<Vec<NodeRoute>, KernelError> {
        self.check("node routes")?;
        Ok(self.handle().node_routes.clone())
    }

    type Dump = Result<ObservedState, KernelError>;

    fn dump(&mut self) -> impl Future<Output = Self::Dump> + Send + 'static {
        let snapshot = self.check("observe").map(|()| {
            let mut h = self.handle();
            h.observes += 1;
            (h.state.clone(), h.dump_delay)
        });
        async move {
            let (state, delay) = snapshot?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(state)
        }
    }

    fn adopt(&mut self, dump: Self::Dump) -> Result<ObservedState, KernelError> {
        dump
    }

    async fn apply(&mut self, ops: &[Op]) -> ApplyOutcome {
        let mut out = ApplyOutcome::default();
        let mut h = self.handle();
        for (i, op) in ops.iter().enumerate() {
            let injected = h.fail_all || h.fail_op.as_ref().is_some_and(|f| f(op));
            let res = if injected {
                Err(KernelError::Injected(op.to_string()))
            } else {
                h.state.apply(op).map_err(KernelError::from)
            };
            match res {
                Ok(()) => h.applied.push(op.clone()),
                Err(e) => out.failed.push((i, e)),
            }
        }
        out
    }

    async fn sync_rules(
        &mut self,
        inputs: &BTreeMap<Family, IptablesInputs>,
    ) -> Result<bool, KernelError> {
        self.check("iptables-restore")?;
        let mut h = self.handle();
        if h.rules.as_ref() == Some(inputs) {
            return Ok(false);
        }
        h.rules = Some(inputs.clone());
        h.rule_writes += 1;
        Ok(true)
    }

    async fn counters(&mut self, of: &[VsKey]) -> Result<Vec<Counters>, KernelError> {
        self.check("counters")?;
        let h = self.handle();
        let vss = h.state.virtual_servers();
        Ok(of
            .iter()
            .filter_map(|vs| vss.get(vs).map(|v| (vs, v)))
            .flat_map(|(vs, v)| {
                v.reals.iter().map(|r| Counters {
                    vs: *vs,
                    rs: r.key,
                    active: r.active,
                    inactive: r.inactive,
                })
            })
            .collect())
    }
}
