//! Reading the kernel: one dump per object kind into an [`ObservedState`], the drain tick's
//! counters, the node's addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nodenet::route::OUR_PROTOCOL;

use super::convert;
use super::{KernelError, NetlinkKernel};
use crate::kernel::Counters;
use crate::plan::ObservedState;
use crate::types::{IpsetName, RealServer};

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

/// The whole IPVS table (foreign services and fwmark services included) with counters.
/// Services with a scheduler the domain does not know are left out (and logged): planning
/// cannot compare them, and an AddVs over one becomes an update (see `apply`).
async fn ipvs_table(
    k: &mut NetlinkKernel,
) -> Result<
    Vec<(
        crate::types::VsKey,
        Option<crate::types::VsSpec>,
        Vec<RealServer>,
    )>,
    KernelError,
> {
    let table = k.ipvs.table().await.map_err(ipvs_err("dump IPVS table"))?;
    Ok(table
        .services
        .values()
        .map(|ts| {
            (
                convert::vs_key(&ts.service.key),
                convert::vs_spec(&ts.service),
                ts.destinations.iter().map(convert::real_server).collect(),
            )
        })
        .collect())
}

/// One full dump: IPVS table, dummy-device addresses, our local routes (`local` prefix routes
/// of the local table on `lo` with `proto static`), members of our sets.
pub async fn observe(k: &mut NetlinkKernel) -> Result<ObservedState, KernelError> {
    let mut st = ObservedState::new();
    for (key, spec, reals) in ipvs_table(k).await? {
        match spec {
            Some(spec) => st.insert_vs(key, spec, reals),
            None => tracing::warn!(
                vs = %key,
                "virtual server with a scheduler kube-ipvs does not know: left out of the observed state"
            ),
        }
    }
    k.odd_prefixes.clear();
    if let Some(index) = k.dummy_index().await? {
        let addrs = k
            .links
            .addresses(index)
            .await
            .map_err(link_err("list dummy-device addresses"))?;
        for net in addrs {
            if net.prefix_len() != net.max_prefix_len() {
                k.odd_prefixes.insert(net.addr(), net);
            }
            st.insert_bound(net.addr());
        }
    }
    let lo = k.loopback_index().await?;
    let routes = k
        .links
        .local_prefix_routes()
        .await
        .map_err(link_err("list local routes"))?;
    for r in routes {
        if r.ifindex == lo && r.protocol == u8::from(OUR_PROTOCOL) {
            st.insert_route(r.prefix);
        }
    }
    let ours: BTreeMap<String, IpsetName> =
        convert::our_sets(&k.cfg.families).into_iter().collect();
    let sets = k
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
    Ok(st)
}

/// Connection counters of every real server: one IPVS dump.
pub async fn counters(k: &mut NetlinkKernel) -> Result<Vec<Counters>, KernelError> {
    Ok(ipvs_table(k)
        .await?
        .into_iter()
        .flat_map(|(vs, _, reals)| {
            reals.into_iter().map(move |r| Counters {
                vs,
                rs: r.key,
                active: r.active,
                inactive: r.inactive,
            })
        })
        .collect())
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
