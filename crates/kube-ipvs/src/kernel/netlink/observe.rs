//! Reading the kernel: full reads (one netlink dump per object kind) into an [`ObservedState`],
//! partial reads for
//! the periodic verification and the drain tick, the node's addresses.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_transport::Errno;

use super::convert;
use super::{KernelError, NetlinkKernel, Reader, dummy_index, loopback_index};
use crate::kernel::{PartialRead, ReadScope};
use crate::plan::ObservedState;
use crate::plan::ownership::our_route;
use crate::planner_config::NodeRoute;
use crate::types::IpsetName;

fn ipvs_err(op: &str) -> impl FnOnce(ipvs_netlink::Error) -> KernelError + '_ {
    move |source| KernelError::Ipvs {
        op: op.to_owned(),
        source,
    }
}

fn link_err(op: &str) -> impl FnOnce(nodenet::link::LinkError) -> KernelError + '_ {
    move |source| KernelError::Link {
        op: op.to_owned(),
        source,
    }
}

/// The whole IPVS table (foreign services and fwmark services included) with counters, into
/// `st`: one GET_SERVICE dump and one GET_DEST dump per service, each message converted as it
/// arrives (the decoded messages, or a copy of the whole table with its statistics, would take
/// several times the observed state's memory at 100,000 services).
/// Services with a scheduler the domain does not know are left out (and logged): planning
/// cannot compare them, and an AddVs over one becomes an update (see `apply`).
async fn ipvs_table(
    ipvs: &mut ipvs_netlink::Client,
    st: &mut ObservedState,
) -> Result<(), KernelError> {
    const OP: &str = "read IPVS table";
    // Only what planning needs of each service, kept as its message is decoded.
    let mut services = Vec::new();
    ipvs.visit_services(|s| {
        services.push((s.key, convert::vs_key(&s.key), convert::vs_spec(&s)));
    })
    .await
    .map_err(ipvs_err(OP))?;
    for (nl_key, key, spec) in services {
        let Some(spec) = spec else {
            tracing::warn!(
                vs = %key,
                "virtual server with a scheduler kube-ipvs does not know: left out of the observed state"
            );
            continue;
        };
        // A service deleted since the list answers with no destinations; the op that deleted
        // it is replayed over this read.
        let dests = ipvs
            .list_destinations(&nl_key)
            .await
            .map_err(ipvs_err(OP))?;
        st.insert_vs(key, spec, dests.iter().map(convert::real_server).collect());
        // One request per service, each usually answered at once: let the thread's other
        // tasks run between them.
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// What one full read saw.
#[derive(Debug)]
pub struct Observation {
    /// The planner's view.
    pub state: ObservedState,
    /// Dummy-device addresses that are not host prefixes (see `NetlinkKernel::odd_prefixes`).
    pub odd_prefixes: HashMap<IpAddr, IpNet>,
}

/// One full read: IPVS table, dummy-device addresses, our local routes (`local` prefix routes
/// of the local table on `lo` with `proto static`), members of our sets.
pub(super) async fn observe(r: &mut Reader) -> Result<Observation, KernelError> {
    let mut st = ObservedState::new();
    ipvs_table(&mut r.ipvs, &mut st).await?;
    let odd_prefixes = node_parts(r, &mut st).await?;
    Ok(Observation {
        state: st,
        odd_prefixes,
    })
}

/// What one partial read saw.
#[derive(Debug)]
pub struct PartialObservation {
    /// The planner's part.
    pub read: PartialRead,
    /// With the table: dummy-device addresses that are not host prefixes.
    pub odd_prefixes: Option<HashMap<IpAddr, IpNet>>,
}

/// One partial read (see [`ReadScope`]): one GET_DEST dump per virtual server of the scope
/// (and, when that is empty, a GET_SERVICE to tell an empty virtual server from a missing one),
/// plus with the table one GET_SERVICE dump and the node parts of a full read.
pub(super) async fn read(
    r: &mut Reader,
    scope: &ReadScope,
) -> Result<PartialObservation, KernelError> {
    const OP: &str = "read IPVS table";
    let mut vs = Vec::with_capacity(scope.vs.len());
    for key in &scope.vs {
        let nl_key = convert::virtual_service_key(key);
        let dests = r
            .ipvs
            .list_destinations(&nl_key)
            .await
            .map_err(ipvs_err(OP))?;
        let reals = if dests.is_empty() {
            match r.ipvs.get_service(&nl_key).await {
                Ok(_) => Some(Vec::new()),
                Err(e) if matches!(e.errno(), Some(Errno::ENOENT | Errno::ESRCH)) => None,
                Err(e @ ipvs_netlink::Error::NoSuchService { .. }) => {
                    tracing::trace!(error = %e, "virtual server gone");
                    None
                }
                Err(source) => {
                    return Err(KernelError::Ipvs {
                        op: format!("get virtual server {key}"),
                        source,
                    });
                }
            }
        } else {
            Some(dests.iter().map(convert::real_server).collect())
        };
        vs.push((*key, reals));
        // One request per virtual server: let the thread's other tasks run between them.
        tokio::task::yield_now().await;
    }
    let mut odd_prefixes = None;
    let table = if scope.table {
        let mut st = ObservedState::new();
        let mut unknown = 0usize;
        r.ipvs
            .visit_services(|s| match convert::vs_spec(&s) {
                Some(spec) => st.insert_vs(convert::vs_key(&s.key), spec, Vec::new()),
                None => unknown += 1,
            })
            .await
            .map_err(ipvs_err(OP))?;
        if unknown > 0 {
            tracing::debug!(
                unknown,
                "virtual servers with a scheduler kube-ipvs does not know: left out"
            );
        }
        odd_prefixes = Some(node_parts(r, &mut st).await?);
        Some(st)
    } else {
        None
    };
    Ok(PartialObservation {
        read: PartialRead { vs, table },
        odd_prefixes,
    })
}

/// The node parts of a full read into `st`: dummy-device addresses, our local routes, the
/// members of our sets. Returns the addresses that are not host prefixes.
async fn node_parts(
    r: &mut Reader,
    st: &mut ObservedState,
) -> Result<HashMap<IpAddr, IpNet>, KernelError> {
    let mut odd_prefixes = HashMap::new();
    if let Some(index) = dummy_index(&mut r.links, &r.dummy_device).await? {
        let addrs = r
            .links
            .addresses(index)
            .await
            .map_err(link_err("list dummy-device addresses"))?;
        for net in addrs {
            if net.prefix_len() != net.max_prefix_len() {
                odd_prefixes.insert(net.addr(), net);
            }
            st.insert_bound(net.addr());
        }
    }
    let lo = loopback_index(&mut r.links).await?;
    let routes = r
        .links
        .local_prefix_routes()
        .await
        .map_err(link_err("list local routes"))?;
    for route in routes {
        // Only those it can delete: the agent adds and removes routes through lo.
        if our_route(route.protocol, route.ifindex, Some(lo), None) {
            st.insert_route(route.prefix);
        }
    }
    let ours: BTreeMap<String, IpsetName> = convert::our_sets(&r.families).into_iter().collect();
    let sets = r
        .ipset
        .list_all()
        .await
        .map_err(|source| KernelError::Ipset {
            op: "list sets".into(),
            source,
        })?;
    for set in sets {
        let Some(name) = ours.get(&set.name) else {
            continue;
        };
        for m in &set.members {
            match convert::ipset_entry(&m.entry) {
                Some(e) => st.insert_member(*name, e),
                None => {
                    tracing::warn!(set = %set.name, entry = %m.entry, "ipset member kube-ipvs never adds: ignored")
                }
            }
        }
    }
    Ok(odd_prefixes)
}

/// Addresses of every link but the dummy device (loopback and IPv6 link-local left out).
/// The node's routes: one entry per (destination, gateway), every table but `local`.
pub async fn node_routes(k: &mut NetlinkKernel) -> Result<Vec<NodeRoute>, KernelError> {
    let routes = k.links.routes().await.map_err(link_err("list routes"))?;
    let mut out = Vec::with_capacity(routes.len());
    for r in routes {
        if r.gateways.is_empty() {
            out.push(NodeRoute {
                dst: r.prefix,
                via: None,
            });
        }
        out.extend(r.gateways.iter().map(|g| NodeRoute {
            dst: r.prefix,
            via: Some(*g),
        }));
    }
    Ok(out)
}

pub async fn node_addresses(k: &mut NetlinkKernel) -> Result<Vec<IpAddr>, KernelError> {
    let dummy = k.dummy_index().await?;
    Ok(k.links
        .node_addresses(dummy)
        .await
        .map_err(link_err("list node addresses"))?
        .into_iter()
        .collect())
}
