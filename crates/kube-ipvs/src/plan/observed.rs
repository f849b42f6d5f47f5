//! The node's kernel state in domain terms: what a kernel read converts into, what the planner
//! diffs against, and (through [`ObservedState::apply`]) the fake kernel of the tests and the
//! agent's cache between full reads.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::merge::merge_join;
use super::op::Op;
use crate::desired::Touched;
use crate::types::{IpsetEntry, IpsetName, Proto, RealServer, RsKey, VsKey, VsSpec};

/// A virtual server as read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedVs {
    /// Properties.
    pub spec: VsSpec,
    /// Real servers sorted by key, with weights and connection counters.
    pub reals: Vec<RealServer>,
}

impl ObservedVs {
    /// One real server.
    pub fn real(&self, key: &RsKey) -> Option<&RealServer> {
        self.reals
            .binary_search_by_key(key, |r| r.key)
            .ok()
            .and_then(|i| self.reals.get(i))
    }
}

/// Why an op could not be applied: the error the kernel would return.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// EEXIST.
    #[error("{what} already exists (EEXIST)")]
    Exists {
        /// The object.
        what: String,
    },
    /// ENOENT / ESRCH.
    #[error("{what} does not exist (ENOENT)")]
    Missing {
        /// The object.
        what: String,
    },
}

/// IPVS table, dummy-device addresses, our local routes and our ipsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedState {
    vs: BTreeMap<VsKey, ObservedVs>,
    bound: BTreeSet<IpAddr>,
    routes: BTreeSet<IpNet>,
    ipsets: BTreeMap<IpsetName, BTreeSet<IpsetEntry>>,
}

/// Up to this many keys, [`ObservedState::assume_busy`] looks each up (a drain tick's scattered
/// virtual servers); more are walked as the range they span (a verification slice).
const SCATTERED: usize = 1024;

impl ObservedState {
    /// An empty kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a virtual server from a read (replacing one with the same key).
    pub fn insert_vs(&mut self, key: VsKey, spec: VsSpec, mut reals: Vec<RealServer>) {
        reals.sort_unstable_by_key(|r| r.key);
        reals.dedup_by_key(|r| r.key);
        // Exact: a dump's vector grew by doubling, and 100,000 of them stay for the agent's life.
        reals.shrink_to_fit();
        self.vs.insert(key, ObservedVs { spec, reals });
    }

    /// Records an address of the dummy device.
    pub fn insert_bound(&mut self, addr: IpAddr) {
        self.bound.insert(addr);
    }

    /// Records one of our local routes.
    pub fn insert_route(&mut self, cidr: IpNet) {
        self.routes.insert(cidr);
    }

    /// Records an ipset member.
    pub fn insert_member(&mut self, set: IpsetName, entry: IpsetEntry) {
        self.ipsets.entry(set).or_default().insert(entry);
    }

    /// Sets the connection counters of a real server (from a read; used by drain ticks and tests).
    pub fn set_connections(&mut self, vs: &VsKey, rs: &RsKey, active: u32, inactive: u32) {
        if let Some(r) = self
            .vs
            .get_mut(vs)
            .and_then(|v| v.reals.iter_mut().find(|r| r.key == *rs))
        {
            r.active = active;
            r.inactive = inactive;
        }
    }

