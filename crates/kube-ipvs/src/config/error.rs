//! Configuration errors (stop startup) and warnings (logged once, startup continues).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why the configuration cannot be used. Every variant names the file, field path or flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given to `--config` could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The text is not YAML/JSON, or has no usable document.
    #[error("parsing configuration: {message}")]
    Syntax { message: String },
    /// A ConfigMap without a usable `KubeProxyConfiguration` entry.
    #[error("ConfigMap {name}: {message}")]
    ConfigMap { name: String, message: String },
    /// A field (path such as `ipvs.excludeCIDRs[1]`) or flag (such as `--ipvs-sync-period`) holds
    /// a value that kube-ipvs will not run with.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Any of the above, in the named file.
    #[error("config file {path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WarningKind {
    /// A field that is not part of `KubeProxyConfiguration` (a typo, or a newer kube-proxy's).
    UnknownField,
    /// A valid stock field that kube-ipvs does not use (iptables/nftables/Windows settings, ...).
    NotApplicable,
    /// A value that is used, but worth a note (a missing apiVersion, a field overridden by another).
    Notice,
}

/// A problem that does not stop startup; the agent logs each once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigWarning {
    pub kind: WarningKind,
    /// Field path (`iptables.syncPeriod`) or flag (`--ipvs-scheduler`).
    pub field: String,
    pub message: String,
}

impl ConfigWarning {
    pub(crate) fn new(
        kind: WarningKind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigWarning {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
