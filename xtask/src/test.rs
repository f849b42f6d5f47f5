//! `cargo xtask test`: the one command that runs everything, and the cargo runner that sends
//! ignored (kernel) tests into the lab.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};
use clap::Args;

use crate::lab::{self, Series, VmArgs};
use crate::summary::Totals;
use crate::util::{exit_code_of, lab_dir, shell_quote, workspace_root};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only these packages (default: the whole workspace, end-to-end tests included).
    #[arg(short = 'p', long = "package", value_name = "PACKAGE")]
    packages: Vec<String>,
    /// Run the kernel tests on this host instead of the lab (its kernel must have IPVS).
    #[arg(long)]
    local: bool,
    /// The lab kernels the kernel tests run on: each test binary boots one guest per kernel.
    #[arg(long, value_enum, default_value = "all")]
    kernel: KernelChoice,
    /// Run all test binaries of a kernel in one lab guest instead of one guest each (faster: a
    /// boot costs more than most binaries take under emulation; but binaries then share the
    /// kernel's global state, and nodenet's conntrack tests failed once that way on 6.12).
    #[arg(long)]
    shared_guest: bool,
    /// Only the kernel tests: skip fmt, clippy, the host tests and the image build (the image's
    /// test then runs the image already in target/image).
    #[arg(long)]
    only_kernel: bool,
    /// Build these packages' kernel tests but do not run them in the lab. Unlike narrowing with
    /// `-p`, the build stays the whole workspace's, so it reuses (and does not duplicate on disk)
    /// what an earlier full run built.
    #[arg(long = "skip-kernel-tests-of", value_name = "PACKAGE")]
    skip_kernel_tests_of: Vec<String>,
    /// Memory of each lab guest in MiB.
    #[arg(long, default_value_t = 2048)]
    mem: u32,
    /// Seconds one test binary may run inside the lab before it is killed.
    #[arg(long, default_value_t = 1800)]
    lab_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KernelChoice {
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
    All,
}

impl KernelChoice {
    fn series(self) -> Vec<Series> {
        match self {
            Self::V6_1 => vec![Series::V6_1],
            Self::V6_12 => vec![Series::V6_12],
            Self::All => Series::ALL.to_vec(),
        }
    }
}

/// Environment through which `test` tells `runner` how to boot the lab.
const ENV_LOCAL: &str = "XTASK_LAB_LOCAL";
const ENV_MEM: &str = "XTASK_LAB_MEM";
const ENV_TIMEOUT: &str = "XTASK_LAB_TIMEOUT";
const ENV_KERNEL: &str = "XTASK_LAB_KERNEL";
/// Comma-separated packages whose kernel tests the runner skips (`--skip-kernel-tests-of`).
const ENV_SKIP: &str = "XTASK_LAB_SKIP";
/// Set by `test`: the runner appends each lab-bound test binary to this file instead of running it.
const ENV_QUEUE: &str = "XTASK_LAB_QUEUE";

