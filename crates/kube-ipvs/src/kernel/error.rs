//! Errors of the apply layer: which subsystem, which object, and the kernel's errno.

use std::fmt;
use std::sync::Arc;

use netlink_transport::{Errno, Failure};

use crate::plan::ApplyError;

/// The kernel subsystem a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    /// IPVS (generic netlink).
    Ipvs,
    /// Links and addresses (rtnetlink).
    Link,
    /// Local routes (rtnetlink).
    Route,
    /// ipsets (nfnetlink).
    Ipset,
    /// Conntrack (nfnetlink).
    Conntrack,
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipvs => "IPVS",
            Self::Link => "link",
            Self::Route => "route",
            Self::Ipset => "ipset",
            Self::Conntrack => "conntrack",
        })
    }
}

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
    /// The op's request failed in its batch: the kernel refused it (errno), its answer was
    /// lost (timeout, ENOBUFS: its outcome is unknown, the socket was rebuilt), or it was not
    /// sent.
    #[error("{subsystem}: {op}: {failure}")]
    Request {
        /// Where it went.
        subsystem: Subsystem,
        /// The op.
        op: String,
        /// What happened to its request.
        failure: Failure,
    },
    /// The op was not sent: what its batch needed first failed (looking up the device, listing
    /// the conntrack table, ...).
    #[error("{op}: not sent: {cause}")]
    NotSent {
        /// The op.
        op: String,
        /// What failed.
        #[source]
        cause: Arc<KernelError>,
    },
    /// The dummy device does not exist (`prepare` creates it).
    #[error("{op}: device {device} does not exist (not prepared?)")]
    NoDevice {
        /// The op.
        op: String,
        /// The device.
        device: String,
    },
    /// A value the kernel cannot take (e.g. the Bypass forwarding method).
    #[error("{op}: unsupported: {reason}")]
    Unsupported {
        /// The op.
        op: String,
        /// Why.
        reason: String,
    },
    /// A sysctl file outside nodenet's set (the conntrack ones).
    #[error("sysctl {path}: cannot {op}: {source}")]
    SysctlFile {
        /// Path below /proc/sys (or /sys).
        path: String,
        /// `read` / `write`.
        op: &'static str,
        /// The error (carries the errno).
        #[source]
        source: std::io::Error,
    },
    /// Entering the configured network namespace, or a helper thread, failed.
    #[error("{op}: {source}")]
    Namespace {
        /// What was attempted.
        op: String,
        /// The error (carries the errno).
        #[source]
        source: std::io::Error,
    },
    /// The fake kernel refused an op (EEXIST / ENOENT), as the real one would.
    #[error("fake kernel: {0}")]
    Fake(#[from] ApplyError),
    /// The fake kernel was told to fail this call (tests of retries and outages).
    #[error("fake kernel: injected failure: {0}")]
    Injected(String),
}

impl KernelError {
    /// The errno behind the error, when the kernel (or a socket) gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Ipvs { source, .. } => source.errno(),
            Self::Link { source, .. } => source.errno(),
            Self::Ipset { source, .. } => source.errno(),
            Self::Conntrack { source, .. } => source.errno(),
            Self::Request { failure, .. } => failure.errno(),
            Self::NotSent { cause, .. } => cause.errno(),
            Self::SysctlFile { source, .. } | Self::Namespace { source, .. } => {
                source.raw_os_error().map(Errno::new)
            }
            Self::Sysctl { .. }
            | Self::Iptables { .. }
            | Self::NoDevice { .. }
            | Self::Unsupported { .. }
            | Self::Fake(_)
            | Self::Injected(_) => None,
        }
    }
}
