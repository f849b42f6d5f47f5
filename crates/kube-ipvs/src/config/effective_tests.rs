//! Tests of `effective.rs`: defaults, file values, flag precedence, and errors naming fields.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::config::file::parse_str;

#[derive(Debug, Parser)]
#[command(args_override_self = true)]
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
    assert_eq!(c.scheduler, Scheduler::Rr);
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
    // The notes: without a cluster CIDR, pod traffic cannot be told apart; no mode given (kube-proxy
    // would run iptables).
    let fields: Vec<&str> = l.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["clusterCIDR", "mode"]);
    assert_eq!(c.node_port_range, 30000..=32767);
    assert_eq!(
        (c.verbosity, c.init_only, c.master.as_deref()),
        (0, false, None)
    );
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
    assert_eq!(c.scheduler, Scheduler::Wlc);
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
fn with_a_file_the_flags_bound_to_its_fields_are_ignored_as_in_kube_proxy() {
    let yaml = format!(
        "{HEADER}mode: ipvs\nipvs:\n  scheduler: wlc\n  syncPeriod: 1m\n  minSyncPeriod: 5s\n  strictARP: true\n\
         \x20 excludeCIDRs: [10.1.0.0/16]\n  tcpTimeout: 10m\n\
         iptables: {{masqueradeAll: true, masqueradeBit: 13}}\n\
         clusterCIDR: 10.244.0.0/16\nnodePortAddresses: [primary]\n\
         healthzBindAddress: 0.0.0.0:1111\nmetricsBindAddress: 0.0.0.0:2222\n\
         hostnameOverride: from-file\nclientConnection: {{kubeconfig: /file/kubeconfig}}\n\
         logging: {{format: json, verbosity: 1}}\n"
    );
    let from_file = load(Some(&yaml), &[]).unwrap().config;
    assert_eq!(
        (
            from_file.scheduler.name(),
            from_file.sync.period,
            from_file.sync.min,
            from_file.strict_arp,
            from_file.masquerade_all
        ),
        (
            "wlc",
            Duration::from_secs(60),
            Duration::from_secs(5),
            true,
            true
        )
    );
    assert_eq!(from_file.node_port_addresses, NodePortAddresses::Primary);
    assert_eq!(from_file.verbosity, 1);
    // kube-proxy's Options.Complete replaces its configuration with the file's: every flag bound
    // to a field is ignored (each named in a warning); --hostname-override and the logging flags
    // apply over the file; flags that are not fields apply.
    let l = load(
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
            "--kubeconfig=/flag/kubeconfig",
            "--proxy-mode=iptables",
            "--conntrack-min=1",
            "--healthz-port=0",
            "--hostname-override=from-flag",
            "--log-format=text",
            "--v=4",
            "--master=https://10.0.0.1:6443",
            "--drain-limit=1m",
        ],
    )
    .unwrap();
    let c = &l.config;
    let mut same = from_file.clone();
    same.hostname_override = Some("from-flag".into());
    same.log_format = LogFormat::Text;
    same.verbosity = 4;
    same.master = Some("https://10.0.0.1:6443".into());
    same.drain_limit = Some(Duration::from_secs(60));
    assert_eq!(c, &same);
    let ignored: Vec<&str> = l
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("ignored because --config is given"))
        .map(|w| w.field.as_str())
        .collect();
    assert_eq!(
        ignored,
        [
            "--cluster-cidr",
            "--conntrack-min",
            "--healthz-bind-address",
            "--healthz-port",
            "--iptables-masquerade-bit",
            "--ipvs-exclude-cidrs",
            "--ipvs-min-sync-period",
            "--ipvs-scheduler",
            "--ipvs-strict-arp",
            "--ipvs-sync-period",
            "--ipvs-tcp-timeout",
            "--kubeconfig",
            "--masquerade-all",
            "--metrics-bind-address",
            "--nodeport-addresses",
            "--proxy-mode",
        ]
    );
}

