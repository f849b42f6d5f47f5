//! Tests of `effective.rs`: defaults, file values, flag precedence, and errors naming fields.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::config::file::parse_str;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn flags(args: &[&str]) -> RunArgs {
    Cli::try_parse_from(std::iter::once("kube-ipvs").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .run
}

fn load(yaml: Option<&str>, args: &[&str]) -> Result<Loaded, ConfigError> {
    let file = yaml.map(|y| parse_str(y).unwrap_or_else(|e| panic!("{y}: {e}")));
    resolve(file.as_ref(), &flags(args))
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

const HEADER: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

#[test]
fn stock_defaults_without_file_or_flags() {
    let l = load(None, &[]).unwrap();
    let c = &l.config;
    assert_eq!(
        c.sync,
        SyncPeriods {
            period: Duration::from_secs(30),
            min: Duration::ZERO
        }
    );
    assert_eq!(c.scheduler.as_str(), "rr");
    assert_eq!(c.masquerade_bit.mark(), 0x4000);
    assert_eq!(c.healthz_bind_address, addr("0.0.0.0:10256"));
    assert_eq!(c.metrics_bind_address, addr("127.0.0.1:10249"));
    assert_eq!(c.node_port_addresses, NodePortAddresses::All);
    assert_eq!(c.ipvs_timeouts, IpvsTimeouts::default());
    assert_eq!(c.conntrack, ConntrackSettings::default());
    assert_eq!(c.conntrack.max_per_core, Some(32768));
    assert_eq!(c.dummy_device.as_str(), "kube-ipvs0");
    assert_eq!(c.drain_limit, Some(Duration::from_secs(900)));
    assert!(!c.bind_cluster_ips && !c.strict_local && !c.cleanup && !c.strict_arp);
    assert_eq!(c.source, Source::Kubernetes);
    assert_eq!(c.local_detection, LocalDetection::Disabled);
    // The only note: without a cluster CIDR, pod traffic cannot be told apart.
    let fields: Vec<&str> = l.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["clusterCIDR"]);
}

