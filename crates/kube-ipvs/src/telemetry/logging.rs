//! The process's `tracing` subscriber: text or JSON lines on stderr (`--log-format`), filtered by
//! `RUST_LOG` (e.g. `RUST_LOG=kube_ipvs=debug`) or, when unset, by a default directive such as
//! `info` (see [`klog_directive`] for kube-proxy's `-v` levels).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter (RUST_LOG or the default) does not parse.
    #[error("{source_name}: invalid log filter {value:?}: {source}")]
    Filter {
        /// `RUST_LOG` or `default log level`.
        source_name: &'static str,
        /// The text given.
        value: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed (init called twice).
    #[error("logging is already initialised: {0}")]
    AlreadyInstalled(String),
}

/// Installs the global subscriber writing to stderr. `default_directive` applies when `RUST_LOG`
/// is unset or empty.
pub fn init(format: LogFormat, default_directive: &str) -> Result<(), LoggingError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), default_directive)?;
    let ansi = std::io::stderr().is_terminal();
    init_with(format, filter, std::io::stderr, ansi)
}

/// The filter from `RUST_LOG` (if set and not empty) or the default.
pub fn filter(rust_log: Option<&str>, default_directive: &str) -> Result<EnvFilter, LoggingError> {
    let (source_name, value) = match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => ("RUST_LOG", v),
        None => ("default log level", default_directive),
    };
    EnvFilter::try_new(value).map_err(|source| LoggingError::Filter {
        source_name,
        value: value.to_string(),
        source,
    })
}

/// The default directive for kube-proxy's klog verbosity (`--v`, `logging.verbosity`): 0-1 info,
/// 2-3 our debug, 4 and up everything at debug, 6 and up trace.
pub fn klog_directive(v: u32) -> &'static str {
    match v {
        0 | 1 => "info",
        2 | 3 => "info,kube_ipvs=debug",
        4 | 5 => "debug",
        _ => "trace",
    }
}

fn init_with<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Result<(), LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let res = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    res.map_err(|e| LoggingError::AlreadyInstalled(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(filter(None, "info").is_ok());
        assert!(filter(Some(""), "info").is_ok());
        assert!(filter(Some("kube_ipvs=debug,warn"), "info").is_ok());
        let e = filter(Some("kube_ipvs=loud"), "info").unwrap_err();
        assert!(
            e.to_string().starts_with("RUST_LOG: invalid log filter"),
            "{e}"
        );
        let e = filter(None, "=bad=").unwrap_err();
        assert!(e.to_string().starts_with("default log level"), "{e}");
        for v in 0..8 {
            assert!(filter(None, klog_directive(v)).is_ok(), "{v}");
        }
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        let f = || filter(None, "info").unwrap();
        init_with(LogFormat::Json, f(), std::io::sink, false).unwrap();
        let e = init_with(LogFormat::Text, f(), std::io::sink, false).unwrap_err();
        assert!(matches!(e, LoggingError::AlreadyInstalled(_)), "{e}");
    }
}
