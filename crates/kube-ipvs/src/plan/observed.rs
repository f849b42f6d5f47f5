//! The node's kernel state in domain terms: what a kernel dump converts into, what the planner
//! diffs against, and (through [`ObservedState::apply`]) the fake kernel of the tests and the
//! agent's cache between full dumps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::op::Op;
use crate::types::{IpsetEntry, IpsetName, RealServer, RsKey, VsKey, VsSpec};

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
    by_addr: HashMap<IpAddr, BTreeSet<VsKey>>,
}

impl ObservedState {
    /// An empty kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a virtual server from a dump (replacing one with the same key).
    pub fn insert_vs(&mut self, key: VsKey, spec: VsSpec, mut reals: Vec<RealServer>) {
        reals.sort_unstable_by_key(|r| r.key);
        reals.dedup_by_key(|r| r.key);
        if self.vs.insert(key, ObservedVs { spec, reals }).is_none()
            && let Some(a) = key.addr()
        {
            self.by_addr.entry(a).or_default().insert(key);
        }
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

    /// Sets the connection counters of a real server (from a dump; used by drain ticks and tests).
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

    /// The virtual servers on an address.
    pub fn vs_on(&self, addr: &IpAddr) -> impl Iterator<Item = &VsKey> {
        self.by_addr.get(addr).into_iter().flatten()
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
                if let Some(a) = key.addr()
                    && let Some(set) = self.by_addr.get_mut(&a)
                {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_addr.remove(&a);
                    }
                }
            }
            Op::AddRs { vs, rs } => {
                let Some(v) = self.vs.get_mut(vs) else {
                    return missing(format!("virtual server {vs}"));
                };
                match v.reals.binary_search_by_key(&rs.key, |r| r.key) {
                    Ok(_) => return exists(format!("real server {} of {vs}", rs.key)),
                    Err(i) => v.reals.insert(
                        i,
                        RealServer {
                            active: 0,
                            inactive: 0,
                            ..*rs
                        },
                    ),
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

    /// Applies a whole plan, stopping at the first error.
    pub fn apply_all<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a Op>,
    ) -> Result<(), ApplyError> {
        ops.into_iter().try_for_each(|op| self.apply(op))
    }
}
