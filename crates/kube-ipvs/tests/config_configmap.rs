//! The config loader against a real kube-proxy ConfigMap (kubeadm's, in IPVS mode), read from a
//! file exactly as `--config` reads it, with flags next to it (kube-proxy's precedence).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use kube_ipvs::config::{self, ConfigError, LocalDetection, NodePortAddresses, RunArgs};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube-proxy-configmap.yaml")
}

fn args(extra: &[&str]) -> RunArgs {
    let config = format!("--config={}", fixture().display());
    let argv = ["kube-ipvs", config.as_str()]
        .into_iter()
        .chain(extra.iter().copied());
    Cli::try_parse_from(argv).expect("flags parse").run
}

#[test]
fn kubeadm_configmap_loads_with_stock_ipvs_defaults_and_no_warnings() {
    let loaded = config::load(&args(&[])).expect("the ConfigMap loads");
    assert!(
        loaded.warnings.is_empty(),
        "unexpected warnings: {:?}",
        loaded.warnings
    );
    let c = loaded.config;
    assert_eq!(c.scheduler.name(), "rr");
    assert_eq!(c.sync.period, Duration::from_secs(30));
    assert_eq!(c.sync.min, Duration::ZERO);
    assert_eq!(c.masquerade_bit.mark(), 0x4000);
    assert!(!c.masquerade_all && !c.strict_arp);
    assert_eq!(
        c.healthz_bind_address,
        Some(SocketAddr::from(([0, 0, 0, 0], 10256)))
    );
    assert_eq!(
        c.metrics_bind_address,
        Some(SocketAddr::from(([127, 0, 0, 1], 10249)))
    );
    assert_eq!(
        c.kubeconfig,
        Some(PathBuf::from("/var/lib/kube-proxy/kubeconfig.conf"))
    );
    assert_eq!(
        c.local_detection,
        LocalDetection::ClusterCidr(vec!["10.244.0.0/16".parse().unwrap()])
    );
    assert_eq!(c.node_port_addresses, NodePortAddresses::All);
    assert_eq!(c.hostname_override, None);
    // conntrack pointers are null: kube-proxy's defaults apply.
    assert_eq!(c.conntrack.max_per_core, Some(32768));
    assert_eq!(
        c.conntrack.tcp_established_timeout,
        Some(Duration::from_secs(86400))
    );
}

#[test]
fn next_to_the_configmap_only_hostname_and_logging_flags_apply_as_in_kube_proxy() {
    let loaded = config::load(&args(&[
        "--hostname-override=worker-3",
        "--ipvs-scheduler=lc",
        "--ipvs-strict-arp",
        "--v=2",
    ]))
    .expect("loads");
    assert_eq!(loaded.config.hostname_override.as_deref(), Some("worker-3"));
    assert_eq!(loaded.config.verbosity, 2);
    // The file's ipvs.scheduler and ipvs.strictARP apply; the flags are named as ignored.
    assert_eq!(loaded.config.scheduler.name(), "rr");
    assert!(!loaded.config.strict_arp);
    let ignored: Vec<&str> = loaded.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(ignored, ["--ipvs-scheduler", "--ipvs-strict-arp"]);
    let node = config::resolve_node_name(
        loaded.config.hostname_override.as_deref(),
        Some("ignored"),
        || Err("not needed".into()),
    )
    .unwrap();
    assert_eq!(node.name, "worker-3");
}

#[test]
fn the_configuration_inside_can_be_loaded_bare() {
    let text = std::fs::read_to_string(fixture()).unwrap();
    let from_map = config::parse_str(&text).unwrap();
    assert_eq!(from_map.configmap_key.as_deref(), Some("config.conf"));
    // Write the inner document to a file of its own: the same configuration comes out.
    let cm: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let inner = cm["data"]["config.conf"].as_str().unwrap();
    let path =
        std::env::temp_dir().join(format!("kube-ipvs-config-test-{}.conf", std::process::id()));
    std::fs::write(&path, inner).unwrap();
    let bare = config::load_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(bare.unwrap().config, from_map.config);
}

#[test]
fn errors_in_the_file_name_the_file_and_the_field() {
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("excludeCIDRs: null", "excludeCIDRs: [10.0.0.0/8, 10.0.0/8]");
    let path =
        std::env::temp_dir().join(format!("kube-ipvs-config-bad-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let argv = format!("--config={}", path.display());
    let err = config::load(
        &Cli::try_parse_from(["kube-ipvs", argv.as_str()])
            .unwrap()
            .run,
    );
    std::fs::remove_file(&path).unwrap();
    let err = err.expect_err("invalid CIDR must stop startup");
    assert!(matches!(err, ConfigError::InFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("ipvs.excludeCIDRs[1]: invalid CIDR \"10.0.0/8\""),
        "{msg}"
    );
}

/// A YAML error inside `config.conf` names the ConfigMap and the key, and says where the key's
/// text starts in the file (the parser counts lines from there).
#[test]
fn a_yaml_error_inside_the_configmap_names_it_the_key_and_the_file_line() {
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("clusterCIDR: 10.244.0.0/16", "clusterCIDR: [10.244.0.0/16");
    let e = config::parse_str(&text).unwrap_err().to_string();
    assert!(e.contains("kube-proxy"), "{e}");
    assert!(e.contains("\"config.conf\""), "{e}");
    assert!(e.contains("line 8 of the file"), "{e}");
}
