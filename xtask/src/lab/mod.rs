//! The kernel lab: a throwaway qemu VM running a stock Debian kernel that has IPVS, with the host's
//! root filesystem shared read-only (see shared/reference/kernel-lab.md for the verified recipe).
//!
//! One run = one directory `target/lab/runs/ID/`: the initramfs, `in/cmd.sh`, the command's
//! `stdout`/`stderr`/`rc` written by the guest over a writable 9p share, `serial.log`, and `out/`
//! (the guest's `$LAB_SHARE`). Successful runs with an empty `out/` are removed.

mod guest;
mod initramfs;
mod kernel;
mod setup;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::util::{exit_code_of, lab_dir, target_dir, workspace_root};
pub use kernel::{Kernel, Series};

#[derive(Debug, Args)]
pub struct VmArgs {
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub mem: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: u32,
    /// Kill the guest after this many seconds (the command then fails with status 124).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Run CMD directly on this host instead (for a kernel that has IPVS itself).
    #[arg(long)]
    pub local: bool,
    /// The guest's kernel: Debian bookworm's 6.1 or trixie's 6.12 (each fetched once).
    #[arg(long, value_enum, default_value = "6.1")]
    pub kernel: Series,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub argv: Vec<String>,
}

/// Exit status when the guest was killed for exceeding its time.
const TIMEOUT_STATUS: u8 = 124;
/// Exit status when the lab itself failed (no status came back from the guest).
const LAB_FAILURE_STATUS: u8 = 125;

pub fn vm_command(args: &VmArgs) -> Result<ExitCode> {
    if args.local {
        return run_local(&args.argv);
    }
    Ok(ExitCode::from(run(args)?))
}

/// Whether this host's own kernel has IPVS (then `--local` is usable).
fn local_ipvs() -> bool {
    Path::new("/proc/net/ip_vs").exists()
}

fn run_local(argv: &[String]) -> Result<ExitCode> {
    if !local_ipvs() {
        bail!(
            "--local needs IPVS in this host's kernel, and /proc/net/ip_vs does not exist \
             (load it with `modprobe ip_vs`, or drop --local to use the qemu lab)"
        );
    }
    let (program, args) = argv.split_first().context("no command given")?;
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    Ok(exit_code_of(status))
}

/// Boot the lab, run `args.argv` inside it, stream its output, and return its exit status.
pub fn run(args: &VmArgs) -> Result<u8> {
    setup::ensure_host_tools(local_ipvs())?;
    let lab = lab_dir();
    let kernel = Kernel::ensure(&lab, args.kernel)?;
    let run_dir = new_run_dir(&lab)?;
    let cwd = std::env::current_dir()?;

    let mut modules: Vec<String> = guest::MODULES.iter().map(|m| (*m).to_string()).collect();
    modules.extend(kernel.ipvs_schedulers());
    let missing: Vec<&String> = modules
        .iter()
        .filter(|m| !kernel.has_module(m) && !kernel.is_builtin(m))
        .collect();
    if !missing.is_empty() {
        bail!(
            "kernel {} lacks modules the lab needs: {missing:?}",
            kernel.release
        );
    }
    modules.retain(|m| !kernel.is_builtin(m));

    let keep = keep_visible(&[cwd.clone(), workspace_root(), target_dir()]);
    let boot = kernel.load_order(guest::BOOT_MODULES)?;
    let initrd = run_dir.join("initrd.cpio");
    setup::write_initramfs(&initrd, &boot, |boot_modules| guest::InitSpec {
        boot_modules,
        kernel_root: &kernel.root,
        modules,
        keep,
    })?;

    let share_out = "/run/lab/out";
    fs::create_dir_all(run_dir.join("in"))?;
    let script = guest::command_script(
        &cwd,
        &args.argv,
        &guest::guest_env(share_out, &kernel.root.join("lib/modules")),
    );
    fs::write(run_dir.join("in/cmd.sh"), script)?;

    let serial = run_dir.join("serial.log");
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
    ])
    .args(["-accel", "tcg", "-cpu", "max", "-nic", "none"])
    .args(["-m", &args.mem.to_string(), "-smp", &args.smp.to_string()])
    .arg("-kernel")
    .arg(kernel.vmlinuz())
    .arg("-initrd")
    .arg(&initrd)
    .args([
        "-append",
        "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off no_timer_check",
    ])
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .arg("-virtfs")
    .arg(format!(
        "local,path=/,mount_tag={},security_model=none,readonly=on,multidevs=remap",
        guest::ROOT_TAG
    ))
    .arg("-virtfs")
    .arg(format!(
        "local,path={},mount_tag={},security_model=none,multidevs=remap",
        run_dir.display(),
        guest::SHARE_TAG
    ))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let child = qemu.spawn().context("cannot start qemu-system-x86_64")?;
    let outcome = supervise(child, &run_dir, Duration::from_secs(args.timeout))?;
    finish(outcome, &run_dir, args.timeout)
}

