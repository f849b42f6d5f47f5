//! Applying plan ops in order through the batch paths.
//!
//! The plan is cut into runs of consecutive ops of one kind; each run is one batch: IPVS changes
//! in one pipelined `ipvs_netlink::Client::apply`, address binds (or unbinds) in one rtnetlink
//! batch, ipset members in one batch per set, conntrack cleanups with one table dump per family
//! and one delete batch. Every failure is mapped back to the index of the op that caused it; a
//! failed op never stops the others.
//!
//! **Effects already present count as success.** An op succeeds when, afterwards, the kernel
//! holds what the op says, whoever put it there: the agent's cache can be behind the kernel (a
//! restart, another writer, an op whose acknowledgement was lost), and an op that can never
//! succeed would be retried forever. So:
//! - binding a bound address, adding a present route or set member, removing an absent address,
//!   route, member, real server or virtual server: success (nodenet already treats EEXIST /
//!   EADDRNOTAVAIL / absent members this way; IPVS ESRCH/ENOENT on deletes are mapped here);
//! - `AddVs` on an existing virtual server, `AddRs` on an existing real server: the existing one
//!   may differ in scheduler, flags or weight, so the add is retried as an update (`-E` / `-e`)
//!   after the batch, and the op succeeds iff the update does;
//! - updates of missing objects fail (ESRCH / ENOENT): the agent's view is wrong and its next
//!   full sync re-reads the kernel.
//!
//! This is the opposite of the fake kernel, which reports EEXIST/ENOENT so plan tests catch plans
//! that would not be minimal; committing such an op into the agent's cache is still right, since
//! the cache planned it from not having it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use ipvs_netlink as ipvs;
use nodenet::conntrack::{ConntrackError, Family as CtFamily, Flow, ReplySource, select_udp};
use nodenet::ipset::{Entry, IpsetError};
use nodenet::link::{LinkError, host_net};

use super::{KernelError, NetlinkKernel, convert};
use crate::kernel::ApplyOutcome;
use crate::plan::Op;
use crate::types::Family;

/// Failures of one run: index into the run, error.
type Failures = Vec<(usize, KernelError)>;

/// Which batch path an op takes; consecutive ops of one group form a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Ipvs,
    Bind,
    Unbind,
    IpsetAdd,
    IpsetDel,
    Route,
    Conntrack,
}

fn group(op: &Op) -> Group {
    match op {
        Op::AddVs { .. }
        | Op::UpdateVs { .. }
        | Op::DelVs { .. }
        | Op::AddRs { .. }
        | Op::UpdateRs { .. }
        | Op::DelRs { .. } => Group::Ipvs,
        Op::BindAddr { .. } => Group::Bind,
        Op::UnbindAddr { .. } => Group::Unbind,
        Op::IpsetAdd { .. } => Group::IpsetAdd,
        Op::IpsetDel { .. } => Group::IpsetDel,
        Op::AddRoute { .. } | Op::DelRoute { .. } => Group::Route,
        Op::ClearConntrack { .. } => Group::Conntrack,
    }
}

/// Runs of consecutive ops of one group: (start index, group, ops).
fn runs(ops: &[Op]) -> Vec<(usize, Group, &[Op])> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(rest) = ops.get(start..).filter(|r| !r.is_empty()) {
        let g = rest.first().map_or(Group::Ipvs, group);
        let len = rest.iter().take_while(|o| group(o) == g).count();
        out.push((start, g, rest.get(..len).unwrap_or_default()));
        start += len;
    }
    out
}

/// Applies `ops` in order; see the module doc.
pub async fn apply(k: &mut NetlinkKernel, ops: &[Op]) -> ApplyOutcome {
    let mut failed = Vec::new();
    for (start, g, run) in runs(ops) {
        let fails = match g {
            Group::Ipvs => ipvs_run(k, run).await,
            Group::Bind | Group::Unbind => addr_run(k, run, g == Group::Bind).await,
            Group::IpsetAdd | Group::IpsetDel => ipset_run(k, run, g == Group::IpsetAdd).await,
            Group::Route => route_run(k, run).await,
            Group::Conntrack => conntrack_run(k, run).await,
        };
        for (i, e) in fails {
            tracing::debug!(op = %ops.get(start + i).map(ToString::to_string).unwrap_or_default(), error = %e, "op failed");
            failed.push((start + i, e));
        }
    }
    failed.sort_by_key(|(i, _)| *i);
    ApplyOutcome { failed }
}

