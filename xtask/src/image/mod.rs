//! `cargo xtask image`: the container image `deploy/Containerfile` describes, built without a
//! container engine: a Debian root filesystem from mmdebstrap with the Containerfile's packages
//! (one layer), the release binary at both of its paths (a second layer), written as an OCI image
//! layout (`target/image/oci/`) and a `docker load` archive (`target/image/kube-ipvs.tar`).
//! Reproducible: the same commit gives the same digests (`--check-reproducible` builds twice).

pub mod oci;
pub mod rootfs;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::util::{have, output_checked, run_checked, target_dir, workspace_root};
use oci::{ImageConfig, Layer, Layout};

/// Where the image runs the agent, and the name under which it acts as kube-proxy (a symlink, so
/// the process sees argv0 `kube-proxy`).
pub const BINARY: &str = "/usr/local/bin/kube-ipvs";
pub const KUBE_PROXY_ALIAS: &str = "/usr/local/bin/kube-proxy";
/// Stock's image has kube-log-runner at `/go-runner` (kops' static pod runs kube-proxy through
/// it); invoked by that name, the binary does its job.
pub const GO_RUNNER_ALIAS: &str = "/go-runner";
pub const ENTRYPOINT: [&str; 1] = [BINARY];
pub const CMD: [&str; 1] = ["run"];
/// Debian's default PATH for root, as the base images set it.
const ENV: [&str; 1] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
/// The image's repository name in the docker archive (`kube-ipvs:TAG`).
pub const NAME: &str = "kube-ipvs";
/// Labels with fixed values; `org.opencontainers.image.version` and `.revision` are per build.
pub const FIXED_LABELS: [(&str, &str); 4] = [
    ("org.opencontainers.image.title", "kube-ipvs"),
    (
        "org.opencontainers.image.description",
        "kube-proxy replacement in IPVS mode",
    ),
    (
        "org.opencontainers.image.source",
        env!("CARGO_PKG_REPOSITORY"),
    ),
    (
        "org.opencontainers.image.licenses",
        env!("CARGO_PKG_LICENSE"),
    ),
];
pub const VERSION_LABEL: &str = "org.opencontainers.image.version";
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image tag [default: the workspace version when HEAD is tagged v<version>, else
    /// <version>-g<short commit>; -dirty is appended when tracked files have changes].
    #[arg(long)]
    pub tag: Option<String>,
    /// Build the image a second time from scratch (a new mmdebstrap run) and fail unless every
    /// digest matches the first build's.
    #[arg(long)]
    pub check_reproducible: bool,
    /// Reuse the root filesystem of the previous build (target/image/rootfs) instead of running
    /// mmdebstrap again, when it was built from the same recipe (release, packages) and commit
    /// time.
    #[arg(long)]
    pub reuse_rootfs: bool,
}

/// Where `cargo xtask image` writes: always the workspace's own target/, as the lab does.
pub fn image_dir() -> PathBuf {
    workspace_root().join("target").join("image")
}

/// The digests of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Built {
    layers: Vec<Layer>,
    config: String,
    manifest: String,
    archive: String,
}

/// What `cargo xtask test` builds for the image's end-to-end test: the image, reusing a root
/// filesystem of the same recipe.
pub fn for_tests() -> ImageArgs {
    ImageArgs {
        tag: None,
        check_reproducible: false,
        reuse_rootfs: true,
    }
}

