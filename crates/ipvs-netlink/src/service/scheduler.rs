//! Scheduler names (`ipvsadm -s`), validated the way the kernel stores them.

use std::fmt;

/// Longest scheduler name: `IP_VS_SCHEDNAME_MAXLEN` (16) minus the terminating NUL.
pub const MAX_SCHEDULER_LEN: usize = 15;

/// A scheduler name: 1..=15 ASCII bytes, no NUL, no whitespace.
///
/// Any name the kernel module accepts is allowed (`rr`, `wrr`, `lc`, `wlc`, `lblc`, `lblcr`, `dh`,
/// `sh`, `sed`, `nq`, `fo`, `ovf`, `mh`, `twos`); whether the module exists is the kernel's answer
/// (`ENOENT` on add).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchedulerName(String);

/// Why a scheduler name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scheduler name {name:?}: must be 1 to 15 printable ASCII characters")]
pub struct InvalidSchedulerName {
    /// The refused name (lossy for non-UTF-8 input).
    pub name: String,
}

impl SchedulerName {
    /// Validate `name`.
    pub fn new(name: &str) -> Result<Self, InvalidSchedulerName> {
        let ok = !name.is_empty()
            && name.len() <= MAX_SCHEDULER_LEN
            && name.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidSchedulerName {
                name: name.to_owned(),
            })
        }
    }

    /// Round robin.
    pub fn rr() -> Self {
        Self("rr".into())
    }
    /// Weighted round robin.
    pub fn wrr() -> Self {
        Self("wrr".into())
    }
    /// Least connections.
    pub fn lc() -> Self {
        Self("lc".into())
    }
    /// Weighted least connections (ipvsadm's default).
    pub fn wlc() -> Self {
        Self("wlc".into())
    }
    /// Source hashing.
    pub fn sh() -> Self {
        Self("sh".into())
    }
    /// Destination hashing.
    pub fn dh() -> Self {
        Self("dh".into())
    }
    /// Shortest expected delay.
    pub fn sed() -> Self {
        Self("sed".into())
    }
    /// Never queue.
    pub fn nq() -> Self {
        Self("nq".into())
    }
    /// Maglev hashing.
    pub fn mh() -> Self {
        Self("mh".into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SchedulerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchedulerName({})", self.0)
    }
}

impl fmt::Display for SchedulerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SchedulerName {
    type Err = InvalidSchedulerName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}