/// Every op of a run fails with the run's batch error.
fn all_failed(run: &[Op], cause: &dyn std::fmt::Display, errno: Option<i32>) -> Failures {
    run.iter()
        .enumerate()
        .map(|(i, op)| {
            (
                i,
                KernelError::Batch {
                    op: op.to_string(),
                    cause: cause.to_string(),
                    errno,
                },
            )
        })
        .collect()
}

/// What to make of an IPVS error: done anyway, retry as another request, or a failure.
enum Verdict {
    Done,
    Retry(ipvs::Op),
    Failed,
}

fn verdict(req: &ipvs::Op, e: &ipvs::Error) -> Verdict {
    match (req, e) {
        (ipvs::Op::DeleteService(_), ipvs::Error::NoSuchService { .. })
        | (
            ipvs::Op::DeleteDestination { .. },
            ipvs::Error::NoSuchService { .. } | ipvs::Error::NoSuchDestination { .. },
        ) => Verdict::Done,
        (ipvs::Op::AddService(s), ipvs::Error::ServiceExists { .. }) => {
            Verdict::Retry(ipvs::Op::UpdateService(s.clone()))
        }
        (ipvs::Op::AddDestination(key, d), ipvs::Error::DestinationExists { .. }) => {
            Verdict::Retry(ipvs::Op::UpdateDestination(*key, d.clone()))
        }
        _ => Verdict::Failed,
    }
}

fn ipvs_failure(op: &Op, source: ipvs::Error) -> KernelError {
    KernelError::Ipvs {
        op: op.to_string(),
        source,
    }
}

async fn ipvs_run(k: &mut NetlinkKernel, run: &[Op]) -> Failures {
    let mut fails = Vec::new();
    let mut reqs = Vec::with_capacity(run.len());
    let mut at = Vec::with_capacity(run.len());
    for (i, op) in run.iter().enumerate() {
        match convert::ipvs_op(op) {
            Some(Ok(r)) => {
                reqs.push(r);
                at.push(i);
            }
            Some(Err(u)) => fails.push((
                i,
                KernelError::Unsupported {
                    op: op.to_string(),
                    reason: u.0,
                },
            )),
            None => {}
        }
    }
    let results = k.ipvs.apply(&reqs).await;
    let mut retry = Vec::new();
    let mut retry_at = Vec::new();
    let mut results = results.into_iter();
    for (i, req) in at.iter().zip(&reqs) {
        let op = run.get(*i);
        let Some(res) = results.next() else {
            // The client answers every request; a short answer is a bug there, not a success.
            fails.extend(op.map(|op| {
                (
                    *i,
                    KernelError::Batch {
                        op: op.to_string(),
                        cause: "no result from the IPVS client".into(),
                        errno: None,
                    },
                )
            }));
            continue;
        };
        let Err(e) = res else { continue };
        match verdict(req, &e) {
            Verdict::Done => {}
            Verdict::Retry(r) => {
                retry.push(r);
                retry_at.push(*i);
            }
            Verdict::Failed => fails.extend(op.map(|op| (*i, ipvs_failure(op, e)))),
        }
    }
    if !retry.is_empty() {
        let results = k.ipvs.apply(&retry).await;
        for (i, res) in retry_at.iter().zip(results) {
            if let (Err(e), Some(op)) = (res, run.get(*i)) {
                fails.push((*i, ipvs_failure(op, e)));
            }
        }
    }
    fails
}

fn addr_of(op: &Op) -> Option<IpAddr> {
    match op {
        Op::BindAddr { addr } | Op::UnbindAddr { addr } => Some(*addr),
        _ => None,
    }
}

fn no_device(run: &[Op], device: &str) -> Failures {
    run.iter()
        .enumerate()
        .map(|(i, op)| {
            (
                i,
                KernelError::NoDevice {
                    op: op.to_string(),
                    device: device.to_owned(),
                },
            )
        })
        .collect()
}