#[derive(Debug)]
enum Outcome {
    Exited,
    TimedOut,
}

/// Wait for qemu, copying the guest command's stdout/stderr to ours as they grow.
fn supervise(mut child: Child, run_dir: &Path, limit: Duration) -> Result<Outcome> {
    let start = Instant::now();
    let mut out = Tail::new(run_dir.join("stdout"));
    let mut err = Tail::new(run_dir.join("stderr"));
    let outcome = loop {
        out.pump(&mut std::io::stdout())?;
        err.pump(&mut std::io::stderr())?;
        if child.try_wait()?.is_some() {
            break Outcome::Exited;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break Outcome::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    out.pump(&mut std::io::stdout())?;
    err.pump(&mut std::io::stderr())?;
    let mut qemu_err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut qemu_err);
    }
    if !qemu_err.trim().is_empty() {
        fs::write(run_dir.join("qemu.stderr"), &qemu_err)?;
    }
    Ok(outcome)
}

fn finish(outcome: Outcome, run_dir: &Path, timeout: u64) -> Result<u8> {
    let serial = run_dir.join("serial.log");
    let rc = fs::read_to_string(run_dir.join("rc")).ok();
    let status = match (outcome, rc.as_deref().map(str::trim)) {
        (Outcome::TimedOut, _) => {
            eprintln!(
                "lab: the guest exceeded --timeout {timeout}s and was killed; serial log: {}",
                serial.display()
            );
            return Ok(TIMEOUT_STATUS);
        }
        (Outcome::Exited, Some(rc)) => rc.parse::<u8>().unwrap_or(LAB_FAILURE_STATUS),
        (Outcome::Exited, None) => {
            let why = fs::read_to_string(run_dir.join("error"))
                .or_else(|_| fs::read_to_string(run_dir.join("qemu.stderr")))
                .unwrap_or_else(|_| "the guest stopped without reporting an exit status".into());
            eprintln!("lab: {}", why.trim());
            let log = run_dir.join("modprobe.log");
            if let Ok(text) = fs::read_to_string(&log)
                && !text.trim().is_empty()
            {
                eprintln!("lab: modprobe said:\n{}", text.trim());
            }
            eprintln!("lab: serial log kept at {}", serial.display());
            return Ok(LAB_FAILURE_STATUS);
        }
    };
    let out_dir = run_dir.join("out");
    let out_empty = fs::read_dir(&out_dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if status == 0 && out_empty {
        let _ = fs::remove_dir_all(run_dir);
    } else if !out_empty {
        eprintln!(
            "lab: files the command left in $LAB_SHARE: {}",
            out_dir.display()
        );
    }
    Ok(status)
}

/// Follows a file that another writer appends to.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    fn new(path: PathBuf) -> Self {
        Self { path, offset: 0 }
    }

    fn pump(&mut self, to: &mut impl Write) -> Result<()> {
        let Ok(mut file) = fs::File::open(&self.path) else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        if !buf.is_empty() {
            self.offset += u64::try_from(buf.len())?;
            to.write_all(&buf)?;
            to.flush()?;
        }
        Ok(())
    }
}

/// A fresh run directory; old runs beyond the newest 30 are pruned.
fn new_run_dir(lab: &Path) -> Result<PathBuf> {
    let runs = lab.join("runs");
    fs::create_dir_all(&runs)?;
    let mut old: Vec<PathBuf> = fs::read_dir(&runs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    old.sort();
    for dir in old.iter().take(old.len().saturating_sub(30)) {
        let _ = fs::remove_dir_all(dir);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let dir = runs.join(format!("{stamp}-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Of the given paths, those a tmpfs on the guest's /tmp or /run would hide (outermost only).
fn keep_visible(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut hidden: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.starts_with("/tmp") || p.starts_with("/run"))
        .cloned()
        .collect();
    hidden.sort();
    hidden.dedup();
    let all = hidden.clone();
    hidden.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_outermost_hidden_paths() {
        let kept = keep_visible(&[
            PathBuf::from("/tmp/clone"),
            PathBuf::from("/tmp/clone/target"),
            PathBuf::from("/work/main"),
        ]);
        assert_eq!(kept, [PathBuf::from("/tmp/clone")]);
    }
}
