//! The apply layer: the only part of kube-ipvs that touches the kernel.
//!
//! The agent talks to a [`Kernel`]: one full read in domain terms ([`Kernel::observe`]), ordered
//! plan ops applied through the batch paths ([`Kernel::apply`]), the constant iptables rule set
//! ([`Kernel::sync_rules`]) and partial reads for the periodic verification and the drain tick
//! ([`Kernel::read`]). [`NetlinkKernel`]
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
/// Domain values <-> the kernel clients' values (for `explain`'s targeted reads).
pub(crate) use netlink::convert;
/// The domain key ([`VsKey`]) of a kernel virtual service key (for ordering and ownership).
pub use netlink::convert::vs_key;
pub use netlink::{KernelConfig, NetlinkKernel};

use crate::desired::IptablesInputs;
use crate::plan::{ObservedState, Op};
pub use crate::plan::{PartialRead, ReadScope};
use crate::planner_config::NodeRoute;
use crate::types::Family;

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

/// The node's kernel, as the agent sees it.
///
/// Methods take `&mut self` and return `Send` futures so the agent can own one kernel in one task.
pub trait Kernel: Send {
    /// Creates what every sync relies on and no plan changes: the dummy device (down, no ARP),
    /// every ipset kube-proxy uses (empty; existing ones and their members are kept), the sysctls.
    /// Idempotent; called before the first full read and at every repair. The next read (full or
    /// partial) also checks the installed iptables rules against those last written, off
    /// the caller's loop; the following [`Kernel::sync_rules`] restores a family found changed.
    fn prepare(&mut self) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// The node's own addresses (every link but the dummy device), for NodePorts.
    fn node_addresses(&mut self) -> impl Future<Output = Result<Vec<IpAddr>, KernelError>> + Send;

    /// The node's routes (every table but `local`), for the service CIDR safety check
    /// ([`crate::desired::cidrs`]).
    fn node_routes(&mut self) -> impl Future<Output = Result<Vec<NodeRoute>, KernelError>> + Send;

    /// What a detached full read hands back to [`Kernel::adopt`].
    type FullRead: Send + 'static;

    /// Starts one full read of what the planner diffs: the whole IPVS table (with connection
    /// counters), the dummy device's addresses, our `local` routes, the members of our ipsets.
    /// The future does not borrow the kernel, so ops can be applied while it runs (a full read
    /// of 100,000 virtual servers takes seconds; incremental syncs must not wait for it). Objects
    /// changed while it runs may be seen before or after the change.
    fn read_full(&mut self) -> impl Future<Output = Self::FullRead> + Send + 'static;

    /// Takes back a finished [`Kernel::read_full`]: its observed state, or why it failed.
    fn adopt(&mut self, read: Self::FullRead) -> Result<ObservedState, KernelError>;

    /// One full read, waited for.
    fn observe(&mut self) -> impl Future<Output = Result<ObservedState, KernelError>> + Send {
        async move {
            let d = self.read_full().await;
            self.adopt(d)
        }
    }

    /// Applies ops in plan order through the batch paths; a failed op does not stop the others.
    fn apply(&mut self, ops: &[Op]) -> impl Future<Output = ApplyOutcome> + Send;

    /// Writes the constant iptables rule set for these inputs if it differs from what this
    /// kernel last wrote (or was never written, or a read since [`Kernel::prepare`] found it
    /// changed behind our back). Returns whether anything was written.
    fn sync_rules(
        &mut self,
        inputs: &BTreeMap<Family, IptablesInputs>,
    ) -> impl Future<Output = Result<bool, KernelError>> + Send;

    /// What a detached partial read hands back to [`Kernel::adopt_read`].
    type Read: Send + 'static;

    /// Starts a partial read (see [`ReadScope`]); like [`Kernel::read_full`], it borrows nothing and
    /// may see objects changed while it runs before or after the change. The cost follows the
    /// scope: one GET_DEST dump per virtual server of `scope.vs`.
    fn read(&mut self, scope: ReadScope) -> impl Future<Output = Self::Read> + Send + 'static;

    /// Takes back a finished [`Kernel::read`]: what it saw, or why it failed.
    fn adopt_read(&mut self, read: Self::Read) -> Result<PartialRead, KernelError>;
}