async fn addr_run(k: &mut NetlinkKernel, run: &[Op], bind: bool) -> Failures {
    let index = match k.dummy_index().await {
        Ok(Some(i)) => i,
        Ok(None) if !bind => return Vec::new(), // no device: no address is bound to it
        Ok(None) => return no_device(run, &k.cfg.dummy_device),
        Err(e) => return all_failed(run, &e, e.errno()),
    };
    let nets: Vec<IpNet> = run
        .iter()
        .filter_map(addr_of)
        .map(|a| {
            k.odd_prefixes
                .get(&a)
                .copied()
                .unwrap_or_else(|| host_net(a))
        })
        .collect();
    let res = if bind {
        let addrs: Vec<IpAddr> = run.iter().filter_map(addr_of).collect();
        k.links.add_addresses(index, &addrs).await
    } else {
        let res = k.links.remove_addresses(index, &nets).await;
        if res.is_ok() {
            for n in &nets {
                k.odd_prefixes.remove(&n.addr());
            }
        }
        res
    };
    match res {
        Ok(()) => Vec::new(),
        Err(LinkError::Addresses { op, failed }) => run
            .iter()
            .zip(&nets)
            .enumerate()
            .filter_map(|(i, (o, n))| {
                let errno = *failed.get(n).or_else(|| failed.get(&host_net(n.addr())))?;
                Some((
                    i,
                    KernelError::Link {
                        op: o.to_string(),
                        source: LinkError::Kernel {
                            op: op.clone(),
                            errno,
                        },
                    },
                ))
            })
            .collect(),
        Err(e) => all_failed(run, &e, e.errno()),
    }
}

/// The kernel's "hash is full" ipset error (`IPSET_ERR_HASH_FULL`, linux/netfilter/ipset/ip_set_hash.h).
const IPSET_ERR_HASH_FULL: i32 = 4352;

async fn ipset_run(k: &mut NetlinkKernel, run: &[Op], add: bool) -> Failures {
    let mut by_set: BTreeMap<String, Vec<(usize, Entry)>> = BTreeMap::new();
    for (i, op) in run.iter().enumerate() {
        if let Op::IpsetAdd { set, entry } | Op::IpsetDel { set, entry } = op {
            by_set
                .entry(convert::set_name(set))
                .or_default()
                .push((i, convert::entry(entry)));
        }
    }
    let mut fails = Vec::new();
    for (set, items) in by_set {
        let entries: Vec<Entry> = items.iter().map(|(_, e)| *e).collect();
        let mut res = if add {
            k.ipset.add_batch(&set, &entries).await
        } else {
            k.ipset.del_batch(&set, &entries).await
        };
        if let Err(e) = &res
            && add
            && e.errno() == Some(IPSET_ERR_HASH_FULL)
            && grow(k, &set).await
        {
            res = k.ipset.add_batch(&set, &entries).await;
        }
        let Err(e) = res else { continue };
        if e.errno().is_none() {
            // Timeout, socket or encoding failure: the batch's fate is unknown as a whole.
            for (i, _) in &items {
                if let Some(op) = run.get(*i) {
                    fails.push((
                        *i,
                        KernelError::Batch {
                            op: op.to_string(),
                            cause: e.to_string(),
                            errno: None,
                        },
                    ));
                }
            }
            continue;
        }
        // The kernel refused an entry and stopped that message there: redo the members one by
        // one (idempotent) to name every refused one. A full set refuses every further add:
        // those fail with its error without a request each (a set 30,000 members over its
        // maxelem must not cost 30,000 requests per sync).
        let mut full: Option<(String, Option<i32>)> = None;
        for (i, entry) in &items {
            let Some(op) = run.get(*i) else { continue };
            if let Some((cause, errno)) = &full {
                fails.push((
                    *i,
                    KernelError::Batch {
                        op: op.to_string(),
                        cause: cause.clone(),
                        errno: *errno,
                    },
                ));
                continue;
            }
            let one = std::slice::from_ref(entry);
            let res: Result<usize, IpsetError> = if add {
                k.ipset.add_batch(&set, one).await
            } else {
                k.ipset.del_batch(&set, one).await
            };
            if let Err(source) = res {
                if add && source.errno() == Some(IPSET_ERR_HASH_FULL) {
                    tracing::warn!(set = %set, error = %source, "ipset is full: its remaining adds fail without being sent");
                    full = Some((source.to_string(), source.errno()));
                }
                fails.push((
                    *i,
                    KernelError::Ipset {
                        op: op.to_string(),
                        source,
                    },
                ));
            }
        }
    }
    fails
}

