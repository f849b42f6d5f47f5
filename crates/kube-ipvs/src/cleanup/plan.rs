//! The cleanup plan: a pure function of the observed node state.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use ipvs_netlink::VirtualServiceKey;
use nodenet::AddressFamily;
use nodenet::iptables::{Backend, KubeSet};

use super::CleanupOptions;
use crate::kernel::vs_key;
use crate::owners::Owners;
pub use crate::plan::ownership::Why;
use crate::plan::ownership::{Evidence, Rules, our_route, owned};
use crate::types::VsKey;

/// Prefix of ipsets only kube-ipvs creates (temporary sets of an interrupted replace).
const OUR_SET_PREFIX: &str = "KIPVS-";

/// The dummy device as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDummy {
    /// Its name.
    pub name: String,
    /// Its index.
    pub ifindex: u32,
    /// Its addresses.
    pub addresses: Vec<IpNet>,
}

/// A `local` prefix route of the local table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Output interface.
    pub ifindex: u32,
    /// Routing protocol number.
    pub protocol: u8,
}

/// Our iptables objects of one family, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedIptables {
    /// Family.
    pub family: AddressFamily,
    /// The back end holding them (both are checked: rules may sit in either).
    pub backend: Backend,
    /// Our jumps present: `table/BUILTIN -> KUBE-CHAIN`.
    pub jumps: Vec<String>,
    /// Our chains present: `table/KUBE-CHAIN`.
    pub chains: Vec<String>,
}

/// Everything cleanup looks at.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// IPVS services in the kernel; `None` when IPVS is not available (module not loaded).
    pub ipvs: Option<Vec<VirtualServiceKey>>,
    /// The dummy device, if present.
    pub dummy: Option<ObservedDummy>,
    /// The index of `lo`, which carries the agent's `local` routes.
    pub loopback: Option<u32>,
    /// Every local prefix route of the local table.
    pub local_routes: Vec<ObservedRoute>,
    /// Node addresses (all interfaces but the dummy and loopback).
    pub node_addresses: BTreeSet<IpAddr>,
    /// Our iptables objects per family and back end.
    pub iptables: Vec<ObservedIptables>,
    /// What could not be observed (e.g. no iptables binary for a family).
    pub warnings: Vec<String>,
    /// Names of all ipsets.
    pub ipsets: Vec<String>,
    /// The owners the agent last published, if readable.
    pub owners: Option<Owners>,
    /// The owners file, if it exists.
    pub owners_file: Option<PathBuf>,
}

/// One cleanup step. Steps run in the order of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `ipvsadm -D`.
    DeleteVirtualServer {
        /// The service.
        key: VirtualServiceKey,
        /// Why it is ours.
        why: Why,
    },
    /// `ipvsadm -C` (`--all`).
    FlushIpvs {
        /// How many services it removes.
        services: usize,
    },
    /// Delete our jumps, flush and delete our chains (one family).
    RemoveIptables {
        /// Family.
        family: AddressFamily,
        /// Back end.
        backend: Backend,
        /// The jumps removed.
        jumps: Vec<String>,
        /// The chains removed.
        chains: Vec<String>,
    },
    /// `ipset destroy NAME`.
    DestroyIpset {
        /// The set.
        name: String,
    },
    /// `ip route del local PREFIX dev DEV table local`.
    DeleteLocalRoute {
        /// Destination.
        prefix: IpNet,
        /// Output interface.
        ifindex: u32,
        /// Its name (`lo`, or the dummy device).
        dev: String,
    },
    /// `ip link del DUMMY` (its addresses go with it).
    DeleteLink {
        /// The device.
        name: String,
        /// How many addresses it had.
        addresses: usize,
    },
    /// Remove the owners file the agent published (stale once the table is gone).
    RemoveOwnersFile {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::DeleteVirtualServer { key, why } => {
                write!(f, "delete virtual server {} ({why})", vs_key(key))
            }
            Step::FlushIpvs { services } => {
                write!(
                    f,
                    "flush the IPVS table: {services} virtual server(s), --all"
                )
            }
            Step::RemoveIptables {
                family,
                backend,
                jumps,
                chains,
            } => {
                let b = match backend {
                    Backend::Nft => "nft",
                    Backend::Legacy => "legacy",
                };
                write!(f, "remove iptables rules ({family}, {b}):")?;
                if !jumps.is_empty() {
                    write!(f, " jumps {}", jumps.join(", "))?;
                }
                if !chains.is_empty() {
                    write!(f, "; chains {}", chains.join(" "))?;
                }
                Ok(())
            }
            Step::DestroyIpset { name } => write!(f, "destroy ipset {name}"),
            Step::DeleteLocalRoute { prefix, dev, .. } => {
                write!(f, "delete route local {prefix} dev {dev} table local")
            }
            Step::DeleteLink { name, addresses } => {
                write!(f, "delete link {name} and its {addresses} address(es)")
            }
            Step::RemoveOwnersFile { path } => {
                write!(f, "remove the owners file {}", path.display())
            }
        }
    }
}

