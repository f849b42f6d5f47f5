//! The unused-dependency check of `cargo xtask test`: every dependency a workspace package
//! declares must be named in its code (`name::` paths, `use name`, `extern crate name`), like
//! cargo-machete's check but without installing anything. A dependency used only for its
//! side effects can be marked with a comment `# used: WHY` on its line in Cargo.toml.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::util::workspace_root;

/// The dependencies of `manifest` (normal, dev and build), with whether their line says why
/// they are there without being named in code.
fn declared(manifest: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = matches!(
                t,
                "[dependencies]" | "[dev-dependencies]" | "[build-dependencies]"
            );
            continue;
        }
        if !in_deps || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let name = t
            .split(|c: char| c == '=' || c == '.' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        if !name.is_empty() {
            out.push((name.to_string(), t.contains("# used:")));
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target" && n != "fuzz") {
                sources(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Whether `code` names the crate `ident`.
fn names(code: &str, ident: &str) -> bool {
    code.match_indices(ident).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + ident.len()..];
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        starts
            && (after.starts_with("::")
                || after.starts_with(';')
                || after.starts_with(" as ")
                || code[..at].ends_with("use ")
                || code[..at].ends_with("extern crate "))
    })
}

/// The packages of the workspace (their directories), from the root manifest's `members`.
fn members(root: &Path) -> Result<Vec<PathBuf>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .context("no members in the workspace manifest")?;
    Ok(line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|m| root.join(m))
        .collect())
}

/// Prints every dependency no code names; returns how many.
pub fn unused() -> Result<usize> {
    let root = workspace_root();
    let mut found = 0;
    for dir in members(&root)? {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .with_context(|| format!("reading {}", dir.display()))?;
        let mut files = Vec::new();
        sources(&dir, &mut files);
        let code: String = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect::<Vec<_>>()
            .join("\n");
        for (dep, excused) in declared(&manifest) {
            let ident = dep.replace('-', "_");
            if !excused && !names(&code, &ident) {
                println!(
                    "unused dependency: {dep} in {}",
                    dir.join("Cargo.toml").display()
                );
                found += 1;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_declared_and_named_crates() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nfoo-bar.workspace = true\n\
                        baz = { version = \"1\" }\nalloc = \"1\" # used: global allocator\n\
                        [dev-dependencies]\nqux = \"1\"\n[features]\nf = []\n";
        assert_eq!(
            declared(manifest),
            [
                ("foo-bar".to_string(), false),
                ("baz".to_string(), false),
                ("alloc".to_string(), true),
                ("qux".to_string(), false)
            ]
        );
        assert!(names("use foo_bar::X;", "foo_bar"));
        assert!(names("let x = baz::f();", "baz"));
        assert!(!names("let my_baz = 1; // baz", "baz"));
        assert!(!names("fn foobar_x() {}", "bar_x"));
    }
}