    /// Marks the idle real servers of `only` (or of every virtual server) as carrying a
    /// connection: once a read's counters are planned they are stale (an idle one may carry
    /// connections now), so until the next read an incremental plan drains a removed endpoint
    /// (weight 0) instead of deleting it, and the drain tick deletes it from fresh counters.
    /// One pass, no lookup per real server: a slice (a run of the table in key order) is walked
    /// as one range (a lookup per real server of a 6,250-virtual-server slice held the loop ~50
    /// ms in the lab).
    pub fn assume_busy(&mut self, only: Option<&BTreeSet<VsKey>>) {
        fn mark(v: &mut ObservedVs) {
            for r in v.reals.iter_mut().filter(|r| r.connections() == 0) {
                r.inactive = 1;
            }
        }
        let Some(keys) = only else {
            self.vs.values_mut().for_each(mark);
            return;
        };
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return;
        };
        if keys.len() <= SCATTERED {
            for k in keys {
                if let Some(v) = self.vs.get_mut(k) {
                    mark(v);
                }
            }
            return;
        }
        let mut want = keys.iter().peekable();
        for (k, v) in self.vs.range_mut(*first..=*last) {
            while want.next_if(|w| *w < k).is_some() {}
            if want.next_if_eq(&k).is_some() {
                mark(v);
            }
        }
    }

    /// Virtual servers.
    pub fn virtual_servers(&self) -> &BTreeMap<VsKey, ObservedVs> {
        &self.vs
    }

    /// One virtual server.
    pub fn virtual_server(&self, key: &VsKey) -> Option<&ObservedVs> {
        self.vs.get(key)
    }

    /// Dummy-device addresses.
    pub fn bound(&self) -> &BTreeSet<IpAddr> {
        &self.bound
    }

    /// Our local routes.
    pub fn routes(&self) -> &BTreeSet<IpNet> {
        &self.routes
    }

    /// Members of our sets.
    pub fn ipsets(&self) -> &BTreeMap<IpsetName, BTreeSet<IpsetEntry>> {
        &self.ipsets
    }

    /// Whether a set has a member.
    pub fn has_member(&self, set: &IpsetName, e: &IpsetEntry) -> bool {
        self.ipsets.get(set).is_some_and(|m| m.contains(e))
    }

    /// The virtual servers on an address, in key order. Within a family, keys order by protocol,
    /// then address, then port: one range per protocol, no index of its own (one would cost a
    /// tree node per address, ~17 MB at 50,000 Services).
    pub fn vs_on(&self, addr: &IpAddr) -> impl Iterator<Item = &VsKey> {
        let addr = *addr;
        Proto::ALL.into_iter().flat_map(move |p| {
            self.vs
                .range(VsKey::new(p, addr, 0)..=VsKey::new(p, addr, u16::MAX))
                .map(|(k, _)| k)
        })
    }

    /// A copy without real servers (what a partial read's table part holds).
    pub fn without_reals(&self) -> Self {
        Self {
            vs: self
                .vs
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        ObservedVs {
                            spec: v.spec,
                            reals: Vec::new(),
                        },
                    )
                })
                .collect(),
            bound: self.bound.clone(),
            routes: self.routes.clone(),
            ipsets: self.ipsets.clone(),
        }
    }

    /// Takes in a partial read of the kernel ([`crate::kernel::Kernel::read`]); returns what it
    /// found different from this view, for the planner. Replay the ops applied since the read
    /// began afterwards, as over a full read.
    ///
    /// - Real servers of each read virtual server replace the cached ones (connection counters
    ///   included); a virtual server the kernel lacks is removed. Keys this view does not hold
    ///   (deleted by an op while the read ran) are left to the table part.
    /// - The table part (every virtual server without real servers, addresses, routes, sets)
    ///   replaces the rest: virtual servers the kernel lacks are removed, new ones are added
    ///   without real servers (their real servers are read with the next slice; an `AddRs` over
    ///   one already present is applied as an update), changed specs are taken.
    ///
    /// Also returns what the table part replaced (the read's own table and the cached
    /// addresses and set members it superseded: ~250,000 tree nodes at 50,000 Services), for the
    /// caller to drop off the loop.
    pub fn merge(&mut self, read: PartialRead) -> (Touched, Option<ObservedState>) {
        let mut t = Touched::default();
        for (key, reals) in read.vs {
            match (self.vs.get_mut(&key), reals) {
                (Some(v), Some(mut reals)) => {
                    reals.sort_unstable_by_key(|r| r.key);
                    reals.dedup_by_key(|r| r.key);
                    let same = v.reals.len() == reals.len()
                        && v.reals.iter().zip(&reals).all(|(a, b)| {
                            a.key == b.key && a.weight == b.weight && a.forward == b.forward
                        });
                    if !same {
                        t.vs.insert(key);
                    }
                    v.reals = reals;
                }
                (Some(_), None) => {
                    self.vs.remove(&key);
                    t.vs.insert(key);
                }
                (None, _) => {}
            }
        }
        let spent = read.table.map(|table| self.merge_table(table, &mut t));
        (t, spent)
    }

    /// Merges the table part; returns it, now holding what it replaced.
    fn merge_table(&mut self, mut table: ObservedState, t: &mut Touched) -> ObservedState {
        let mut gone = Vec::new();
        let mut new = Vec::new();
        let cached = self.vs.iter_mut();
        for (key, have, read) in merge_join(cached, table.vs.iter()) {
            match (have, read) {
                (Some(_), None) => gone.push(*key),
                (None, Some(r)) => new.push((*key, r.spec)),
                (Some(h), Some(r)) if h.spec != r.spec => {
                    h.spec = r.spec;
                    t.vs.insert(*key);
                }
                _ => {}
            }
        }
        for key in gone {
            self.vs.remove(&key);
            t.vs.insert(key);
        }
        for (key, spec) in new {
            self.insert_vs(key, spec, Vec::new());
            t.vs.insert(key);
        }
        t.addrs
            .extend(self.bound.symmetric_difference(&table.bound).copied());
        std::mem::swap(&mut self.bound, &mut table.bound);
        t.routes |= self.routes != table.routes;
        std::mem::swap(&mut self.routes, &mut table.routes);
        let empty = BTreeSet::new();
        let cached = self.ipsets.iter();
        for (set, have, read) in merge_join(cached, table.ipsets.iter()) {
            let (have, read) = (have.unwrap_or(&empty), read.unwrap_or(&empty));
            t.ipset
                .extend(have.symmetric_difference(read).map(|e| (*set, *e)));
        }
        std::mem::swap(&mut self.ipsets, &mut table.ipsets);
        table
    }

    /// Applies one op with the kernel's semantics (EEXIST / ENOENT on mismatches).
    pub fn apply(&mut self, op: &Op) -> Result<(), ApplyError> {
        let exists = |what: String| Err(ApplyError::Exists { what });
        let missing = |what: String| Err(ApplyError::Missing { what });
        match op {
            Op::AddRoute { cidr } => {
                if !self.routes.insert(*cidr) {
                    return exists(format!("route {cidr}"));
                }
            }
            Op::DelRoute { cidr } => {
                if !self.routes.remove(cidr) {
                    return missing(format!("route {cidr}"));
                }
            }
            Op::BindAddr { addr } => {
                if !self.bound.insert(*addr) {
                    return exists(format!("address {addr}"));
                }
            }
            Op::UnbindAddr { addr } => {
                if !self.bound.remove(addr) {
                    return missing(format!("address {addr}"));
                }
            }
            Op::IpsetAdd { set, entry } => {
                if !self.ipsets.entry(*set).or_default().insert(*entry) {
                    return exists(format!("{set} member {entry}"));
                }
            }
            Op::IpsetDel { set, entry } => {
                if !self.ipsets.get_mut(set).is_some_and(|m| m.remove(entry)) {
                    return missing(format!("{set} member {entry}"));
                }
            }
            Op::AddVs { key, spec, .. } => {
                if self.vs.contains_key(key) {
                    return exists(format!("virtual server {key}"));
                }
                self.insert_vs(*key, *spec, Vec::new());
            }
            Op::UpdateVs { key, spec } => match self.vs.get_mut(key) {
                Some(v) => v.spec = *spec,
                None => return missing(format!("virtual server {key}")),
            },
            Op::DelVs { key } => {
                if self.vs.remove(key).is_none() {
                    return missing(format!("virtual server {key}"));
                }
            }
            Op::AddRs { vs, rs } => {
                let Some(v) = self.vs.get_mut(vs) else {
                    return missing(format!("virtual server {vs}"));
                };
                match v.reals.binary_search_by_key(&rs.key, |r| r.key) {
                    Ok(_) => return exists(format!("real server {} of {vs}", rs.key)),
                    Err(i) => {
                        // Most Services have a handful of endpoints: grow those by one slot,
                        // not by doubling (large ones double, or each add would copy them).
                        if v.reals.len() < 8 {
                            v.reals.reserve_exact(1);
                        }
                        v.reals.insert(
                            i,
                            RealServer {
                                active: 0,
                                inactive: 0,
                                ..*rs
                            },
                        )
                    }
                }
            }
            Op::UpdateRs { vs, rs } => {
                let Some(v) = self.vs.get_mut(vs) else {
                    return missing(format!("virtual server {vs}"));
                };
                match v.reals.iter_mut().find(|r| r.key == rs.key) {
                    Some(r) => {
                        r.weight = rs.weight;
                        r.forward = rs.forward;
                    }
                    None => return missing(format!("real server {} of {vs}", rs.key)),
                }
            }
            Op::DelRs { vs, rs } => {
                let Some(v) = self.vs.get_mut(vs) else {
                    return missing(format!("virtual server {vs}"));
                };
                match v.reals.binary_search_by_key(rs, |r| r.key) {
                    Ok(i) => {
                        v.reals.remove(i);
                    }
                    Err(_) => return missing(format!("real server {rs} of {vs}")),
                }
            }
            Op::ClearConntrack { .. } => {}
        }
        Ok(())
    }

    /// Applies an op the kernel accepted to a read that may or may not show it yet (the read
    /// ran while the op was applied): the op's result holds afterwards, whatever the read saw.
    pub fn replay(&mut self, op: &Op) {
        if self.apply(op).is_ok() {
            return;
        }
        match op {
            // Already there: take the op's values.
            Op::AddVs { key, spec, .. } => {
                let _ = self.apply(&Op::UpdateVs {
                    key: *key,
                    spec: *spec,
                });
            }
            Op::AddRs { vs, rs } => {
                let _ = self.apply(&Op::UpdateRs { vs: *vs, rs: *rs });
            }
            // Not there yet: create it with the op's values.
            Op::UpdateVs { key, spec } => self.insert_vs(*key, *spec, Vec::new()),
            Op::UpdateRs { vs, rs } => {
                let _ = self.apply(&Op::AddRs { vs: *vs, rs: *rs });
            }
            // Present already, or gone already: the op's result holds.
            Op::AddRoute { .. }
            | Op::DelRoute { .. }
            | Op::BindAddr { .. }
            | Op::UnbindAddr { .. }
            | Op::IpsetAdd { .. }
            | Op::IpsetDel { .. }
            | Op::DelVs { .. }
            | Op::DelRs { .. }
            | Op::ClearConntrack { .. } => {}
        }
    }

    /// Applies a whole plan, stopping at the first error.
    pub fn apply_all<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a Op>,
    ) -> Result<(), ApplyError> {
        ops.into_iter().try_for_each(|op| self.apply(op))
    }
}

