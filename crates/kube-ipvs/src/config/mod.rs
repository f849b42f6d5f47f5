//! Configuration of `kube-ipvs run`, compatible with stock kube-proxy's: the
//! `KubeProxyConfiguration` file (`--config`, usually the kube-system/kube-proxy ConfigMap) and
//! kube-proxy's flag names, so an operator can swap the image in the kube-proxy DaemonSet and
//! keep its arguments and ConfigMap.
//!
//! - `kubeproxy`: the wire model of every stock field.
//! - `file`: reading a bare configuration or a ConfigMap; unknown fields become warnings.
//! - `duration`: Go duration text ("1m0s").
//! - `types`: domain types (scheduler, masquerade bit, CIDR lists, bind addresses, sources).
//! - `applicability`: warnings for stock fields that do not apply to IPVS.
//! - `args`: the clap flags ([`RunArgs`]) of `kube-ipvs run` and `kube-proxy`.
//! - `stock_flags`: every stock kube-proxy flag and what kube-ipvs does with it.
//! - `effective`: defaults, file and flags with kube-proxy's precedence, validated into [`Config`].
//! - `node_name`: which Node this agent is.
//!
//! Typical use: `let loaded = config::load(&args)?;` then log each of `loaded.warnings` once.

pub mod applicability;
pub mod args;
pub mod duration;
pub mod effective;
pub mod error;
pub mod file;
pub mod kubeproxy;
pub mod node_name;
pub mod render;
pub mod stock_flags;
pub mod types;

pub use args::RunArgs;
pub use duration::GoDuration;
pub use effective::{Config, ConntrackSettings, IpvsTimeouts, Loaded, SyncPeriods, resolve};
pub use error::{ConfigError, ConfigWarning, WarningKind};
pub use file::{ParsedFile, load_file, parse_str};
pub use node_name::{NodeName, NodeNameError, NodeNameSource, resolve_node_name, system_hostname};
pub use types::{
    InterfaceName, LocalDetection, LogFormat, MasqueradeBit, NodePortAddresses, Source,
};

/// Loads the effective configuration: reads `--config` if given, then applies the flags.
/// Errors from the file name the file; every error names the field or flag.
pub fn load(args: &RunArgs) -> Result<Loaded, ConfigError> {
    let file = args.config.as_deref().map(load_file).transpose()?;
    resolve(file.as_ref(), args).map_err(|e| match (&args.config, e) {
        // Field errors come from the file unless they name a flag.
        (Some(path), ConfigError::Invalid { field, message }) if !field.starts_with("--") => {
            ConfigError::InFile {
                path: path.clone(),
                source: Box::new(ConfigError::Invalid { field, message }),
            }
        }
        (_, e) => e,
    })
}

impl Config {
    /// Resolves this node's name from the merged hostname override, `NODE_NAME` and the hostname.
    pub fn node_name(&self) -> Result<NodeName, NodeNameError> {
        let env = std::env::var("NODE_NAME").ok();
        resolve_node_name(
            self.hostname_override.as_deref(),
            env.as_deref(),
            system_hostname,
        )
    }
}

impl Loaded {
    /// Logs each warning once, at startup.
    pub fn log_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!(field = %w.field, kind = ?w.kind, "configuration: {}", w.message);
        }
    }
}
