//! Applying plan ops in order through the batch paths.
//!
//! The plan is cut into runs of consecutive ops of one kind; each run is one batch: IPVS changes
//! in one pipelined `ipvs_netlink::Client::apply`, address binds (or unbinds) in one rtnetlink
//! batch, ipset members in one batch per set, conntrack cleanups with one table read (a netlink dump) per family
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
use std::sync::Arc;

use ipnet::IpNet;
use ipvs_netlink as ipvs;
use netlink_transport::{BatchOutcome, Errno, Failure};
use nodenet::conntrack::{Flow, ReplySource, select_udp};
use nodenet::ipset::constants::IPSET_ERR_HASH_FULL;
use nodenet::ipset::{AdtOp, Entry};
use nodenet::link::host_net;
use nodenet::route::RouteChange;

use super::{KernelError, NetlinkKernel, convert};
use crate::kernel::{ApplyOutcome, Subsystem};
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

/// The one failure-remapping path: a client's batch outcome (request index -> failure; every
/// client hands on the transport's [`BatchOutcome`] unchanged) becomes the run's failures, through
/// `at`, the position in the run of each request.
fn remap(subsystem: Subsystem, run: &[Op], at: &[usize], outcome: BatchOutcome) -> Failures {
    outcome
        .failed
        .into_iter()
        .filter_map(|(i, failure)| {
            let pos = *at.get(i)?;
            let op = run.get(pos)?;
            Some((
                pos,
                KernelError::Request {
                    subsystem,
                    op: op.to_string(),
                    failure,
                },
            ))
        })
        .collect()
}

/// Every op of a run fails, unsent, because what its batch needed first failed.
fn all_failed(run: &[Op], cause: KernelError) -> Failures {
    let cause = Arc::new(cause);
    run.iter()
        .enumerate()
        .map(|(i, op)| {
            (
                i,
                KernelError::NotSent {
                    op: op.to_string(),
                    cause: cause.clone(),
                },
            )
        })
        .collect()
}

/// What to make of a refused IPVS request: done anyway, retry as another request, or a failure.
enum Verdict {
    Done,
    Retry(ipvs::IpvsOp),
    Failed,
}

