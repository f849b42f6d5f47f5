//! Errors of the cluster sources.

use std::path::PathBuf;

/// Why a source could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `--source` is neither `kubernetes` nor `file:PATH`.
    #[error("invalid --source {value:?}: {reason}")]
    BadSpec {
        /// The flag's value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The kubeconfig file could not be read or used.
    #[error("loading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// File.
        path: PathBuf,
        /// kube's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// `--master` is not a URL.
    #[error("invalid --master {value:?}: {reason}")]
    Master {
        /// The flag's value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Neither in-cluster config nor `$KUBECONFIG`/`~/.kube/config` worked.
    #[error("finding API server credentials (in-cluster or kubeconfig): {0}")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// The kube client could not be built.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The node name could not be determined.
    #[error("determining the node name: reading {path}: {source}")]
    Hostname {
        /// What was read.
        path: &'static str,
        /// The I/O error (with its errno).
        #[source]
        source: std::io::Error,
    },
    /// A file source path could not be listed or stat'ed.
    #[error("reading file source {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// The I/O error (with its errno).
        #[source]
        source: std::io::Error,
    },
    /// A file source file could not be read or parsed.
    #[error(transparent)]
    Dump(#[from] crate::dump::DumpError),
}
