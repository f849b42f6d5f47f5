//! `kube-ipvs cleanup --handback`: leaves a node in the shape stock kube-proxy (IPVS mode)
//! programs, so a rollback to it converges without exposure. Run once stock kube-proxy has
//! replaced kube-ipvs on the node (`kubectl rollout undo`); kube-ipvs must not run meanwhile.
//!
//! What stock does on start with kube-ipvs's state, read from kubernetes/kubernetes
//! pkg/proxy/ipvs (proxier.go `syncProxyRules`, ipset.go `ensureIPSet`, ipset/ipset.go
//! `createSet`):
//! - it ensures each set with `ipset create NAME TYPE family F hashsize 1024 maxelem 65536
//!   -exist`, which the kernel refuses when the existing set's `maxelem` differs, and then
//!   returns from the sync: a set kube-ipvs grew past 65,536 members stops stock from
//!   programming anything. So such a set is resized back to stock's options (members beyond
//!   65,536 do not fit: stock could not hold them either).
//! - it binds every ClusterIP to `kube-ipvs0` and never looks at routes: kube-ipvs's `local`
//!   route for a service CIDR would stay, making every unallocated service address answer on
//!   host ports (stock's `KUBE-IPVS-FILTER` rejects only addresses in `KUBE-IPVS-IPS`). So the
//!   virtual-server addresses the route covers are bound (and put in `KUBE-IPVS-IPS`) as stock
//!   binds them, and then the route is removed: no address stops being local on the way.
//! - everything else (virtual servers, real servers, the other sets' members, its chains) it
//!   reconciles itself; kube-ipvs creates nothing stock would misread as its own.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use ipvs_netlink::{Client, VirtualServiceKey};
use nodenet::ipset::{Entry, IpsetClient};
use nodenet::link::Links;
use nodenet::route::OUR_PROTOCOL;

use super::{CleanupError, CleanupOptions};
use nodenet::AddressFamily;
use nodenet::iptables::KubeSet;

/// Stock's `maxelem` (pkg/proxy/ipvs/ipset/ipset.go `setIPSetDefaults`).
pub const STOCK_MAXELEM: u32 = 65_536;

/// One hash set of kube-proxy's names, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSet {
    /// Name.
    pub name: String,
    /// Its `maxelem`.
    pub maxelem: u32,
    /// Members.
    pub members: u32,
}

/// What the hand-back looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandbackObserved {
    /// Addresses of the IPVS virtual servers.
    pub vips: BTreeSet<IpAddr>,
    /// kube-ipvs's service-CIDR routes (`local`, table local, on `lo`, `proto static`).
    pub routes: Vec<IpNet>,
    /// Addresses bound to the dummy device.
    pub bound: BTreeSet<IpAddr>,
    /// kube-proxy's hash sets.
    pub sets: Vec<ObservedSet>,
}

/// One hand-back step, in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandbackStep {
    /// Recreate a set with stock's `maxelem` (atomic swap, members kept up to it).
    ResizeSet {
        /// The set.
        name: String,
        /// Its `maxelem` now.
        from: u32,
        /// Members that will not fit.
        dropped: u32,
    },
    /// Bind these virtual-server addresses to the dummy device and add them to
    /// `KUBE-IPVS-IPS`, as stock does.
    Bind {
        /// The addresses.
        addrs: Vec<IpAddr>,
    },
    /// Remove one of kube-ipvs's service-CIDR routes.
    DeleteRoute {
        /// The CIDR.
        prefix: IpNet,
    },
}

impl fmt::Display for HandbackStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ResizeSet {
                name,
                from,
                dropped,
            } => {
                write!(
                    f,
                    "resize ipset {name} from maxelem {from} to {STOCK_MAXELEM} (stock's)"
                )?;
                if *dropped > 0 {
                    write!(
                        f,
                        "; {dropped} member(s) do not fit (stock cannot hold this cluster)"
                    )?;
                }
                Ok(())
            }
            Self::Bind { addrs } => write!(
                f,
                "bind {} virtual-server address(es) to the dummy device and KUBE-IPVS-IPS",
                addrs.len()
            ),
            Self::DeleteRoute { prefix } => write!(f, "delete route local {prefix} table local"),
        }
    }
}

/// The hand-back steps for what is observed: sets first (stock's sync stops at a set it cannot
/// ensure), then the bindings, then the routes once nothing they cover depends on them.
pub fn plan_handback(obs: &HandbackObserved) -> Vec<HandbackStep> {
    let mut steps: Vec<HandbackStep> = obs
        .sets
        .iter()
        .filter(|s| s.maxelem != STOCK_MAXELEM)
        .map(|s| HandbackStep::ResizeSet {
            name: s.name.clone(),
            from: s.maxelem,
            dropped: s.members.saturating_sub(STOCK_MAXELEM),
        })
        .collect();
    let addrs: Vec<IpAddr> = obs
        .vips
        .iter()
        .filter(|a| obs.routes.iter().any(|r| r.contains(*a)) && !obs.bound.contains(a))
        .copied()
        .collect();
    if !addrs.is_empty() {
        steps.push(HandbackStep::Bind { addrs });
    }
    steps.extend(
        obs.routes
            .iter()
            .map(|r| HandbackStep::DeleteRoute { prefix: *r }),
    );
    steps
}

fn set_names() -> impl Iterator<Item = String> {
    KubeSet::ALL
        .iter()
        .flat_map(|k| [k.name(AddressFamily::Inet), k.name(AddressFamily::Inet6)])
}

