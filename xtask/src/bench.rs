//! `cargo xtask bench NAME`: each benchmark runs where its kernel lives.

use std::io::BufRead;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::lab::{self, Series, VmArgs};
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
    /// The lab kernel of lab benchmarks.
    #[arg(long, value_enum, default_value = "6.1")]
    kernel: Series,
    /// `agent`: cluster sizes to run, one lab guest each (e.g. `1000,10000,50000` for the scaling
    /// curve); each result is copied to `target/bench/bench-agent-N.json` (`BENCH_*` variables
    /// of the environment reach the bench: `BENCH_CHANGES`, `BENCH_SYNC_PERIOD`,
    /// `BENCH_IDLE_PERIODS`, `BENCH_BASELINE=full|SECS`, `BENCH_AGENT_ARGS`; `KUBE_IPVS_BIN` overrides the agent built
    /// here, to measure another tree's).
    #[arg(long, value_delimiter = ',')]
    services: Vec<u32>,
    /// Draw the charts of the results in `target/bench/` afterwards (`cargo xtask plot`).
    #[arg(long)]
    plot: bool,
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
                kernel: args.kernel,
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
        Suite::Takeover => {
            let agent = release_agent()?;
            let exe = build_bench("kube-ipvs-e2e", "takeover")?;
            let mut argv = vec![
                "env".to_owned(),
                format!("KUBE_IPVS_BIN={}", agent.display()),
                exe,
            ];
            argv.extend(args.args.iter().cloned());
            let vm = VmArgs {
                mem: args.mem,
                smp: 2,
                timeout: 3 * 3600,
                local: false,
                kernel: args.kernel,
                argv,
            };
            Ok(ExitCode::from(lab::run(&vm)?))
        }
        Suite::Agent => {
            let agent = release_agent()?;
            let exe = build_bench("kube-ipvs-e2e", "agent")?;
            let sizes: Vec<Option<u32>> = if args.services.is_empty() {
                vec![None]
            } else {
                args.services.iter().copied().map(Some).collect()
            };
            for size in sizes {
                let started = std::time::SystemTime::now();
                let mut argv = vec![
                    "env".to_owned(),
                    format!("KUBE_IPVS_BIN={}", agent.display()),
                ];
                argv.extend(
                    std::env::vars()
                        .filter(|(k, _)| k.starts_with("BENCH_") && k != "BENCH_SERVICES")
                        .map(|(k, v)| format!("{k}={v}")),
                );
                if let Some(n) = size.or_else(|| {
                    std::env::var("BENCH_SERVICES")
                        .ok()
                        .and_then(|v| v.parse().ok())
                }) {
                    argv.push(format!("BENCH_SERVICES={n}"));
                }
                argv.push(exe.clone());
                argv.extend(args.args.iter().cloned());
                let vm = VmArgs {
                    mem: args.mem,
                    smp: 2,
                    timeout: 6 * 3600,
                    local: false,
                    kernel: args.kernel,
                    argv,
                };
                let code = lab::run(&vm)?;
                collect_results(started)?;
                if code != 0 {
                    return Ok(ExitCode::from(code));
                }
            }
            if args.plot {
                crate::plot::run(&crate::plot::PlotArgs::default())?;
            }
            Ok(ExitCode::SUCCESS)
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

/// Copies the result files (`bench-agent-N.json`) that lab runs started since `since` left in
/// their `$LAB_SHARE` to `target/bench/`.
fn collect_results(since: std::time::SystemTime) -> Result<()> {
    let runs = crate::util::target_dir().join("lab").join("runs");
    let dest = crate::util::target_dir().join("bench");
    std::fs::create_dir_all(&dest)?;
    for run in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let out = run.path().join("out");
        for f in std::fs::read_dir(&out).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let fresh = f
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if fresh && name.starts_with("bench-") && name.ends_with(".json") {
                std::fs::copy(f.path(), dest.join(&name))?;
                println!("xtask: result {}", dest.join(&name).display());
            }
        }
    }
    Ok(())
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
        kernel: Series::V6_1,
        argv: vec![
            "env".to_owned(),
            format!("KUBE_IPVS_BIN={}", bin.display()),
            "sh".to_owned(),
            script.display().to_string(),
        ],
    };
    Ok(ExitCode::from(lab::run(&vm)?))
}

/// The agent the lab benchmarks run: `$KUBE_IPVS_BIN`, else a fresh release build.
fn release_agent() -> Result<std::path::PathBuf> {
    if let Some(bin) = std::env::var_os("KUBE_IPVS_BIN") {
        return Ok(bin.into());
    }
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
    Ok(crate::util::target_dir().join("release").join("kube-ipvs"))
}
