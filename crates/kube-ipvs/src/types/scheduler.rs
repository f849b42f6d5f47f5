//! IPVS schedulers and virtual-server flags (`ipvsadm -s NAME -b FLAGS -p TIMEOUT`).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A kernel IPVS scheduler (the `ip_vs_*` scheduler modules of mainline Linux): the planner's and
/// the configuration's (`ipvs.scheduler`). The kernel's own name for any scheduler, known or not,
/// is `ipvs_netlink::SchedulerName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheduler {
    /// Round robin (the kube-proxy default).
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection.
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Power of two choices.
    Twos,
}

const NAMES: [(Scheduler, &str); 14] = [
    (Scheduler::Rr, "rr"),
    (Scheduler::Wrr, "wrr"),
    (Scheduler::Lc, "lc"),
    (Scheduler::Wlc, "wlc"),
    (Scheduler::Lblc, "lblc"),
    (Scheduler::Lblcr, "lblcr"),
    (Scheduler::Dh, "dh"),
    (Scheduler::Sh, "sh"),
    (Scheduler::Sed, "sed"),
    (Scheduler::Nq, "nq"),
    (Scheduler::Fo, "fo"),
    (Scheduler::Ovf, "ovf"),
    (Scheduler::Mh, "mh"),
    (Scheduler::Twos, "twos"),
];

impl Scheduler {
    /// Parses a kernel scheduler name; `None` for anything the kernel does not provide.
    pub fn parse(s: &str) -> Option<Self> {
        NAMES.iter().find(|(_, n)| *n == s).map(|(k, _)| *k)
    }

    /// The kernel's name for it.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("rr", |(_, n)| n)
    }
}

impl Default for Scheduler {
    /// Round robin, the stock default.
    fn default() -> Self {
        Self::Rr
    }
}

impl FromStr for Scheduler {
    type Err = String;

    /// Parses a configured scheduler (`ipvs.scheduler`, `--ipvs-scheduler`): only the schedulers
    /// of mainline Linux are accepted (the planner knows which scheduler flags each takes), so a
    /// typo stops startup rather than the first virtual server.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| {
            let names: Vec<&str> = NAMES.iter().map(|(_, n)| *n).collect();
            format!(
                "invalid IPVS scheduler {s:?}: expected one of {}",
                names.join(", ")
            )
        })
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Scheduler {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Virtual-server flags (`IP_VS_SVC_F_*` of include/uapi/linux/ip_vs.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct VsFlags(pub u32);

impl VsFlags {
    /// `IP_VS_SVC_F_PERSISTENT`: session affinity.
    pub const PERSISTENT: u32 = 0x0001;
    /// `IP_VS_SVC_F_HASHED`: set by the kernel on every service; never ours to manage.
    pub const HASHED: u32 = 0x0002;
    /// `IP_VS_SVC_F_ONEPACKET`.
    pub const ONEPACKET: u32 = 0x0004;
    /// `IP_VS_SVC_F_SCHED1`: sh-fallback / mh-fallback.
    pub const SCHED1: u32 = 0x0008;
    /// `IP_VS_SVC_F_SCHED2`: sh-port / mh-port.
    pub const SCHED2: u32 = 0x0010;
    /// `IP_VS_SVC_F_SCHED3`.
    pub const SCHED3: u32 = 0x0020;
    /// The bits a plan compares and sets (everything but HASHED and unknown bits).
    pub const MANAGED: u32 =
        Self::PERSISTENT | Self::ONEPACKET | Self::SCHED1 | Self::SCHED2 | Self::SCHED3;

    /// Whether a bit is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Only the bits we manage.
    pub fn managed(self) -> Self {
        Self(self.0 & Self::MANAGED)
    }

    /// Parses one `kube-ipvs.io/scheduler-flags` item, valid only for its scheduler.
    pub fn parse_sched_flag(flag: &str, scheduler: Scheduler) -> Option<u32> {
        match (flag, scheduler) {
            ("sh-fallback", Scheduler::Sh) | ("mh-fallback", Scheduler::Mh) => Some(Self::SCHED1),
            ("sh-port", Scheduler::Sh) | ("mh-port", Scheduler::Mh) => Some(Self::SCHED2),
            _ => None,
        }
    }

    /// The scheduler-flag list as `ipvsadm -Ln` prints it inside parentheses
    /// (`sh-fallback,sh-port`), or `None` when no scheduler flag is set.
    pub fn sched_flag_names(self, scheduler: Scheduler) -> Option<String> {
        let (one, two) = match scheduler {
            Scheduler::Sh => ("sh-fallback", "sh-port"),
            Scheduler::Mh => ("mh-fallback", "mh-port"),
            _ => ("flag-1", "flag-2"),
        };
        let mut names = Vec::new();
        if self.has(Self::SCHED1) {
            names.push(one);
        }
        if self.has(Self::SCHED2) {
            names.push(two);
        }
        if self.has(Self::SCHED3) {
            names.push("flag-3");
        }
        (!names.is_empty()).then(|| names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_names_only() {
        for (sched, name) in NAMES {
            assert_eq!(name.parse::<Scheduler>(), Ok(sched));
            assert_eq!(sched.name(), name);
        }
        for bad in ["", "RR", "round robin", "rr;", "fancy", "sh-port"] {
            let err = bad.parse::<Scheduler>().unwrap_err();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("wlc"),
                "{err}"
            );
        }
    }
}