/// Resizes a full hash set created with stock kube-proxy's `maxelem 65536` (ours are too, so
/// stock can take them back) to [`convert::MAXELEM`], members kept (one atomic swap). Whether
/// it grew.
async fn grow(k: &mut NetlinkKernel, set: &str) -> bool {
    let header = match k.ipset.header(set).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(set, error = %e, "reading a full set's header failed");
            return false;
        }
    };
    let Some(from) = header.maxelem.filter(|m| *m < convert::MAXELEM) else {
        return false;
    };
    match k.ipset.resize(set, convert::MAXELEM).await {
        Ok(_) => {
            tracing::warn!(
                set,
                from,
                to = convert::MAXELEM,
                "ipset full: resized in place; stock kube-proxy cannot adopt it any more \
                 (see `kube-ipvs cleanup --handback`)"
            );
            true
        }
        Err(e) => {
            tracing::warn!(set, error = %e, "resizing a full set failed");
            false
        }
    }
}

async fn route_run(k: &mut NetlinkKernel, run: &[Op]) -> Failures {
    let index = match k.loopback_index().await {
        Ok(i) => i,
        Err(e) => return all_failed(run, &e, e.errno()),
    };
    let mut fails = Vec::new();
    for (i, op) in run.iter().enumerate() {
        let res = match op {
            Op::AddRoute { cidr } => k.links.add_local_route(*cidr, index).await,
            Op::DelRoute { cidr } => k.links.remove_local_route(*cidr, index).await.map(|_| ()),
            _ => Ok(()),
        };
        if let Err(source) = res {
            fails.push((
                i,
                KernelError::Link {
                    op: op.to_string(),
                    source,
                },
            ));
        }
    }
    fails
}

fn ct_errno(e: &ConntrackError) -> Option<i32> {
    match e {
        ConntrackError::Netlink { source, .. } => source.errno(),
        ConntrackError::Delete { failed } => failed.first().map(|(_, e)| *e),
        _ => None,
    }
}

/// The flows a ClearConntrack op deletes, from a dump of its family.
fn doomed(op: &Op, flows: &BTreeMap<Family, Vec<Flow>>) -> Vec<Flow> {
    let Op::ClearConntrack {
        vs: crate::types::VsKey::Service { addr, port, .. },
        reply_src,
    } = op
    else {
        return Vec::new();
    };
    let reply = reply_src.map_or(ReplySource::Any, ReplySource::Is);
    flows
        .get(&Family::of(addr))
        .map(|f| select_udp(f, *addr, *port, &reply))
        .unwrap_or_default()
}