#[test]
fn every_honoured_field_is_read_from_the_file() {
    let yaml = format!(
        "{HEADER}mode: ipvs\n\
         bindAddress: \"::\"\n\
         hostnameOverride: node-7\n\
         clientConnection: {{kubeconfig: /etc/kubeconfig}}\n\
         serviceProxyName: special\n\
         bindAddressHardFail: true\n\
         ipvs:\n  scheduler: wlc\n  syncPeriod: 1m0s\n  minSyncPeriod: 2s\n  strictARP: true\n\
         \x20 excludeCIDRs: [10.1.0.0/16, 'fd00::/8']\n  tcpTimeout: 15m\n  tcpFinTimeout: 2m\n  udpTimeout: 5m\n\
         iptables: {{masqueradeBit: 13, masqueradeAll: true}}\n\
         clusterCIDR: 10.244.0.0/16,fd00:10:244::/56\n\
         nodePortAddresses: [192.168.0.0/16]\n\
         metricsBindAddress: 0.0.0.0:9999\n\
         conntrack: {{maxPerCore: 0, min: 5, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 30m, tcpBeLiberal: true, udpTimeout: 30s, udpStreamTimeout: 2m}}\n\
         logging: {{format: json}}\n"
    );
    let l = load(Some(&yaml), &[]).unwrap();
    assert_eq!(l.warnings, vec![], "{:?}", l.warnings);
    let c = l.config;
    assert_eq!(c.scheduler.as_str(), "wlc");
    assert_eq!(
        c.sync,
        SyncPeriods {
            period: Duration::from_secs(60),
            min: Duration::from_secs(2)
        }
    );
    assert!(c.strict_arp && c.masquerade_all && c.bind_address_hard_fail);
    assert_eq!(c.exclude_cidrs.len(), 2);
    assert_eq!(
        c.ipvs_timeouts,
        IpvsTimeouts {
            tcp: Some(Duration::from_secs(900)),
            tcp_fin: Some(Duration::from_secs(120)),
            udp: Some(Duration::from_secs(300)),
        }
    );
    assert_eq!(c.masquerade_bit.bit(), 13);
    assert!(matches!(&c.local_detection, LocalDetection::ClusterCidr(v) if v.len() == 2));
    assert_eq!(
        c.node_port_addresses,
        NodePortAddresses::Cidrs(vec!["192.168.0.0/16".parse().unwrap()])
    );
    // An IPv6 bindAddress moves the healthz default to [::]; the metrics address was given.
    assert_eq!(c.healthz_bind_address, addr("[::]:10256"));
    assert_eq!(c.metrics_bind_address, addr("0.0.0.0:9999"));
    assert_eq!(c.node_ip_override, None, ":: means not overridden");
    assert_eq!(c.hostname_override.as_deref(), Some("node-7"));
    assert_eq!(c.kubeconfig, Some("/etc/kubeconfig".into()));
    assert_eq!(c.service_proxy_name.as_deref(), Some("special"));
    assert_eq!(
        c.conntrack,
        ConntrackSettings {
            max_per_core: None,
            min: 5,
            tcp_established_timeout: None,
            tcp_close_wait_timeout: Some(Duration::from_secs(1800)),
            tcp_be_liberal: true,
            udp_timeout: Some(Duration::from_secs(30)),
            udp_stream_timeout: Some(Duration::from_secs(120)),
        }
    );
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn flags_override_the_file_and_the_file_overrides_defaults() {
    let yaml = format!(
        "{HEADER}ipvs:\n  scheduler: wlc\n  syncPeriod: 1m\n  minSyncPeriod: 5s\n  strictARP: true\n\
         \x20 excludeCIDRs: [10.1.0.0/16]\n  tcpTimeout: 10m\n\
         iptables: {{masqueradeAll: true, masqueradeBit: 13}}\n\
         clusterCIDR: 10.244.0.0/16\nnodePortAddresses: [primary]\n\
         healthzBindAddress: 0.0.0.0:1111\nmetricsBindAddress: 0.0.0.0:2222\n\
         hostnameOverride: from-file\nclientConnection: {{kubeconfig: /file/kubeconfig}}\n\
         logging: {{format: json}}\n"
    );
    // The file alone.
    let c = load(Some(&yaml), &[]).unwrap().config;
    assert_eq!(
        (
            c.scheduler.as_str(),
            c.sync.period,
            c.sync.min,
            c.strict_arp,
            c.masquerade_all
        ),
        (
            "wlc",
            Duration::from_secs(60),
            Duration::from_secs(5),
            true,
            true
        )
    );
    assert_eq!(c.node_port_addresses, NodePortAddresses::Primary);
    // Flags on top: each one wins.
    let c = load(
        Some(&yaml),
        &[
            "--ipvs-scheduler=sh",
            "--ipvs-sync-period=10s",
            "--ipvs-min-sync-period=0s",
            "--ipvs-strict-arp=false",
            "--ipvs-exclude-cidrs=",
            "--ipvs-tcp-timeout=0s",
            "--masquerade-all=false",
            "--iptables-masquerade-bit=12",
            "--cluster-cidr=10.0.0.0/8",
            "--nodeport-addresses=10.0.0.0/8",
            "--healthz-bind-address=",
            "--metrics-bind-address=127.0.0.1",
            "--hostname-override=from-flag",
            "--kubeconfig=/flag/kubeconfig",
            "--log-format=text",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.scheduler.as_str(), "sh");
    assert_eq!(
        c.sync,
        SyncPeriods {
            period: Duration::from_secs(10),
            min: Duration::ZERO
        }
    );
    assert!(!c.strict_arp && !c.masquerade_all);
    assert_eq!(c.exclude_cidrs, vec![]);
    assert_eq!(c.ipvs_timeouts.tcp, None);
    assert_eq!(c.masquerade_bit.bit(), 12);
    assert_eq!(
        c.local_detection,
        LocalDetection::ClusterCidr(vec!["10.0.0.0/8".parse().unwrap()])
    );
    assert_eq!(
        c.node_port_addresses,
        NodePortAddresses::Cidrs(vec!["10.0.0.0/8".parse().unwrap()])
    );
    assert_eq!(
        c.healthz_bind_address, None,
        "an empty flag disables the server"
    );
    assert_eq!(c.metrics_bind_address, addr("127.0.0.1:10249"));
    assert_eq!(c.hostname_override.as_deref(), Some("from-flag"));
    assert_eq!(c.kubeconfig, Some("/flag/kubeconfig".into()));
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn top_level_sync_periods_win_over_ipvs_ones() {
    let yaml = format!(
        "{HEADER}syncPeriod: 45s\nminSyncPeriod: 1s\nipvs: {{syncPeriod: 1m, minSyncPeriod: 0s}}\n"
    );
    let l = load(Some(&yaml), &[]).unwrap();
    assert_eq!(
        l.config.sync,
        SyncPeriods {
            period: Duration::from_secs(45),
            min: Duration::from_secs(1)
        }
    );
    let notes: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n == "ipvs.syncPeriod: 1m0s is overridden by syncPeriod (45s)"),
        "{notes:?}"
    );
}

#[test]
fn ours_and_their_defaults() {
    let c = load(
        None,
        &[
            "--drain-limit=0s",
            "--strict-local",
            "--dummy-device=kipvs1",
            "--bind-cluster-ips",
            "--service-cluster-ip-range=10.96.0.0/12,fd00:96::/108",
            "--source=file:/tmp/cluster.yaml",
            "--cleanup",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.drain_limit, None, "0 means no limit");
    assert!(c.strict_local && c.bind_cluster_ips && c.cleanup);
    assert_eq!(c.dummy_device.as_str(), "kipvs1");
    assert_eq!(c.service_cluster_ip_ranges.len(), 2);
    assert_eq!(c.source, Source::File("/tmp/cluster.yaml".into()));
}

#[test]
fn invalid_values_name_their_field() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "mode: iptables\n",
            &[],
            "mode: \"iptables\" is not supported",
        ),
        ("mode: nftables\n", &[], "mode: "),
        (
            "ipvs: {excludeCIDRs: [10.0.0.0/8, 10.0.0/8]}\n",
            &[],
            "ipvs.excludeCIDRs[1]: invalid CIDR \"10.0.0/8\"",
        ),
        (
            "ipvs: {scheduler: Round Robin}\n",
            &[],
            "ipvs.scheduler: invalid IPVS scheduler \"Round Robin\"",
        ),
        (
            "ipvs: {syncPeriod: -30s}\n",
            &[],
            "ipvs.syncPeriod: -30s must not be negative",
        ),
        (
            "syncPeriod: -1s\n",
            &[],
            "syncPeriod: -1s must not be negative",
        ),
        ("ipvs: {minSyncPeriod: -1s}\n", &[], "ipvs.minSyncPeriod: "),
        ("ipvs: {tcpTimeout: -1s}\n", &[], "ipvs.tcpTimeout: "),
        ("ipvs: {tcpFinTimeout: -1s}\n", &[], "ipvs.tcpFinTimeout: "),
        ("ipvs: {udpTimeout: -1s}\n", &[], "ipvs.udpTimeout: "),
        (
            "ipvs: {syncPeriod: 10s, minSyncPeriod: 1m}\n",
            &[],
            "ipvs.minSyncPeriod: minimum sync period 1m0s exceeds the sync period 10s (from ipvs.syncPeriod)",
        ),
        (
            "ipvs: {minSyncPeriod: 1m}\n",
            &[],
            "ipvs.minSyncPeriod: minimum sync period 1m0s exceeds the sync period 30s (from the default)",
        ),
        (
            "ipvs: {minSyncPeriod: 5s}\n",
            &["--ipvs-sync-period=1s"],
            "ipvs.minSyncPeriod: minimum sync period 5s exceeds the sync period 1s (from --ipvs-sync-period)",
        ),
        (
            "",
            &["--ipvs-min-sync-period=1m"],
            "--ipvs-min-sync-period: minimum sync period 1m0s exceeds",
        ),
        (
            "iptables: {masqueradeBit: 32}\n",
            &[],
            "iptables.masqueradeBit: masquerade bit 32 is outside 0..=31",
        ),
        (
            "iptables: {masqueradeBit: -1}\n",
            &[],
            "iptables.masqueradeBit: ",
        ),
        (
            "clusterCIDR: 10.244.0.0/33\n",
            &[],
            "clusterCIDR: invalid CIDR",
        ),
        (
            "clusterCIDR: 10.0.0.0/8,10.1.0.0/16\n",
            &[],
            "clusterCIDR: ",
        ),
        (
            "nodePortAddresses: [10.0.0.0/8, eth0]\n",
            &[],
            "nodePortAddresses[1]: invalid CIDR \"eth0\"",
        ),
        (
            "nodePortAddresses: [primary, 10.0.0.0/8]\n",
            &[],
            "nodePortAddresses: \"primary\" cannot be combined",
        ),
        (
            "healthzBindAddress: localhost:10256\n",
            &[],
            "healthzBindAddress: invalid bind address",
        ),
        (
            "metricsBindAddress: 0.0.0.0:99999\n",
            &[],
            "metricsBindAddress: invalid bind address",
        ),
        (
            "bindAddress: node-1\n",
            &[],
            "bindAddress: invalid IP address \"node-1\"",
        ),
        (
            "detectLocalMode: PodCIDR\n",
            &[],
            "detectLocalMode: \"PodCIDR\" is not one of",
        ),
        (
            "detectLocalMode: BridgeInterface\n",
            &[],
            "detectLocal.bridgeInterface: required",
        ),
        (
            "detectLocalMode: InterfaceNamePrefix\n",
            &[],
            "detectLocal.interfaceNamePrefix: required",
        ),
        (
            "conntrack: {maxPerCore: -1}\n",
            &[],
            "conntrack.maxPerCore: -1 must not be negative",
        ),
        (
            "conntrack: {tcpCloseWaitTimeout: -1h}\n",
            &[],
            "conntrack.tcpCloseWaitTimeout: ",
        ),
        (
            "logging: {format: yaml}\n",
            &[],
            "logging.format: invalid log format \"yaml\"",
        ),
    ];
    for (body, args, want) in cases {
        let yaml = format!("{HEADER}{body}");
        let err = load(Some(&yaml), args).expect_err(body).to_string();
        assert!(
            err.starts_with(want),
            "{body} {args:?}:\n got: {err}\nwant: {want}"
        );
    }
}

