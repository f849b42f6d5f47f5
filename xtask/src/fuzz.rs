//! `cargo xtask fuzz [--seconds N] [--runs N] [--jobs N] [TARGET...]`: builds every libFuzzer
//! target of the fuzz workspaces (`crates/*/fuzz`) and runs them one after the other, then prints
//! one table (target, execs, seconds, coverage, features, corpus, crashes). `--jobs N` runs N
//! processes of a target at once on its shared corpus (libFuzzer's own `-jobs` model: each
//! process picks up the others' finds when it reloads the corpus); the table sums their execs.
//!
//! No cargo-fuzz and no nightly: the targets are built by plain `cargo build` on the stable
//! toolchain with the flags cargo-fuzz passes for its `--sanitizer none` mode (SanitizerCoverage
//! with inline 8-bit counters, PC table and comparison tracing, `--cfg fuzzing`, debug assertions
//! and overflow checks), for the host target explicitly so build scripts and proc macros stay
//! uninstrumented. `--locked`: a stale `Cargo.lock` of a fuzz workspace is an error here.
//!
//! Corpora grow in `target/fuzz/corpus/TARGET/` (kept between runs); the seeds checked in under
//! `crates/*/fuzz/corpus/TARGET/` and the regressions under `crates/*/fuzz/regressions/TARGET/`
//! are read as well. A crash writes its input to `target/fuzz/artifacts/TARGET/` and fails the
//! command after the remaining targets ran. Each target's libFuzzer output goes to
//! `target/fuzz/logs/TARGET.log`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::util::workspace_root;

/// The fuzz workspaces, each its own cargo workspace with a Cargo.lock.
const WORKSPACES: [&str; 3] = [
    "crates/ipvs-netlink/fuzz",
    "crates/nodenet/fuzz",
    "crates/kube-ipvs/fuzz",
];

/// cargo-fuzz's instrumentation (cargo-fuzz `BuildOptions`, sanitizer `none`).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Time per target (libFuzzer `-max_total_time`).
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Stop a target after this many executions instead (libFuzzer `-runs`; with --seconds,
    /// whichever comes first).
    #[arg(long)]
    runs: Option<u64>,
    /// Processes per target, sharing its corpus; `--runs` is split between them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Only list the targets.
    #[arg(long)]
    list: bool,
    /// Targets to run (default: all of them).
    targets: Vec<String>,
}

#[derive(Debug)]
struct Target {
    workspace: &'static str,
    name: String,
}

/// One target's run, as libFuzzer reported it.
#[derive(Debug, Default)]
struct Outcome {
    execs: u64,
    seconds: f64,
    cov: u64,
    ft: u64,
    corpus: u64,
    crashes: Vec<String>,
}

impl Outcome {
    /// Adds one process's run: execs and crashes add up, coverage is the best any process saw
    /// (they share the corpus, so the largest is the union's lower bound).
    fn merge(&mut self, o: Outcome) {
        self.execs += o.execs;
        self.cov = self.cov.max(o.cov);
        self.ft = self.ft.max(o.ft);
        self.corpus = self.corpus.max(o.corpus);
        self.crashes.extend(o.crashes);
    }
}

/// The `[[bin]]` names of a fuzz workspace's Cargo.toml.
fn targets_of(manifest: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin
            && let Some(v) = line.strip_prefix("name")
            && let Some(v) = v.trim_start().strip_prefix('=')
        {
            out.push(v.trim().trim_matches('"').to_owned());
        }
    }
    Ok(out)
}

fn all_targets() -> Result<Vec<Target>> {
    let root = workspace_root();
    let mut out = Vec::new();
    for ws in WORKSPACES {
        for name in targets_of(&root.join(ws).join("Cargo.toml"))? {
            out.push(Target {
                workspace: ws,
                name,
            });
        }
    }
    Ok(out)
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no host")
}

