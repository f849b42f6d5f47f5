//! Real kube-proxy command lines and configuration files of public distributions
//! (`tests/fixtures/distros/*.yaml`, each with its source), run through exactly what `run` does
//! before it touches the kernel: the container's argv as the runtime executes it (a `sh -c`
//! wrapper or go-runner unwrapped), argv[0] `kube-proxy`, flag parsing, `config::load`, the node
//! name, and the planner settings. Each must be accepted, with exactly its listed warnings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use kube_ipvs::agent::Settings;
use kube_ipvs::config::{self, resolve_node_name};
use serde::Deserialize;

use super::{KubeProxyCli, Personality, go_runner, normalize};

#[derive(Debug, Deserialize)]
struct Source {
    repository: String,
    path: String,
    version: String,
    #[allow(dead_code)] // documentation for the reader
    substituted: String,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    source: Source,
    #[serde(default)]
    env: BTreeMap<String, String>,
    argv: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    warnings: Vec<String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/distros")
}

/// Kubernetes' `$(VAR)` expansion of command and args.
fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    env.iter()
        .fold(s.to_owned(), |s, (k, v)| s.replace(&format!("$({k})"), v))
}

/// The words `sh -c SCRIPT` runs: `exec` dropped, redirections dropped, double quotes removed.
fn shell_words(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in script.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
        .into_iter()
        .filter(|w| w != "exec" && !w.contains('>'))
        .collect()
}

/// What the kube-proxy process is finally started with.
fn unwrap(argv: Vec<String>) -> Vec<String> {
    let name = Path::new(&argv[0]).file_name().unwrap().to_str().unwrap();
    if name == "sh" && argv.get(1).map(String::as_str) == Some("-c") {
        return unwrap(shell_words(&argv[2]));
    }
    if Personality::of(argv[0].as_ref()) == Personality::GoRunner {
        let args: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let o = go_runner::parse(&args).unwrap();
        return o
            .command
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
    }
    argv
}

fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let fx: Fixture = serde_saphyr::from_str(&text).map_err(|e| e.to_string())?;
    assert!(
        !fx.source.repository.is_empty()
            && !fx.source.path.is_empty()
            && !fx.source.version.is_empty()
    );
    let scratch = std::env::temp_dir().join(format!(
        "kube-ipvs-distro-{}-{}",
        std::process::id(),
        path.file_stem().unwrap().to_str().unwrap()
    ));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut argv: Vec<String> = fx.argv.iter().map(|a| expand(a, &fx.env)).collect();
    for (mount, content) in &fx.files {
        let local = scratch.join(mount.trim_start_matches('/').replace('/', "_"));
        std::fs::write(&local, content).unwrap();
        for a in &mut argv {
            *a = a.replace(mount.as_str(), local.to_str().unwrap());
        }
    }
    let argv = unwrap(argv);
    let result = (|| {
        if Personality::of(argv[0].as_ref()) != Personality::KubeProxy {
            return Err(format!("{argv:?} does not run kube-proxy"));
        }
        let cli =
            KubeProxyCli::try_parse_from(normalize(argv.iter().map(OsString::from).collect()))
                .map_err(|e| format!("{argv:?}:\n{e}"))?;
        let loaded = config::load(&cli.args).map_err(|e| e.to_string())?;
        let cfg = &loaded.config;
        let node = resolve_node_name(
            cfg.hostname_override.as_deref(),
            fx.env.get("NODE_NAME").map(String::as_str),
            || Ok("node-from-hostname".to_owned()),
        )
        .map_err(|e| e.to_string())?;
        // What `run` derives from it (infallible: a bad scheduler is refused by `config::load`).
        let _ = Settings::derive(cfg, &node.name, vec!["192.168.1.10".parse().unwrap()]);
        let mut got: Vec<String> = loaded.warnings.iter().map(|w| w.field.clone()).collect();
        got.sort();
        got.dedup();
        if got != fx.warnings {
            let all: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
            return Err(format!(
                "warnings {got:?}, want {:?}:\n  {}",
                fx.warnings,
                all.join("\n  ")
            ));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[test]
fn every_distribution_command_line_is_accepted() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "at least 10 fixtures: {paths:?}");
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| check(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn shell_wrappers_split_as_sh_does() {
    assert_eq!(
        shell_words(r#"exec kube-proxy --resource-container="" --v=2 1>>/var/log/x.log 2>&1"#),
        ["kube-proxy", "--resource-container=", "--v=2"]
    );
}