/// What cleanup will do and what it leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Virtual servers left alone (foreign).
    pub kept: Vec<VirtualServiceKey>,
    /// What cannot be cleaned and why (e.g. iptables not found).
    pub warnings: Vec<String>,
}

/// Cleanup's evidence: the node as observed, and the owners file the agent published.
struct Node<'a> {
    obs: &'a Observed,
    routes: &'a [IpNet],
}

impl Evidence for Node<'_> {
    fn on_dummy(&self, addr: &IpAddr) -> bool {
        self.obs
            .dummy
            .as_ref()
            .is_some_and(|d| d.addresses.iter().any(|a| a.addr() == *addr))
    }

    fn routed(&self, addr: &IpAddr) -> bool {
        self.routes.iter().any(|r| r.contains(addr))
    }

    fn node_address(&self, addr: &IpAddr) -> bool {
        self.obs.node_addresses.contains(addr)
    }

    fn published(&self, key: &VsKey) -> bool {
        self.obs
            .owners
            .as_ref()
            .is_some_and(|o| o.get(key).is_some())
    }
}

/// Our ipset names: kube-proxy's `KUBE-*` sets of both families and our temporary sets.
fn ours(set: &str) -> bool {
    set.starts_with(OUR_SET_PREFIX)
        || KubeSet::ALL
            .iter()
            .any(|k| k.name(AddressFamily::Inet) == set || k.name(AddressFamily::Inet6) == set)
}

/// The steps that remove what kube-ipvs or kube-proxy (IPVS mode) created, in the safe order:
/// virtual servers (so no traffic is balanced to a half-removed setup), iptables jumps and
/// chains (they reference the sets), ipsets, local routes, the dummy device.
pub fn plan(obs: &Observed, opts: &CleanupOptions) -> Plan {
    let mut out = Plan::default();
    let dummy = obs.dummy.as_ref().map(|d| d.ifindex);
    let our_routes: Vec<&ObservedRoute> = obs
        .local_routes
        .iter()
        .filter(|r| our_route(r.protocol, r.ifindex, obs.loopback, dummy))
        .collect();
    let routes: Vec<IpNet> = our_routes.iter().map(|r| r.prefix).collect();
    let node = Node {
        obs,
        routes: &routes,
    };
    let rules = Rules {
        exclude_cidrs: &opts.exclude_cidrs,
        node_port_range: &opts.node_port_range,
    };
    match &obs.ipvs {
        None => out
            .warnings
            .push("IPVS is not available (ip_vs not loaded): no virtual servers to remove".into()),
        Some(services) if opts.all => {
            if !services.is_empty() {
                out.steps.push(Step::FlushIpvs {
                    services: services.len(),
                });
            }
        }
        Some(services) => {
            for key in services {
                match owned(&vs_key(key), rules, &node) {
                    Some(why) => out.steps.push(Step::DeleteVirtualServer { key: *key, why }),
                    None => out.kept.push(*key),
                }
            }
        }
    }
    for ipt in &obs.iptables {
        if ipt.jumps.is_empty() && ipt.chains.is_empty() {
            continue;
        }
        out.steps.push(Step::RemoveIptables {
            family: ipt.family,
            backend: ipt.backend,
            jumps: ipt.jumps.clone(),
            chains: ipt.chains.clone(),
        });
    }
    out.warnings.extend(obs.warnings.iter().cloned());
    for set in obs.ipsets.iter().filter(|s| ours(s)) {
        out.steps.push(Step::DestroyIpset { name: set.clone() });
    }
    for r in our_routes {
        let dev = match &obs.dummy {
            Some(d) if d.ifindex == r.ifindex => d.name.clone(),
            _ => "lo".to_owned(),
        };
        out.steps.push(Step::DeleteLocalRoute {
            prefix: r.prefix,
            ifindex: r.ifindex,
            dev,
        });
    }
    if let Some(d) = &obs.dummy {
        out.steps.push(Step::DeleteLink {
            name: d.name.clone(),
            addresses: d.addresses.len(),
        });
    }
    if let Some(path) = &obs.owners_file {
        out.steps
            .push(Step::RemoveOwnersFile { path: path.clone() });
    }
    out
}

