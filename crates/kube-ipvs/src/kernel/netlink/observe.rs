//! Reading the kernel: one dump per object kind into an [`ObservedState`], the drain tick's
//! counters, the node's addresses.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_transport::Errno;

use nodenet::route::OUR_PROTOCOL;

use super::convert;
use super::{KernelError, NetlinkKernel, Reader, dummy_index, loopback_index};
use crate::kernel::Counters;
use crate::plan::ObservedState;
use crate::types::{IpsetName, VsKey};

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
/// `st`: one service dump and one destination dump per service, each message converted as it
/// arrives (the decoded messages, or a copy of the whole table with its statistics, would take
/// several times the observed state's memory at 100,000 services).
/// Services with a scheduler the domain does not know are left out (and logged): planning
/// cannot compare them, and an AddVs over one becomes an update (see `apply`).
async fn ipvs_table(
    ipvs: &mut ipvs_netlink::Client,
    st: &mut ObservedState,
) -> Result<(), KernelError> {
    const OP: &str = "dump IPVS table";
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
        // it is replayed over this dump.
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

/// What one full dump saw.
pub struct Observation {
    /// The planner's view.
    pub state: ObservedState,
    /// Dummy-device addresses that are not host prefixes (see `NetlinkKernel::odd_prefixes`).
    pub odd_prefixes: HashMap<IpAddr, IpNet>,
}

/// One full dump: IPVS table, dummy-device addresses, our local routes (`local` prefix routes
/// of the local table on `lo` with `proto static`), members of our sets.
pub(super) async fn observe(r: &mut Reader) -> Result<Observation, KernelError> {
    let mut st = ObservedState::new();
    ipvs_table(&mut r.ipvs, &mut st).await?;
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
        if route.ifindex == lo && route.protocol == u8::from(OUR_PROTOCOL) {
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
    Ok(Observation {
        state: st,
        odd_prefixes,
    })
}

/// Connection counters of the real servers of `of`: one destination dump per virtual server.
/// A virtual server that is gone (ENOENT / ESRCH) has no counters.
pub async fn counters(k: &mut NetlinkKernel, of: &[VsKey]) -> Result<Vec<Counters>, KernelError> {
    let mut out = Vec::new();
    for vs in of {
        let dests = match k.ipvs.list_destinations(&convert::service_key(vs)).await {
            Ok(d) => d,
            Err(e) if matches!(e.errno(), Some(Errno::ENOENT | Errno::ESRCH)) => continue,
            Err(source) => {
                return Err(KernelError::Ipvs {
                    op: format!("list real servers of {vs}"),
                    source,
                });
            }
        };
        out.extend(dests.iter().map(|d| {
            let r = convert::real_server(d);
            Counters {
                vs: *vs,
                rs: r.key,
                active: r.active,
                inactive: r.inactive,
            }
        }));
    }
    Ok(out)
}

/// Addresses of every link but the dummy device (loopback and IPv6 link-local left out).
pub async fn node_addresses(k: &mut NetlinkKernel) -> Result<Vec<IpAddr>, KernelError> {
    let dummy = k.dummy_index().await?;
    Ok(k.links
        .node_addresses(dummy)
        .await
        .map_err(link_err("list node addresses"))?
        .into_iter()
        .collect())
}
