//! `kube-ipvs cleanup` and `kube-ipvs run --cleanup`: remove what kube-ipvs, or stock kube-proxy
//! in IPVS mode, created on a node, and nothing else.
//!
//! `plan = f(observed)` is pure ([`plan()`]); [`observe`] reads the node and [`execute`] runs the
//! steps. [`cleanup`] does all three. Unlike stock `--cleanup` (which flushes the whole IPVS
//! table) only virtual servers on addresses we own are removed unless `--all` is given.

mod handback;
mod io;
mod plan;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub use handback::{
    HandbackObserved, HandbackStep, ObservedSet, STOCK_MAXELEM, execute_handback, observe_handback,
    plan_handback,
};
use ipnet::IpNet;

pub use io::{CleanupError, Outcome, cleanup, execute, observe};
pub use plan::{Observed, ObservedDummy, ObservedIptables, ObservedRoute, Plan, Step, Why, plan};

/// What to clean and how to recognise ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Flush the whole IPVS table (stock kube-proxy `--cleanup`), foreign entries included.
    pub all: bool,
    /// The dummy device (`kube-ipvs0`).
    pub dummy_device: String,
    /// `ipvs.excludeCIDRs`: virtual servers on these addresses are never removed (but `--all`).
    pub exclude_cidrs: Vec<IpNet>,
    /// Virtual servers on node addresses with a port in this range are NodePorts (ours).
    pub node_port_range: RangeInclusive<u16>,
    /// The owners file the agent publishes: its virtual servers are ours; it is removed too.
    pub owners_file: Option<PathBuf>,
    /// Bound on every kernel request and iptables command.
    pub timeout: Duration,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        Self {
            all: false,
            dummy_device: nodenet::link::DEFAULT_DUMMY_NAME.to_string(),
            exclude_cidrs: Vec::new(),
            node_port_range: 30000..=32767,
            owners_file: Some(PathBuf::from(crate::owners::DEFAULT_PATH)),
            timeout: Duration::from_secs(10),
        }
    }
}
