//! The lab's kernels: stock Debian `linux-image-*-amd64` packages of two LTS series (6.1 from
//! bookworm, 6.12 from trixie), each found through a private apt configuration under
//! `target/lab/apt/SERIES/` (the host's apt sources are never read or changed), fetched once with
//! `apt-get download` and unpacked under `target/lab/kernel/RELEASE/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{have, output_checked, run_checked};

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

/// A kernel series the lab can boot: Debian's generic kernel of the named release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Series {
    /// Debian 12 (bookworm): Linux 6.1 LTS.
    #[value(name = "6.1")]
    V6_1,
    /// Debian 13 (trixie): Linux 6.12 LTS.
    #[value(name = "6.12")]
    V6_12,
}

impl Series {
    pub const ALL: [Self; 2] = [Self::V6_1, Self::V6_12];

    pub fn name(self) -> &'static str {
        match self {
            Self::V6_1 => "6.1",
            Self::V6_12 => "6.12",
        }
    }

    /// The Debian release whose `linux-image-amd64` is this series.
    fn codename(self) -> &'static str {
        match self {
            Self::V6_1 => "bookworm",
            Self::V6_12 => "trixie",
        }
    }

    /// Whether a kernel release (`6.1.0-56-amd64`, `6.12.48+deb13-amd64`) is of this series.
    pub fn matches(self, release: &str) -> bool {
        release
            .strip_prefix(self.name())
            .is_some_and(|rest| rest.starts_with('.'))
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Kernel {
    /// The cached kernel of `series`, fetching and unpacking it first when there is none.
    pub fn ensure(lab_dir: &Path, series: Series) -> Result<Self> {
        let cache = lab_dir.join("kernel");
        if let Some(release) = cached_release(&cache, series) {
            return Self::load(&cache.join(&release), release);
        }
        let apt = PrivateApt::new(&lab_dir.join("apt").join(series.name()), series)?;
        let release = apt.resolve_release(series)?;
        let dir = cache.join(&release);
        fetch_and_unpack(&apt, &cache, &release)?;
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

fn cached_release(cache: &Path, series: Series) -> Option<String> {
    let mut ready: Vec<String> = fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join(".ready").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|release| series.matches(release))
        .collect();
    ready.sort();
    ready.pop()
}

/// apt-get and apt-cache with a configuration of their own under `target/lab/apt/SERIES/`: only
/// the series' Debian release in the sources, package lists and downloads kept there, no host
/// package state. `APT_CONFIG=target/lab/apt/SERIES/apt.conf apt-cache policy linux-image-amd64`
/// shows what the lab sees.
#[derive(Debug)]
struct PrivateApt {
    config: PathBuf,
    dir: PathBuf,
}

/// Where the lab's apt configurations fetch from (and whose archive keys sign it).
const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

impl PrivateApt {
    fn new(dir: &Path, series: Series) -> Result<Self> {
        if !have("apt-get") {
            bail!(
                "no cached {series} lab kernel and no apt-get to fetch one (the lab needs a \
                 Debian or Ubuntu host)"
            );
        }
        for sub in ["state/lists/partial", "cache/archives/partial", "empty"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let abs = |rel: &str| dir.join(rel).to_string_lossy().into_owned();
        fs::write(dir.join("sources.list"), sources_list(series.codename()))?;
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        let config = dir.join("apt.conf");
        fs::write(
            &config,
            apt_conf(&[
                ("Dir::Etc::SourceList", &abs("sources.list")),
                ("Dir::Etc::SourceParts", &abs("empty")),
                ("Dir::Etc::Preferences", &abs("empty/none")),
                ("Dir::Etc::PreferencesParts", &abs("empty")),
                ("Dir::State", &abs("state")),
                ("Dir::State::status", &abs("state/status")),
                ("Dir::Cache", &abs("cache")),
                ("APT::Architecture", "amd64"),
                ("APT::Architectures", "amd64"),
                // target/ belongs to whoever runs the lab: apt's download user may not write there.
                ("APT::Sandbox::User", "root"),
                ("Acquire::Languages", "none"),
                // The host's apt.conf.d may add AppStream and command-not-found indexes: not needed.
                (
                    "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                    "false",
                ),
                (
                    "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                    "false",
                ),
                (
                    "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                    "false",
                ),
                (
                    "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled",
                    "false",
                ),
                ("Acquire::IndexTargets::deb::CNF::DefaultEnabled", "false"),
            ]),
        )?;
        Ok(Self {
            config,
            dir: dir.to_path_buf(),
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("APT_CONFIG", &self.config);
        cmd
    }

    /// The release `linux-image-amd64` of the series' Debian release points at, e.g.
    /// `6.12.48+deb13-amd64` (the package lists are fetched first when there are none).
    fn resolve_release(&self, series: Series) -> Result<String> {
        let has_lists = fs::read_dir(self.dir.join("state/lists"))
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.path().is_file()))
            .unwrap_or(false);
        if !has_lists {
            eprintln!(
                "lab: fetching Debian {} package lists for the {series} kernel (private apt \
                 configuration {})",
                series.codename(),
                self.config.display()
            );
            run_checked(self.command("apt-get").args(["update", "-qq"]))?;
        }
        let out = output_checked(
            self.command("apt-cache")
                .args(["depends", "linux-image-amd64"]),
        )?;
        release_from_depends(&out, series).with_context(|| {
            format!(
                "Debian {}'s linux-image-amd64 names no generic {series} kernel:\n{out}",
                series.codename()
            )
        })
    }
}

fn sources_list(codename: &str) -> String {
    format!(
        "deb [signed-by={KEYRING}] {MIRROR} {codename} main\n\
         deb [signed-by={KEYRING}] {MIRROR} {codename}-updates main\n\
         deb [signed-by={KEYRING}] {SECURITY_MIRROR} {codename}-security main\n"
    )
}

fn apt_conf(options: &[(&str, &str)]) -> String {
    options
        .iter()
        .map(|(key, value)| format!("{key} \"{value}\";\n"))
        .collect()
}

/// The generic kernel named by `apt-cache depends linux-image-amd64` (not `-cloud-` or `-rt-`:
/// the cloud kernel has no 9p).
fn release_from_depends(out: &str, series: Series) -> Option<String> {
    out.lines().find_map(|line| {
        let release = line.trim().strip_prefix("Depends: linux-image-")?.trim();
        (!release.contains("cloud") && !release.contains("rt-") && series.matches(release))
            .then(|| release.to_string())
    })
}

fn fetch_and_unpack(apt: &PrivateApt, cache: &Path, release: &str) -> Result<()> {
    let package = format!("linux-image-{release}");
    let staging = cache.join(format!(".staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    eprintln!(
        "lab: downloading {package} (once; cached in {})",
        cache.display()
    );
    run_checked(
        apt.command("apt-get")
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
    // Merged-/usr packages (trixie) ship usr/lib/modules: give depmod and `modprobe -d` the
    // lib/modules they look for, as a merged-/usr system does.
    if !root.join("lib").exists() && root.join("usr/lib/modules").is_dir() {
        std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
    }
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

    #[test]
    fn series_match_their_releases_only() {
        assert!(Series::V6_1.matches("6.1.0-56-amd64"));
        assert!(!Series::V6_1.matches("6.12.48+deb13-amd64"));
        assert!(Series::V6_12.matches("6.12.48+deb13-amd64"));
        assert!(!Series::V6_12.matches("6.1.0-56-amd64"));
        assert_eq!(Series::parse("6.12"), Some(Series::V6_12));
        assert_eq!(Series::parse("6.6"), None);
    }

    #[test]
    fn generic_release_from_apt_cache_depends() {
        // `apt-cache depends linux-image-amd64` (bookworm's apt) against trixie's package lists.
        let trixie = "linux-image-amd64\n  Depends: linux-image-6.12.117+deb13-amd64\n";
        assert_eq!(
            release_from_depends(trixie, Series::V6_12).as_deref(),
            Some("6.12.117+deb13-amd64")
        );
        assert_eq!(release_from_depends(trixie, Series::V6_1), None);
        let cloud = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(release_from_depends(cloud, Series::V6_1), None);
    }

    #[test]
    fn private_sources_name_only_the_series_release() {
        let list = sources_list(Series::V6_12.codename());
        assert_eq!(list.lines().count(), 3);
        assert!(
            list.lines()
                .all(|l| l.contains(" trixie") && l.contains(KEYRING))
        );
    }
}
