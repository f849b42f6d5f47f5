//! The constant iptables rule set of each family: built from the planner's inputs and the
//! configuration ([`rule_set`], pure), written through `iptables-restore` when it differs from
//! what this kernel last wrote (the first call always goes to nodenet, which compares with what
//! is installed and restores only the tables that differ). A repair checks the installed rules
//! with its kernel read, off the agent's loop ([`RulesCheck`]): `iptables-save` takes a second
//! under emulation, and a change must not wait for it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nodenet::AddressFamily;
use nodenet::iptables::{Applied, Iptables, LocalDetect, NoNodeAccess, RuleSet};

use super::{KernelConfig, KernelError, NetlinkKernel, convert, netns};
use crate::config::LocalDetection;
use crate::desired::IptablesInputs;
use crate::types::{Family, VsKey};

fn local_detect(cfg: &KernelConfig, family: Family) -> LocalDetect {
    let of_family = |cidrs: &[ipnet::IpNet]| {
        cidrs
            .iter()
            .find(|c| Family::of(&c.addr()) == family)
            .map_or(LocalDetect::None, |c| LocalDetect::ClusterCidr(*c))
    };
    match &cfg.local_detection {
        LocalDetection::Disabled => LocalDetect::None,
        LocalDetection::ClusterCidr(cidrs) => of_family(cidrs),
        LocalDetection::NodeCidr => of_family(&cfg.node_pod_cidrs),
        LocalDetection::BridgeInterface(b) => LocalDetect::BridgeInterface(b.to_string()),
        LocalDetection::InterfaceNamePrefix(p) => LocalDetect::InterfaceNamePrefix(p.clone()),
    }
}

/// The rule set of one family.
pub fn rule_set(
    cfg: &KernelConfig,
    family: Family,
    inputs: &IptablesInputs,
    random_fully: bool,
) -> RuleSet {
    let mut rs = RuleSet::new(family.into());
    rs.masquerade_bit = cfg.masquerade_bit;
    rs.masquerade_all = cfg.masquerade_all;
    rs.local_detect = local_detect(cfg, family);
    rs.random_fully = random_fully;
    rs.nonempty_sets = inputs
        .non_empty_sets
        .iter()
        .filter(|s| s.family == family)
        .map(|s| convert::kube_set(s.kind))
        .collect();
    rs.extra_reject_cidrs = inputs
        .filter_cidrs
        .iter()
        .filter(|c| Family::of(&c.addr()) == family)
        .map(|c| c.trunc())
        .collect();
    rs.lb_no_node_access = inputs
        .lb_no_node_access
        .iter()
        .filter(|k| k.family() == family)
        .filter_map(|k| match *k {
            VsKey::Service { proto, addr, port } => Some(NoNodeAccess {
                ip: addr,
                protocol: convert::rules_protocol(proto),
                port,
            }),
            VsKey::Fwmark { .. } => None,
        })
        .collect();
    rs
}

/// A check of the installed rules against what this kernel last wrote, taken when a repair
/// starts ([`NetlinkKernel::take_rules_check`]) and run with its detached read.
#[derive(Default)]
pub struct RulesCheck(Vec<(Family, Iptables, RuleSet)>);

impl RulesCheck {
    /// The families whose installed rules are not what was written (someone flushed a chain or
    /// removed a jump). A failed `iptables-save` counts as a difference: the write that follows
    /// on the loop then reports the error.
    pub async fn run(self, netns: Option<PathBuf>) -> Vec<(Family, RuleSet)> {
        let mut drifted = Vec::new();
        for (family, ipt, written) in self.0 {
            let want = written.clone();
            let installed = netns::blocking(netns.as_deref(), "iptables-save", move || {
                ipt.installed(&want)
            })
            .await;
            if !matches!(installed, Ok(Ok(true))) {
                drifted.push((family, written));
            }
        }
        drifted
    }
}

