//! deploy/ checks (issue 4): every manifest parses into its k8s-openapi type; the ClusterRole grants
//! exactly the agent's declared API calls (`source::access::API_ACCESS`, itself checked against the
//! requests the code sends); the binding, ServiceAccount and image path agree; the shipped ConfigMap
//! loads with the agent's own loader without warnings; and the DaemonSets' probes and ports match
//! the health and metrics addresses that configuration yields. The DaemonSets' command lines are
//! parsed with the binary's own CLI in `src/cli/deploy_check.rs` (a unit test of the binary).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_ipvs::config;
use kube_ipvs::source::access::API_ACCESS;
use serde::de::DeserializeOwned;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a manifest into its k8s-openapi type; a field the type does not have (a typo such as
/// `livenesProbe`, which the API server would drop) fails the test.
fn parse<T: DeserializeOwned>(rel: &str) -> T {
    let doc: serde_json::Value =
        serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut unknown = Vec::new();
    let value = serde_ignored::deserialize(&doc, |path| unknown.push(path.to_string()))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(unknown.is_empty(), "{rel}: unknown fields {unknown:?}");
    value
}

fn container<'a>(ds: &'a DaemonSet, name: &str) -> &'a Container {
    let spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .expect("container")
}

fn probe_port(c: &Container, path: &str) -> u16 {
    let probe = [&c.liveness_probe, &c.readiness_probe]
        .into_iter()
        .flatten()
        .filter_map(|p| p.http_get.as_ref())
        .find(|h| h.path.as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no probe on {path}"));
    match &probe.port {
        IntOrString::Int(p) => u16::try_from(*p).unwrap(),
        IntOrString::String(name) => {
            let port = c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            u16::try_from(port.expect("named port").container_port).unwrap()
        }
    }
}

fn container_port(c: &Container, name: &str) -> u16 {
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name));
    u16::try_from(
        port.unwrap_or_else(|| panic!("no port {name}"))
            .container_port,
    )
    .unwrap()
}

#[test]
fn every_manifest_parses_into_its_type() {
    let _: ServiceAccount = parse("serviceaccount.yaml");
    let _: ClusterRole = parse("clusterrole.yaml");
    let _: ClusterRoleBinding = parse("clusterrolebinding.yaml");
    let _: ConfigMap = parse("configmap.yaml");
    let _: DaemonSet = parse("daemonset.yaml");
    let _: DaemonSet = parse("overlays/replace-kube-proxy/kube-proxy-daemonset.yaml");
    // The rollback's hand-back runs a command the binary accepts.
    let handback: DaemonSet = parse("handback/daemonset.yaml");
    let cmd = container(&handback, "handback")
        .command
        .clone()
        .unwrap_or_default()
        .join(" ");
    assert!(
        cmd.contains("/usr/local/bin/kube-ipvs cleanup --handback &&"),
        "{cmd}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_kube-ipvs"))
        .args(["cleanup", "--handback", "--help"])
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    // Every resource a kustomization lists exists.
    for k in [
        "kustomization.yaml",
        "overlays/replace-kube-proxy/kustomization.yaml",
    ] {
        let doc: serde_json::Value = serde_saphyr::from_str(&read(k)).unwrap();
        let dir = Path::new(k).parent().unwrap();
        for r in doc["resources"].as_array().expect("resources") {
            let rel = dir.join(r.as_str().unwrap());
            assert!(
                deploy().join(&rel).is_file(),
                "{k}: missing {}",
                rel.display()
            );
        }
    }
}

#[test]
fn shipped_configmap_loads_cleanly_and_matches_the_daemonset() {
    let text = read("configmap.yaml");
    let parsed = config::parse_str(&text).expect("the ConfigMap loads");
    assert_eq!(parsed.configmap_key.as_deref(), Some("config.conf"));
    let loaded = config::resolve(Some(&parsed), &config::RunArgs::default()).expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;

    let ds: DaemonSet = parse("daemonset.yaml");
    let ct = container(&ds, "kube-ipvs");
    let healthz = c.healthz_bind_address.expect("healthz enabled").port();
    let metrics = c.metrics_bind_address.expect("metrics enabled").port();
    assert_eq!(probe_port(ct, "/livez"), healthz);
    assert_eq!(probe_port(ct, "/healthz"), healthz);
    assert_eq!(container_port(ct, "healthz"), healthz);
    assert_eq!(container_port(ct, "metrics"), metrics);
    // The DaemonSet mounts the ConfigMap where --config points.
    let args = ct.args.clone().unwrap_or_default();
    assert!(
        args.iter()
            .any(|a| a == "--config=/var/lib/kube-ipvs/config.conf"),
        "{args:?}"
    );
}

