//! The apply layer: the only part of kube-ipvs that touches the kernel.
//!
//! The agent talks to a [`Kernel`]: one full dump in domain terms ([`Kernel::observe`]), ordered
//! plan ops applied through the batch paths ([`Kernel::apply`]), the constant iptables rule set
//! ([`Kernel::sync_rules`]) and the drain tick's counters ([`Kernel::counters`]). [`NetlinkKernel`]
//! is the real one (ipvs-netlink + nodenet); [`FakeKernel`] keeps an [`ObservedState`] with the
//! kernel's EEXIST/ENOENT semantics for the agent tests.
//!
//! | module | what |
//! |---|---|
//! | [`error`] | [`KernelError`]: which subsystem, which op, the errno |
//! | [`fake`] | [`FakeKernel`]: the kernel of the agent tests |
//! | `netlink` | [`NetlinkKernel`]: IPVS over generic netlink, addresses/routes over rtnetlink, ipsets over nfnetlink, iptables-restore |

mod error;
pub mod fake;
mod netlink;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;

pub use error::{KernelError, Subsystem};
pub use fake::FakeKernel;
pub use netlink::{KernelConfig, NetlinkKernel};

use crate::desired::IptablesInputs;
use crate::plan::{ObservedState, Op};
use crate::types::{Family, RsKey, VsKey};

/// The outcome of applying a plan: which ops failed, and why. Ops not listed were applied.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// Index into the applied slice, and the error.
    pub failed: Vec<(usize, KernelError)>,
}

impl ApplyOutcome {
    /// The ops the kernel accepted, in plan order (to commit into the cached observed state).
    pub fn succeeded<'a>(&'a self, ops: &'a [Op]) -> impl Iterator<Item = &'a Op> + 'a {
        let mut failed = self.failed.iter().map(|(i, _)| *i).peekable();
        ops.iter().enumerate().filter_map(move |(i, op)| {
            while failed.peek().is_some_and(|f| *f < i) {
                failed.next();
            }
            if failed.peek() == Some(&i) {
                None
            } else {
                Some(op)
            }
        })
    }

    /// The ops the kernel refused, with their errors.
    pub fn failures<'a>(
        &'a self,
        ops: &'a [Op],
    ) -> impl Iterator<Item = (&'a Op, &'a KernelError)> + 'a {
        self.failed
            .iter()
            .filter_map(|(i, e)| ops.get(*i).map(|op| (op, e)))
    }

    /// Whether every op was applied.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Connection counters of one real server, from one IPVS dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Virtual server.
    pub vs: VsKey,
    /// Real server.
    pub rs: RsKey,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
}

/// The node's kernel, as the agent sees it.
///
/// Methods take `&mut self` and return `Send` futures so the agent can own one kernel in one task.
pub trait Kernel: Send {
    /// Creates what every sync relies on and no plan changes: the dummy device (down, no ARP),
    /// every ipset kube-proxy uses (empty; existing ones and their members are kept), the sysctls.
    /// Idempotent; called before the first dump and at every full repair.
    fn prepare(&mut self) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// The node's own addresses (every link but the dummy device), for NodePorts.
    fn node_addresses(&mut self) -> impl Future<Output = Result<Vec<IpAddr>, KernelError>> + Send;

    /// What a detached dump hands back to [`Kernel::adopt`].
    type Dump: Send + 'static;

    /// Starts one full dump of what the planner diffs: the whole IPVS table (with connection
    /// counters), the dummy device's addresses, our `local` routes, the members of our ipsets.
    /// The future does not borrow the kernel, so ops can be applied while it runs (a dump of
    /// 100,000 virtual servers takes seconds; incremental syncs must not wait for it). Objects
    /// changed while it runs may be seen before or after the change.
    fn dump(&mut self) -> impl Future<Output = Self::Dump> + Send + 'static;

    /// Takes back a finished [`Kernel::dump`]: its observed state, or why it failed.
    fn adopt(&mut self, dump: Self::Dump) -> Result<ObservedState, KernelError>;

    /// One full dump, waited for.
    fn observe(&mut self) -> impl Future<Output = Result<ObservedState, KernelError>> + Send {
        async move {
            let d = self.dump().await;
            self.adopt(d)
        }
    }

    /// Applies ops in plan order through the batch paths; a failed op does not stop the others.
    fn apply(&mut self, ops: &[Op]) -> impl Future<Output = ApplyOutcome> + Send;

    /// Writes the constant iptables rule set for these inputs if it differs from what this
    /// kernel last wrote (or was never written). Returns whether anything was written.
    fn sync_rules(
        &mut self,
        inputs: &BTreeMap<Family, IptablesInputs>,
    ) -> impl Future<Output = Result<bool, KernelError>> + Send;

    /// Connection counters of the real servers of these virtual servers (one destination dump
    /// each: the drain tick's cost follows the drain backlog, not the table), for the drain
    /// tick. A virtual server that no longer exists is left out.
    fn counters(
        &mut self,
        of: &[VsKey],
    ) -> impl Future<Output = Result<Vec<Counters>, KernelError>> + Send;
}
