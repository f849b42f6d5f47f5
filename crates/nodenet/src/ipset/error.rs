//! Typed errors: every kernel error keeps the operation, the set and the errno; the ipset
//! private errnos (4097.., `ip_set.h`) are mapped by name.

use std::fmt;
use std::time::Duration;

use super::constants::*;

use netlink_transport::Errno;

/// The ipset operation that failed, named like the `ipset` CLI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpsetOp {
    Protocol,
    Type,
    Create,
    Destroy,
    Flush,
    Rename,
    Swap,
    List,
    Header,
    Add,
    Del,
    Test,
    Sync,
    Replace,
}

impl fmt::Display for IpsetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpsetOp::Protocol => "protocol",
            IpsetOp::Type => "type",
            IpsetOp::Create => "create",
            IpsetOp::Destroy => "destroy",
            IpsetOp::Flush => "flush",
            IpsetOp::Rename => "rename",
            IpsetOp::Swap => "swap",
            IpsetOp::List => "list",
            IpsetOp::Header => "header",
            IpsetOp::Add => "add",
            IpsetOp::Del => "del",
            IpsetOp::Test => "test",
            IpsetOp::Sync => "sync",
            IpsetOp::Replace => "replace",
        })
    }
}

/// A malformed message: names the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: invalid length {len}")]
    Length { what: &'static str, len: usize },
    #[error("{what}: missing")]
    Missing { what: &'static str },
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

/// A request that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{what} of {len} bytes exceeds the netlink limit")]
    TooLarge { what: &'static str, len: usize },
    #[error("set or type name {0:?} is empty or longer than 31 bytes")]
    Name(String),
    #[error("comment longer than 255 bytes")]
    Comment,
    #[error("entry {entry} does not fit set type {set_type}")]
    EntryType { entry: String, set_type: String },
}

/// Errors of the ipset client. Kernel errors keep the operation, the set and the errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpsetError {
    #[error("ipset {op} {set}: set already exists (errno {} {})", errno.get(), errno_name(*errno))]
    SetExists {
        op: IpsetOp,
        set: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: set does not exist (errno {} {})", errno.get(), errno_name(*errno))]
    SetMissing {
        op: IpsetOp,
        set: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: set is in use (referenced by iptables or a dump) (errno {} {})", errno.get(), errno_name(*errno))]
    InUse {
        op: IpsetOp,
        set: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: type or family mismatch (errno {} {})", errno.get(), errno_name(*errno))]
    TypeMismatch {
        op: IpsetOp,
        set: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: protocol error, the kernel rejected the message (errno {} {})", errno.get(), errno_name(*errno))]
    Protocol {
        op: IpsetOp,
        set: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: permission denied, CAP_NET_ADMIN needed (errno {} {})", errno.get(), errno_name(*errno))]
    Permission {
        op: IpsetOp,
        set: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: element {entry} already exists (errno {} {})", errno.get(), errno_name(*errno))]
    ElementExists {
        op: IpsetOp,
        set: String,
        entry: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: element {entry} is missing (errno {} {})", errno.get(), errno_name(*errno))]
    ElementMissing {
        op: IpsetOp,
        set: String,
        entry: String,
        errno: Errno,
    },
    #[error("ipset {op} {set}: kernel error {} {}{}", errno.get(), errno_name(*errno), entry.as_ref().map(|e| format!(" at element {e}")).unwrap_or_default())]
    Kernel {
        op: IpsetOp,
        set: String,
        errno: Errno,
        entry: Option<String>,
    },
    #[error("ipset {op} {set}: no reply within {after:?}")]
    Timeout {
        op: IpsetOp,
        set: String,
        after: Duration,
    },
    #[error("ipset {op} {set}: undecodable reply: {source}")]
    Decode {
        op: IpsetOp,
        set: String,
        #[source]
        source: DecodeError,
    },
    #[error("ipset {op} {set}: cannot encode request: {source}")]
    Encode {
        op: IpsetOp,
        set: String,
        #[source]
        source: EncodeError,
    },
    /// Any other transport failure (the socket, lost replies, the namespace).
    #[error("ipset {op} {set}: {source}")]
    Transport {
        op: IpsetOp,
        set: String,
        #[source]
        source: netlink_transport::Error,
    },
    #[error(
        "ipset {op} {set}: kernel speaks ipset protocol {kernel}, we need >= {IPSET_PROTOCOL_MIN}"
    )]
    Unsupported {
        op: IpsetOp,
        set: String,
        kernel: u8,
    },
    #[error(
        "ipset {op} {set}: the kernel's {set_type} starts at revision {kernel_min}, we know up to {ours}"
    )]
    UnsupportedRevision {
        op: IpsetOp,
        set: String,
        set_type: String,
        kernel_min: u8,
        ours: u8,
    },
}

impl IpsetError {
    /// The errno the kernel returned, if this error came from the kernel.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            IpsetError::SetExists { errno, .. }
            | IpsetError::SetMissing { errno, .. }
            | IpsetError::InUse { errno, .. }
            | IpsetError::TypeMismatch { errno, .. }
            | IpsetError::Protocol { errno, .. }
            | IpsetError::Permission { errno, .. }
            | IpsetError::ElementExists { errno, .. }
            | IpsetError::ElementMissing { errno, .. }
            | IpsetError::Kernel { errno, .. } => Some(*errno),
            IpsetError::Timeout { .. } => Some(Errno::ETIMEDOUT),
            IpsetError::Transport { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// Maps a kernel errno (positive) for `op` on `set` to a typed error. `entry` names the
    /// element concerned, when known.
    pub fn from_errno(op: IpsetOp, set: &str, errno: Errno, entry: Option<String>) -> Self {
        let set = set.to_string();
        match errno {
            Errno::EEXIST => IpsetError::SetExists { op, set, errno },
            Errno::ENOENT => IpsetError::SetMissing { op, set, errno },
            IPSET_ERR_EXIST_SETNAME2 if op == IpsetOp::Rename => {
                IpsetError::SetExists { op, set, errno }
            }
            IPSET_ERR_EXIST_SETNAME2 => IpsetError::SetMissing { op, set, errno },
            IPSET_ERR_BUSY | IPSET_ERR_REFERENCED | Errno::EBUSY => {
                IpsetError::InUse { op, set, errno }
            }
            IPSET_ERR_TYPE_MISMATCH | IPSET_ERR_INVALID_FAMILY | IPSET_ERR_FIND_TYPE => {
                IpsetError::TypeMismatch { op, set, errno }
            }
            IPSET_ERR_PROTOCOL | Errno::EPROTO => IpsetError::Protocol { op, set, errno },
            Errno::EPERM | Errno::EACCES => IpsetError::Permission { op, set, errno },
            IPSET_ERR_EXIST if op == IpsetOp::Add => IpsetError::ElementExists {
                op,
                set,
                entry: entry.unwrap_or_else(|| "?".to_string()),
                errno,
            },
            IPSET_ERR_EXIST => IpsetError::ElementMissing {
                op,
                set,
                entry: entry.unwrap_or_else(|| "?".to_string()),
                errno,
            },
            _ => IpsetError::Kernel {
                op,
                set,
                errno,
                entry,
            },
        }
    }
}

/// The kernel's name for an errno: the ipset private range by its `ip_set*.h` name, the
/// rest by its libc name.
pub fn errno_name(errno: Errno) -> &'static str {
    match errno {
        IPSET_ERR_PROTOCOL => "IPSET_ERR_PROTOCOL",
        IPSET_ERR_FIND_TYPE => "IPSET_ERR_FIND_TYPE",
        IPSET_ERR_MAX_SETS => "IPSET_ERR_MAX_SETS",
        IPSET_ERR_BUSY => "IPSET_ERR_BUSY",
        IPSET_ERR_EXIST_SETNAME2 => "IPSET_ERR_EXIST_SETNAME2",
        IPSET_ERR_TYPE_MISMATCH => "IPSET_ERR_TYPE_MISMATCH",
        IPSET_ERR_EXIST => "IPSET_ERR_EXIST",
        IPSET_ERR_INVALID_CIDR => "IPSET_ERR_INVALID_CIDR",
        IPSET_ERR_INVALID_NETMASK => "IPSET_ERR_INVALID_NETMASK",
        IPSET_ERR_INVALID_FAMILY => "IPSET_ERR_INVALID_FAMILY",
        IPSET_ERR_TIMEOUT => "IPSET_ERR_TIMEOUT",
        IPSET_ERR_REFERENCED => "IPSET_ERR_REFERENCED",
        IPSET_ERR_IPADDR_IPV4 => "IPSET_ERR_IPADDR_IPV4",
        IPSET_ERR_IPADDR_IPV6 => "IPSET_ERR_IPADDR_IPV6",
        IPSET_ERR_COUNTER => "IPSET_ERR_COUNTER",
        IPSET_ERR_COMMENT => "IPSET_ERR_COMMENT",
        IPSET_ERR_INVALID_MARKMASK => "IPSET_ERR_INVALID_MARKMASK",
        IPSET_ERR_SKBINFO => "IPSET_ERR_SKBINFO",
        IPSET_ERR_BITMASK_NETMASK_EXCL => "IPSET_ERR_BITMASK_NETMASK_EXCL",
        // Type-specific codes overlap between hash and bitmap types.
        IPSET_ERR_HASH_FULL => "IPSET_ERR_HASH_FULL/IPSET_ERR_BITMAP_RANGE",
        IPSET_ERR_HASH_ELEM => "IPSET_ERR_HASH_ELEM/IPSET_ERR_BITMAP_RANGE_SIZE",
        IPSET_ERR_INVALID_PROTO => "IPSET_ERR_INVALID_PROTO",
        IPSET_ERR_MISSING_PROTO => "IPSET_ERR_MISSING_PROTO",
        IPSET_ERR_HASH_RANGE_UNSUPPORTED => "IPSET_ERR_HASH_RANGE_UNSUPPORTED",
        IPSET_ERR_HASH_RANGE => "IPSET_ERR_HASH_RANGE",
        Errno::EPERM => "EPERM",
        Errno::ENOENT => "ENOENT",
        Errno::EEXIST => "EEXIST",
        Errno::EBUSY => "EBUSY",
        Errno::EACCES => "EACCES",
        Errno::EINVAL => "EINVAL",
        Errno::ENOMEM => "ENOMEM",
        Errno::EPROTO => "EPROTO",
        Errno::EMSGSIZE => "EMSGSIZE",
        Errno::EOPNOTSUPP => "EOPNOTSUPP",
        Errno::EAFNOSUPPORT => "EAFNOSUPPORT",
        Errno::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        _ => "unknown",
    }
}