fn verdict(req: &ipvs::IpvsOp, failure: &Failure) -> Verdict {
    let Failure::Refused { errno, .. } = failure else {
        return Verdict::Failed;
    };
    match (req, *errno) {
        (ipvs::IpvsOp::DeleteService(_), Errno::ESRCH)
        | (ipvs::IpvsOp::DeleteDestination { .. }, Errno::ESRCH | Errno::ENOENT) => Verdict::Done,
        (ipvs::IpvsOp::AddService(s), Errno::EEXIST) => {
            Verdict::Retry(ipvs::IpvsOp::UpdateService(s.clone()))
        }
        (ipvs::IpvsOp::AddDestination(key, d), Errno::EEXIST) => {
            Verdict::Retry(ipvs::IpvsOp::UpdateDestination(*key, d.clone()))
        }
        _ => Verdict::Failed,
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
    let outcome = k.ipvs.apply_batch(&reqs).await;
    let mut failed = Vec::new();
    let mut retry = Vec::new();
    let mut retry_at = Vec::new();
    for (i, failure) in outcome.failed {
        match reqs.get(i).map(|r| verdict(r, &failure)) {
            Some(Verdict::Done) => {}
            Some(Verdict::Retry(r)) => {
                retry.push(r);
                retry_at.push(at.get(i).copied().unwrap_or(i));
            }
            Some(Verdict::Failed) | None => failed.push((i, failure)),
        }
    }
    fails.extend(remap(Subsystem::Ipvs, run, &at, BatchOutcome { failed }));
    if !retry.is_empty() {
        let outcome = k.ipvs.apply_batch(&retry).await;
        fails.extend(remap(Subsystem::Ipvs, run, &retry_at, outcome));
    }
    fails
}

fn addr_of(op: &Op) -> Option<IpAddr> {
    match op {
        Op::BindAddr { addr } | Op::UnbindAddr { addr } => Some(*addr),
        _ => None,
    }
}

async fn addr_run(k: &mut NetlinkKernel, run: &[Op], bind: bool) -> Failures {
    let index = match k.dummy_index().await {
        Ok(Some(i)) => i,
        Ok(None) if !bind => return Vec::new(), // no device: no address is bound to it
        Ok(None) => {
            return all_failed(
                run,
                KernelError::NoDevice {
                    op: format!("bind {} addresses", run.len()),
                    device: k.cfg.dummy_device.clone(),
                },
            );
        }
        Err(e) => return all_failed(run, e),
    };
    let mut at = Vec::with_capacity(run.len());
    let mut addrs = Vec::with_capacity(run.len());
    for (i, a) in run.iter().enumerate() {
        if let Some(a) = addr_of(a) {
            at.push(i);
            addrs.push(a);
        }
    }
    let outcome = if bind {
        k.links.bind(index, &addrs).await
    } else {
        let nets: Vec<IpNet> = addrs
            .iter()
            .map(|a| {
                k.odd_prefixes
                    .get(a)
                    .copied()
                    .unwrap_or_else(|| host_net(*a))
            })
            .collect();
        let outcome = k.links.unbind(index, &nets).await;
        let mut failed = outcome.failed.iter().map(|(i, _)| *i).peekable();
        for (i, a) in addrs.iter().enumerate() {
            if failed.next_if_eq(&i).is_none() {
                k.odd_prefixes.remove(a);
            }
        }
        outcome
    };
    remap(Subsystem::Link, run, &at, outcome)
}

async fn ipset_run(k: &mut NetlinkKernel, run: &[Op], add: bool) -> Failures {
    let mut by_set: BTreeMap<String, (Vec<usize>, Vec<Entry>)> = BTreeMap::new();
    for (i, op) in run.iter().enumerate() {
        if let Op::IpsetAdd { set, entry } | Op::IpsetDel { set, entry } = op {
            let (at, entries) = by_set.entry(convert::set_name(set)).or_default();
            at.push(i);
            entries.push(convert::entry(entry));
        }
    }
    let op = if add { AdtOp::Add } else { AdtOp::Del };
    let mut fails = Vec::new();
    for (set, (at, entries)) in by_set {
        let mut outcome = ipset_batch(k, &set, op, &entries).await;
        // A full set (stock's maxelem 65,536) is resized in place, and the refused adds retried.
        let full = |f: &Failure| f.errno() == Some(IPSET_ERR_HASH_FULL);
        if add && outcome.failed.iter().any(|(_, f)| full(f)) && grow(k, &set).await {
            let refused: Vec<usize> = outcome.failed.iter().map(|(i, _)| *i).collect();
            let again: Vec<Entry> = refused
                .iter()
                .filter_map(|i| entries.get(*i).copied())
                .collect();
            outcome = ipset_batch(k, &set, op, &again)
                .await
                .reindex(|j| refused.get(j).copied().unwrap_or(j));
        }
        fails.extend(remap(Subsystem::Ipset, run, &at, outcome));
    }
    fails
}

/// One batch of adds or deletes on one set, one outcome per entry.
async fn ipset_batch(
    k: &mut NetlinkKernel,
    set: &str,
    op: AdtOp,
    entries: &[Entry],
) -> BatchOutcome {
    let items: Vec<(&Entry, Option<&str>)> = entries.iter().map(|e| (e, None)).collect();
    match k.ipset.batch_each(set, &[(op, &items)]).await {
        Ok(o) => o,
        Err(e) => {
            // Nothing of this set could be encoded.
            let failure = Failure::NotSent(netlink_transport::Error::Encode(Arc::new(e)));
            BatchOutcome::all(entries.len(), &failure)
        }
    }
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
        Err(e) => return all_failed(run, e),
    };
    let mut at = Vec::with_capacity(run.len());
    let mut changes = Vec::with_capacity(run.len());
    for (i, op) in run.iter().enumerate() {
        let change = match op {
            Op::AddRoute { cidr } => RouteChange::Add(*cidr),
            Op::DelRoute { cidr } => RouteChange::Del(*cidr),
            _ => continue,
        };
        at.push(i);
        changes.push(change);
    }
    let outcome = k.links.change_local_routes(index, &changes).await;
    remap(Subsystem::Route, run, &at, outcome)
}