pub fn run(args: &TestArgs) -> Result<ExitCode> {
    let select: Vec<String> = if args.packages.is_empty() {
        vec!["--workspace".into()]
    } else {
        args.packages
            .iter()
            .flat_map(|p| ["-p".to_string(), p.clone()])
            .collect()
    };
    let mut failed_steps = Vec::new();
    let mut totals = Totals::default();

    if !args.only_kernel {
        checks_host_tests_and_image(args, &select, &mut failed_steps, &mut totals)?;
    }
    kernel_tests(args, &select, &mut failed_steps, &mut totals)?;

    println!();
    for name in &failed_steps {
        println!("xtask test: step failed: {name}");
    }
    println!("{} passed, {} failed", totals.passed, totals.failed);
    Ok(if failed_steps.is_empty() && totals.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn checks_host_tests_and_image(
    args: &TestArgs,
    select: &[String],
    failed_steps: &mut Vec<String>,
    totals: &mut Totals,
) -> Result<()> {
    let fmt_select: Vec<String> = if args.packages.is_empty() {
        vec!["--all".into()]
    } else {
        select.to_vec()
    };
    step(
        failed_steps,
        "cargo fmt --check",
        cargo(&["fmt"], &fmt_select, &["--", "--check"]).status(),
    )?;
    step(
        failed_steps,
        "cargo clippy",
        cargo(
            &["clippy", "--all-targets"],
            select,
            &["--", "-D", "warnings"],
        )
        .status(),
    )?;

    banner("unused dependencies");
    let unused = crate::deps::unused()?;
    if unused > 0 {
        failed_steps.push(format!("unused dependencies ({unused})"));
    }

    banner("host tests");
    let host = stream(cargo(&["test"], select, &[]), totals)?;
    step(failed_steps, "host tests", Ok(host))?;

    // The image's end-to-end test (package kube-ipvs-e2e) runs the image: build it first.
    if args.packages.is_empty() || args.packages.iter().any(|p| p == "kube-ipvs-e2e") {
        banner("container image (cargo xtask image)");
        if let Err(err) = crate::image::run(&crate::image::for_tests()) {
            eprintln!("xtask test: building the image failed: {err:#}");
            failed_steps.push("cargo xtask image".into());
        }
    }

    Ok(())
}

fn kernel_tests(
    args: &TestArgs,
    select: &[String],
    failed_steps: &mut Vec<String>,
    totals: &mut Totals,
) -> Result<()> {
    let runner = std::env::current_exe().context("locating the xtask binary")?;
    if args.local {
        // This host's kernel has IPVS: each test binary runs here, once.
        banner("kernel tests (ignored tests, on this host)");
        let mut kernel = ignored_tests(select, &args.skip_kernel_tests_of, &runner);
        kernel.env(ENV_LOCAL, "1");
        let status = stream(kernel, totals)?;
        step(failed_steps, "kernel tests on this host", Ok(status))?;
    } else if !args.shared_guest {
        // One lab guest per test binary and kernel: binaries never share a kernel's state.
        for series in args.kernel.series() {
            let on = format!("lab kernel {series}");
            banner(&format!("kernel tests (ignored tests, on {on})"));
            let mut kernel = ignored_tests(select, &args.skip_kernel_tests_of, &runner);
            kernel
                .env(ENV_KERNEL, series.name())
                .env(ENV_MEM, args.mem.to_string())
                .env(ENV_TIMEOUT, args.lab_timeout.to_string());
            let status = stream(kernel, totals)?;
            step(failed_steps, &format!("kernel tests on {on}"), Ok(status))?;
        }
    } else {
        // Booting a guest costs more than most test binaries take: cargo queues the binaries that
        // have kernel tests (the runner records them), then one guest per kernel runs them all.
        banner("kernel tests: building and queueing the test binaries");
        let queue = lab_dir().join(format!("queue-{}", std::process::id()));
        let _ = fs::remove_file(&queue);
        let mut collect = ignored_tests(select, &args.skip_kernel_tests_of, &runner);
        collect.env(ENV_QUEUE, &queue);
        let status = stream(collect, totals)?;
        step(failed_steps, "building the kernel tests", Ok(status))?;
        let queued = read_queue(&queue)?;
        let _ = fs::remove_file(&queue);
        for series in args.kernel.series() {
            banner(&format!(
                "kernel tests (ignored tests of {} binaries, in one lab guest on kernel {series})",
                queued.len()
            ));
            if queued.is_empty() {
                continue;
            }
            let script = lab_dir().join(format!("batch-{series}.sh"));
            fs::write(&script, batch_script(&queued, args.lab_timeout))?;
            let mut vm = Command::new(&runner);
            vm.args(["vm", "--kernel", series.name(), "--mem"])
                .arg(args.mem.to_string())
                .arg("--timeout")
                .arg((args.lab_timeout * u64::try_from(queued.len())? + 300).to_string())
                .args(["--", "sh"])
                .arg(&script);
            let status = stream(vm, totals)?;
            step(
                failed_steps,
                &format!("kernel tests on lab kernel {series}"),
                Ok(status),
            )?;
        }
    }

    Ok(())
}

/// `cargo test` of the ignored (kernel) tests, every test binary run through our runner.
fn ignored_tests(select: &[String], skip: &[String], runner: &std::path::Path) -> Command {
    let mut cmd = cargo(
        &["test", "--tests", "--no-fail-fast"],
        select,
        &["--", "--ignored"],
    );
    cmd.env(ENV_SKIP, skip.join(","));
    cmd.env(
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
        format!("{} runner", runner.display()),
    );
    cmd
}

/// A test binary the runner queued: where cargo ran it, with what environment and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Queued {
    cwd: String,
    env: Vec<(String, String)>,
    argv: Vec<String>,
}

fn read_queue(path: &std::path::Path) -> Result<Vec<Queued>> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let strings = |key: &str| -> Vec<String> {
                v.get(key)
                    .and_then(|a| a.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let env = strings("env")
                .into_iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
                .collect();
            Ok(Queued {
                cwd: v
                    .get("cwd")
                    .and_then(|c| c.as_str())
                    .context("queue entry without cwd")?
                    .into(),
                env,
                argv: strings("argv"),
            })
        })
        .collect()
}

/// The guest's script: each queued binary in its directory with cargo's environment, bounded by
/// `timeout` seconds; the script fails when any binary does, naming it.
fn batch_script(queued: &[Queued], timeout: u64) -> String {
    let mut s = String::from("#!/bin/sh\nfailed=0\n");
    for q in queued {
        let argv: Vec<String> = q.argv.iter().map(|a| shell_quote(a)).collect();
        let env: Vec<String> = q
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        let name = shell_quote(q.argv.first().map_or("?", String::as_str));
        s.push_str(&format!(
            "echo; echo \"lab: running {name}\" >&2\n\
             (cd {} && exec env {} timeout -k 10 {timeout} {}); rc=$?\n\
             [ $rc = 0 ] || {{ echo \"lab: {name} failed (exit status $rc)\" >&2; failed=1; }}\n",
            shell_quote(&q.cwd),
            env.join(" "),
            argv.join(" ")
        ));
    }
    s.push_str("exit $failed\n");
    s
}

