//! `cargo xtask bench NAME`: each benchmark runs where its kernel lives.

use std::io::BufRead;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::lab::{self, VmArgs};
use crate::util::{exit_code_of, workspace_root};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Suite {
    /// IPVS programming and observation vs `ipvsadm -R` / `ipvsadm -Ln`, in the lab.
    Ipvs,
    /// ipset fill/change vs `ipset restore`, address binding vs `ip -batch`; natively, fresh netns.
    Nodenet,
    /// Criterion benchmarks of the pure planner.
    Core,
    /// `kube-ipvs run` at 50,000 Services in the lab: initial programming vs `ipvsadm -R` +
    /// `ipset restore`, network-programming latency, RSS, CPU of a no-op repair.
    Agent,
    /// `kube-ipvs run` taking over stock kube-proxy's state of 50,000 Services in the lab: time
    /// to ready, ops, change latency meanwhile, connection failures, vs stock's own restart.
    Takeover,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    suite: Suite,
    /// Guest memory in MiB for lab benchmarks.
    #[arg(long, default_value_t = 4096)]
    mem: u32,
    /// Arguments passed to the benchmark binary.
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    match args.suite {
        Suite::Ipvs => {
            let exe = build_bench("ipvs-netlink", "ipvs")?;
            let mut argv = vec![exe];
            argv.extend(args.args.iter().cloned());
            let vm = VmArgs {
                mem: args.mem,
                smp: 2,
                timeout: 3600,
                local: false,
                argv,
            };
            Ok(ExitCode::from(lab::run(&vm)?))
        }
        Suite::Nodenet => {
            for bench in ["ipset", "addresses"] {
                let exe = build_bench("nodenet", bench)?;
                println!("==== bench nodenet/{bench}");
                let status = Command::new(&exe).args(&args.args).status()?;
                if !status.success() {
                    return Ok(exit_code_of(status));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Suite::Agent | Suite::Takeover => {
            let (bench, timeout) = match args.suite {
                Suite::Takeover => ("takeover", 3 * 3600),
                _ => ("agent", 3600),
            };
            let status = Command::new("cargo")
                .args([
                    "build",
                    "--release",
                    "-p",
                    "kube-ipvs",
                    "--bin",
                    "kube-ipvs",
                ])
                .current_dir(workspace_root())
                .status()?;
            if !status.success() {
                bail!("building kube-ipvs (release) failed");
            }
            let agent = crate::util::target_dir().join("release").join("kube-ipvs");
            let exe = build_bench("kube-ipvs-e2e", bench)?;
            let mut argv = vec![
                "env".to_owned(),
                format!("KUBE_IPVS_BIN={}", agent.display()),
                exe,
            ];
            argv.extend(args.args.iter().cloned());
            let vm = VmArgs {
                mem: args.mem,
                smp: 2,
                timeout,
                local: false,
                argv,
            };
            Ok(ExitCode::from(lab::run(&vm)?))
        }
        Suite::Core => {
            let status = Command::new("cargo")
                .args(["bench", "-p", "kube-ipvs", "--bench", "core", "--"])
                .args(&args.args)
                .current_dir(workspace_root())
                .status()?;
            Ok(exit_code_of(status))
        }
    }
}

/// Build one bench target in release mode and return its executable.
fn build_bench(package: &str, bench: &str) -> Result<String> {
    let mut child = Command::new("cargo")
        .args([
            "bench",
            "-p",
            package,
            "--bench",
            bench,
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo bench")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut exe = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let msg: serde_json::Value = match serde_json::from_str(&line?) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let field = |path: &str| msg.pointer(path).cloned().unwrap_or_default();
        let is_bench = field("/target/name") == bench
            && field("/target/kind")
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"));
        if field("/reason") == "compiler-artifact" && is_bench {
            exe = field("/executable").as_str().map(str::to_string);
        }
    }
    if !child.wait()?.success() {
        bail!("building bench {package}/{bench} failed");
    }
    exe.with_context(|| format!("cargo built no executable for bench {package}/{bench}"))
}

/// `cargo xtask demo`: examples/demo.sh with a freshly built `kube-ipvs`, in the lab.
pub fn demo() -> Result<ExitCode> {
    let status = Command::new("cargo")
        .args(["build", "-p", "kube-ipvs", "--bin", "kube-ipvs"])
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        bail!("building kube-ipvs failed");
    }
    let bin = crate::util::target_dir().join("debug").join("kube-ipvs");
    let script = workspace_root().join("examples").join("demo.sh");
    let vm = VmArgs {
        mem: 1024,
        smp: 2,
        timeout: 600,
        local: false,
        argv: vec![
            "env".to_owned(),
            format!("KUBE_IPVS_BIN={}", bin.display()),
            "sh".to_owned(),
            script.display().to_string(),
        ],
    };
    Ok(ExitCode::from(lab::run(&vm)?))
}