/// The flows a ClearConntrack op deletes, from a read of its family's table.
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
        Err(e) => return all_failed(run, e),
    };
    let mut flows: BTreeMap<Family, Vec<Flow>> = BTreeMap::new();
    for fam in Family::ALL {
        if !families.iter().any(|a| Family::of(a) == fam) {
            continue;
        }
        match ct.flows(fam.into()).await {
            Ok(f) => {
                flows.insert(fam, f);
            }
            Err(source) => {
                return all_failed(
                    run,
                    KernelError::Conntrack {
                        op: "list conntrack entries".into(),
                        source,
                    },
                );
            }
        }
    }
    let per_op: Vec<Vec<Flow>> = run.iter().map(|op| doomed(op, &flows)).collect();
    let all: Vec<Flow> = per_op
        .iter()
        .flatten()
        .copied()
        .collect::<BTreeSet<Flow>>()
        .into_iter()
        .collect();
    if all.is_empty() {
        return Vec::new();
    }
    // Flows are shared between ops: an op fails with the first failure among its flows.
    let outcome = ct.delete_each(&all).await;
    let failed: BTreeMap<Flow, Failure> = outcome
        .failed
        .into_iter()
        .filter_map(|(i, f)| Some((*all.get(i)?, f)))
        .collect();
    let per_op = BatchOutcome {
        failed: per_op
            .iter()
            .enumerate()
            .filter_map(|(i, mine)| Some((i, mine.iter().find_map(|f| failed.get(f))?.clone())))
            .collect(),
    };
    let at: Vec<usize> = (0..run.len()).collect();
    remap(Subsystem::Conntrack, run, &at, per_op)
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
                    service: crate::types::ServiceName::new("a", "b"),
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
        let key = ipvs::VirtualServiceKey::tcp("10.0.0.1".parse().unwrap(), 80);
        let svc = ipvs::Service::new(key, ipvs::SchedulerName::rr());
        let dest = ipvs::Destination::masq("10.244.0.1".parse().unwrap(), 80, 1);
        let refused = Failure::refused;
        let del_dest = ipvs::IpvsOp::DeleteDestination {
            service: key,
            addr: dest.addr,
            port: 80,
        };
        assert!(matches!(
            verdict(&ipvs::IpvsOp::DeleteService(key), &refused(Errno::ESRCH)),
            Verdict::Done
        ));
        assert!(matches!(
            verdict(&del_dest, &refused(Errno::ESRCH)),
            Verdict::Done
        ));
        assert!(matches!(
            verdict(&del_dest, &refused(Errno::ENOENT)),
            Verdict::Done
        ));
        assert!(matches!(
            verdict(&ipvs::IpvsOp::AddService(svc.clone()), &refused(Errno::EEXIST)),
            Verdict::Retry(ipvs::IpvsOp::UpdateService(s)) if s == svc
        ));
        assert!(matches!(
            verdict(&ipvs::IpvsOp::AddDestination(key, dest.clone()), &refused(Errno::EEXIST)),
            Verdict::Retry(ipvs::IpvsOp::UpdateDestination(k, d)) if k == key && d == dest
        ));
        // Updates of missing objects and adds to missing services stay failures; so does a lost
        // answer, whatever the op (its outcome is unknown).
        assert!(matches!(
            verdict(&ipvs::IpvsOp::UpdateService(svc), &refused(Errno::ESRCH)),
            Verdict::Failed
        ));
        assert!(matches!(
            verdict(
                &ipvs::IpvsOp::AddDestination(key, dest),
                &refused(Errno::ESRCH)
            ),
            Verdict::Failed
        ));
        assert!(matches!(
            verdict(
                &ipvs::IpvsOp::DeleteService(key),
                &Failure::Lost(netlink_transport::Error::Timeout(
                    std::time::Duration::from_secs(1)
                ))
            ),
            Verdict::Failed
        ));
    }
}