#[test]
fn proxy_mode_flag_overrides_the_file_mode() {
    let yaml = format!("{HEADER}mode: iptables\nclusterCIDR: 10.0.0.0/8\n");
    assert!(load(Some(&yaml), &[]).is_err());
    let l = load(Some(&yaml), &["--proxy-mode=ipvs"]).unwrap();
    let notes: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        ["mode: \"iptables\" is overridden by --proxy-mode=ipvs"]
    );
}

#[test]
fn local_detection_modes() {
    let c = |body: &str| {
        load(Some(&format!("{HEADER}{body}")), &[])
            .unwrap()
            .config
            .local_detection
    };
    assert_eq!(
        c("detectLocalMode: NodeCIDR\nclusterCIDR: 10.0.0.0/8\n"),
        LocalDetection::NodeCidr
    );
    assert_eq!(
        c("detectLocalMode: BridgeInterface\ndetectLocal: {bridgeInterface: cbr0}\n"),
        LocalDetection::BridgeInterface("cbr0".parse().unwrap())
    );
    assert_eq!(
        c("detectLocalMode: InterfaceNamePrefix\ndetectLocal: {interfaceNamePrefix: veth}\n"),
        LocalDetection::InterfaceNamePrefix("veth".into())
    );
    assert_eq!(
        c("detectLocalMode: ClusterCIDR\nclusterCIDR: 10.0.0.0/8\n"),
        LocalDetection::ClusterCidr(vec!["10.0.0.0/8".parse().unwrap()])
    );
}