pub fn run(args: &ImageArgs) -> Result<ExitCode> {
    for tool in ["tar", "gzip", "sha256sum", "git"] {
        if !have(tool) {
            bail!("`cargo xtask image` needs {tool} on PATH");
        }
    }
    let git = Git::read()?;
    let tag = args.tag.clone().unwrap_or_else(|| git.tag());
    let binary = build_release()?;
    let out = image_dir();
    let first = build(&out, &binary, &git, &tag, args.reuse_rootfs)?;
    print_summary(&out, &tag, &first);
    if args.check_reproducible {
        let again = out.join("check");
        let second = build(&again, &binary, &git, &tag, false)?;
        if first != second {
            println!("image: the second build differs:");
            print_summary(&again, &tag, &second);
            bail!(
                "the image is not reproducible: compare {} with {}",
                out.join("rootfs").display(),
                again.join("rootfs").display()
            );
        }
        fs::remove_dir_all(&again)?;
        println!("image: a second build from scratch gave the same digests");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(out: &Path, tag: &str, built: &Built) {
    let rel = |p: &Path| {
        p.strip_prefix(workspace_root())
            .unwrap_or(p)
            .display()
            .to_string()
    };
    println!("image: {NAME}:{tag}");
    println!("  OCI layout      {}", rel(&out.join("oci")));
    println!(
        "  docker archive  {} (docker load -i / podman load -i)",
        rel(&out.join("kube-ipvs.tar"))
    );
    println!("  manifest        {}", built.manifest);
    println!("  config          {}", built.config);
    for (i, layer) in built.layers.iter().enumerate() {
        println!(
            "  layer {}         {} ({} MiB: {})",
            i + 1,
            layer.blob.digest,
            layer.blob.size / (1 << 20),
            layer.created_by
        );
    }
    println!("  archive sha256  {}", built.archive);
}

fn build(out: &Path, binary: &Path, git: &Git, tag: &str, reuse_rootfs: bool) -> Result<Built> {
    let rootfs_dir = out.join("rootfs");
    let stamp = out.join("rootfs.recipe");
    let recipe = format!("{}epoch {}\n", rootfs::recipe(), git.epoch);
    let reusable = fs::read_to_string(&stamp).is_ok_and(|s| s == recipe);
    if reuse_rootfs && reusable {
        eprintln!("image: reusing {} (same recipe)", rootfs_dir.display());
    } else {
        let _ = fs::remove_file(&stamp);
        rootfs::build(&rootfs_dir, git.epoch)?;
        fs::write(&stamp, recipe)?;
    }
    let work = out.join("work");
    let agent_dir = work.join("agent");
    stage_agent(&agent_dir, binary)?;

    let layout = Layout::create(&out.join("oci"))?;
    let base = layout.add_layer(
        &rootfs_dir,
        git.epoch,
        &work,
        format!(
            "mmdebstrap --variant=minbase {} (slim) + {}",
            rootfs::SUITE,
            rootfs::PACKAGES.join(" ")
        ),
    )?;
    let agent = layout.add_layer(
        &agent_dir,
        git.epoch,
        &work,
        format!(
            "{BINARY} (cargo build --release -p kube-ipvs), {KUBE_PROXY_ALIAS} and \
             {GO_RUNNER_ALIAS} -> kube-ipvs"
        ),
    )?;
    let layers = vec![base, agent];
    let created = rfc3339(git.epoch)?;
    let mut labels: Vec<(&str, String)> = FIXED_LABELS
        .iter()
        .map(|(k, v)| (*k, (*v).to_string()))
        .collect();
    labels.push((VERSION_LABEL, tag.to_string()));
    labels.push((REVISION_LABEL, git.commit.clone()));
    let config = ImageConfig {
        created: &created,
        entrypoint: &ENTRYPOINT,
        cmd: &CMD,
        env: &ENV,
        labels: &labels,
    };
    let (config_blob, manifest_blob) = layout.finish(&config, &layers, tag)?;
    let archive = out.join("kube-ipvs.tar");
    layout.write_docker_archive(
        &archive,
        &format!("{NAME}:{tag}"),
        &config_blob,
        &layers,
        git.epoch,
        &work,
    )?;
    let built = Built {
        layers,
        config: config_blob.digest,
        manifest: manifest_blob.digest,
        archive: oci::sha256(&archive)?,
    };
    fs::remove_dir_all(&work)?;
    Ok(built)
}

/// `usr/local/bin/kube-ipvs` (0755) and the `kube-proxy` and `go-runner` symlinks to it, under
/// `dir`.
fn stage_agent(dir: &Path, binary: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    let bin = dir.join(BINARY.trim_start_matches('/'));
    let bin_dir = bin.parent().context("binary path has a directory")?;
    fs::create_dir_all(bin_dir)?;
    for d in ["usr", "usr/local", "usr/local/bin"] {
        fs::set_permissions(dir.join(d), fs::Permissions::from_mode(0o755))?;
    }
    fs::copy(binary, &bin).with_context(|| format!("copying {}", binary.display()))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
    for alias in [KUBE_PROXY_ALIAS, GO_RUNNER_ALIAS] {
        std::os::unix::fs::symlink(link_target(alias)?, dir.join(alias.trim_start_matches('/')))?;
    }
    Ok(())
}

/// The relative symlink target at `alias` that names [`BINARY`] (`kube-ipvs` beside it,
/// `usr/local/bin/kube-ipvs` from `/`).
pub fn link_target(alias: &str) -> Result<&'static Path> {
    let dir = Path::new(alias).parent().context("alias has a directory")?;
    Path::new(BINARY)
        .strip_prefix(dir)
        .with_context(|| format!("{BINARY} is not below {}", dir.display()))
}

fn build_release() -> Result<PathBuf> {
    eprintln!("image: cargo build --release -p kube-ipvs");
    run_checked(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "kube-ipvs",
                "--bin",
                "kube-ipvs",
            ])
            .current_dir(workspace_root()),
    )?;
    Ok(target_dir().join("release").join("kube-ipvs"))
}

/// The commit being built.
#[derive(Debug)]
struct Git {
    commit: String,
    /// Commit time: SOURCE_DATE_EPOCH of the build, unless the environment sets one.
    epoch: u64,
    /// HEAD is tagged v<workspace version>.
    released: bool,
    dirty: bool,
}

impl Git {
    fn read() -> Result<Self> {
        let git = |args: &[&str]| {
            output_checked(Command::new("git").args(args).current_dir(workspace_root()))
                .map(|s| s.trim().to_string())
        };
        let commit = git(&["rev-parse", "HEAD"])?;
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v}"))?,
            Err(_) => git(&["log", "-1", "--format=%ct", "HEAD"])?
                .parse()
                .context("git log --format=%ct")?,
        };
        let version_tag = format!("v{}", env!("CARGO_PKG_VERSION"));
        let released = git(&["tag", "--points-at", "HEAD"])?
            .lines()
            .any(|t| t == version_tag);
        let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
        Ok(Self {
            commit,
            epoch,
            released,
            dirty,
        })
    }

    fn tag(&self) -> String {
        image_tag(
            env!("CARGO_PKG_VERSION"),
            &self.commit,
            self.released,
            self.dirty,
        )
    }
}

/// `0.1.0` for a release commit, `0.1.0-g1a2b3c4` for any other, `-dirty` for uncommitted changes.
fn image_tag(version: &str, commit: &str, released: bool, dirty: bool) -> String {
    let mut tag = version.to_string();
    if !released {
        tag.push_str("-g");
        tag.push_str(commit.get(..7).unwrap_or(commit));
    }
    if dirty {
        tag.push_str("-dirty");
    }
    tag
}

/// `2026-12-01T10:31:32Z` (coreutils' date).
fn rfc3339(epoch: u64) -> Result<String> {
    Ok(output_checked(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{epoch}"),
        "+%Y-%m-%dT%H:%M:%SZ",
    ]))?
    .trim()
    .to_string())
}

#[cfg(test)]
mod tests;
