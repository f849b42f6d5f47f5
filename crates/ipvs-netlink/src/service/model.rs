//! The `Service` value: what `ipvsadm -A/-E` sets and `ipvsadm -Ln` shows for one virtual service.

use crate::AddressFamily;
use crate::error::DecodeError;
use crate::service::{FlagsMask, SchedulerName, ServiceAttribute, ServiceFlags, VirtualServiceKey};
use crate::stats::Stats;

const OBJ: &str = "service";

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Identity.
    pub key: VirtualServiceKey,
    /// Scheduler (`-s`); the kernel reports `none` when it has none.
    pub scheduler: SchedulerName,
    /// Flags; `HASHED` is set by the kernel and ignored on requests.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (`-p`), meaningful with `PERSISTENT`.
    pub timeout: u32,
    /// Persistence granularity as a prefix length (`-M`): IPv4 0..=32, IPv6 0..=128.
    /// Defaults to the host prefix (32 / 128), as ipvsadm does.
    pub netmask: u8,
    /// Persistence engine (`--pe`, e.g. `sip`).
    pub pe_name: Option<String>,
    /// Counters and rates; only in replies (prefers `STATS64` over `STATS`).
    pub stats: Option<Stats>,
}

impl Service {
    /// A service with defaults: no flags, no persistence, host netmask.
    pub fn new(key: VirtualServiceKey, scheduler: SchedulerName) -> Self {
        Self {
            netmask: key.family().max_prefix(),
            key,
            scheduler,
            flags: ServiceFlags::NONE,
            timeout: 0,
            pe_name: None,
            stats: None,
        }
    }

    /// Make the service persistent for `timeout` seconds (ipvsadm `-p timeout`).
    #[must_use]
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.flags = self.flags | ServiceFlags::PERSISTENT;
        self.timeout = timeout;
        self
    }

    /// The attributes of a NEW/SET_SERVICE request, in ipvsadm's order.
    pub fn to_attributes(&self) -> Vec<ServiceAttribute> {
        let mut out = Vec::with_capacity(9);
        self.key.push_attributes(&mut out);
        out.push(ServiceAttribute::SchedName(
            self.scheduler.as_str().to_owned(),
        ));
        if let Some(pe) = &self.pe_name {
            out.push(ServiceAttribute::PeName(pe.clone()));
        }
        out.push(ServiceAttribute::Flags(FlagsMask {
            flags: self.flags.settable().bits(),
            mask: !0,
        }));
        out.push(ServiceAttribute::Timeout(self.timeout));
        out.push(ServiceAttribute::Netmask(encode_netmask(
            self.key.family(),
            self.netmask,
        )));
        out
    }

    /// Build from a service nest (a GET_SERVICE reply or a request).
    pub fn from_attributes(nlas: &[ServiceAttribute]) -> Result<Self, DecodeError> {
        let key = VirtualServiceKey::from_attributes(nlas)?;
        let family = key.family();
        let mut sched = None;
        let mut flags = ServiceFlags::NONE;
        let mut timeout = 0;
        let mut netmask = None;
        let mut pe_name = None;
        let mut stats = None;
        let mut stats64 = None;
        for nla in nlas {
            match nla {
                ServiceAttribute::SchedName(v) => sched = Some(v),
                ServiceAttribute::Flags(v) => flags = ServiceFlags::from_bits(v.flags),
                ServiceAttribute::Timeout(v) => timeout = *v,
                ServiceAttribute::Netmask(v) => netmask = Some(*v),
                ServiceAttribute::PeName(v) => pe_name = Some(v.clone()),
                ServiceAttribute::Stats(v) => stats = Some(Stats::from_attributes(v)),
                ServiceAttribute::Stats64(v) => stats64 = Some(Stats::from_attributes(v)),
                _ => {}
            }
        }
        let sched = sched.ok_or(DecodeError::Missing {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_SCHED_NAME",
        })?;
        let scheduler = SchedulerName::new(sched).map_err(|e| DecodeError::Invalid {
            object: OBJ,
            attribute: "IPVS_SVC_ATTR_SCHED_NAME",
            reason: e.to_string(),
        })?;
        let netmask = match netmask {
            Some(raw) => decode_netmask(family, raw)?,
            None => family.max_prefix(),
        };
        Ok(Self {
            key,
            scheduler,
            flags,
            timeout,
            netmask,
            pe_name,
            stats: stats64.or(stats),
        })
    }
}

/// The kernel's encoding of a persistence netmask for `family`.
///
/// IPv4: the mask itself in network order (`-M 255.255.255.0`); IPv6: the prefix length as a
/// host-order u32. Prefixes beyond the family's maximum are clamped to it.
pub fn encode_netmask(family: AddressFamily, prefix: u8) -> [u8; 4] {
    let prefix = prefix.min(family.max_prefix());
    match family {
        AddressFamily::Inet => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            mask.to_be_bytes()
        }
        AddressFamily::Inet6 => u32::from(prefix).to_ne_bytes(),
    }
}

/// Inverse of [`encode_netmask`]; a non-contiguous IPv4 mask or an IPv6 length over 128 is an error.
pub fn decode_netmask(family: AddressFamily, raw: [u8; 4]) -> Result<u8, DecodeError> {
    let invalid = |reason: String| DecodeError::Invalid {
        object: OBJ,
        attribute: "IPVS_SVC_ATTR_NETMASK",
        reason,
    };
    match family {
        AddressFamily::Inet => {
            let mask = u32::from_be_bytes(raw);
            let ones = mask.leading_ones();
            if mask.checked_shl(ones).unwrap_or(0) != 0 {
                return Err(invalid(format!("non-contiguous IPv4 mask {mask:#010x}")));
            }
            u8::try_from(ones).map_err(|_| invalid(format!("mask {mask:#010x}")))
        }
        AddressFamily::Inet6 => {
            let len = u32::from_ne_bytes(raw);
            u8::try_from(len)
                .ok()
                .filter(|l| *l <= 128)
                .ok_or_else(|| invalid(format!("IPv6 prefix length {len} > 128")))
        }
    }
}