#[test]
fn overlay_changes_only_the_image() {
    // The overlay must work for every distribution's kube-proxy DaemonSet (kubeadm's
    // /var/lib/kube-proxy/config.conf, EKS's /var/lib/kube-proxy-config/config, flag-only ones):
    // it names the DaemonSet and the container, and sets nothing but the image.
    let doc: serde_json::Value = serde_saphyr::from_str(&read(
        "overlays/replace-kube-proxy/kube-proxy-daemonset.yaml",
    ))
    .unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&doc["spec"]), ["selector", "template"]);
    assert_eq!(keys(&doc["spec"]["template"]), ["spec"]);
    assert_eq!(keys(&doc["spec"]["template"]["spec"]), ["containers"]);
    let containers = doc["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(keys(&containers[0]), ["image", "name"]);
    assert_eq!(containers[0]["name"], "kube-proxy");
}

/// (apiGroup, resource, verb) triples.
type Grants = BTreeSet<(String, String, String)>;

#[test]
fn clusterrole_grants_exactly_the_declared_api_access() {
    let role: ClusterRole = parse("clusterrole.yaml");
    assert!(role.aggregation_rule.is_none());
    let mut granted = Grants::new();
    for rule in role.rules.iter().flatten() {
        // Narrowing by name or granting URLs is not something the agent's calls need.
        assert!(rule.resource_names.is_none(), "{rule:?}");
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    // A wildcard ("*") is a string no declared access matches: it fails below.
                    granted.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    let declared: Grants = API_ACCESS
        .iter()
        .flat_map(|a| {
            a.verbs.iter().map(|v| {
                (
                    a.group.to_owned(),
                    a.resource.to_owned(),
                    v.as_str().to_owned(),
                )
            })
        })
        .collect();
    let missing: Vec<_> = declared.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&declared).collect();
    assert!(missing.is_empty(), "the ClusterRole lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "the ClusterRole grants more than the agent uses: {extra:?}"
    );
}

#[test]
fn binding_serviceaccount_and_daemonset_agree() {
    let role: ClusterRole = parse("clusterrole.yaml");
    let sa: ServiceAccount = parse("serviceaccount.yaml");
    let binding: ClusterRoleBinding = parse("clusterrolebinding.yaml");
    let ds: DaemonSet = parse("daemonset.yaml");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    let subject = subjects.first().unwrap();
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(Some(&subject.name), sa.metadata.name.as_ref());
    assert_eq!(subject.namespace, sa.metadata.namespace);
    assert_eq!(ds.metadata.namespace, sa.metadata.namespace);
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name, sa.metadata.name);
}

#[test]
fn image_installs_the_binary_where_the_daemonsets_run_it() {
    // What the image provides: COPY targets and `ln -s TARGET LINK` links.
    let containerfile = read("Containerfile");
    let mut installed: Vec<String> = containerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=build "))
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect();
    for line in containerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(4) {
            if w[0] == "ln" && w[1] == "-s" {
                let link = w[3];
                installed.push(if link.starts_with('/') {
                    link.to_owned()
                } else {
                    format!("/usr/local/bin/{link}")
                });
            }
        }
    }
    let ours: DaemonSet = parse("daemonset.yaml");
    let kubeadm: DaemonSet = serde_saphyr::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/kubeadm-kube-proxy-daemonset.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    // deploy/'s DaemonSet; kubeadm's, whose command the overlay keeps; kops' static pod, which
    // starts kube-proxy through /go-runner (tests/fixtures/distros/kops.yaml).
    let wanted = [
        container(&ours, "kube-ipvs")
            .command
            .clone()
            .unwrap_or_default()[0]
            .clone(),
        container(&kubeadm, "kube-proxy")
            .command
            .clone()
            .unwrap_or_default()[0]
            .clone(),
        "/go-runner".to_owned(),
    ];
    for binary in wanted {
        assert!(
            installed.contains(&binary),
            "runs {binary}, the image installs {installed:?}"
        );
    }
}

/// Bytes of a memory quantity in the binary units the manifests use (`64Mi`, `1Gi`).
fn mebibytes(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = n.parse().unwrap_or_else(|e| panic!("{q}: {e}"));
    match unit {
        "Mi" => n,
        "Gi" => n * 1024,
        _ => panic!("{q}: use Mi or Gi"),
    }
}

