//! The kernel of the agent tests: an [`ObservedState`] with the kernel's EEXIST/ENOENT semantics,
//! shared with the test through [`FakeKernel::handle`] so it can inspect the state, count ops,
//! stage foreign entries, inject failures and "restart" the agent against the same kernel.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ApplyOutcome, Kernel, KernelError, PartialRead, ReadScope};
use crate::desired::IptablesInputs;
use crate::plan::{ObservedState, Op};
use crate::planner_config::NodeRoute;
use crate::types::Family;

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
    /// The scope of every partial read so far ([`Kernel::read`]).
    pub reads: Vec<ReadScope>,
    /// The rule inputs last written, and how many times rules were written.
    pub rules: Option<BTreeMap<Family, IptablesInputs>>,
    /// Number of rule writes.
    pub rule_writes: usize,
    /// Whether `prepare` ran.
    pub prepared: bool,
    /// Ops matching this predicate fail with an injected error.
    #[allow(clippy::type_complexity)]
    pub fail_op: Option<Arc<dyn Fn(&Op) -> bool + Send + Sync>>,
    /// Ops for which this returns an error fail with it: an error as the real clients return it,
    /// with its errno (ENOMEM, EPERM, ...).
    #[allow(clippy::type_complexity)]
    pub refuse: Option<Arc<dyn Fn(&Op) -> Option<KernelError> + Send + Sync>>,
    /// Every call fails while set (a kernel that refuses everything).
    pub fail_all: bool,
    /// A full or partial read takes its snapshot at once but finishes only after this long
    /// (a large table): ops applied meanwhile are missing from it, as they can be from a real one.
    pub read_delay: std::time::Duration,
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

    type FullRead = Result<ObservedState, KernelError>;

    fn read_full(&mut self) -> impl Future<Output = Self::FullRead> + Send + 'static {
        let snapshot = self.check("observe").map(|()| {
            let mut h = self.handle();
            h.observes += 1;
            (h.state.clone(), h.read_delay)
        });
        async move {
            let (state, delay) = snapshot?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(state)
        }
    }

    fn adopt(&mut self, read: Self::FullRead) -> Result<ObservedState, KernelError> {
        read
    }

    async fn apply(&mut self, ops: &[Op]) -> ApplyOutcome {
        let mut out = ApplyOutcome::default();
        let mut h = self.handle();
        for (i, op) in ops.iter().enumerate() {
            let injected = h.fail_all || h.fail_op.as_ref().is_some_and(|f| f(op));
            let refused = h.refuse.as_ref().and_then(|f| f(op));
            let res = if injected {
                Err(KernelError::Injected(op.to_string()))
            } else if let Some(e) = refused {
                Err(e)
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

    type Read = Result<PartialRead, KernelError>;

    fn read(&mut self, scope: ReadScope) -> impl Future<Output = Self::Read> + Send + 'static {
        let snapshot = self.check("read").map(|()| {
            let mut h = self.handle();
            h.reads.push(scope.clone());
            let vss = h.state.virtual_servers();
            let vs = scope
                .vs
                .iter()
                .map(|k| (*k, vss.get(k).map(|v| v.reals.clone())))
                .collect();
            let table = scope.table.then(|| h.state.without_reals());
            (PartialRead { vs, table }, h.read_delay)
        });
        async move {
            let (read, delay) = snapshot?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(read)
        }
    }

    fn adopt_read(&mut self, read: Self::Read) -> Result<PartialRead, KernelError> {
        read
    }
}
