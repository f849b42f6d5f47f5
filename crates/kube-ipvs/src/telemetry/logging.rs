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
/// is unset or empty. An invalid `RUST_LOG` does not silence logging: the default applies and the
/// problem is logged as the first warning.
pub fn init(format: LogFormat, default_directive: &str) -> Result<(), LoggingError> {
    init_to(format, default_directive, std::io::stderr)
}

/// [`init`] with another writer (the log file of `go-runner --log-file`, for one).
pub fn init_to<W>(format: LogFormat, default_directive: &str, writer: W) -> Result<(), LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, problem) = filter_or_default(rust_log.as_deref(), default_directive)?;
    let ansi = std::io::stderr().is_terminal();
    init_with(format, filter, writer, ansi)?;
    if let Some(e) = problem {
        tracing::warn!("{e}; logging with the default filter {default_directive:?} instead");
    }
    Ok(())
}

/// The filter from `RUST_LOG`, or the default with the reason `RUST_LOG` was not used when it
/// does not parse. Only an invalid default is an error.
pub fn filter_or_default(
    rust_log: Option<&str>,
    default_directive: &str,
) -> Result<(EnvFilter, Option<LoggingError>), LoggingError> {
    match filter(rust_log, default_directive) {
        Ok(f) => Ok((f, None)),
        Err(
            e @ LoggingError::Filter {
                source_name: "RUST_LOG",
                ..
            },
        ) => Ok((filter(None, default_directive)?, Some(e))),
        Err(e) => Err(e),
    }
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

/// The default directive for kube-proxy's klog verbosity (`--v`, `logging.verbosity`), following
/// the Kubernetes logging conventions: 0-2 (steady-state, what operators run with; kops, GCE and
/// EKS pass --v=2) info, 3-4 (extended and debug information) kube-ipvs's debug, 5 everything at
/// debug, 6 and up trace.
pub fn klog_directive(v: u32) -> &'static str {
    match v {
        0..=2 => "info",
        3 | 4 => "info,kube_ipvs=debug",
        5 => "debug",
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
    fn an_invalid_rust_log_falls_back_to_the_default() {
        let (f, problem) = filter_or_default(Some("kube_ipvs=loud"), "info").unwrap();
        assert_eq!(f.to_string(), "info");
        let problem = problem.expect("the bad RUST_LOG is reported").to_string();
        assert!(
            problem.contains("RUST_LOG") && problem.contains("kube_ipvs=loud"),
            "{problem}"
        );
        let (f, problem) = filter_or_default(Some("warn"), "info").unwrap();
        assert_eq!(
            (f.to_string(), problem.is_none()),
            ("warn".to_owned(), true)
        );
        assert!(filter_or_default(None, "=bad=").is_err());
        assert_eq!(klog_directive(2), "info", "the --v=2 of kops, GCE and EKS");
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        let f = || filter(None, "info").unwrap();
        init_with(LogFormat::Json, f(), std::io::sink, false).unwrap();
        let e = init_with(LogFormat::Text, f(), std::io::sink, false).unwrap_err();
        assert!(matches!(e, LoggingError::AlreadyInstalled(_)), "{e}");
    }
}
