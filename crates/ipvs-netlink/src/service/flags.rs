//! Virtual service flags (`IP_VS_SVC_F_*`), ipvsadm `-p`, `-o`, `--sched-flags`.

use std::fmt;

const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
const IP_VS_SVC_F_HASHED: u32 = 0x0002;
const IP_VS_SVC_F_ONEPACKET: u32 = 0x0004;
const IP_VS_SVC_F_SCHED1: u32 = 0x0008;
const IP_VS_SVC_F_SCHED2: u32 = 0x0010;
const IP_VS_SVC_F_SCHED3: u32 = 0x0020;

/// A set of service flags. Unknown bits are preserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ServiceFlags(u32);

impl ServiceFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// Persistent service (`-p`): a client sticks to one destination for the timeout.
    pub const PERSISTENT: Self = Self(IP_VS_SVC_F_PERSISTENT);
    /// Set by the kernel on every installed service; ignored on requests (read only).
    pub const HASHED: Self = Self(IP_VS_SVC_F_HASHED);
    /// One-packet scheduling (`-o`, UDP): schedule every datagram on its own.
    pub const ONEPACKET: Self = Self(IP_VS_SVC_F_ONEPACKET);
    /// Scheduler flag 1: `sh-fallback` for sh, `mh-fallback` for mh.
    pub const SCHED1: Self = Self(IP_VS_SVC_F_SCHED1);
    /// Scheduler flag 2: `sh-port` for sh, `mh-port` for mh.
    pub const SCHED2: Self = Self(IP_VS_SVC_F_SCHED2);
    /// Scheduler flag 3 (`flag-3`), unused by the in-tree schedulers.
    pub const SCHED3: Self = Self(IP_VS_SVC_F_SCHED3);
    /// sh: fall back to another destination when the hashed one is unavailable.
    pub const SH_FALLBACK: Self = Self::SCHED1;
    /// sh: hash the source port as well as the address.
    pub const SH_PORT: Self = Self::SCHED2;
    /// mh: fall back to another destination when the hashed one is unavailable.
    pub const MH_FALLBACK: Self = Self::SCHED1;
    /// mh: hash the source port as well as the address.
    pub const MH_PORT: Self = Self::SCHED2;

    /// Flags from raw bits (all bits kept).
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` plus `other`.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` without `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The bits a request may carry (everything but the kernel-owned HASHED).
    #[must_use]
    pub const fn settable(self) -> Self {
        self.difference(Self::HASHED)
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for ServiceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 6] = [
            (IP_VS_SVC_F_PERSISTENT, "PERSISTENT"),
            (IP_VS_SVC_F_HASHED, "HASHED"),
            (IP_VS_SVC_F_ONEPACKET, "ONEPACKET"),
            (IP_VS_SVC_F_SCHED1, "SCHED1"),
            (IP_VS_SVC_F_SCHED2, "SCHED2"),
            (IP_VS_SVC_F_SCHED3, "SCHED3"),
        ];
        let mut first = true;
        let mut rest = self.0;
        f.write_str("ServiceFlags(")?;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}
