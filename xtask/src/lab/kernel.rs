//! The lab's kernel: a stock Debian `linux-image-*-amd64` package, fetched once with
//! `apt-get download` and unpacked under `target/lab/kernel/VERSION/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{have, is_root, output_checked, run_checked};

/// An unpacked kernel package with its module index.
#[derive(Debug)]
pub struct Kernel {
    /// Kernel release, e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// The unpacked package root (holds `boot/` and `lib/modules/RELEASE/`): `modprobe -d` takes it.
    pub root: PathBuf,
    /// Module name -> path relative to the modules directory, and its dependencies (by name).
    modules: BTreeMap<String, (String, Vec<String>)>,
    builtin: BTreeSet<String>,
}

impl Kernel {
    /// The cached kernel, fetching and unpacking it first when there is none.
    pub fn ensure(lab_dir: &Path) -> Result<Self> {
        let cache = lab_dir.join("kernel");
        if let Some(release) = cached_release(&cache) {
            return Self::load(&cache.join(&release), release);
        }
        let release = resolve_release()?;
        let dir = cache.join(&release);
        fetch_and_unpack(&cache, &release)?;
        Self::load(&dir, release)
    }

    fn load(root: &Path, release: String) -> Result<Self> {
        let moddir = root.join("lib/modules").join(&release);
        let dep = fs::read_to_string(moddir.join("modules.dep"))
            .with_context(|| format!("reading {}/modules.dep", moddir.display()))?;
        let mut modules = BTreeMap::new();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let deps = deps.split_whitespace().map(module_name).collect();
            modules.insert(module_name(path), (path.to_string(), deps));
        }
        let builtin = fs::read_to_string(moddir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .map(module_name)
            .collect();
        Ok(Self {
            release,
            root: root.to_path_buf(),
            modules,
            builtin,
        })
    }

    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }

    pub fn module_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    pub fn has_module(&self, name: &str) -> bool {
        self.modules.contains_key(&normalize(name))
    }

    /// Every IPVS scheduler module the kernel ships (`ip_vs_rr`, `ip_vs_mh`, ...).
    pub fn ipvs_schedulers(&self) -> Vec<String> {
        const NOT_SCHEDULERS: [&str; 3] = ["ip_vs_ftp", "ip_vs_pe_sip", "ip_vs_twos"];
        self.modules
            .iter()
            .filter(|(name, (path, _))| {
                path.contains("/netfilter/ipvs/")
                    && name.starts_with("ip_vs_")
                    && !NOT_SCHEDULERS.contains(&name.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The module files to insmod, dependencies first, to load `roots` (built-ins are skipped).
    pub fn load_order(&self, roots: &[&str]) -> Result<Vec<PathBuf>> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for root in roots {
            self.visit(&normalize(root), &mut seen, &mut order)?;
        }
        Ok(order
            .into_iter()
            .map(|rel| self.module_dir().join(rel))
            .collect())
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<()> {
        if !seen.insert(name.to_string()) || self.builtin.contains(name) {
            return Ok(());
        }
        let Some((path, deps)) = self.modules.get(name) else {
            bail!("kernel {} has no module {name}", self.release);
        };
        for dep in deps {
            self.visit(dep, seen, order)?;
        }
        order.push(path.clone());
        Ok(())
    }
}

/// `kernel/net/netfilter/xt_MASQUERADE.ko` -> `xt_MASQUERADE`; dashes become underscores, as
/// the kernel names modules.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn cached_release(cache: &Path) -> Option<String> {
    let mut ready: Vec<String> = fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join(".ready").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    ready.sort();
    ready.pop()
}

/// The release the Debian meta package `linux-image-amd64` points at, e.g. `6.1.0-56-amd64`.
fn resolve_release() -> Result<String> {
    if !have("apt-cache") {
        bail!("no cached lab kernel and no apt-cache to find one (the lab needs a Debian host)");
    }
    let find = || -> Result<Option<String>> {
        let out = output_checked(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
        Ok(out.lines().find_map(|line| {
            let pkg = line.trim().strip_prefix("Depends: linux-image-")?;
            (!pkg.contains("cloud") && !pkg.contains("rt-")).then(|| pkg.trim().to_string())
        }))
    };
    if let Ok(Some(release)) = find() {
        return Ok(release);
    }
    if is_root() {
        eprintln!("lab: apt-cache knows no linux-image-amd64; running apt-get update");
        run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    find()?.context("apt-cache depends linux-image-amd64 names no linux-image package")
}

fn fetch_and_unpack(cache: &Path, release: &str) -> Result<()> {
    let package = format!("linux-image-{release}");
    let staging = cache.join(format!(".staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    eprintln!(
        "lab: downloading {package} (once; cached in {})",
        cache.display()
    );
    run_checked(
        Command::new("apt-get")
            .args(["download", "-qq", &package])
            .current_dir(&staging),
    )?;
    let deb = fs::read_dir(&staging)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let root = staging.join("root");
    eprintln!("lab: unpacking {}", deb.display());
    run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    fs::remove_file(&deb)?;
    run_checked(Command::new("depmod").arg("-b").arg(&root).arg(release))?;
    fs::write(root.join(".ready"), release)?;
    let dest = cache.join(release);
    // Another run may have won the race: its copy is as good as ours.
    if fs::rename(&root, &dest).is_err() && !dest.join(".ready").exists() {
        bail!("cannot move the unpacked kernel to {}", dest.display());
    }
    let _ = fs::remove_dir_all(&staging);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(
            module_name("kernel/net/netfilter/xt_MASQUERADE.ko"),
            "xt_MASQUERADE"
        );
        assert_eq!(module_name("kernel/fs/9p/9p.ko.xz"), "9p");
        assert_eq!(
            module_name("kernel/drivers/virtio/virtio_pci-legacy.ko"),
            "virtio_pci_legacy"
        );
    }

    #[test]
    fn load_order_puts_dependencies_first() {
        let mut modules = BTreeMap::new();
        let mut add = |name: &str, deps: &[&str]| {
            let deps = deps.iter().map(|d| d.to_string()).collect();
            modules.insert(name.to_string(), (format!("kernel/{name}.ko"), deps));
        };
        add("9p", &["9pnet", "netfs", "fscache"]);
        add("9pnet", &[]);
        add("netfs", &["fscache"]);
        add("fscache", &[]);
        let kernel = Kernel {
            release: "x".into(),
            root: PathBuf::from("/k"),
            modules,
            builtin: BTreeSet::from(["virtio".to_string()]),
        };
        let order = kernel.load_order(&["virtio", "9p"]).unwrap();
        let names: Vec<_> = order
            .iter()
            .map(|p| module_name(&p.to_string_lossy()))
            .collect();
        assert_eq!(names, ["9pnet", "fscache", "netfs", "9p"]);
        assert!(kernel.load_order(&["nope"]).is_err());
    }
}
