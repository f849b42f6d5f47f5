//! The image `cargo xtask image` builds and the one `deploy/Containerfile` describes agree: the
//! same Debian release and packages, the binary at the same paths, the same entrypoint, command and
//! labels.

use std::collections::BTreeSet;

use super::*;

/// The Containerfile's instructions (`KEYWORD rest`), continuation lines joined, comments dropped.
fn instructions() -> Vec<(String, String)> {
    let path = workspace_root().join("deploy/Containerfile");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (key, rest) = l.split_once(' ').unwrap_or((&l, ""));
            (key.to_uppercase(), rest.trim().to_string())
        })
        .collect()
}

/// Instructions of the final (runtime) stage.
fn runtime_stage() -> Vec<(String, String)> {
    let all = instructions();
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").expect("a FROM");
    all[last_from..].to_vec()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Words of a shell-like line where double quotes group (`k="a b"` is one word).
fn quoted_words(s: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

#[test]
fn containerfile_base_is_the_same_debian_release() {
    let all = instructions();
    let release = all
        .iter()
        .find_map(|(k, v)| {
            (k == "ARG")
                .then(|| v.strip_prefix("DEBIAN_RELEASE="))
                .flatten()
        })
        .expect("ARG DEBIAN_RELEASE");
    assert_eq!(release, rootfs::SUITE);
    let (_, from) = &runtime_stage()[0];
    assert_eq!(from, "docker.io/library/debian:${DEBIAN_RELEASE}-slim");
}

#[test]
fn containerfile_installs_the_same_packages() {
    let runs: Vec<String> = runtime_stage()
        .into_iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v)
        .collect();
    let mut installed = BTreeSet::new();
    for run in &runs {
        for command in run.split("&&") {
            let w = words(command);
            if w.starts_with(&["apt-get".into(), "install".into()]) {
                assert!(
                    w.contains(&"--no-install-recommends".to_string()),
                    "{command}"
                );
                installed.extend(w.into_iter().skip(2).filter(|a| !a.starts_with('-')));
            }
        }
    }
    let ours: BTreeSet<String> = rootfs::PACKAGES.iter().map(|p| p.to_string()).collect();
    assert_eq!(installed, ours);
}

#[test]
fn containerfile_installs_the_binary_at_the_same_paths() {
    let stage = runtime_stage();
    let mut paths = BTreeSet::new();
    for (key, value) in &stage {
        let w = words(value);
        if key == "COPY" && w.first().is_some_and(|f| f == "--from=build") {
            paths.insert(w.last().cloned().expect("COPY destination"));
        }
        if key == "RUN" {
            for command in value.split("&&") {
                let w = words(command);
                if w.first().is_some_and(|c| c == "ln") && w.contains(&"-s".to_string()) {
                    let (target, link) = (&w[w.len() - 2], &w[w.len() - 1]);
                    assert_eq!(Path::new(target), link_target(link).unwrap(), "{command}");
                    paths.insert(link.clone());
                }
            }
        }
    }
    let ours = BTreeSet::from([
        BINARY.to_string(),
        KUBE_PROXY_ALIAS.to_string(),
        GO_RUNNER_ALIAS.to_string(),
    ]);
    assert_eq!(paths, ours);
}

#[test]
fn containerfile_has_the_same_entrypoint_cmd_and_labels() {
    let stage = runtime_stage();
    let json = |key: &str| -> Vec<String> {
        let (_, v) = stage
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_str(v).unwrap_or_else(|e| panic!("{key} {v}: {e}"))
    };
    assert_eq!(json("ENTRYPOINT"), ENTRYPOINT);
    assert_eq!(json("CMD"), CMD);
    let mut labels = std::collections::BTreeMap::new();
    for (_, value) in stage.iter().filter(|(k, _)| k == "LABEL") {
        for pair in quoted_words(value) {
            let (k, v) = pair.split_once('=').expect("LABEL key=value");
            labels.insert(k.to_string(), v.to_string());
        }
    }
    let mut want: std::collections::BTreeMap<String, String> = FIXED_LABELS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.insert(VERSION_LABEL.into(), "${VERSION}".into());
    want.insert(REVISION_LABEL.into(), "${REVISION}".into());
    assert_eq!(labels, want);
}

#[test]
fn tags_follow_the_readme() {
    let sha = "1a2b3c4d5e6f";
    assert_eq!(image_tag("0.1.0", sha, true, false), "0.1.0");
    assert_eq!(image_tag("0.1.0", sha, false, false), "0.1.0-g1a2b3c4");
    assert_eq!(image_tag("0.1.0", sha, false, true), "0.1.0-g1a2b3c4-dirty");
}
