//! The iptables back end (nft or legacy), its capabilities, and running its binaries with a
//! timeout.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::AddressFamily;

/// Which iptables implementation programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `iptables-nft`: nf_tables with the iptables syntax.
    Nft,
    /// `iptables-legacy`: the x_tables interface.
    Legacy,
}

/// A tool of the back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `iptables`.
    Iptables,
    /// `iptables-save`.
    Save,
    /// `iptables-restore`.
    Restore,
}

/// Failure of an iptables command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IptablesError {
    /// The binary could not be started.
    #[error("{cmd}: cannot run: {source}")]
    Spawn {
        /// The command.
        cmd: String,
        /// Why (carries the errno).
        #[source]
        source: std::io::Error,
    },
    /// It exited with a failure.
    #[error("{cmd}: exited with {status}: {stderr}")]
    Failed {
        /// The command.
        cmd: String,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// It did not finish in time and was killed.
    #[error("{cmd}: no result within {timeout:?}, killed")]
    Timeout {
        /// The command.
        cmd: String,
        /// The bound.
        timeout: Duration,
    },
    /// Its output was not understood.
    #[error("{cmd}: unexpected output: {output:?}")]
    Output {
        /// The command.
        cmd: String,
        /// The output.
        output: String,
    },
    /// A rule set of the other family was given.
    #[error("rule set family does not match the iptables family")]
    FamilyMismatch,
}

/// `iptables v1.8.9 (nf_tables)` -> ((1, 8, 9), Some(Nft)).
pub fn parse_version(text: &str) -> Option<((u32, u32, u32), Option<Backend>)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut nums = v.split('.').map(|n| n.parse::<u32>().ok());
    let version = (
        nums.next()??,
        nums.next()??,
        nums.next().flatten().unwrap_or(0),
    );
    let backend = if text.contains("(nf_tables)") {
        Some(Backend::Nft)
    } else if text.contains("(legacy)") {
        Some(Backend::Legacy)
    } else {
        None
    };
    Some((version, backend))
}

/// `MASQUERADE --random-fully` needs iptables >= 1.6.2 (kube-proxy's check).
pub fn random_fully_supported(version: (u32, u32, u32)) -> bool {
    version >= (1, 6, 2)
}

/// kube-proxy's iptables-wrapper rule: the back end that already holds rules wins (more
/// rules wins); with none or a tie, the default of the `iptables` binary.
pub fn choose(default: Backend, nft_rules: usize, legacy_rules: usize) -> Backend {
    match nft_rules.cmp(&legacy_rules) {
        std::cmp::Ordering::Greater => Backend::Nft,
        std::cmp::Ordering::Less => Backend::Legacy,
        std::cmp::Ordering::Equal => default,
    }
}

fn count_rules(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("-A ")).count()
}

/// The iptables command of a family, without a back end: `iptables` or `ip6tables`.
pub fn command(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::Inet => "iptables",
        AddressFamily::Inet6 => "ip6tables",
    }
}

impl Backend {
    /// The binary for a tool, e.g. `ip6tables-nft-restore`.
    pub fn binary(self, family: AddressFamily, tool: Tool) -> String {
        let base = command(family);
        let variant = match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        };
        match tool {
            Tool::Iptables => format!("{base}-{variant}"),
            Tool::Save => format!("{base}-{variant}-save"),
            Tool::Restore => format!("{base}-{variant}-restore"),
        }
    }

    /// Detects the back end: the one already holding rules (nat and filter of both
    /// families counted), else what `iptables --version` reports.
    pub fn detect(family: AddressFamily, timeout: Duration) -> Result<Self, IptablesError> {
        let bin = command(family);
        let text = run_cmd(bin, &["--version"], None, timeout)?;
        let default = parse_version(&text)
            .and_then(|(_, b)| b)
            .ok_or(IptablesError::Output {
                cmd: format!("{bin} --version"),
                output: text.clone(),
            })?;
        let count = |b: Backend| -> usize {
            // A back end whose tools are missing or fail simply holds no rules.
            [AddressFamily::Inet, AddressFamily::Inet6]
                .iter()
                .map(|f| {
                    run_cmd(&b.binary(*f, Tool::Save), &[], None, timeout)
                        .map_or(0, |t| count_rules(&t))
                })
                .sum()
        };
        Ok(choose(default, count(Backend::Nft), count(Backend::Legacy)))
    }

    /// Whether `--random-fully` is available, from the tool's version.
    pub fn random_fully(
        self,
        family: AddressFamily,
        timeout: Duration,
    ) -> Result<bool, IptablesError> {
        let bin = self.binary(family, Tool::Iptables);
        let text = run_cmd(&bin, &["--version"], None, timeout)?;
        let (version, _) = parse_version(&text).ok_or(IptablesError::Output {
            cmd: format!("{bin} --version"),
            output: text,
        })?;
        Ok(random_fully_supported(version))
    }

    pub(crate) fn run(
        self,
        family: AddressFamily,
        tool: Tool,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<String, IptablesError> {
        run_cmd(&self.binary(family, tool), args, stdin, timeout)
    }
}

/// Runs a command, feeding `stdin`, killing it after `timeout`; returns stdout.
pub(crate) fn run_cmd(
    bin: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<String, IptablesError> {
    let cmd = std::iter::once(bin)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| IptablesError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Rule sets are small (tens of lines): this never fills the pipe.
        pipe.write_all(text.as_bytes())
            .map_err(|source| IptablesError::Spawn {
                cmd: cmd.clone(),
                source,
            })?;
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut err);
        }
        (out, err)
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(IptablesError::Timeout { cmd, timeout });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(IptablesError::Spawn { cmd, source }),
        }
    };
    let (out, err) = reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(IptablesError::Failed {
            cmd,
            status: status.to_string(),
            stderr: err.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_backends() {
        assert_eq!(
            parse_version("iptables v1.8.9 (nf_tables)\n"),
            Some(((1, 8, 9), Some(Backend::Nft)))
        );
        assert_eq!(
            parse_version("iptables v1.8.7 (legacy)"),
            Some(((1, 8, 7), Some(Backend::Legacy)))
        );
        assert_eq!(parse_version("iptables v1.4.21"), Some(((1, 4, 21), None)));
        assert_eq!(parse_version("garbage"), None);
        assert!(random_fully_supported((1, 6, 2)));
        assert!(!random_fully_supported((1, 6, 1)));
        assert!(random_fully_supported((1, 8, 0)));
    }

    #[test]
    fn the_backend_with_rules_wins() {
        assert_eq!(choose(Backend::Nft, 0, 12), Backend::Legacy);
        assert_eq!(choose(Backend::Legacy, 3, 0), Backend::Nft);
        assert_eq!(choose(Backend::Legacy, 0, 0), Backend::Legacy);
        assert_eq!(choose(Backend::Nft, 5, 5), Backend::Nft);
    }

    #[test]
    fn binaries() {
        assert_eq!(
            Backend::Nft.binary(AddressFamily::Inet6, Tool::Restore),
            "ip6tables-nft-restore"
        );
        assert_eq!(
            Backend::Legacy.binary(AddressFamily::Inet, Tool::Save),
            "iptables-legacy-save"
        );
    }
}