#[test]
fn without_a_file_the_flags_set_the_fields() {
    let c = load(
        None,
        &[
            "--ipvs-scheduler=sh",
            "--ipvs-sync-period=10s",
            "--ipvs-strict-arp",
            "--ipvs-exclude-cidrs=10.1.0.0/16",
            "--ipvs-exclude-cidrs=10.2.0.0/16",
            "--masquerade-all",
            "--iptables-masquerade-bit=12",
            "--cluster-cidr=10.0.0.0/8",
            "--nodeport-addresses=10.0.0.0/8",
            "--metrics-bind-address=127.0.0.1",
            "--healthz-bind-address=0.0.0.0",
            "--healthz-port=12345",
            "--metrics-port=0",
            "--kubeconfig=/flag/kubeconfig",
            "--bind-address=fd00::10",
            "--bind-address-hard-fail",
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0s",
            "--conntrack-tcp-be-liberal",
            "--conntrack-udp-timeout=30s",
            "--proxy-mode=ipvs",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.scheduler, Scheduler::Sh);
    assert_eq!(c.sync.period, Duration::from_secs(10));
    assert!(c.strict_arp && c.masquerade_all && c.bind_address_hard_fail);
    assert_eq!(c.exclude_cidrs.len(), 2, "a repeated list flag extends");
    assert_eq!(c.masquerade_bit.bit(), 12);
    assert_eq!(
        c.local_detection,
        LocalDetection::ClusterCidr(vec!["10.0.0.0/8".parse().unwrap()])
    );
    assert_eq!(
        c.node_port_addresses,
        NodePortAddresses::Cidrs(vec!["10.0.0.0/8".parse().unwrap()])
    );
    // --healthz-port fills in the port the address flag left out; --metrics-port=0 disables.
    assert_eq!(c.healthz_bind_address, addr("0.0.0.0:12345"));
    assert_eq!(c.metrics_bind_address, None);
    assert_eq!(c.kubeconfig, Some("/flag/kubeconfig".into()));
    assert_eq!(c.node_ip_override, Some("fd00::10".parse().unwrap()));
    assert_eq!(
        c.conntrack,
        ConntrackSettings {
            max_per_core: None,
            tcp_established_timeout: None,
            tcp_be_liberal: true,
            udp_timeout: Some(Duration::from_secs(30)),
            ..ConntrackSettings::default()
        }
    );
    assert_eq!(c.proxy_mode, "ipvs");
}

#[test]
fn every_flag_bound_to_a_field_is_dropped_with_a_file() {
    // Each stock flag the catalogue marks as a configuration field (or one only used without
    // --config) and RunArgs applies: given with a file, it is ignored with a warning.
    use crate::config::stock_flags::{Handling, Precedence, STOCK_FLAGS};
    let value = |name: &str| -> &'static str {
        match name {
            "proxy-mode" => "ipvs",
            "kubeconfig" => "/k",
            "bind-address" => "10.0.0.1",
            "healthz-bind-address" | "metrics-bind-address" => "127.0.0.1:1",
            "bind-address-hard-fail"
            | "masquerade-all"
            | "ipvs-strict-arp"
            | "conntrack-tcp-be-liberal" => "true",
            "iptables-masquerade-bit" => "3",
            "ipvs-scheduler" => "rr",
            "ipvs-exclude-cidrs" | "cluster-cidr" | "nodeport-addresses" => "10.0.0.0/8",
            "detect-local-mode" => "NodeCIDR",
            "pod-bridge-interface" => "br0",
            "pod-interface-name-prefix" => "veth",
            "conntrack-max-per-core" | "conntrack-min" | "healthz-port" | "metrics-port" => "1",
            _ => "1s",
        }
    };
    let gated: Vec<&str> = STOCK_FLAGS
        .iter()
        .filter(|f| f.handling == Handling::Applied)
        .filter(|f| {
            matches!(
                f.precedence,
                Precedence::ConfigField | Precedence::WithoutConfig
            )
        })
        .map(|f| f.name)
        .collect();
    assert!(gated.len() > 25, "{gated:?}");
    let args: Vec<String> = gated
        .iter()
        .map(|n| format!("--{n}={}", value(n)))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let l = load(Some(&format!("{HEADER}mode: ipvs\n")), &args).unwrap();
    let mut ignored: Vec<&str> = l
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("ignored because --config is given"))
        .map(|w| w.field.trim_start_matches("--"))
        .collect();
    ignored.sort_unstable();
    let mut want = gated.clone();
    want.sort_unstable();
    assert_eq!(ignored, want);
    assert_eq!(
        l.config,
        load(Some(&format!("{HEADER}mode: ipvs\n")), &[])
            .unwrap()
            .config
    );
}