#[test]
fn warnings_for_non_applicable_unknown_and_unusual_values() {
    let yaml = format!(
        "{HEADER}iptables: {{syncPeriod: 10s}}\nnftables: {{tableName: kp}}\nfoo: bar\n\
         clusterCIDR: 10.0.0.0/8\n"
    );
    let l = load(Some(&yaml), &[]).unwrap();
    let got: Vec<(WarningKind, &str)> = l
        .warnings
        .iter()
        .map(|w| (w.kind, w.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (WarningKind::UnknownField, "foo"),
            (WarningKind::NotApplicable, "iptables.syncPeriod"),
            (WarningKind::NotApplicable, "nftables.tableName"),
        ]
    );
}

/// Stock accepts any positive period; a period of nanoseconds makes the full repair (a kernel
/// dump) run back to back, so it is said, not taken silently.
#[test]
fn a_sync_period_below_a_second_is_noted() {
    let l = load(Some(&format!("{HEADER}ipvs: {{syncPeriod: 1ns}}\n")), &[]).unwrap();
    let notes: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("ipvs.syncPeriod") && n.contains("sync period 1ns is below 1s")),
        "{notes:#?}"
    );
    let l = load(None, &["--ipvs-sync-period=500ms"]).unwrap();
    assert!(l.warnings.iter().any(|w| w.field == "--ipvs-sync-period"));
    let l = load(None, &["--ipvs-sync-period=1s"]).unwrap();
    assert!(!l.warnings.iter().any(|w| w.field == "--ipvs-sync-period"));
}
