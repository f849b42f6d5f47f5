//! The real kernel: IPVS over generic netlink (ipvs-netlink), the dummy device, its addresses and
//! the `local` routes over rtnetlink, ipsets over nfnetlink, conntrack cleanup (nodenet), the
//! iptables rule set through iptables-restore, the sysctls.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ApplyOutcome, Counters, Kernel, KernelError};
use crate::config::Config;
use crate::desired::IptablesInputs;
use crate::plan::{ObservedState, Op};
use crate::types::Family;

/// What the real kernel needs to know besides the plan.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// The dummy device (`kube-ipvs0`).
    pub dummy_device: String,
    /// Families this node programs.
    pub families: Vec<Family>,
    /// Timeout of every netlink request.
    pub request_timeout: Duration,
    /// Network namespace to work in (tests); `None`: the agent's own.
    pub netns: Option<PathBuf>,
}

impl KernelConfig {
    /// From the agent's effective configuration.
    pub fn from_config(cfg: &Config, families: &[Family]) -> Self {
        Self {
            dummy_device: cfg.dummy_device.to_string(),
            families: families.to_vec(),
            request_timeout: Duration::from_secs(5),
            netns: None,
        }
    }
}

/// The node's kernel over netlink.
#[derive(Debug)]
pub struct NetlinkKernel {
    cfg: KernelConfig,
}

impl NetlinkKernel {
    /// Connects every socket.
    pub async fn connect(cfg: KernelConfig) -> Result<Self, KernelError> {
        Ok(Self { cfg })
    }

    fn unimplemented(&self, what: &str) -> KernelError {
        KernelError::Injected(format!(
            "{what}: not implemented yet ({})",
            self.cfg.dummy_device
        ))
    }
}

impl Kernel for NetlinkKernel {
    async fn prepare(&mut self) -> Result<(), KernelError> {
        Err(self.unimplemented("prepare"))
    }

    async fn node_addresses(&mut self) -> Result<Vec<IpAddr>, KernelError> {
        Err(self.unimplemented("node addresses"))
    }

    async fn observe(&mut self) -> Result<ObservedState, KernelError> {
        Err(self.unimplemented("observe"))
    }

    async fn apply(&mut self, ops: &[Op]) -> ApplyOutcome {
        ApplyOutcome {
            failed: (0..ops.len())
                .map(|i| (i, self.unimplemented("apply")))
                .collect(),
        }
    }

    async fn sync_rules(
        &mut self,
        _inputs: &BTreeMap<Family, IptablesInputs>,
    ) -> Result<bool, KernelError> {
        Err(self.unimplemented("iptables"))
    }

    async fn counters(&mut self) -> Result<Vec<Counters>, KernelError> {
        Err(self.unimplemented("counters"))
    }
}