#[test]
fn inert_flags_get_one_warning_each() {
    let l = load(
        None,
        &[
            "--oom-score-adj=-998",
            "--feature-gates=A=true,B=false",
            "--iptables-sync-period=1m",
            "--logtostderr",
            "--cluster-cidr=10.0.0.0/8",
            "--proxy-mode=ipvs",
        ],
    )
    .unwrap();
    let got: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[0].starts_with("--feature-gates: ") && got[0].ends_with("(A=true,B=false)"));
    assert!(got[1].starts_with("--iptables-sync-period: applies to kube-proxy's iptables"));
    assert!(got[2].starts_with("--logtostderr: a klog flag"));
    assert!(got[3].starts_with("--oom-score-adj: "));
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
            "--ipvs-rate-estimation=false",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.ipvs_rate_estimation, Some(false));
    assert_eq!(
        load(None, &[]).unwrap().config.ipvs_rate_estimation,
        None,
        "unset: the kernel's setting stays, as stock"
    );
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
            "mode: userspace\n",
            &[],
            "mode: \"userspace\" is not a Linux proxy mode",
        ),
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
    // Without a file, the flags' own cross-field errors name the flag.
    let err = load(None, &["--ipvs-min-sync-period=1m"])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--ipvs-min-sync-period: minimum sync period 1m0s exceeds"),
        "{err}"
    );
    let err = load(None, &["--detect-local-mode=BridgeInterface"])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--pod-bridge-interface: required"), "{err}");
    let err = load(None, &["--hostname-override=  "])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "--hostname-override: empty hostname-override is invalid"
    );
}

#[test]
fn other_modes_run_ipvs_with_one_notice() {
    for (body, args, field) in [
        ("mode: iptables\n", &[][..], "mode"),
        ("mode: \"\"\n", &[][..], "mode"),
        ("mode: nftables\n", &[][..], "mode"),
        ("", &["--proxy-mode=iptables"][..], "mode"),
    ] {
        let file = format!("{HEADER}{body}clusterCIDR: 10.0.0.0/8\n");
        let l = load(Some(&file), args).unwrap();
        let fields: Vec<&str> = l.warnings.iter().map(|w| w.field.as_str()).collect();
        let want: &[&str] = if args.is_empty() {
            &[field]
        } else {
            // --proxy-mode is ignored next to --config (warned), and the file sets no mode.
            &["--proxy-mode", field]
        };
        assert_eq!(fields, want, "{body} {args:?}");
    }
    let l = load(
        None,
        &["--proxy-mode=nftables", "--cluster-cidr=10.0.0.0/8"],
    )
    .unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].field, "--proxy-mode");
    assert!(
        l.warnings[0]
            .message
            .contains("tables (ip and ip6 \"kube-proxy\")")
    );
    let err = load(None, &["--proxy-mode=kernelspace"])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--proxy-mode: \"kernelspace\" is not a Linux proxy mode"),
        "{err}"
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
         clusterCIDR: 10.0.0.0/8\nmode: ipvs\n"
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

/// Stock accepts any positive period; a period of nanoseconds makes the full repair (a full kernel
/// read) run back to back, so it is said, not taken silently.
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
