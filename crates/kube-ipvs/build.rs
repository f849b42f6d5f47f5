//! Build information for `--version` and the `kube_ipvs_build_info` metric: the commit and the
//! build date. Neither may fail a build: from a source tarball (no git, no `.git`) both fall back,
//! and reproducible builds pin them with `KUBE_IPVS_GIT_COMMIT` and `SOURCE_DATE_EPOCH`.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

// The calendar arithmetic is the one /healthz uses for Go's time format; shared, not copied.
#[path = "src/telemetry/gotime.rs"]
#[allow(dead_code)]
mod gotime;

/// `YYYY-MM-DDTHH:MM:SSZ` (what stock's build puts in `buildDate`) for seconds since the epoch.
fn rfc3339(secs: u64) -> String {
    let go = gotime::format(Some(UNIX_EPOCH + std::time::Duration::from_secs(secs)));
    // Whole seconds print as "YYYY-MM-DD HH:MM:SS +0000 UTC".
    format!("{}Z", go[..19].replacen(' ', "T", 1))
}

fn main() {
    println!("cargo:rerun-if-changed=src/telemetry/gotime.rs");
    println!("cargo:rerun-if-env-changed=KUBE_IPVS_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit changes HEAD (or the branch ref it names): rebuild then, and only then.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
        if let Some(reference) =
            git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r]))
        {
            println!("cargo:rerun-if-changed={reference}");
        }
    }
    let commit = std::env::var("KUBE_IPVS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        });
    let date = secs.map_or_else(|| "unknown".to_owned(), rfc3339);
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KUBE_IPVS_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KUBE_IPVS_BUILD_DATE={date}");
    println!("cargo:rustc-env=KUBE_IPVS_TARGET={target}");
    println!("cargo:rustc-env=KUBE_IPVS_RUSTC={rustc_version}");
}