fn build(ws: &str, names: &[&str], triple: &str, target_dir: &Path) -> Result<()> {
    let root = workspace_root();
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--locked", "--target", triple])
        .arg("--manifest-path")
        .arg(root.join(ws).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for n in names {
        cmd.args(["--bin", n]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the fuzz targets of {ws} failed");
    }
    Ok(())
}

/// Reads libFuzzer's log: the last status line (`#N ... cov: C ft: F corp: K/...`), the final
/// stats (`stat::number_of_executed_units`) and the artifacts it wrote.
fn parse_log(text: &str, out: &mut Outcome) {
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            out.execs = v.trim().parse().unwrap_or(out.execs);
        }
        if line.starts_with('#') {
            let mut words = line.split_whitespace();
            let execs = words
                .next()
                .and_then(|w| w.trim_start_matches('#').parse().ok());
            if let Some(n) = execs {
                out.execs = out.execs.max(n);
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            for pair in fields.windows(2) {
                if let [k, v] = pair {
                    let num = v.split('/').next().and_then(|n| n.parse().ok());
                    match (*k, num) {
                        ("cov:", Some(n)) => out.cov = n,
                        ("ft:", Some(n)) => out.ft = n,
                        ("corp:", Some(n)) => out.corpus = n,
                        _ => {}
                    }
                }
            }
        }
        if let Some(rest) = line.split("Test unit written to ").nth(1) {
            out.crashes.push(rest.trim().to_owned());
        }
    }
}

fn run_target(t: &Target, exe: &Path, args: &FuzzArgs, fuzz_dir: &Path) -> Result<Outcome> {
    let root = workspace_root();
    let corpus = fuzz_dir.join("corpus").join(&t.name);
    let artifacts = fuzz_dir.join("artifacts").join(&t.name);
    let logs = fuzz_dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let started = Instant::now();
    let mut running = Vec::new();
    for job in 0..args.jobs {
        let log_path = logs.join(if job == 0 {
            format!("{}.log", t.name)
        } else {
            format!("{}.{job}.log", t.name)
        });
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg(&corpus);
        for extra in ["corpus", "regressions"] {
            let dir = root.join(t.workspace).join(extra).join(&t.name);
            if dir.is_dir() {
                cmd.arg(dir);
            }
        }
        cmd.arg(format!("-max_total_time={}", args.seconds))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"]);
        if let Some(runs) = args.runs {
            cmd.arg(format!("-runs={}", runs.div_ceil(args.jobs)));
        }
        let child = cmd
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", exe.display()))?;
        running.push((child, log_path));
    }
    let mut out = Outcome::default();
    for (mut child, log_path) in running {
        let status = child
            .wait()
            .with_context(|| format!("waiting for {}", exe.display()))?;
        let mut one = Outcome::default();
        parse_log(&std::fs::read_to_string(&log_path)?, &mut one);
        if !status.success() && one.crashes.is_empty() {
            one.crashes.push(format!(
                "exit {:?}, see {}",
                status.code(),
                log_path.display()
            ));
        }
        out.merge(one);
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

pub fn run(args: &FuzzArgs) -> Result<ExitCode> {
    let all = all_targets()?;
    if args.list {
        for t in &all {
            println!("{:<24} {}", t.name, t.workspace);
        }
        return Ok(ExitCode::SUCCESS);
    }
    for name in &args.targets {
        if !all.iter().any(|t| &t.name == name) {
            bail!("no fuzz target {name:?} (cargo xtask fuzz --list)");
        }
    }
    let selected: Vec<&Target> = all
        .iter()
        .filter(|t| args.targets.is_empty() || args.targets.contains(&t.name))
        .collect();
    let triple = host_triple()?;
    let fuzz_dir = workspace_root().join("target").join("fuzz");
    let build_dir = fuzz_dir.join("build");
    for ws in WORKSPACES {
        let names: Vec<&str> = selected
            .iter()
            .filter(|t| t.workspace == ws)
            .map(|t| t.name.as_str())
            .collect();
        if !names.is_empty() {
            build(ws, &names, &triple, &build_dir)?;
        }
    }
    let mut rows = Vec::new();
    for t in &selected {
        let exe: PathBuf = build_dir.join(&triple).join("release").join(&t.name);
        println!(
            "==== fuzz {} ({}s, {} job(s))",
            t.name, args.seconds, args.jobs
        );
        let out = run_target(t, &exe, args, &fuzz_dir)?;
        println!(
            "     {} execs in {:.0} s, cov {}, ft {}, {} crash(es)",
            out.execs,
            out.seconds,
            out.cov,
            out.ft,
            out.crashes.len()
        );
        rows.push((t.name.clone(), out));
    }
    println!(
        "\n| target | execs | seconds | coverage (cov) | features (ft) | corpus | crashes |\n|---|---|---|---|---|---|---|"
    );
    for (name, o) in &rows {
        println!(
            "| {name} | {} | {:.0} | {} | {} | {} | {} |",
            o.execs,
            o.seconds,
            o.cov,
            o.ft,
            o.corpus,
            if o.crashes.is_empty() {
                "0".to_owned()
            } else {
                o.crashes.join(", ")
            }
        );
    }
    let failed = rows.iter().filter(|(_, o)| !o.crashes.is_empty()).count();
    if failed > 0 {
        eprintln!("{failed} target(s) crashed: inputs under target/fuzz/artifacts/");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_status_and_final_stats() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #1048576\tpulse  cov: 412 ft: 1530 corp: 210/9Kb lim: 4096 exec/s: 34952 rss: 60Mb\n\
                   #20000000\tDONE   cov: 420 ft: 1602 corp: 215/10Kb lim: 4096 exec/s: 33333 rss: 61Mb\n\
                   Done 20000000 runs in 600 second(s)\nstat::number_of_executed_units: 20000001\n";
        let mut o = Outcome::default();
        parse_log(log, &mut o);
        assert_eq!(
            (o.execs, o.cov, o.ft, o.corpus),
            (20_000_001, 420, 1602, 215)
        );
        assert!(o.crashes.is_empty());
        let mut o = Outcome::default();
        parse_log(
            "==1== ERROR: libFuzzer: deadly signal\nartifact_prefix='a/'; Test unit written to a/crash-0a1b\n",
            &mut o,
        );
        assert_eq!(o.crashes, ["a/crash-0a1b"]);
    }

    #[test]
    fn jobs_add_their_execs_and_crashes_and_keep_the_best_coverage() {
        let mut all = Outcome::default();
        for (execs, cov, crash) in [(5, 10, None), (7, 12, Some("a/crash-1"))] {
            all.merge(Outcome {
                execs,
                cov,
                ft: cov * 2,
                corpus: 3,
                crashes: crash.map(str::to_owned).into_iter().collect(),
                ..Outcome::default()
            });
        }
        assert_eq!((all.execs, all.cov, all.ft, all.corpus), (12, 12, 24, 3));
        assert_eq!(all.crashes, ["a/crash-1"]);
    }

    #[test]
    fn every_workspace_declares_targets() {
        for ws in WORKSPACES {
            let names = targets_of(&workspace_root().join(ws).join("Cargo.toml")).unwrap();
            assert!(!names.is_empty(), "{ws}");
        }
    }
}
