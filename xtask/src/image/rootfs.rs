//! The image's Debian root filesystem: what `deploy/Containerfile` installs on
//! `debian:trixie-slim`, built with mmdebstrap from Debian's packages (no container engine).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{have, is_root, run_checked};

/// The Debian release of the base (the Containerfile's `DEBIAN_RELEASE`).
pub const SUITE: &str = "trixie";

/// The packages the Containerfile installs (`apt-get install --no-install-recommends`): iptables
/// with both back ends, modprobe for the ip_vs_* schedulers, and the operators' inspection tools.
pub const PACKAGES: [&str; 6] = [
    "iptables",
    "kmod",
    "ipvsadm",
    "ipset",
    "conntrack",
    "ca-certificates",
];

/// What `-slim` images leave out (debuerreotype's slimify list): documentation except the
/// copyright files, manuals and translations.
const SLIM: [&str; 8] = [
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/locale/*",
];

/// Files a build leaves that differ from run to run or belong to the runtime, not the image:
/// logs with timestamps, backup copies of dpkg's and debconf's databases, the ld.so cache's
/// auxiliary file, apt's package lists (the Containerfile removes them too), the build host's
/// name and resolver (a container runtime provides both) and device nodes (likewise).
const REMOVE: [&str; 14] = [
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/machine-id",
];

/// Directories whose contents go, the directory itself stays.
const EMPTY: [&str; 2] = ["dev", "var/lib/apt/lists"];

/// Build the root filesystem in `dir` (replaced), with `epoch` as SOURCE_DATE_EPOCH (shadow's
/// last-change dates and anything else that honours it).
pub fn build(dir: &Path, epoch: u64) -> Result<()> {
    ensure_mmdebstrap()?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--mode=root", "--format=directory", "--variant=minbase"])
        .arg(format!("--include={}", PACKAGES.join(",")));
    for opt in SLIM {
        cmd.arg(format!("--dpkgopt={opt}"));
    }
    cmd.arg(SUITE).arg(dir);
    for source in sources(SUITE) {
        cmd.arg(source);
    }
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("DEBIAN_FRONTEND", "noninteractive");
    eprintln!("image: building the Debian {SUITE} root filesystem with mmdebstrap");
    run_checked(&mut cmd)?;
    tidy(dir)
}

/// Everything that decides the root filesystem's contents besides the archive's state: a root
/// filesystem built from another recipe is never reused.
pub fn recipe() -> String {
    format!(
        "suite {SUITE}\npackages {}\nslim {}\nremove {}\nempty {}\nsources {}\n",
        PACKAGES.join(" "),
        SLIM.join(" "),
        REMOVE.join(" "),
        EMPTY.join(" "),
        sources(SUITE).join(" | ")
    )
}

/// The apt sources of the image: the release, its updates and its security updates, as in
/// Debian's own images.
pub fn sources(suite: &str) -> [String; 3] {
    [
        format!("deb http://deb.debian.org/debian {suite} main"),
        format!("deb http://deb.debian.org/debian {suite}-updates main"),
        format!("deb http://deb.debian.org/debian-security {suite}-security main"),
    ]
}

fn tidy(dir: &Path) -> Result<()> {
    for rel in REMOVE {
        let path = dir.join(rel);
        let result = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    for rel in EMPTY {
        let path = dir.join(rel);
        for entry in fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
            let entry = entry?.path();
            if entry.is_dir() && !entry.is_symlink() {
                fs::remove_dir_all(&entry)?;
            } else {
                fs::remove_file(&entry)?;
            }
        }
    }
    Ok(())
}

fn ensure_mmdebstrap() -> Result<()> {
    if !is_root() {
        bail!("`cargo xtask image` runs mmdebstrap in root mode: run it as root");
    }
    if have("mmdebstrap") {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("`cargo xtask image` needs mmdebstrap (a Debian package) and there is no apt-get");
    }
    eprintln!("image: installing mmdebstrap (apt-get, once)");
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "mmdebstrap",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
