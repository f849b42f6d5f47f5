//! Command-line dispatch: one module per subcommand, chosen by the name the binary runs under.
//!
//! - `kube-ipvs SUBCOMMAND ...`: `run`, `plan`, `list`, `cleanup`, `check-config`.
//! - `kube-proxy FLAGS...` (argv[0], e.g. `/usr/local/bin/kube-proxy` in the image): the agent
//!   with kube-proxy's exact command line, so a kube-proxy DaemonSet or static pod runs kube-ipvs
//!   by changing only its image.
//! - `go-runner FLAGS... COMMAND...`: the wrapper kops and some kube-proxy images start
//!   kube-proxy through (see `go_runner`).
//!
//! Exit status: 0 on success (and for `--help`, `--version`), 2 for a usage error (an unknown
//! subcommand, a flag value stock kube-proxy would refuse too), 1 for anything that fails at run
//! time (an invalid configuration file, no IPVS in the kernel, a lost API server).

mod check_config;
mod cleanup;
#[cfg(test)]
mod deploy_check;
#[cfg(test)]
mod distro_fixtures;
#[cfg(test)]
mod equivalence;
mod explain;
mod go_runner;
mod list;
mod plan;
mod run;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args as _, Parser, Subcommand};
use kube_ipvs::build_info::VERSION_LINE;
use kube_ipvs::config::RunArgs;

/// An IPVS proxier for Kubernetes: a drop-in replacement for kube-proxy in IPVS mode.
#[derive(Debug, Parser)]
#[command(name = "kube-ipvs", version = VERSION_LINE, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at startup; the size of the run variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the node agent: watch Services, EndpointSlices and this Node, program IPVS, addresses,
    /// ipsets and iptables (the kube-proxy replacement; takes kube-proxy's flags and ConfigMap).
    #[command(args_override_self = true)]
    Run(run::RunCmd),
    /// Print the IPVS table, addresses, ipsets and rejected objects a node would get from a
    /// cluster dump, with the configuration `run` would use (no kernel access, works anywhere).
    #[command(args_override_self = true)]
    Plan(plan::PlanArgs),
    /// Print the kernel's IPVS table in `ipvsadm -Ln` layout, optionally naming each virtual
    /// server's Service (safe on a live node: read-only).
    List(list::ListArgs),
    /// Remove what kube-ipvs (or kube-proxy in IPVS mode) created on this node.
    #[command(args_override_self = true)]
    Cleanup(cleanup::CleanupArgs),
    /// Validate flags, configuration file and node name offline and print the effective
    /// configuration as a KubeProxyConfiguration with every warning (exit 1 on an error).
    #[command(args_override_self = true)]
    CheckConfig(check_config::CheckConfigArgs),
    /// Explain why a Service does or does not work on this node: every check from the Service
    /// to the kernel, each with its verdict and fix (read-only; exit 0 ok, 1 wrong, 2 unchecked).
    Explain(explain::ExplainArgs),
}

/// The binary invoked as `kube-proxy`: kube-proxy's command line, no subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "kube-proxy",
    version = VERSION_LINE,
    args_override_self = true,
    about = "kube-ipvs, invoked as kube-proxy: the IPVS proxier with kube-proxy's command line",
    long_about = "kube-ipvs, invoked as kube-proxy: the IPVS proxier with kube-proxy's command line.\n\n\
        Every flag of stock kube-proxy is accepted: those kube-ipvs applies keep their meaning \
        and precedence (with --config, the file replaces the flags bound to its fields, as in \
        kube-proxy); the others are logged once with the reason they do not apply. \
        `kube-ipvs run` takes the same flags."
)]
pub struct KubeProxyCli {
    #[command(flatten)]
    args: RunArgs,
}

/// Which program the binary runs as, from argv[0].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    KubeIpvs,
    KubeProxy,
    GoRunner,
}

impl Personality {
    /// `kube-proxy` and `go-runner` by file name (any directory); everything else is kube-ipvs.
    pub fn of(argv0: &OsStr) -> Self {
        match Path::new(argv0).file_name().and_then(OsStr::to_str) {
            Some("kube-proxy") => Personality::KubeProxy,
            Some("go-runner") => Personality::GoRunner,
            _ => Personality::KubeIpvs,
        }
    }
}

/// Runs the program named by `args[0]`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let argv0 = args.first().cloned().unwrap_or_default();
    match Personality::of(&argv0) {
        Personality::GoRunner => go_runner::main(args),
        Personality::KubeProxy => match KubeProxyCli::try_parse_from(normalize(args)) {
            Ok(cli) => finish(run::run(&run::RunCmd { args: cli.args }, None)),
            Err(e) => e.exit(),
        },
        Personality::KubeIpvs => match Cli::try_parse_from(normalize(args)) {
            Ok(cli) => dispatch(cli),
            Err(e) => e.exit(),
        },
    }
}