async fn conntrack_run(k: &mut NetlinkKernel, run: &[Op]) -> Failures {
    let families: BTreeSet<IpAddr> = run
        .iter()
        .filter_map(|o| match o {
            Op::ClearConntrack { vs, .. } => vs.addr(),
            _ => None,
        })
        .collect();
    let ct = match k.conntrack().await {
        Ok(ct) => ct,
        Err(e) => return all_failed(run, &e, e.errno()),
    };
    let mut flows: BTreeMap<Family, Vec<Flow>> = BTreeMap::new();
    for (fam, ct_fam) in [(Family::V4, CtFamily::V4), (Family::V6, CtFamily::V6)] {
        if !families.iter().any(|a| Family::of(a) == fam) {
            continue;
        }
        match ct.flows(ct_fam).await {
            Ok(f) => {
                flows.insert(fam, f);
            }
            Err(e) => return all_failed(run, &e, ct_errno(&e)),
        }
    }
    let per_op: Vec<Vec<Flow>> = run.iter().map(|op| doomed(op, &flows)).collect();
    let all: BTreeSet<Flow> = per_op.iter().flatten().copied().collect();
    if all.is_empty() {
        return Vec::new();
    }
    let all: Vec<Flow> = all.into_iter().collect();
    match ct.delete(&all).await {
        Ok(_) => Vec::new(),
        Err(ConntrackError::Delete { failed }) => run
            .iter()
            .zip(&per_op)
            .enumerate()
            .filter_map(|(i, (op, mine))| {
                let bad: Vec<(Flow, i32)> = failed
                    .iter()
                    .filter(|(f, _)| mine.contains(f))
                    .copied()
                    .collect();
                (!bad.is_empty()).then(|| {
                    (
                        i,
                        KernelError::Conntrack {
                            op: op.to_string(),
                            source: ConntrackError::Delete { failed: bad },
                        },
                    )
                })
            })
            .collect(),
        Err(e) => all_failed(run, &e, ct_errno(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{IpsetEntry, IpsetName, Proto, RealServer, SetKind, VsKey};

    #[test]
    fn runs_split_where_the_batch_path_changes() {
        let vs = VsKey::new(Proto::Tcp, "10.0.0.1".parse().unwrap(), 80);
        let set = IpsetName::new(SetKind::ClusterIp, crate::types::Family::V4);
        let ops = vec![
            Op::AddRoute {
                cidr: "10.96.0.0/16".parse().unwrap(),
            },
            Op::BindAddr {
                addr: "10.0.0.1".parse().unwrap(),
            },
            Op::BindAddr {
                addr: "10.0.0.2".parse().unwrap(),
            },
            Op::IpsetAdd {
                set,
                entry: IpsetEntry::IpPort("10.0.0.1".parse().unwrap(), Proto::Tcp, 80),
            },
            Op::AddVs {
                key: vs,
                spec: crate::types::VsSpec::plain(
                    crate::types::Scheduler::Rr,
                    crate::types::Family::V4,
                ),
                owner: crate::types::ServicePortName {
                    service: crate::types::ServiceKey::new("a", "b"),
                    port: "".into(),
                },
            },
            Op::AddRs {
                vs,
                rs: RealServer::masq("10.244.0.1".parse().unwrap(), 80),
            },
            Op::DelVs { key: vs },
            Op::UnbindAddr {
                addr: "10.0.0.3".parse().unwrap(),
            },
        ];
        let got: Vec<(usize, Group, usize)> = runs(&ops)
            .iter()
            .map(|(s, g, r)| (*s, *g, r.len()))
            .collect();
        assert_eq!(
            got,
            [
                (0, Group::Route, 1),
                (1, Group::Bind, 2),
                (3, Group::IpsetAdd, 1),
                (4, Group::Ipvs, 3),
                (7, Group::Unbind, 1),
            ]
        );
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn present_effects_count_as_done_and_adds_become_updates() {
        let key = ipvs::ServiceKey::tcp("10.0.0.1".parse().unwrap(), 80);
        let svc = ipvs::Service::new(key, ipvs::Scheduler::rr());
        let dest = ipvs::Destination::masq("10.244.0.1".parse().unwrap(), 80, 1);
        let target = String::new;
        let no_svc = || ipvs::Error::NoSuchService {
            op: "x",
            target: target(),
        };
        let del_dest = ipvs::Op::DeleteDestination {
            service: key,
            addr: dest.addr,
            port: 80,
        };
        assert!(matches!(
            verdict(&ipvs::Op::DeleteService(key), &no_svc()),
            Verdict::Done
        ));
        assert!(matches!(verdict(&del_dest, &no_svc()), Verdict::Done));
        assert!(matches!(
            verdict(
                &del_dest,
                &ipvs::Error::NoSuchDestination {
                    op: "x",
                    target: target()
                }
            ),
            Verdict::Done
        ));
        assert!(matches!(
            verdict(
                &ipvs::Op::AddService(svc.clone()),
                &ipvs::Error::ServiceExists {
                    op: "x",
                    target: target()
                }
            ),
            Verdict::Retry(ipvs::Op::UpdateService(s)) if s == svc
        ));
        assert!(matches!(
            verdict(
                &ipvs::Op::AddDestination(key, dest.clone()),
                &ipvs::Error::DestinationExists {
                    op: "x",
                    target: target()
                }
            ),
            Verdict::Retry(ipvs::Op::UpdateDestination(k, d)) if k == key && d == dest
        ));
        // Updates of missing objects and adds to missing services stay failures.
        assert!(matches!(
            verdict(&ipvs::Op::UpdateService(svc), &no_svc()),
            Verdict::Failed
        ));
        assert!(matches!(
            verdict(&ipvs::Op::AddDestination(key, dest), &no_svc()),
            Verdict::Failed
        ));
    }
}