fn cargo(command: &[&str], select: &[String], tail: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(command)
        .args(select)
        .args(tail)
        .current_dir(workspace_root());
    cmd
}

fn banner(what: &str) {
    println!("\n==== xtask test: {what}");
}

fn step(
    failed: &mut Vec<String>,
    name: &str,
    status: std::io::Result<std::process::ExitStatus>,
) -> Result<()> {
    let status = status.with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        failed.push(name.to_string());
    }
    Ok(())
}

/// Run a command, echoing its stdout line by line and counting libtest results in it.
fn stream(mut cmd: Command, totals: &mut Totals) -> Result<std::process::ExitStatus> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        totals.add_line(&line);
        writeln!(out, "{line}")?;
    }
    Ok(child.wait()?)
}

/// Cargo's target runner: `xtask runner TEST-BINARY ARGS...`. A binary asked for its ignored tests
/// that has any runs inside the lab; everything else runs here, unchanged.
pub fn runner(argv: &[String]) -> Result<ExitCode> {
    let (binary, args) = argv.split_first().context("runner: no binary")?;
    let wants_ignored = args
        .iter()
        .any(|a| a == "--ignored" || a == "--include-ignored");
    let local = std::env::var_os(ENV_LOCAL).is_some();
    if let Some(package) = skipped_package().filter(|_| wants_ignored) {
        eprintln!(
            "lab: skipping {binary}: the kernel tests of {package} are skipped (--skip-kernel-tests-of)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !wants_ignored || local || !has_selected_tests(binary, args)? {
        let status = Command::new(binary)
            .args(args)
            .status()
            .with_context(|| format!("running {binary}"))?;
        return Ok(exit_code_of(status));
    }
    let number = |key: &str, default: u64| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if let Some(queue) = std::env::var_os(ENV_QUEUE) {
        let env: Vec<String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CARGO_") && !k.starts_with("CARGO_TARGET_"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let entry = serde_json::json!({
            "cwd": std::env::current_dir()?.to_string_lossy(),
            "env": env,
            "argv": argv,
        });
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&queue)
            .with_context(|| format!("opening {}", std::path::Path::new(&queue).display()))?;
        writeln!(file, "{entry}")?;
        eprintln!("lab: queued {binary} for the lab guest");
        return Ok(ExitCode::SUCCESS);
    }
    let kernel = match std::env::var(ENV_KERNEL) {
        Ok(name) => Series::parse(&name).with_context(|| format!("{ENV_KERNEL}={name}"))?,
        Err(_) => Series::V6_1,
    };
    let vm = VmArgs {
        mem: u32::try_from(number(ENV_MEM, 2048)).unwrap_or(2048),
        smp: 2,
        timeout: number(ENV_TIMEOUT, 1800),
        local: false,
        kernel,
        argv: argv.to_vec(),
    };
    eprintln!("lab: running {binary} in the kernel lab ({kernel})");
    Ok(ExitCode::from(lab::run(&vm)?))
}

/// The package of the test binary cargo is running (cargo sets CARGO_PKG_NAME), when
/// `--skip-kernel-tests-of` names it.
fn skipped_package() -> Option<String> {
    let package = std::env::var("CARGO_PKG_NAME").ok()?;
    let skip = std::env::var(ENV_SKIP).unwrap_or_default();
    skip.split(',').any(|p| p == package).then_some(package)
}

/// Whether the test binary has any test left under these arguments (`--list` lists them).
fn has_selected_tests(binary: &str, args: &[String]) -> Result<bool> {
    let out = Command::new(binary)
        .args(args)
        .arg("--list")
        .output()
        .with_context(|| format!("listing tests of {binary}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.ends_with(": test")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_round_trips_and_the_batch_runs_each_binary_where_cargo_would() {
        let dir = std::env::temp_dir().join(format!("xtask-queue-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let queue = dir.join("queue");
        let entry = |bin: &str| {
            serde_json::json!({
                "cwd": "/w/crates/a b",
                "env": ["CARGO_MANIFEST_DIR=/w/crates/a b", "CARGO_PKG_NAME=a"],
                "argv": [bin, "--ignored"],
            })
            .to_string()
        };
        fs::write(
            &queue,
            format!("{}\n{}\n", entry("/t/one"), entry("/t/two")),
        )
        .unwrap();
        let queued = read_queue(&queue).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[1].argv, ["/t/two", "--ignored"]);
        assert_eq!(queued[0].env[1], ("CARGO_PKG_NAME".into(), "a".into()));
        let script = batch_script(&queued, 60);
        assert!(script.contains(
            "(cd '/w/crates/a b' && exec env CARGO_MANIFEST_DIR='/w/crates/a b' CARGO_PKG_NAME=a \
             timeout -k 10 60 /t/one --ignored); rc=$?"
        ));
        assert!(script.find("/t/one").unwrap() < script.find("/t/two").unwrap());
        assert!(script.ends_with("exit $failed\n"));
        assert!(read_queue(&dir.join("missing")).unwrap().is_empty());
    }
}
