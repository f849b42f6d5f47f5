//! `cargo xtask test`: the one command that runs everything, and the cargo runner that sends
//! ignored (kernel) tests into the lab.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};
use clap::Args;

use crate::lab::{self, VmArgs};
use crate::summary::Totals;
use crate::util::{exit_code_of, workspace_root};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only these packages (default: the whole workspace, end-to-end tests included).
    #[arg(short = 'p', long = "package", value_name = "PACKAGE")]
    packages: Vec<String>,
    /// Run the kernel tests on this host instead of the lab (its kernel must have IPVS).
    #[arg(long)]
    local: bool,
    /// Memory of each lab guest in MiB.
    #[arg(long, default_value_t = 2048)]
    mem: u32,
    /// Seconds one test binary may run inside the lab before it is killed.
    #[arg(long, default_value_t = 1800)]
    lab_timeout: u64,
}

/// Environment through which `test` tells `runner` how to boot the lab.
const ENV_LOCAL: &str = "XTASK_LAB_LOCAL";
const ENV_MEM: &str = "XTASK_LAB_MEM";
const ENV_TIMEOUT: &str = "XTASK_LAB_TIMEOUT";

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

    let fmt_select: Vec<String> = if args.packages.is_empty() {
        vec!["--all".into()]
    } else {
        select.clone()
    };
    step(
        &mut failed_steps,
        "cargo fmt --check",
        cargo(&["fmt"], &fmt_select, &["--", "--check"]).status(),
    )?;
    step(
        &mut failed_steps,
        "cargo clippy",
        cargo(
            &["clippy", "--all-targets"],
            &select,
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
    let host = stream(cargo(&["test"], &select, &[]), &mut totals)?;
    step(&mut failed_steps, "host tests", Ok(host))?;

    banner("kernel tests (ignored tests, inside the lab)");
    let runner = std::env::current_exe().context("locating the xtask binary")?;
    let mut kernel = cargo(
        &["test", "--tests", "--no-fail-fast"],
        &select,
        &["--", "--ignored"],
    );
    kernel
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("{} runner", runner.display()),
        )
        .env(ENV_MEM, args.mem.to_string())
        .env(ENV_TIMEOUT, args.lab_timeout.to_string());
    if args.local {
        kernel.env(ENV_LOCAL, "1");
    }
    let lab_status = stream(kernel, &mut totals)?;
    step(&mut failed_steps, "kernel tests", Ok(lab_status))?;

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
    let vm = VmArgs {
        mem: u32::try_from(number(ENV_MEM, 2048)).unwrap_or(2048),
        smp: 2,
        timeout: number(ENV_TIMEOUT, 1800),
        local: false,
        argv: argv.to_vec(),
    };
    eprintln!("lab: running {binary} in the kernel lab");
    Ok(ExitCode::from(lab::run(&vm)?))
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