impl NetlinkKernel {
    /// The check the next detached read runs: every family written so far, if [`prepare`]
    /// asked for one since the last.
    ///
    /// [`prepare`]: super::prepare::prepare
    pub(super) fn take_rules_check(&mut self) -> RulesCheck {
        if !std::mem::take(&mut self.rules_due) {
            return RulesCheck::default();
        }
        RulesCheck(
            self.written
                .iter()
                .filter_map(|(f, rs)| Some((*f, self.iptables.get(f)?.clone(), rs.clone())))
                .collect(),
        )
    }

    /// Forgets the write of each family a check found differing, so the next `sync_rules`
    /// restores it; unless the rules were written again since the check began (that write
    /// compared with what is installed).
    pub(super) fn forget_drifted(&mut self, drifted: Vec<(Family, RuleSet)>) {
        for (family, checked) in drifted {
            if self.written.get(&family) == Some(&checked) {
                self.written.remove(&family);
            }
        }
    }
}

fn iptables_err(op: String) -> impl FnOnce(nodenet::iptables::IptablesError) -> KernelError {
    move |source| KernelError::Iptables { op, source }
}

/// Writes the rule set of every configured family whose inputs changed since the last write.
/// Returns whether `iptables-restore` ran.
pub async fn sync_rules(
    k: &mut NetlinkKernel,
    inputs: &BTreeMap<Family, IptablesInputs>,
) -> Result<bool, KernelError> {
    let empty = IptablesInputs::default();
    let mut wrote = false;
    for family in k.cfg.families.clone() {
        let (ipt, random_fully) = backend(k, family).await?;
        let want = rule_set(
            &k.cfg,
            family,
            inputs.get(&family).unwrap_or(&empty),
            random_fully,
        );
        if k.written.get(&family) == Some(&want) {
            continue;
        }
        let desc = want.clone();
        let applied = netns::blocking(k.cfg.netns.as_deref(), "iptables-restore", move || {
            ipt.apply(&desc)
        })
        .await?
        .map_err(iptables_err(format!("restore {family} rules")))?;
        wrote |= matches!(applied, Applied::Restored(_));
        k.written.insert(family, want);
    }
    Ok(wrote)
}