/// Reads what the hand-back needs.
pub async fn observe_handback(opts: &CleanupOptions) -> Result<HandbackObserved, CleanupError> {
    let mut out = HandbackObserved::default();
    match Client::with_options(ipvs_netlink::ClientOptions {
        timeout: opts.timeout,
        ..Default::default()
    })
    .await
    {
        Ok(mut c) => {
            for s in c.list_services().await? {
                if let VirtualServiceKey::Inet { addr, .. } = s.key {
                    out.vips.insert(addr);
                }
            }
        }
        Err(ipvs_netlink::Error::ModuleNotLoaded) => {}
        Err(e) => return Err(e.into()),
    }
    let mut links = Links::connect(opts.timeout).await?;
    let lo = links.link_index("lo").await?;
    out.routes = links
        .local_prefix_routes()
        .await?
        .into_iter()
        .filter(|r| Some(r.ifindex) == lo && r.protocol == u8::from(OUR_PROTOCOL))
        .map(|r| r.prefix)
        .collect();
    if let Some(ifindex) = links.link_index(&opts.dummy_device).await? {
        out.bound = links
            .addresses(ifindex)
            .await?
            .into_iter()
            .map(|n| n.addr())
            .collect();
    }
    let mut ipset = IpsetClient::connect().await?;
    let names: BTreeSet<String> = ipset.list_names().await?.into_iter().collect();
    for name in set_names().filter(|n| names.contains(n)) {
        let h = ipset.header(&name).await?;
        if let Some(maxelem) = h.maxelem.filter(|_| h.set_type.is_hash()) {
            out.sets.push(ObservedSet {
                name,
                maxelem,
                members: h.elements,
            });
        }
    }
    Ok(out)
}

/// Runs the steps in order; a failed step stops the hand-back before a route goes that
/// something may still need.
pub async fn execute_handback(
    steps: &[HandbackStep],
    opts: &CleanupOptions,
) -> Result<(), CleanupError> {
    let mut links = Links::connect(opts.timeout).await?;
    let mut ipset = IpsetClient::connect().await?;
    for step in steps {
        match step {
            HandbackStep::ResizeSet { name, .. } => {
                ipset.resize(name, STOCK_MAXELEM).await?;
            }
            HandbackStep::Bind { addrs } => {
                let dummy = links.ensure_dummy(&opts.dummy_device).await?;
                links.add_addresses(dummy, addrs).await?;
                for (family, set) in [
                    (
                        AddressFamily::Inet,
                        KubeSet::IpvsIps.name(AddressFamily::Inet),
                    ),
                    (
                        AddressFamily::Inet6,
                        KubeSet::IpvsIps.name(AddressFamily::Inet6),
                    ),
                ] {
                    let entries: Vec<Entry> = addrs
                        .iter()
                        .filter(|a| a.is_ipv4() == (family == AddressFamily::Inet))
                        .map(|a| Entry::Ip(*a))
                        .collect();
                    if !entries.is_empty() {
                        ipset.add_batch(&set, &entries).await?;
                    }
                }
            }
            HandbackStep::DeleteRoute { prefix } => {
                let lo = links.link_index("lo").await?.unwrap_or(1);
                links.remove_local_route(*prefix, lo).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_routed_node_is_bound_then_unrouted_and_grown_sets_go_back_to_stock_options() {
        let obs = HandbackObserved {
            vips: [
                ip("10.96.0.1"),
                ip("10.96.0.2"),
                ip("192.0.2.7"),
                ip("10.0.0.5"),
            ]
            .into(),
            routes: vec!["10.96.0.0/16".parse().unwrap()],
            // An external IP kube-ipvs bound, and one ClusterIP not yet retired.
            bound: [ip("192.0.2.7"), ip("10.96.0.2")].into(),
            sets: vec![
                ObservedSet {
                    name: "KUBE-CLUSTER-IP".into(),
                    maxelem: 1 << 20,
                    members: 70_000,
                },
                ObservedSet {
                    name: "KUBE-LOOP-BACK".into(),
                    maxelem: 65_536,
                    members: 3,
                },
            ],
        };
        let steps = plan_handback(&obs);
        assert_eq!(
            steps,
            [
                HandbackStep::ResizeSet {
                    name: "KUBE-CLUSTER-IP".into(),
                    from: 1 << 20,
                    dropped: 70_000 - 65_536
                },
                HandbackStep::Bind {
                    addrs: vec![ip("10.96.0.1")]
                },
                HandbackStep::DeleteRoute {
                    prefix: "10.96.0.0/16".parse().unwrap()
                },
            ]
        );
        assert!(steps[0].to_string().contains("4464 member(s) do not fit"));
    }

    #[test]
    fn a_node_in_stock_shape_needs_nothing() {
        let obs = HandbackObserved {
            vips: [ip("10.96.0.1")].into(),
            routes: vec![],
            bound: [ip("10.96.0.1")].into(),
            sets: vec![ObservedSet {
                name: "KUBE-CLUSTER-IP".into(),
                maxelem: 65_536,
                members: 1,
            }],
        };
        assert!(plan_handback(&obs).is_empty());
    }

    #[test]
    fn both_families_sets_are_looked_at() {
        let names: Vec<String> = set_names().collect();
        assert!(names.contains(&"KUBE-IPVS-IPS".to_string()));
        assert!(names.contains(&"KUBE-6-CLUSTER-IP".to_string()));
    }
}
