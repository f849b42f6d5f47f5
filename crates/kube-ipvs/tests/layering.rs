//! The layering ARCHITECTURE.md states, checked on the source: the pure core (`types`, `model`,
//! `desired`, `plan`, `engine`, `planner_config`) uses no runtime, Kubernetes client or netlink
//! crate and none of the I/O modules; the agent's loop does not know telemetry or the daemon
//! that wires them (telemetry implements the agent's `Observer`). A `use` that breaks it fails
//! here with the file and line, before it becomes a convention nobody remembers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path` (or `path` itself).
fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files(&entry.unwrap().path()));
    }
    out.sort();
    out
}

/// Code lines (not comments) of `module` that name one of `forbidden` (`name::` paths).
fn violations(module: &str, forbidden: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files(&src().join(module)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for f in forbidden {
                let hit = code.match_indices(f).any(|(i, _)| {
                    let before = code[..i].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if hit {
                    out.push(format!(
                        "{}:{}: {f} in `{}`",
                        file.strip_prefix(src()).unwrap().display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_core_does_no_io_and_knows_no_io_module() {
    let forbidden = [
        "tokio::",
        "kube::",
        "kube_runtime::",
        "hyper::",
        "nodenet::",
        "ipvs_netlink::",
        "netlink_transport::",
        "netlink_packet_core::",
        "crate::kernel",
        "crate::agent",
        "crate::daemon",
        "crate::telemetry",
        "crate::source",
        "crate::cli",
        "crate::cleanup",
        "crate::explain",
    ];
    let mut found = Vec::new();
    for module in [
        "types",
        "model",
        "desired",
        "plan",
        "engine.rs",
        "planner_config.rs",
    ] {
        found.extend(violations(module, &forbidden));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_agent_loop_does_not_know_telemetry_or_the_daemon() {
    let found = violations("agent", &["crate::telemetry", "crate::daemon"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