/// The family's back end and `--random-fully` support, detected once.
async fn backend(k: &mut NetlinkKernel, family: Family) -> Result<(Iptables, bool), KernelError> {
    if let (Some(ipt), Some(rf)) = (k.iptables.get(&family), k.random_fully.get(&family)) {
        return Ok((ipt.clone(), *rf));
    }
    let timeout = k.cfg.iptables_timeout;
    let rfam: AddressFamily = family.into();
    let (ipt, rf) = netns::blocking(k.cfg.netns.as_deref(), "detect iptables", move || {
        let ipt = Iptables::detect(rfam, timeout)?;
        // An iptables too old to tell is treated as lacking the option.
        let rf = ipt.random_fully().unwrap_or(false);
        Ok::<_, nodenet::iptables::IptablesError>((ipt, rf))
    })
    .await?
    .map_err(iptables_err(format!("detect {family} iptables back end")))?;
    k.iptables.insert(family, ipt.clone());
    k.random_fully.insert(family, rf);
    Ok((ipt, rf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{IpsetName, SetKind};
    use nodenet::iptables::KubeSet;

    fn inputs() -> BTreeMap<Family, IptablesInputs> {
        let mut m = BTreeMap::new();
        let mut v4 = IptablesInputs::default();
        v4.non_empty_sets
            .insert(IpsetName::new(SetKind::ClusterIp, Family::V4));
        v4.non_empty_sets
            .insert(IpsetName::new(SetKind::NodePortTcp, Family::V4));
        v4.filter_cidrs.push("10.96.0.0/16".parse().unwrap());
        v4.lb_no_node_access.insert(VsKey::new(
            crate::types::Proto::Udp,
            "203.0.113.1".parse().unwrap(),
            53,
        ));
        m.insert(Family::V4, v4);
        let mut v6 = IptablesInputs::default();
        v6.non_empty_sets
            .insert(IpsetName::new(SetKind::LoadBalancerSourceCidr, Family::V6));
        v6.filter_cidrs.push("fd00:10:96::/112".parse().unwrap());
        m.insert(Family::V6, v6);
        m
    }

    #[test]
    fn rule_sets_take_the_family_inputs_and_the_configuration() {
        let mut cfg = KernelConfig::new("kube-ipvs0", &Family::ALL);
        cfg.masquerade_bit = 15;
        cfg.masquerade_all = true;
        cfg.local_detection = LocalDetection::ClusterCidr(vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:244::/56".parse().unwrap(),
        ]);
        let all = inputs();
        let v4 = rule_set(&cfg, Family::V4, all.get(&Family::V4).unwrap(), true);
        assert_eq!(v4.family, nodenet::AddressFamily::Inet);
        assert_eq!(v4.masquerade_bit, 15);
        assert!(v4.masquerade_all && v4.random_fully);
        assert_eq!(
            v4.local_detect,
            LocalDetect::ClusterCidr("10.244.0.0/16".parse().unwrap())
        );
        assert_eq!(
            v4.nonempty_sets.iter().copied().collect::<Vec<_>>(),
            [KubeSet::ClusterIp, KubeSet::NodePortTcp]
        );
        assert_eq!(
            v4.extra_reject_cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.96.0.0/16"]
        );
        // KUBE-IPVS-OUT-FILTER's entries, as stock writes them (`--vproto udp`).
        assert_eq!(
            v4.lb_no_node_access.iter().copied().collect::<Vec<_>>(),
            [NoNodeAccess {
                ip: "203.0.113.1".parse().unwrap(),
                protocol: nodenet::iptables::Protocol::Udp,
                port: 53,
            }]
        );
        let v6 = rule_set(&cfg, Family::V6, all.get(&Family::V6).unwrap(), false);
        assert_eq!(
            v6.local_detect,
            LocalDetect::ClusterCidr("fd00:244::/56".parse().unwrap())
        );
        assert_eq!(
            v6.nonempty_sets.iter().copied().collect::<Vec<_>>(),
            [KubeSet::LoadBalancerSourceCidr]
        );
        assert!(!v6.random_fully);
        assert!(v6.lb_no_node_access.is_empty());
    }

    #[test]
    fn local_detection_modes_map_per_family() {
        let mut cfg = KernelConfig::new("kube-ipvs0", &Family::ALL);
        let empty = IptablesInputs::default();
        let detect = |cfg: &KernelConfig, f| rule_set(cfg, f, &empty, false).local_detect;
        assert_eq!(detect(&cfg, Family::V4), LocalDetect::None);
        cfg.local_detection = LocalDetection::ClusterCidr(vec!["10.244.0.0/16".parse().unwrap()]);
        assert_eq!(detect(&cfg, Family::V6), LocalDetect::None);
        cfg.local_detection = LocalDetection::NodeCidr;
        assert_eq!(detect(&cfg, Family::V4), LocalDetect::None);
        cfg.node_pod_cidrs = vec!["10.244.3.0/24".parse().unwrap()];
        assert_eq!(
            detect(&cfg, Family::V4),
            LocalDetect::ClusterCidr("10.244.3.0/24".parse().unwrap())
        );
        cfg.local_detection = LocalDetection::BridgeInterface("cbr0".parse().unwrap());
        assert_eq!(
            detect(&cfg, Family::V4),
            LocalDetect::BridgeInterface("cbr0".into())
        );
        cfg.local_detection = LocalDetection::InterfaceNamePrefix("veth".into());
        assert_eq!(
            detect(&cfg, Family::V6),
            LocalDetect::InterfaceNamePrefix("veth".into())
        );
    }
}
