//! deploy/ checks that need the binary's own CLI (issue 4): each DaemonSet's container command line,
//! as the kubelet builds it (`command` + `args`, `$(VAR)` expanded from the container's env), parses
//! with [`Cli`] into `kube-ipvs run`, and the configuration it names loads as `run` loads it
//! (`config::load`) from the ConfigMap the pod mounts at that path. The manifest-only checks are in
//! `tests/config_deploy.rs`.
//!
//! The in-place overlay is checked against kubeadm's kube-proxy DaemonSet
//! (`tests/fixtures/kubeadm-kube-proxy-daemonset.yaml`), whose command, env, mounts and ConfigMap
//! it keeps: only the image changes, and argv[0] `/usr/local/bin/kube-proxy` selects kube-proxy's
//! command line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a panic is the report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_ipvs::config::{self, Loaded, RunArgs, WarningKind};
use serde::de::DeserializeOwned;

use super::{Cli, Command, KubeProxyCli, Personality, normalize};

/// The node the pod lands on (what the downward API gives `spec.nodeName`).
const NODE: &str = "node-a";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn parse<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn deploy(rel: &str) -> PathBuf {
    crate_dir().join("../../deploy").join(rel)
}

fn fixture(rel: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(rel)
}

fn pod_spec(ds: &DaemonSet) -> &PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The container's environment as the kubelet resolves it (literal values and `spec.nodeName`).
fn environment(c: &Container) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let field = from.field_ref.as_ref().expect("only fieldRef is used");
                assert_eq!(field.field_path, "spec.nodeName", "{e:?}");
                NODE.to_owned()
            }
            (None, None) => String::new(),
        };
        env.insert(e.name.clone(), value);
    }
    env
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`, and an
/// undefined reference is left as written.
fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some((name, t)) = tail
            .strip_prefix("$(")
            .and_then(|t| t.split_once(')'))
            .filter(|(name, _)| env.contains_key(*name))
        {
            out.push_str(&env[name]);
            rest = t;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The container's argv: `command` then `args`, expanded.
fn argv(c: &Container) -> Vec<String> {
    let env = environment(c);
    let argv: Vec<String> = c
        .command
        .iter()
        .chain(c.args.iter())
        .flatten()
        .map(|a| expand(a, &env))
        .collect();
    assert!(
        argv.iter().all(|a| !a.contains("$(")),
        "unresolved variable in {argv:?}"
    );
    argv
}

/// Parses argv with the binary's CLI as argv[0] selects it: `kube-ipvs run ...` or `kube-proxy ...`.
fn run_args(argv: &[String]) -> RunArgs {
    let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
    match Personality::of(&args[0]) {
        Personality::KubeProxy => {
            KubeProxyCli::try_parse_from(normalize(args))
                .unwrap_or_else(|e| panic!("{argv:?}:\n{e}"))
                .args
        }
        _ => match Cli::try_parse_from(normalize(args))
            .unwrap_or_else(|e| panic!("{argv:?}:\n{e}"))
            .command
        {
            Command::Run(cmd) => cmd.args,
            other => panic!("{argv:?} is not `run`: {other:?}"),
        },
    }
}

/// The ConfigMap name and key the pod serves at `path`, from its volume mounts.
fn mounted_config_map(pod: &PodSpec, c: &Container, path: &Path) -> (String, String) {
    for m in c.volume_mounts.iter().flatten() {
        let Ok(key) = path.strip_prefix(&m.mount_path) else {
            continue;
        };
        assert!(m.sub_path.is_none(), "{m:?}");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .unwrap_or_else(|| panic!("no volume {}", m.name));
        let cm = volume
            .config_map
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not a ConfigMap volume", m.name));
        return (cm.name.clone(), key.to_str().unwrap().to_owned());
    }
    panic!("nothing mounted at {}", path.display())
}

/// A scratch directory holding the ConfigMap's files, as the kubelet projects them.
struct Projected(PathBuf);

impl Projected {
    fn new(name: &str, cm: &ConfigMap) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kube-ipvs-deploy-check-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (key, value) in cm.data.iter().flatten() {
            std::fs::write(dir.join(key), value).unwrap();
        }
        Self(dir)
    }
}

impl Drop for Projected {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads the configuration as `run` does, with `--config` pointing into the projected ConfigMap.
/// Returns the loaded configuration and the projection (kept alive for further checks).
fn load_as_run(
    name: &str,
    pod: &PodSpec,
    c: &Container,
    cm: &ConfigMap,
    mut args: RunArgs,
) -> (Loaded, String) {
    let path = args.config.clone().expect("--config is given");
    let (cm_name, key) = mounted_config_map(pod, c, &path);
    assert_eq!(
        Some(&cm_name),
        cm.metadata.name.as_ref(),
        "mounted ConfigMap"
    );
    assert!(
        cm.data.as_ref().is_some_and(|d| d.contains_key(&key)),
        "ConfigMap {cm_name} has no key {key}"
    );
    let projected = Projected::new(name, cm);
    args.config = Some(projected.0.join(&key));
    let loaded = config::load(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
    (loaded, key)
}

fn probe_port(c: &Container, path: &str) -> u16 {
    let http = [&c.liveness_probe, &c.readiness_probe]
        .into_iter()
        .flatten()
        .filter_map(|p| p.http_get.as_ref())
        .find(|h| h.path.as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no probe on {path}"));
    match &http.port {
        IntOrString::Int(p) => u16::try_from(*p).unwrap(),
        IntOrString::String(s) => panic!("named probe port {s}"),
    }
}

fn assert_ports(c: &Container, loaded: &Loaded) {
    let healthz = loaded.config.healthz_bind_address.expect("healthz on");
    assert_eq!(probe_port(c, "/livez"), healthz.port());
    assert_eq!(probe_port(c, "/healthz"), healthz.port());
    let metrics = loaded.config.metrics_bind_address.expect("metrics on");
    let declared = |name: &str| {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| u16::try_from(p.container_port).unwrap())
    };
    assert_eq!(declared("healthz"), Some(healthz.port()));
    assert_eq!(declared("metrics"), Some(metrics.port()));
}

#[test]
fn kubelet_expansion() {
    let env = BTreeMap::from([("NODE_NAME".to_owned(), "n1".to_owned())]);
    for (input, want) in [
        ("--hostname-override=$(NODE_NAME)", "--hostname-override=n1"),
        ("$(NODE_NAME)$(NODE_NAME)", "n1n1"),
        ("$$(NODE_NAME)", "$(NODE_NAME)"),
        ("$(OTHER)", "$(OTHER)"),
        ("a$b$", "a$b$"),
    ] {
        assert_eq!(expand(input, &env), want, "{input}");
    }
}

#[test]
fn daemonset_command_line_parses_and_loads_the_shipped_configmap() {
    let ds: DaemonSet = parse(&deploy("daemonset.yaml"));
    let pod = pod_spec(&ds);
    let c = container(pod, "kube-ipvs");
    let args = run_args(&argv(c));
    let cm: ConfigMap = parse(&deploy("configmap.yaml"));
    let (loaded, _) = load_as_run("daemonset", pod, c, &cm, args);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let cfg = &loaded.config;
    assert_eq!(cfg.hostname_override.as_deref(), Some(NODE));
    assert_eq!(cfg.node_name().unwrap().name, NODE);
    // In-cluster configuration: the pod's ServiceAccount, bound to the ClusterRole.
    assert_eq!(cfg.kubeconfig, None);
    assert_eq!(pod.service_account_name.as_deref(), Some("kube-ipvs"));
    assert_ports(c, &loaded);
}

/// kubeadm's kube-proxy DaemonSet after the overlay: kubeadm's container with the overlay's image,
/// nothing else changed (the overlay names only the image; `config_deploy.rs` checks that).
fn overlaid_kubeadm() -> DaemonSet {
    let mut ds: DaemonSet = parse(&fixture("kubeadm-kube-proxy-daemonset.yaml"));
    let overlay: DaemonSet = parse(&deploy(
        "overlays/replace-kube-proxy/kube-proxy-daemonset.yaml",
    ));
    assert_eq!(overlay.metadata.name, ds.metadata.name);
    assert_eq!(overlay.metadata.namespace, ds.metadata.namespace);
    assert_eq!(
        overlay.spec.as_ref().unwrap().selector,
        ds.spec.as_ref().unwrap().selector,
        "the overlay must name kubeadm's selector (immutable)"
    );
    let patch = container(pod_spec(&overlay), "kube-proxy").clone();
    let pod = ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    let volumes = pod.volumes.get_or_insert_default();
    for v in pod_spec(&overlay).volumes.iter().flatten() {
        assert!(
            volumes.iter().all(|k| k.name != v.name),
            "{} clashes",
            v.name
        );
        volumes.push(v.clone());
    }
    let c = pod
        .containers
        .iter_mut()
        .find(|c| c.name == "kube-proxy")
        .unwrap();
    c.image = patch.image;
    ds
}

/// The host directory mounted at `path` (a writable hostPath volume), if any.
fn host_dir_at<'a>(pod: &'a PodSpec, c: &Container, path: &Path) -> Option<&'a str> {
    let m = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| Path::new(&m.mount_path) == path && m.read_only != Some(true))?;
    let v = pod.volumes.iter().flatten().find(|v| v.name == m.name)?;
    let host = v.host_path.as_ref()?;
    assert_eq!(host.type_.as_deref(), Some("DirectoryOrCreate"), "{v:?}");
    Some(host.path.as_str())
}

/// The owners file outlives the pod: deploy/'s DaemonSet puts its directory on the host, so
/// `kube-ipvs list --services` on the node and cleanup from a debug pod find it. The overlay
/// changes only the image (issue 14): there the file lives in the pod, and cleanup from outside
/// finds kube-ipvs's virtual servers by the dummy device and the service-CIDR routes.
#[test]
fn deploy_daemonset_keeps_the_owners_file_on_the_host() {
    let dir = Path::new(kube_ipvs::owners::DEFAULT_PATH).parent().unwrap();
    let ours: DaemonSet = parse(&deploy("daemonset.yaml"));
    let pod = pod_spec(&ours);
    assert_eq!(
        host_dir_at(pod, container(pod, "kube-ipvs"), dir),
        dir.to_str(),
        "{} is not the host's",
        dir.display()
    );
}

#[test]
fn overlay_runs_kubeadms_command_line_and_configmap_unchanged() {
    let ds = overlaid_kubeadm();
    let pod = pod_spec(&ds);
    let c = container(pod, "kube-proxy");
    let argv = argv(c);
    assert_eq!(
        argv[0], "/usr/local/bin/kube-proxy",
        "kubeadm's own command"
    );
    let args = run_args(&argv);
    let cm: ConfigMap = parse(&fixture("kube-proxy-configmap.yaml"));

    // A cluster already in IPVS mode: loads cleanly.
    let (loaded, _) = load_as_run("overlay-ipvs", pod, c, &cm, args.clone());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.hostname_override.as_deref(), Some(NODE));
    // kubeadm's kubeconfig (the API server's real address) comes from the same ConfigMap mount.
    let kubeconfig = loaded.config.kubeconfig.clone().expect("kubeadm sets one");
    let (cm_name, key) = mounted_config_map(pod, c, &kubeconfig);
    assert_eq!(cm_name, "kube-proxy");
    assert!(cm.data.as_ref().unwrap().contains_key(&key), "{key}");

    // A cluster in iptables mode (and kubeadm's default `mode: ""`): the same ConfigMap runs the
    // IPVS proxier, with one notice naming the field, instead of crash-looping the rollout.
    for mode in ["iptables", "\"\"", "nftables"] {
        let mut other = cm.clone();
        let conf = other.data.as_mut().unwrap().get_mut("config.conf").unwrap();
        assert!(conf.contains("\nmode: ipvs\n"));
        *conf = conf.replace("\nmode: ipvs\n", &format!("\nmode: {mode}\n"));
        let (loaded, _) = load_as_run("overlay-other-mode", pod, c, &other, args.clone());
        let fields: Vec<(&WarningKind, &str)> = loaded
            .warnings
            .iter()
            .map(|w| (&w.kind, w.field.as_str()))
            .collect();
        assert_eq!(fields, [(&WarningKind::Notice, "mode")], "mode {mode}");
    }
}