#[cfg(test)]
mod tests {
    use ipvs_netlink::Protocol;

    use super::*;

    /// `proto static`, as the agent's routes carry.
    const ROUTE_PROTOCOL: u8 = 4;

    fn tcp(addr: &str, port: u16) -> VirtualServiceKey {
        VirtualServiceKey::tcp(addr.parse().unwrap(), port)
    }

    fn observed() -> Observed {
        Observed {
            ipvs: Some(vec![
                tcp("10.96.0.1", 443),          // on kube-ipvs0
                tcp("10.100.0.7", 80),          // in our routed service CIDR (route on lo)
                tcp("192.168.1.10", 30080),     // NodePort on a node address
                tcp("192.168.1.10", 22),        // node address, not a NodePort: foreign
                tcp("203.0.113.5", 80),         // keepalived VIP: foreign
                tcp("198.51.100.1", 80),        // published by the agent
                VirtualServiceKey::Fwmark {
                    family: AddressFamily::Inet,
                    mark: 1,
                },
                VirtualServiceKey::Inet {
                    protocol: Protocol::Udp,
                    addr: "fd00::a".parse().unwrap(),
                    port: 53,
                },
            ]),
            dummy: Some(ObservedDummy {
                name: "kube-ipvs0".into(),
                ifindex: 7,
                addresses: vec!["10.96.0.1/32".parse().unwrap(), "fd00::a/128".parse().unwrap()],
            }),
            loopback: Some(1),
            local_routes: vec![
                // Where the agent puts it: through lo, proto static.
                ObservedRoute {
                    prefix: "10.100.0.0/16".parse().unwrap(),
                    ifindex: 1,
                    protocol: ROUTE_PROTOCOL,
                },
                // Someone else's local routes (`ip route add local ... dev lo` is proto boot;
                // another device's): neither ownership nor deletion.
                ObservedRoute {
                    prefix: "203.0.113.0/24".parse().unwrap(),
                    ifindex: 1,
                    protocol: 3,
                },
                ObservedRoute {
                    prefix: "198.18.0.0/15".parse().unwrap(),
                    ifindex: 2,
                    protocol: ROUTE_PROTOCOL,
                },
            ],
            node_addresses: ["192.168.1.10".parse().unwrap()].into(),
            iptables: vec![
                ObservedIptables {
                    family: AddressFamily::Inet,
                    backend: Backend::Nft,
                    jumps: vec!["nat/PREROUTING -> KUBE-SERVICES".into()],
                    chains: vec!["nat/KUBE-SERVICES".into()],
                },
                ObservedIptables {
                    family: AddressFamily::Inet6,
                    backend: Backend::Nft,
                    jumps: vec![],
                    chains: vec![],
                },
            ],
            ipsets: vec![
                "KUBE-CLUSTER-IP".into(),
                "KUBE-6-CLUSTER-IP".into(),
                "KIPVS-TMP-0123abcd".into(),
                "my-blocklist".into(),
                "KUBE-SOMETHING-ELSE".into(),
            ],
            owners: Some(Owners::from_json(
                r#"{"version":1,"virtualServers":[{"protocol":"TCP","address":"198.51.100.1","port":80,"owner":"a/b:http"}]}"#,
                std::path::Path::new("x"),
            ).unwrap()),
            owners_file: Some("/run/kube-ipvs/owners.json".into()),
            warnings: vec![],
        }
    }

