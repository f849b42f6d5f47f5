//! The binary invoked as `go-runner`: the small wrapper stock kube-proxy images ship
//! (kubernetes/release images/build/go-runner, built from component-base's kube-log-runner),
//! which kops' nodeup puts in front of kube-proxy (`/go-runner --log-file=/var/log/kube-proxy.log
//! --also-stdout /usr/local/bin/kube-proxy FLAGS...`). Swapping only the image must keep that
//! command line working, so the image provides `/go-runner` too.
//!
//! Same flags and meaning as kube-log-runner: `--log-file` (append the output there),
//! `--also-stdout` (and to stdout), `--redirect-stderr` (default true: stderr goes with stdout).
//! When the command is kube-proxy (or kube-ipvs) it runs in this process with its logs written
//! that way; any other command is executed in place of this process.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser as _;
use tracing_subscriber::fmt::MakeWriter;

use super::{Cli, KubeProxyCli, Personality, normalize};

/// kube-log-runner's options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub log_file: Option<PathBuf>,
    pub also_stdout: bool,
    pub redirect_stderr: bool,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}

/// Parses go-runner's command line as Go's `flag` package does: `-flag`, `--flag`, `-flag=value`,
/// `-flag value`; flags stop at the first non-flag argument or after `--`.
pub fn parse(args: &[OsString]) -> Result<Options, String> {
    let mut o = Options {
        redirect_stderr: true,
        ..Options::default()
    };
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let Some(s) = arg.to_str() else { break };
        if s == "--" {
            i += 1;
            break;
        }
        if !s.starts_with('-') || s == "-" {
            break;
        }
        let flag = s.trim_start_matches('-');
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let boolean = |v: Option<String>| -> Result<bool, String> {
            v.map_or(Ok(true), |v| {
                kube_ipvs::config::stock_flags::parse_go_bool(&v)
                    .map_err(|e| format!("invalid value for -{name}: {e}"))
            })
        };
        match name {
            "log-file" => {
                let v = match value {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .and_then(|a| a.to_str())
                            .ok_or("flag needs an argument: -log-file")?
                            .to_owned()
                    }
                };
                o.log_file = (!v.is_empty()).then(|| PathBuf::from(v));
            }
            "also-stdout" => o.also_stdout = boolean(value)?,
            "redirect-stderr" => o.redirect_stderr = boolean(value)?,
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
        i += 1;
    }
    o.command = args.get(i..).unwrap_or_default().to_vec();
    if o.command.is_empty() {
        return Err("not enough arguments to run".to_owned());
    }
    Ok(o)
}

/// Where the logs of a command run under go-runner go: the log file and/or stdout.
#[derive(Clone, Debug)]
pub struct Tee {
    file: Option<Arc<Mutex<File>>>,
    stdout: bool,
}

impl Tee {
    /// kube-log-runner's output stream: the log file (appended), plus stdout with --also-stdout;
    /// stdout alone without a log file.
    pub fn open(o: &Options) -> io::Result<Self> {
        let file = o
            .log_file
            .as_ref()
            .map(|p| {
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(p)
            })
            .transpose()?;
        Ok(Tee {
            stdout: file.is_none() || o.also_stdout,
            file: file.map(|f| Arc::new(Mutex::new(f))),
        })
    }
}

/// One write to every target of a [`Tee`].
#[derive(Debug)]
pub struct TeeWriter(Tee);

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &self.0.file {
            f.lock()
                .map_err(|_| io::Error::other("log file lock poisoned"))?
                .write_all(buf)?;
        }
        if self.0.stdout {
            io::stdout().lock().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.0.stdout {
            io::stdout().lock().flush()?;
        }
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter(self.clone())
    }
}

/// Runs go-runner's command line.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("go-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let argv0 = o.command.first().cloned().unwrap_or_default();
    let personality = Personality::of(&argv0);
    if personality == Personality::GoRunner {
        eprintln!("go-runner: refusing to run go-runner under itself");
        return ExitCode::from(2);
    }
    if personality == Personality::KubeIpvs && !is_self(&argv0) {
        // Another program: go-runner's job is to run it; without its log capture, run it in
        // this process's place.
        let err = std::process::Command::new(&argv0)
            .args(o.command.get(1..).unwrap_or_default())
            .exec();
        eprintln!("go-runner: starting {}: {err}", argv0.to_string_lossy());
        return ExitCode::FAILURE;
    }
    let tee = match Tee::open(&o) {
        Ok(t) => t,
        Err(e) => {
            let path = o
                .log_file
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new("-"));
            eprintln!(
                "go-runner: failed to create log file {}: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let command = normalize(o.command);
    match personality {
        Personality::KubeProxy => match KubeProxyCli::try_parse_from(command) {
            Ok(cli) => super::finish(super::run::run(
                &super::run::RunCmd { args: cli.args },
                Some(tee),
            )),
            Err(e) => e.exit(),
        },
        _ => match Cli::try_parse_from(command) {
            Ok(Cli {
                command: super::Command::Run(cmd),
            }) => super::finish(super::run::run(&cmd, Some(tee))),
            Ok(cli) => super::dispatch(cli),
            Err(e) => e.exit(),
        },
    }
}

/// Whether a command names this binary as kube-ipvs (`kube-ipvs` by file name).
fn is_self(argv0: &OsString) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "kube-ipvs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_like_kube_log_runner() {
        // kops nodeup (kubernetes/kops nodeup/pkg/model/kube_proxy.go, Kubernetes >= 1.23).
        let o = parse(&os(&[
            "/go-runner",
            "--log-file=/var/log/kube-proxy.log",
            "--also-stdout",
            "/usr/local/bin/kube-proxy",
            "--v=2",
        ]))
        .unwrap();
        assert_eq!(o.log_file, Some(PathBuf::from("/var/log/kube-proxy.log")));
        assert!(o.also_stdout && o.redirect_stderr);
        assert_eq!(o.command, os(&["/usr/local/bin/kube-proxy", "--v=2"]));
        // Single dashes, separate values, `=false`, and `--` before the command.
        let o = parse(&os(&[
            "go-runner",
            "-log-file",
            "/tmp/x.log",
            "-also-stdout=true",
            "-redirect-stderr=false",
            "--",
            "/usr/local/bin/kube-proxy",
        ]))
        .unwrap();
        assert_eq!(o.log_file, Some(PathBuf::from("/tmp/x.log")));
        assert!(o.also_stdout && !o.redirect_stderr);
        assert_eq!(o.command, os(&["/usr/local/bin/kube-proxy"]));
        assert!(parse(&os(&["go-runner", "--bogus", "x"])).is_err());
        assert!(
            parse(&os(&["go-runner", "--also-stdout"])).is_err(),
            "no command"
        );
    }

    #[test]
    fn the_tee_appends_to_the_log_file() {
        let path = std::env::temp_dir().join(format!("go-runner-tee-{}.log", std::process::id()));
        std::fs::write(&path, "before\n").unwrap();
        let o = Options {
            log_file: Some(path.clone()),
            ..Options::default()
        };
        let tee = Tee::open(&o).unwrap();
        assert!(!tee.stdout, "stdout only with --also-stdout");
        tee.make_writer().write_all(b"after\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "before\nafter\n");
    }
}