/// What a partial read of the kernel covers ([`crate::kernel::Kernel::read`]): the periodic verification reads
/// the table in rotating slices, the drain tick the draining virtual servers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadScope {
    /// Virtual servers whose real servers (with connection counters) are read.
    pub vs: Vec<VsKey>,
    /// Also the rest of what a full read reads, without real servers: every virtual server's key
    /// and spec, the dummy device's addresses, our routes, our sets' members.
    pub table: bool,
}

/// What a partial read saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialRead {
    /// For each virtual server of [`ReadScope::vs`]: its real servers, or `None` when the kernel
    /// has no such virtual server.
    pub vs: Vec<(VsKey, Option<Vec<RealServer>>)>,
    /// With [`ReadScope::table`]: the kernel's state, its virtual servers without real servers.
    pub table: Option<ObservedState>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Family, Proto, Scheduler, ServiceName, ServicePortName};

    fn vs() -> VsKey {
        VsKey::Service {
            proto: Proto::Tcp,
            addr: "10.96.0.10".parse().unwrap(),
            port: 80,
        }
    }

    fn rs(last: u8, weight: u32) -> RealServer {
        RealServer {
            weight,
            ..RealServer::masq(std::net::IpAddr::from([10, 1, 0, last]), 8080)
        }
    }

    fn spec(scheduler: Scheduler) -> VsSpec {
        VsSpec::plain(scheduler, Family::V4)
    }

    /// Only the idle real servers of the named virtual servers become busy, whether the keys are
    /// looked up one by one (few) or walked as the range they span (a slice); busy ones keep
    /// their counters.
    #[test]
    fn assume_busy_marks_the_idle_servers_of_the_named_virtual_servers() {
        let key = |i: u16| VsKey::Service {
            proto: Proto::Tcp,
            addr: "10.96.0.10".parse().unwrap(),
            port: i,
        };
        for (n, stride) in [(100u16, 3u16), (3000, 2), (3000, 1)] {
            let mut st = ObservedState::new();
            for i in 0..n {
                st.insert_vs(key(i), spec(Scheduler::Rr), vec![rs(1, 1), rs(2, 1)]);
                st.set_connections(&key(i), &rs(2, 1).key, 5, 0);
            }
            let named: BTreeSet<VsKey> = (10..n - 10).step_by(stride.into()).map(key).collect();
            st.assume_busy(Some(&named));
            for (k, v) in st.virtual_servers() {
                let counters: Vec<(u32, u32)> =
                    v.reals.iter().map(|r| (r.active, r.inactive)).collect();
                let first = if named.contains(k) { 1 } else { 0 };
                assert_eq!(counters, [(0, first), (5, 0)], "{k} of {n} step {stride}");
            }
            st.assume_busy(None);
            assert!(
                st.virtual_servers()
                    .values()
                    .all(|v| v.reals[0].inactive == 1)
            );
        }
    }

    /// The read: one virtual server with real servers 1 (weight 1) and 2 (weight 1).
    fn seen() -> ObservedState {
        let mut st = ObservedState::new();
        st.insert_vs(vs(), spec(Scheduler::Rr), vec![rs(1, 1), rs(2, 1)]);
        st
    }

    /// (last octet, weight) of each real server.
    type Reals = Vec<(u8, u32)>;

    fn reals(st: &ObservedState) -> Reals {
        st.virtual_servers()
            .get(&vs())
            .map(|v| {
                v.reals
                    .iter()
                    .map(|r| match r.key.addr {
                        std::net::IpAddr::V4(a) => (a.octets()[3], r.weight),
                        std::net::IpAddr::V6(_) => (0, r.weight),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn vs_on_finds_every_virtual_server_of_an_address_and_only_those() {
        let mut st = ObservedState::new();
        let mut add = |proto, addr: &str, port| {
            let key = VsKey::new(proto, addr.parse().unwrap(), port);
            st.insert_vs(key, spec(Scheduler::Rr), Vec::new());
            key
        };
        let mut want = Vec::new();
        for (proto, port) in [(Proto::Sctp, 7), (Proto::Tcp, 0), (Proto::Tcp, u16::MAX)] {
            want.push(add(proto, "10.96.0.10", port));
        }
        want.push(add(Proto::Udp, "10.96.0.10", 53));
        // Neighbours in key order: the addresses around it, the same address in IPv6, a fwmark.
        for (proto, addr) in [
            (Proto::Tcp, "10.96.0.9"),
            (Proto::Udp, "10.96.0.11"),
            (Proto::Tcp, "::ffff:10.96.0.10"),
        ] {
            add(proto, addr, 80);
        }
        st.insert_vs(
            VsKey::Fwmark {
                family: Family::V4,
                mark: 1,
            },
            spec(Scheduler::Rr),
            Vec::new(),
        );
        want.sort();
        let on: Vec<VsKey> = st.vs_on(&"10.96.0.10".parse().unwrap()).copied().collect();
        assert_eq!(on, want);
        st.apply(&Op::DelVs { key: want[0] }).unwrap();
        assert_eq!(st.vs_on(&"10.96.0.10".parse().unwrap()).count(), 3);
        assert_eq!(st.vs_on(&"10.96.0.12".parse().unwrap()).count(), 0);
    }

    #[test]
    fn a_partial_read_replaces_what_it_read_and_reports_only_what_differs() {
        let other = VsKey::new(Proto::Tcp, "10.96.0.11".parse().unwrap(), 80);
        let unknown = VsKey::new(Proto::Tcp, "10.96.0.12".parse().unwrap(), 80);
        let mut st = seen();
        st.insert_vs(other, spec(Scheduler::Rr), vec![rs(5, 1)]);
        // Same real servers with fresh counters: no difference, counters taken.
        let mut busy = rs(1, 1);
        busy.active = 7;
        let read = PartialRead {
            vs: vec![(vs(), Some(vec![rs(2, 1), busy])), (unknown, Some(vec![]))],
            table: None,
        };
        let mut cached = st.clone();
        assert!(
            cached.merge(read).0.is_empty(),
            "an unknown key is left alone"
        );
        assert_eq!(cached.virtual_servers()[&vs()].reals[0].active, 7);
        // A weight changed behind our back, a virtual server deleted.
        let read = PartialRead {
            vs: vec![(vs(), Some(vec![rs(1, 0), rs(2, 1)])), (other, None)],
            table: None,
        };
        let mut cached = st.clone();
        let (t, _) = cached.merge(read);
        assert_eq!(t.vs.into_iter().collect::<Vec<_>>(), [vs(), other]);
        assert_eq!(reals(&cached), [(1, 0), (2, 1)]);
        assert!(cached.virtual_server(&other).is_none());
        // An op applied while the read ran (the read missed it) is replayed afterwards.
        cached.replay(&Op::AddRs {
            vs: vs(),
            rs: rs(3, 1),
        });
        assert_eq!(reals(&cached), [(1, 0), (2, 1), (3, 1)]);
    }

    #[test]
    fn the_table_part_of_a_read_finds_changed_added_and_removed_entries() {
        let set = IpsetName::new(crate::types::SetKind::ClusterIp, Family::V4);
        let member = |last: u8| IpsetEntry::IpPort([10, 96, 0, last].into(), Proto::Tcp, 80);
        let other = VsKey::new(Proto::Tcp, "10.96.0.11".parse().unwrap(), 80);
        let stray = VsKey::new(Proto::Udp, "10.96.0.10".parse().unwrap(), 53);
        let mut st = seen();
        st.insert_vs(other, spec(Scheduler::Rr), vec![rs(5, 1)]);
        st.insert_member(set, member(10));
        st.insert_member(set, member(11));
        st.insert_bound("10.96.0.10".parse().unwrap());
        // The kernel: `vs` rescheduled, `other` gone, `stray` added, a member lost and one
        // gained, the address unbound, a route added.
        let mut kernel = ObservedState::new();
        kernel.insert_vs(vs(), spec(Scheduler::Lc), Vec::new());
        kernel.insert_vs(stray, spec(Scheduler::Rr), Vec::new());
        kernel.insert_member(set, member(10));
        kernel.insert_member(set, member(12));
        kernel.insert_route("10.96.0.0/16".parse().unwrap());
        let (t, _) = st.merge(PartialRead {
            vs: Vec::new(),
            table: Some(kernel),
        });
        let mut vs_touched: Vec<VsKey> = t.vs.iter().copied().collect();
        vs_touched.sort();
        let mut want = vec![vs(), other, stray];
        want.sort();
        assert_eq!(vs_touched, want);
        assert_eq!(
            t.ipset.into_iter().collect::<Vec<_>>(),
            [(set, member(11)), (set, member(12))]
        );
        assert_eq!(t.addrs.len(), 1);
        assert!(t.routes);
        assert_eq!(st.virtual_servers()[&vs()].spec, spec(Scheduler::Lc));
        assert_eq!(reals(&st), [(1, 1), (2, 1)], "real servers are kept");
        assert!(st.virtual_server(&other).is_none());
        assert!(
            st.virtual_server(&stray)
                .is_some_and(|v| v.reals.is_empty())
        );
        assert!(st.bound().is_empty() && st.routes().len() == 1);
        assert!(st.has_member(&set, &member(12)) && !st.has_member(&set, &member(11)));
    }

    #[test]
    fn replay_makes_each_ops_result_hold_whatever_the_read_saw() {
        let owner = ServicePortName {
            service: ServiceName::new("default", "web"),
            port: "http".into(),
        };
        // (op, real servers afterwards); `None`: the virtual server is gone.
        let cases: Vec<(Op, Option<Reals>)> = vec![
            // The read saw the op already.
            (
                Op::AddRs {
                    vs: vs(),
                    rs: rs(2, 1),
                },
                Some(vec![(1, 1), (2, 1)]),
            ),
            (
                Op::DelRs {
                    vs: vs(),
                    rs: rs(3, 1).key,
                },
                Some(vec![(1, 1), (2, 1)]),
            ),
            (
                Op::UpdateRs {
                    vs: vs(),
                    rs: rs(2, 1),
                },
                Some(vec![(1, 1), (2, 1)]),
            ),
            // The read missed it.
            (
                Op::AddRs {
                    vs: vs(),
                    rs: rs(3, 1),
                },
                Some(vec![(1, 1), (2, 1), (3, 1)]),
            ),
            (
                Op::DelRs {
                    vs: vs(),
                    rs: rs(2, 1).key,
                },
                Some(vec![(1, 1)]),
            ),
            (
                Op::UpdateRs {
                    vs: vs(),
                    rs: rs(2, 0),
                },
                Some(vec![(1, 1), (2, 0)]),
            ),
            (Op::DelVs { key: vs() }, None),
            // Added, then updated to weight 0 before the read saw it: the op's values win.
            (
                Op::AddRs {
                    vs: vs(),
                    rs: rs(2, 0),
                },
                Some(vec![(1, 1), (2, 0)]),
            ),
            (
                Op::AddVs {
                    key: vs(),
                    spec: spec(Scheduler::Lc),
                    owner,
                },
                Some(vec![(1, 1), (2, 1)]),
            ),
        ];
        for (op, want) in cases {
            let mut st = seen();
            st.replay(&op);
            let got = st.virtual_servers().contains_key(&vs()).then(|| reals(&st));
            assert_eq!(got, want, "{op}");
            if let Op::AddVs { spec: s, .. } = op {
                assert_eq!(st.virtual_servers()[&vs()].spec, s);
            }
        }
        // An update of a real server whose virtual server the read did not see yet.
        let mut st = ObservedState::new();
        st.replay(&Op::UpdateVs {
            key: vs(),
            spec: spec(Scheduler::Rr),
        });
        st.replay(&Op::UpdateRs {
            vs: vs(),
            rs: rs(4, 1),
        });
        assert_eq!(reals(&st), [(4, 1)]);
    }
}
