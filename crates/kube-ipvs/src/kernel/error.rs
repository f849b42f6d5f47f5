//! Errors of the apply layer: which subsystem, which object, and the kernel's errno.

use crate::plan::ApplyError;

/// A kernel operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// An IPVS request (generic netlink).
    #[error("IPVS: {op}: {source}")]
    Ipvs {
        /// What was attempted (`add virtual server TCP 10.96.0.1:443`).
        op: String,
        /// The client's error (keeps the errno).
        #[source]
        source: ipvs_netlink::Error,
    },
    /// A link, address or route request (rtnetlink).
    #[error("link: {op}: {source}")]
    Link {
        /// What was attempted.
        op: String,
        /// The error (keeps the errno).
        #[source]
        source: nodenet::link::LinkError,
    },
    /// An ipset request (nfnetlink).
    #[error("ipset: {op}: {source}")]
    Ipset {
        /// What was attempted.
        op: String,
        /// The error (keeps the errno).
        #[source]
        source: nodenet::ipset::IpsetError,
    },
    /// iptables-restore / iptables-save.
    #[error("iptables: {op}: {source}")]
    Iptables {
        /// What was attempted.
        op: String,
        /// The error.
        #[source]
        source: nodenet::iptables::IptablesError,
    },
    /// A sysctl.
    #[error("sysctl: {source}")]
    Sysctl {
        /// The error.
        #[from]
        source: nodenet::sysctl::SysctlError,
    },
    /// A conntrack request (nfnetlink).
    #[error("conntrack: {op}: {source}")]
    Conntrack {
        /// What was attempted.
        op: String,
        /// The error (keeps the errno).
        #[source]
        source: nodenet::conntrack::ConntrackError,
    },
    /// The fake kernel refused an op (EEXIST / ENOENT), as the real one would.
    #[error("fake kernel: {0}")]
    Fake(#[from] ApplyError),
    /// The fake kernel was told to fail this call (tests of retries and outages).
    #[error("fake kernel: injected failure: {0}")]
    Injected(String),
}