fn dispatch(cli: Cli) -> ExitCode {
    finish(match cli.command {
        // explain's exit status says what it found (0 ok, 1 wrong, 2 unchecked).
        Command::Explain(args) => return explain::run(&args),
        Command::Run(cmd) => run::run(&cmd, None),
        Command::Plan(args) => plan::run(&args),
        Command::List(args) => list::run(&args),
        Command::Cleanup(args) => cleanup::run(&args),
        Command::CheckConfig(args) => check_config::run(&args),
    })
}

/// Exit status 1 for a runtime failure, with the error and its causes on one line.
fn finish(res: anyhow::Result<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-ipvs: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, each said once: many errors (ours, kube's, io's)
/// already include their source in their own message, which `{:#}` would repeat.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{s}");
    }
    out
}

/// Every long flag name (and alias) of `run`.
fn run_flag_names() -> BTreeSet<String> {
    let cmd = RunArgs::augment_args(clap::Command::new("names"));
    cmd.get_arguments()
        .flat_map(|a| {
            a.get_long()
                .into_iter()
                .chain(a.get_all_aliases().into_iter().flatten())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// kube-proxy's flag normalisation (component-base `WordSepNormalizeFunc`): `_` in a flag name
/// means `-`, so `--hostname_override=x` and `--log_file=y` (k3s writes that one) work. Only names
/// that are flags after the change are rewritten; values and everything after `--` stay as they are.
pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let known = run_flag_names();
    let mut rest = false;
    args.into_iter()
        .map(|arg| {
            if rest {
                return arg;
            }
            let Some(s) = arg.to_str() else {
                return arg;
            };
            if s == "--" {
                rest = true;
                return arg;
            }
            let Some(flag) = s.strip_prefix("--") else {
                return arg;
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            let dashed = name.replace('_', "-");
            if dashed == name || !known.contains(&dashed) {
                return arg;
            }
            match value {
                Some(v) => OsString::from(format!("--{dashed}={v}")),
                None => OsString::from(format!("--{dashed}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use kube_ipvs::config::stock_flags::{Handling, Origin, STOCK_FLAGS};

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn commands_are_well_formed() {
        Cli::command().debug_assert();
        KubeProxyCli::command().debug_assert();
    }

    #[test]
    fn personality_follows_the_program_name() {
        for (argv0, want) in [
            ("/usr/local/bin/kube-proxy", Personality::KubeProxy),
            ("kube-proxy", Personality::KubeProxy),
            ("/go-runner", Personality::GoRunner),
            ("/usr/local/bin/kube-ipvs", Personality::KubeIpvs),
            ("target/debug/kube-ipvs", Personality::KubeIpvs),
            ("kube-proxy-wrapper", Personality::KubeIpvs),
        ] {
            assert_eq!(Personality::of(OsStr::new(argv0)), want, "{argv0}");
        }
    }

    #[test]
    fn underscores_in_flag_names_are_dashes_as_in_kube_proxy() {
        assert_eq!(
            normalize(os(&[
                "kube-proxy",
                "--hostname_override=n_1",
                "--log_file=/var/log/kube_proxy.log",
                "--not_a_flag=x",
                "--",
                "--config_x"
            ])),
            os(&[
                "kube-proxy",
                "--hostname-override=n_1",
                "--log-file=/var/log/kube_proxy.log",
                "--not_a_flag=x",
                "--",
                "--config_x"
            ])
        );
    }

    #[test]
    fn kube_proxy_takes_every_stock_flag_and_no_subcommand() {
        let cmd = KubeProxyCli::command();
        assert!(cmd.get_subcommands().next().is_none());
        let longs = run_flag_names();
        for f in STOCK_FLAGS {
            assert!(longs.contains(f.name), "--{} is not accepted", f.name);
        }
        // Applied stock flags are RunArgs fields, inert ones InertFlags: never both, never none.
        let run = RunArgs::augment_args(clap::Command::new("x"));
        for f in STOCK_FLAGS {
            let arg = run
                .get_arguments()
                .find(|a| a.get_long() == Some(f.name))
                .expect("registered");
            let inert =
                arg.get_help_heading() == Some(kube_ipvs::config::stock_flags::INERT_HEADING);
            assert_eq!(
                inert,
                matches!(f.handling, Handling::Inert(_)),
                "--{}: {:?}",
                f.name,
                f.handling
            );
            if f.origin == Origin::Removed {
                assert!(arg.is_hide_set(), "--{} is not stock: hidden", f.name);
            }
        }
    }

    #[test]
    fn errors_print_each_cause_once() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(inner)
            .context("reading x: disk on fire")
            .context("loading");
        assert_eq!(error_text(&e), "loading: reading x: disk on fire");
    }
}
