//! Host preparation: the packages the lab needs, and the initramfs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::guest::InitSpec;
use super::initramfs::Archive;
use crate::util::{have, is_root, run_checked};

/// Host programs the lab uses, and the Debian packages that provide them.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("busybox", "busybox-static"),
    ("depmod", "kmod"),
    ("modprobe", "kmod"),
    ("ipvsadm", "ipvsadm"),
    ("ipset", "ipset"),
    ("iptables", "iptables"),
    ("ip", "iproute2"),
    ("conntrack", "conntrack"),
    ("dpkg-deb", "dpkg"),
    ("xz", "xz-utils"),
];

/// Install what is missing (as root, with apt-get), or explain what to install.
pub fn ensure_host_tools(local_ipvs: bool) -> Result<()> {
    let with_sbin = |p: &str| {
        have(p) || Path::new("/usr/sbin").join(p).exists() || Path::new("/sbin").join(p).exists()
    };
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(prog, _)| !with_sbin(prog))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !Path::new("/bin/busybox").exists() && !missing.contains(&"busybox-static") {
        missing.push("busybox-static");
    }
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !have("apt-get") {
        let hint = if local_ipvs {
            " (or pass --local: this kernel has IPVS)"
        } else {
            ""
        };
        bail!(
            "the kernel lab needs these packages: {} ; install them as root with \
             `apt-get install --no-install-recommends {}`{hint}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("lab: installing {} (apt-get, once)", missing.join(" "));
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn output_bytes(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Write the initramfs: busybox, `/init`, and the modules to reach the host root over 9p.
pub fn write_initramfs<'a>(
    path: &Path,
    boot_modules: &[PathBuf],
    spec: impl FnOnce(Vec<String>) -> InitSpec<'a>,
) -> Result<()> {
    let mut archive = Archive::default();
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "mnt",
        "lib",
        "lib/modules",
    ] {
        archive.dir(dir);
    }
    archive.char_dev("dev/console", 5, 1);
    let busybox = fs::read("/bin/busybox").context("reading /bin/busybox (busybox-static)")?;
    archive.file("bin/busybox", busybox, true);
    archive.symlink("bin/sh", "busybox");
    let mut inside = Vec::new();
    for module in boot_modules {
        let name = module
            .file_name()
            .context("module path without a file name")?;
        let name = name.to_string_lossy();
        // Busybox's insmod takes plain modules; trixie's kernel ships them xz-compressed.
        let (dest, data) = match name.strip_suffix(".xz") {
            Some(plain) => (
                format!("lib/modules/{plain}"),
                output_bytes(Command::new("xz").arg("-dc").arg(module))?,
            ),
            None => (
                format!("lib/modules/{name}"),
                fs::read(module).with_context(|| format!("reading {}", module.display()))?,
            ),
        };
        archive.file(&dest, data, false);
        inside.push(format!("/{dest}"));
    }
    archive.file(
        "init",
        super::guest::init_script(&spec(inside)).into_bytes(),
        true,
    );
    let mut file = std::io::BufWriter::new(fs::File::create(path)?);
    archive.write(&mut file)?;
    std::io::Write::flush(&mut file)?;
    Ok(())
}