    #[test]
    fn removes_ours_in_the_safe_order_and_keeps_foreign_entries() {
        let p = plan(&observed(), &CleanupOptions::default());
        let text: Vec<String> = p.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "delete virtual server TCP  10.96.0.1:443 (address on the dummy device)",
                "delete virtual server TCP  10.100.0.7:80 (address in a service CIDR routed locally)",
                "delete virtual server TCP  192.168.1.10:30080 (node address, NodePort range)",
                "delete virtual server TCP  198.51.100.1:80 (published by the agent)",
                "delete virtual server UDP  [fd00::a]:53 (address on the dummy device)",
                "remove iptables rules (IPv4, nft): jumps nat/PREROUTING -> KUBE-SERVICES; chains nat/KUBE-SERVICES",
                "destroy ipset KUBE-CLUSTER-IP",
                "destroy ipset KUBE-6-CLUSTER-IP",
                "destroy ipset KIPVS-TMP-0123abcd",
                "delete route local 10.100.0.0/16 dev lo table local",
                "delete link kube-ipvs0 and its 2 address(es)",
                "remove the owners file /run/kube-ipvs/owners.json",
            ]
        );
        assert_eq!(
            p.kept,
            vec![
                tcp("192.168.1.10", 22),
                tcp("203.0.113.5", 80),
                VirtualServiceKey::Fwmark {
                    family: AddressFamily::Inet,
                    mark: 1
                },
            ]
        );
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn excluded_cidrs_are_kept_even_when_they_look_like_ours() {
        let opts = CleanupOptions {
            exclude_cidrs: vec![
                "10.96.0.1/32".parse().unwrap(),
                "198.51.100.0/24".parse().unwrap(),
            ],
            ..CleanupOptions::default()
        };
        let p = plan(&observed(), &opts);
        // On the dummy device and published by the agent, but excluded: kept.
        assert!(p.kept.contains(&tcp("10.96.0.1", 443)), "{:?}", p.kept);
        assert!(p.kept.contains(&tcp("198.51.100.1", 80)), "{:?}", p.kept);
        assert!(!p.steps.iter().any(|s| matches!(s,
            Step::DeleteVirtualServer { key, .. } if *key == tcp("10.96.0.1", 443) || *key == tcp("198.51.100.1", 80))));
    }

    #[test]
    fn all_flushes_the_whole_table() {
        let opts = CleanupOptions {
            all: true,
            ..CleanupOptions::default()
        };
        let p = plan(&observed(), &opts);
        assert_eq!(p.steps.first(), Some(&Step::FlushIpvs { services: 8 }));
        assert!(p.kept.is_empty());
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(s, Step::DeleteVirtualServer { .. }))
        );
    }

    #[test]
    fn a_clean_node_needs_nothing_and_missing_tools_are_reported() {
        let obs = Observed {
            ipvs: None,
            warnings: vec!["iptables (IPv6): ip6tables-nft-save: not found".into()],
            ..Observed::default()
        };
        let p = plan(&obs, &CleanupOptions::default());
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[1].contains("IPv6") && p.warnings[1].contains("not found"));
    }

    fn deleted(p: &Plan) -> Vec<VirtualServiceKey> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::DeleteVirtualServer { key, .. } => Some(*key),
                _ => None,
            })
            .collect()
    }

    /// Cleanup from a debug pod after the agent's pod is gone: no owners file, and the routed
    /// service CIDR still marks its ClusterIPs ours (the route is on lo, not on the dummy).
    #[test]
    fn without_dummy_device_or_owners_file_the_route_through_lo_still_marks_cluster_ips_ours() {
        let mut obs = observed();
        obs.dummy = None;
        obs.owners = None;
        obs.owners_file = None;
        let p = plan(&obs, &CleanupOptions::default());
        assert_eq!(
            deleted(&p),
            vec![tcp("10.100.0.7", 80), tcp("192.168.1.10", 30080)]
        );
        let routes: Vec<&Step> = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::DeleteLocalRoute { .. }))
            .collect();
        assert_eq!(
            routes,
            [&Step::DeleteLocalRoute {
                prefix: "10.100.0.0/16".parse().unwrap(),
                ifindex: 1,
                dev: "lo".into(),
            }]
        );
        assert!(!p.steps.iter().any(|s| matches!(s, Step::DeleteLink { .. })));
    }

    /// `ipvs.excludeCIDRs`: never ours, whatever else says so (the planner's rule too).
    #[test]
    fn exclude_cidrs_keep_virtual_servers_that_would_be_ours() {
        let opts = CleanupOptions {
            exclude_cidrs: vec![
                "10.100.0.0/24".parse().unwrap(),
                "198.51.100.1/32".parse().unwrap(),
            ],
            ..CleanupOptions::default()
        };
        let p = plan(&observed(), &opts);
        assert!(p.kept.contains(&tcp("10.100.0.7", 80)), "{:?}", p.kept);
        assert!(p.kept.contains(&tcp("198.51.100.1", 80)), "{:?}", p.kept);
        assert_eq!(deleted(&p).len(), 3, "{:?}", p.steps);
    }

    /// A route of ours through the dummy device (earlier versions) goes too, before the link.
    #[test]
    fn a_route_through_the_dummy_device_is_ours_too() {
        let mut obs = observed();
        obs.local_routes[0].ifindex = 7;
        let p = plan(&obs, &CleanupOptions::default());
        let text: Vec<String> = p.steps.iter().map(ToString::to_string).collect();
        let route = text
            .iter()
            .position(|t| t == "delete route local 10.100.0.0/16 dev kube-ipvs0 table local");
        let link = text
            .iter()
            .position(|t| t.starts_with("delete link kube-ipvs0"));
        assert!(route.is_some() && route < link, "{text:?}");
        assert!(deleted(&p).contains(&tcp("10.100.0.7", 80)));
    }
}