#[test]
fn resources_request_cpu_and_memory_and_limit_only_memory() {
    let ds: DaemonSet = parse("daemonset.yaml");
    let res = container(&ds, "kube-ipvs")
        .resources
        .clone()
        .expect("resources");
    let requests = res.requests.expect("requests");
    let limits = res.limits.expect("limits");
    assert!(requests.contains_key("cpu"), "{requests:?}");
    // No CPU limit: throttling a proxier delays every node's Service updates.
    assert!(!limits.contains_key("cpu"), "{limits:?}");
    let request = mebibytes(&requests["memory"].0);
    let limit = mebibytes(&limits["memory"].0);
    // Stock kube-proxy requests 50Mi; `cargo xtask bench agent` measured 350 MiB resident at
    // 50,000 Services (docs/benchmarks.md): the limit must hold that.
    assert!(request >= 50, "memory request {request}Mi");
    assert!(limit >= 350 && limit >= request, "memory limit {limit}Mi");
}

/// (table, chains, (table, chain, jump target) of each rule) of an `iptables-save` text.
type Saved = (BTreeSet<(String, String)>, Vec<(String, String, String)>);

fn saved(text: &str) -> Saved {
    let (mut chains, mut rules) = (BTreeSet::new(), Vec::new());
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_owned();
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap();
            chains.insert((table.clone(), name.to_owned()));
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap().to_owned();
            let target = rule.rsplit_once(" -j ").map_or("", |(_, t)| t);
            let target = target.split_whitespace().next().unwrap_or_default();
            rules.push((table.clone(), chain, target.to_owned()));
        }
    }
    // Back ends print the tables in different orders; within a table, order is meaningful.
    rules.sort_by(|a: &(String, String, String), b| a.0.cmp(&b.0));
    (chains, rules)
}

/// deploy/cleanup-iptables-mode.sh (MIGRATING.md) on a node just migrated from iptables mode, in a
/// fresh network namespace, on both iptables back ends: it removes exactly the iptables mode's own
/// chains and the jumps into them, keeps the shared, kube-ipvs's and kubelet's chains and rules, and
/// a second run changes nothing.
#[test]
#[ignore = "needs root and a fresh network namespace: cargo xtask test"]
fn iptables_mode_cleanup_removes_only_the_iptables_modes_chains() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iptables-mode-leftovers.rules");
    let script = deploy().join("cleanup-iptables-mode.sh");
    let leftovers: BTreeSet<(String, String)> = [
        ("nat", "KUBE-SVC-7EJNTS7AENER2WX5"),
        ("nat", "KUBE-SVL-7EJNTS7AENER2WX5"),
        ("nat", "KUBE-SEP-UKSFD7AGPMPPLUHC"),
        ("nat", "KUBE-EXT-7EJNTS7AENER2WX5"),
        ("nat", "KUBE-FW-7EJNTS7AENER2WX5"),
        ("nat", "KUBE-NODEPORTS"),
        ("nat", "KUBE-PROXY-CANARY"),
        ("filter", "KUBE-SERVICES"),
        ("filter", "KUBE-EXTERNAL-SERVICES"),
        ("filter", "KUBE-NODEPORTS"),
        ("filter", "KUBE-PROXY-CANARY"),
        ("mangle", "KUBE-PROXY-CANARY"),
    ]
    .into_iter()
    .map(|(t, c)| (t.to_owned(), c.to_owned()))
    .collect();
    let (before_chains, before_rules) = saved(&std::fs::read_to_string(&fixture).unwrap());
    assert!(leftovers.is_subset(&before_chains));
    let want_chains: BTreeSet<_> = before_chains.difference(&leftovers).cloned().collect();
    let gone = |t: &str, c: &str| leftovers.contains(&(t.to_owned(), c.to_owned()));
    let want_rules: Vec<_> = before_rules
        .iter()
        .filter(|(t, c, target)| !gone(t, c) && !gone(t, target))
        .cloned()
        .collect();
    assert!(want_chains.contains(&("nat".to_owned(), "KUBE-SERVICES".to_owned())));

    // One namespace for both back ends (the script cleans both): namespaces are slow in the lab.
    let sh = format!(
        "set -e; for b in nft legacy; do grep -v '^#' '{}' | iptables-$b-restore; done; \
         sh '{s}' >/dev/null; sh '{s}'; \
         for b in nft legacy; do echo \"--- $b\"; iptables-$b-save; done",
        fixture.display(),
        s = script.display()
    );
    lab_kit::enter_fresh_netns();
    let out = lab_kit::sh_output(&sh);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (second_run, rest) = stdout.split_once("--- nft\n").unwrap();
    assert_eq!(second_run, "", "a second run changed something");
    let (nft, legacy) = rest.split_once("--- legacy\n").unwrap();
    for (backend, after) in [("nft", nft), ("legacy", legacy)] {
        let (chains, rules) = saved(after);
        assert_eq!(chains, want_chains, "{backend}");
        assert_eq!(rules, want_rules, "{backend}");
    }
}
