//! What was built: version, commit and build date (set by `build.rs`; "unknown" when the build had
//! no git metadata). Shown by `--version` and exported as the `kube_ipvs_build_info` metric.

/// The crate version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binary was built from (12 hex digits), or "unknown".
pub const GIT_COMMIT: &str = env!("KUBE_IPVS_GIT_COMMIT");
/// The build date (UTC, RFC 3339; `SOURCE_DATE_EPOCH` when set), or "unknown".
pub const BUILD_DATE: &str = env!("KUBE_IPVS_BUILD_DATE");
/// The target triple.
pub const PLATFORM: &str = env!("KUBE_IPVS_TARGET");
/// `rustc --version` of the compiler.
pub const RUSTC: &str = env!("KUBE_IPVS_RUSTC");
/// One line for `--version`: `0.1.0 (commit 1a2b3c4d5e6f, built 2026-01-02T03:04:05Z)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBE_IPVS_GIT_COMMIT"),
    ", built ",
    env!("KUBE_IPVS_BUILD_DATE"),
    ")"
);
