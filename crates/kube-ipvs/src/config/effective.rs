//! The effective configuration: stock defaults, overridden by the `--config` file, overridden by
//! flags. Every value is validated here into a domain type; an invalid one is an error naming the
//! file's field path (`ipvs.excludeCIDRs[1]`) or the flag (`--ipvs-sync-period`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::applicability::not_applicable;
use super::args::{BindFlag, HEALTHZ_PORT, METRICS_PORT, RunArgs};
use super::duration::{GoDuration, format_go};
use super::error::{ConfigError, ConfigWarning, WarningKind};
use super::file::ParsedFile;
use super::kubeproxy::{KubeProxyConfiguration, non_empty, non_zero};
use super::stock_flags::{self, Handling, parse_map_string_bool};
use super::types::{
    InterfaceName, LocalDetection, LogFormat, MasqueradeBit, NodePortAddress, NodePortAddresses,
    Source, parse_bind_address, parse_cidr, parse_cluster_cidrs,
};
use crate::types::Scheduler;

/// Stock `ipvs.syncPeriod`.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(30);
/// Stock `ipvs.minSyncPeriod` for IPVS mode (v1alpha1 leaves it at zero).
pub const DEFAULT_MIN_SYNC_PERIOD: Duration = Duration::ZERO;
/// Our default bound on draining a removed TCP real server.
pub const DEFAULT_DRAIN_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Stock `conntrack.maxPerCore`.
pub const DEFAULT_CONNTRACK_MAX_PER_CORE: u32 = 32 * 1024;
/// Stock `conntrack.min`.
pub const DEFAULT_CONNTRACK_MIN: u32 = 128 * 1024;
/// Stock `conntrack.tcpEstablishedTimeout`.
pub const DEFAULT_TCP_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Stock `conntrack.tcpCloseWaitTimeout`.
pub const DEFAULT_TCP_CLOSE_WAIT_TIMEOUT: Duration = Duration::from_secs(3600);
/// The API server's default `--service-node-port-range`.
pub const DEFAULT_NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// Everything `kube-ipvs run` needs to know, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where cluster state comes from.
    pub source: Source,
    /// `--kubeconfig` / `clientConnection.kubeconfig`; `None` means in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// `--hostname-override` / `hostnameOverride`; see `node_name::resolve_node_name`.
    pub hostname_override: Option<String>,
    /// `--master`: the API server's address, over the kubeconfig's.
    pub master: Option<String>,
    /// `--cleanup`: remove everything and exit.
    pub cleanup: bool,
    /// `--init-only`: the privileged one-shot setup, then exit.
    pub init_only: bool,
    /// `--write-config-to`: write the effective configuration there and exit.
    pub write_config_to: Option<PathBuf>,
    /// `mode` as configured (file or `--proxy-mode`; empty when unset). kube-ipvs always runs
    /// its IPVS proxier; the value says what a previous kube-proxy may have left behind.
    pub proxy_mode: String,
    /// Full repair sync interval and coalescing interval.
    pub sync: SyncPeriods,
    pub scheduler: Scheduler,
    /// Virtual servers inside these ranges are never touched.
    pub exclude_cidrs: Vec<IpNet>,
    pub strict_arp: bool,
    pub ipvs_timeouts: IpvsTimeouts,
    pub masquerade_bit: MasqueradeBit,
    pub masquerade_all: bool,
    pub local_detection: LocalDetection,
    pub node_port_addresses: NodePortAddresses,
    /// `/healthz` and `/livez`; `None` disables the server.
    pub healthz_bind_address: Option<SocketAddr>,
    /// `/metrics`; `None` disables the server.
    pub metrics_bind_address: Option<SocketAddr>,
    /// `bindAddress`: overrides the node's primary IP (the name is historical; nothing binds it).
    pub node_ip_override: Option<IpAddr>,
    /// `bindAddressHardFail`: exit if the health or metrics server cannot bind.
    pub bind_address_hard_fail: bool,
    /// `serviceProxyName`: handle only Services labelled
    /// `service.kubernetes.io/service-proxy-name=<this>` (default: only unlabelled ones).
    pub service_proxy_name: Option<String>,
    pub conntrack: ConntrackSettings,
    /// Longest drain of a removed TCP real server; `None` means no limit.
    pub drain_limit: Option<Duration>,
    /// Local traffic policies without a local endpoint drop instead of falling back.
    pub strict_local: bool,
    /// `net.ipv4.vs.run_estimation` to set (`None`: leave the kernel's, as stock does).
    pub ipvs_rate_estimation: Option<bool>,
    pub dummy_device: InterfaceName,
    /// Bind each ClusterIP to the dummy device (stock) instead of routing the Service CIDRs locally.
    pub bind_cluster_ips: bool,
    /// `--service-cluster-ip-range`, in addition to the ServiceCIDR objects of the API server.
    pub service_cluster_ip_ranges: Vec<IpNet>,
    /// `--service-node-port-range`: node-address virtual servers with a port here are NodePorts.
    pub node_port_range: RangeInclusive<u16>,
    pub log_format: LogFormat,
    /// klog verbosity (`--v`, `logging.verbosity`), mapped to a default log filter.
    pub verbosity: u32,
}

/// Sync timing; `min <= period` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPeriods {
    pub period: Duration,
    pub min: Duration,
}

/// IPVS protocol timeouts set once at startup; `None` leaves the kernel's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpvsTimeouts {
    pub tcp: Option<Duration>,
    pub tcp_fin: Option<Duration>,
    pub udp: Option<Duration>,
}

/// Conntrack sysctls kube-proxy sets; `None` leaves the kernel's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackSettings {
    /// `nf_conntrack_max = max(max_per_core * cpus, min)`; `None` leaves it (and ignores `min`).
    pub max_per_core: Option<u32>,
    pub min: u32,
    pub tcp_established_timeout: Option<Duration>,
    pub tcp_close_wait_timeout: Option<Duration>,
    /// `nf_conntrack_tcp_be_liberal=1`.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_udp_timeout`.
    pub udp_timeout: Option<Duration>,
    /// `nf_conntrack_udp_timeout_stream`.
    pub udp_stream_timeout: Option<Duration>,
}

impl Default for ConntrackSettings {
    fn default() -> Self {
        ConntrackSettings {
            max_per_core: Some(DEFAULT_CONNTRACK_MAX_PER_CORE),
            min: DEFAULT_CONNTRACK_MIN,
            tcp_established_timeout: Some(DEFAULT_TCP_ESTABLISHED_TIMEOUT),
            tcp_close_wait_timeout: Some(DEFAULT_TCP_CLOSE_WAIT_TIMEOUT),
            tcp_be_liberal: false,
            udp_timeout: None,
            udp_stream_timeout: None,
        }
    }
}

impl Default for Config {
    /// The stock defaults, as `kube-proxy --proxy-mode=ipvs` would run with no file and no flags.
    fn default() -> Self {
        Config {
            source: Source::Kubernetes,
            kubeconfig: None,
            hostname_override: None,
            master: None,
            cleanup: false,
            init_only: false,
            write_config_to: None,
            proxy_mode: String::new(),
            sync: SyncPeriods {
                period: DEFAULT_SYNC_PERIOD,
                min: DEFAULT_MIN_SYNC_PERIOD,
            },
            scheduler: Scheduler::Rr,
            exclude_cidrs: Vec::new(),
            strict_arp: false,
            ipvs_timeouts: IpvsTimeouts::default(),
            masquerade_bit: MasqueradeBit::DEFAULT,
            masquerade_all: false,
            local_detection: LocalDetection::Disabled,
            node_port_addresses: NodePortAddresses::All,
            healthz_bind_address: Some(SocketAddr::new([0, 0, 0, 0].into(), HEALTHZ_PORT)),
            metrics_bind_address: Some(SocketAddr::new([127, 0, 0, 1].into(), METRICS_PORT)),
            node_ip_override: None,
            bind_address_hard_fail: false,
            service_proxy_name: None,
            conntrack: ConntrackSettings::default(),
            drain_limit: Some(DEFAULT_DRAIN_LIMIT),
            strict_local: false,
            ipvs_rate_estimation: None,
            dummy_device: InterfaceName::kube_ipvs0(),
            bind_cluster_ips: false,
            service_cluster_ip_ranges: Vec::new(),
            node_port_range: DEFAULT_NODE_PORT_RANGE,
            log_format: LogFormat::Text,
            verbosity: 0,
        }
    }
}

/// The configuration and the warnings to log once at startup (sorted, without duplicates).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
}

/// Where a value came from, for cross-field error messages.
#[derive(Debug, Clone, Copy)]
struct Sourced<T> {
    value: T,
    name: &'static str,
}

fn pick<T>(
    flag: Option<T>,
    flag_name: &'static str,
    file: Option<Sourced<T>>,
    default: T,
) -> Sourced<T> {
    match (flag, file) {
        (Some(value), _) => Sourced {
            value,
            name: flag_name,
        },
        (None, Some(f)) => f,
        (None, None) => Sourced {
            value: default,
            name: "the default",
        },
    }
}

/// The shortest sync period used without a warning.
const MIN_SENSIBLE_SYNC_PERIOD: Duration = Duration::from_secs(1);

/// Resolves the effective configuration with stock kube-proxy's precedence: without `--config`,
/// defaults <- flags; with it, defaults <- file, and the flags bound to configuration fields are
/// ignored (each with a warning), as kube-proxy's `Options.Complete` replaces its configuration
/// with the file's. `--hostname-override` and the logging flags apply over the file; flags that
/// are not configuration fields (`--master`, `--cleanup`, kube-ipvs's own) always apply.
pub fn resolve(file: Option<&ParsedFile>, flags: &RunArgs) -> Result<Loaded, ConfigError> {
    let empty = KubeProxyConfiguration::default();
    let wire = file.map_or(&empty, |f| &f.config);
    let mut warnings: Vec<ConfigWarning> = file.map(|f| f.warnings.clone()).unwrap_or_default();
    warnings.extend(not_applicable(wire));
    warnings.extend(inert_flag_warnings(flags));
    let flags = &applicable_flags(file.is_some(), flags, &mut warnings);
    let f = FileValues::from_wire(wire, &mut warnings)?;
    let d = Config::default();

    let proxy_mode = match (&flags.proxy_mode, non_empty(&wire.mode)) {
        (Some(m), _) => decide_mode(m, "--proxy-mode", &mut warnings)?,
        (None, Some(m)) => decide_mode(m, "mode", &mut warnings)?,
        (None, None) => decide_mode("", "mode", &mut warnings)?,
    };

    let period = pick(
        flags.ipvs_sync_period,
        "--ipvs-sync-period",
        f.sync_period,
        d.sync.period,
    );
    let min = pick(
        flags.ipvs_min_sync_period,
        "--ipvs-min-sync-period",
        f.min_sync_period,
        d.sync.min,
    );
    // Stock accepts any positive period; below a second, full repairs (a full kernel read each, and
    // the retry backoff, which is capped at the period) run back to back: say so.
    if period.value < MIN_SENSIBLE_SYNC_PERIOD {
        warnings.push(ConfigWarning::new(
            WarningKind::Notice,
            period.name,
            format!(
                "sync period {} is below {}: a full repair (one full read of the kernel's tables)                  runs back to back, using a CPU; stock's default is 30s",
                format_go(period.value),
                format_go(MIN_SENSIBLE_SYNC_PERIOD)
            ),
        ));
    }
    if min.value > period.value {
        return Err(ConfigError::invalid(
            min.name,
            format!(
                "minimum sync period {} exceeds the sync period {} (from {})",
                format_go(min.value),
                format_go(period.value),
                period.name
            ),
        ));
    }

    let scheduler = flags.ipvs_scheduler.or(f.scheduler).unwrap_or(d.scheduler);

    let cluster_cidrs = flags.cluster_cidr.clone().map(|c| c.0).or(f.cluster_cidrs);
    let detection = match &flags.detect_local_mode {
        Some(mode) => local_detection_from(
            Some(mode.as_str()),
            flags
                .pod_bridge_interface
                .as_ref()
                .map(InterfaceName::as_str),
            flags.pod_interface_name_prefix.as_deref(),
            [
                "--detect-local-mode",
                "--pod-bridge-interface",
                "--pod-interface-name-prefix",
            ],
        )?,
        None => f.local_detection,
    };
    let local_detection = match detection {
        Some(LocalDetection::ClusterCidr(_)) | None => match cluster_cidrs {
            Some(c) if !c.is_empty() => LocalDetection::ClusterCidr(c),
            _ => {
                warnings.push(ConfigWarning::new(
                    WarningKind::Notice,
                    "clusterCIDR",
                    "not set: kube-ipvs cannot tell pod traffic from external traffic \
                     (set --cluster-cidr, or detectLocalMode NodeCIDR)",
                ));
                LocalDetection::Disabled
            }
        },
        Some(other) => other,
    };

    let service_cluster_ip_ranges = flags
        .service_cluster_ip_range
        .clone()
        .map(|c| c.0)
        .unwrap_or_default();
    let bind_cluster_ips = flags.bind_cluster_ips.unwrap_or(d.bind_cluster_ips);

    // bindAddress picks the family of the default server addresses, as in kube-proxy.
    let bind_address = flags.bind_address.or(f.bind_address);
    let (default_healthz, default_metrics) = if bind_address.is_some_and(|ip| ip.is_ipv6()) {
        (
            Some(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), HEALTHZ_PORT)),
            Some(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), METRICS_PORT)),
        )
    } else {
        (d.healthz_bind_address, d.metrics_bind_address)
    };
    let healthz_bind_address = server_address(
        flags.healthz_bind_address,
        flags.healthz_port,
        f.healthz_bind_address.or(default_healthz),
    );
    let metrics_bind_address = server_address(
        flags.metrics_bind_address,
        flags.metrics_port,
        f.metrics_bind_address.or(default_metrics),
    );

    let node_port_addresses = match flags.node_port_addresses() {
        Some(r) => r.map_err(|e| ConfigError::invalid("--nodeport-addresses", e))?,
        None => f.node_port_addresses.unwrap_or_default(),
    };

    let hostname_override = match &flags.hostname_override {
        // kube-proxy: a flag that trims to nothing is an error, not "unset".
        Some(h) if !h.is_empty() && h.trim().is_empty() => {
            return Err(ConfigError::invalid(
                "--hostname-override",
                "empty hostname-override is invalid",
            ));
        }
        Some(h) if !h.is_empty() => Some(h.clone()),
        _ => f.hostname_override,
    };

    let config = Config {
        source: flags.source.clone().unwrap_or(d.source),
        kubeconfig: flags.kubeconfig.clone().or(f.kubeconfig),
        hostname_override,
        master: flags.master.clone(),
        cleanup: flags.cleanup.unwrap_or(false),
        init_only: flags.init_only.unwrap_or(false),
        write_config_to: flags.write_config_to.clone(),
        proxy_mode,
        sync: SyncPeriods {
            period: period.value,
            min: min.value,
        },
        scheduler,
        exclude_cidrs: flags
            .exclude_cidrs()
            .or(f.exclude_cidrs)
            .unwrap_or_default(),
        strict_arp: flags
            .ipvs_strict_arp
            .or(f.strict_arp)
            .unwrap_or(d.strict_arp),
        ipvs_timeouts: IpvsTimeouts {
            tcp: nonzero(flags.ipvs_tcp_timeout.or(f.ipvs_tcp_timeout)),
            tcp_fin: nonzero(flags.ipvs_tcpfin_timeout.or(f.ipvs_tcp_fin_timeout)),
            udp: nonzero(flags.ipvs_udp_timeout.or(f.ipvs_udp_timeout)),
        },
        masquerade_bit: flags
            .iptables_masquerade_bit
            .or(f.masquerade_bit)
            .unwrap_or(d.masquerade_bit),
        masquerade_all: flags
            .masquerade_all
            .or(f.masquerade_all)
            .unwrap_or(d.masquerade_all),
        local_detection,
        node_port_addresses,
        healthz_bind_address,
        metrics_bind_address,
        // "0.0.0.0" / "::" are the stock default meaning "not overridden".
        node_ip_override: bind_address.filter(|ip| !ip.is_unspecified()),
        bind_address_hard_fail: flags
            .bind_address_hard_fail
            .or(f.bind_address_hard_fail)
            .unwrap_or(false),
        service_proxy_name: f.service_proxy_name,
        conntrack: conntrack_flags(flags, f.conntrack),
        drain_limit: match flags.drain_limit {
            Some(l) => nonzero(Some(l)),
            None => d.drain_limit,
        },
        strict_local: flags.strict_local.unwrap_or(d.strict_local),
        ipvs_rate_estimation: flags.ipvs_rate_estimation.or(d.ipvs_rate_estimation),
        dummy_device: flags.dummy_device.clone().unwrap_or(d.dummy_device),
        bind_cluster_ips,
        service_cluster_ip_ranges,
        node_port_range: flags
            .service_node_port_range
            .clone()
            .unwrap_or(d.node_port_range),
        log_format: flags
            .logging_format
            .or(f.log_format)
            .unwrap_or(d.log_format),
        verbosity: flags.verbosity.or(f.verbosity).unwrap_or(d.verbosity),
    };
    warnings.sort();
    warnings.dedup();
    Ok(Loaded { config, warnings })
}

/// One warning per inert flag given (the catalogue says why it does not apply).
fn inert_flag_warnings(flags: &RunArgs) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    for (name, values) in &flags.inert.given {
        let Some(Handling::Inert(why)) = stock_flags::lookup(name).map(|f| f.handling) else {
            continue;
        };
        let message = if *name == "feature-gates" {
            let gates: Vec<String> = values
                .iter()
                .filter_map(|v| parse_map_string_bool(v).ok())
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{why} ({})", gates.join(","))
        } else {
            why.to_owned()
        };
        out.push(ConfigWarning::new(
            WarningKind::NotApplicable,
            format!("--{name}"),
            message,
        ));
    }
    out
}

/// The flags that apply. With `--config`, kube-proxy replaces its whole configuration with the
/// file's, so the flags bound to configuration fields (and the deprecated --healthz-port and
/// --metrics-port) have no effect: they are dropped here, each with a warning.
pub(crate) fn applicable_flags(
    file_given: bool,
    flags: &RunArgs,
    warnings: &mut Vec<ConfigWarning>,
) -> RunArgs {
    let mut f = flags.clone();
    if !file_given {
        return f;
    }
    let mut dropped: Vec<&'static str> = Vec::new();
    macro_rules! drop_flags {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(if f.$field.take().is_some() { dropped.push($name); })*
        };
    }
    drop_flags!(
        proxy_mode => "proxy-mode",
        kubeconfig => "kubeconfig",
        bind_address => "bind-address",
        healthz_bind_address => "healthz-bind-address",
        metrics_bind_address => "metrics-bind-address",
        bind_address_hard_fail => "bind-address-hard-fail",
        iptables_masquerade_bit => "iptables-masquerade-bit",
        masquerade_all => "masquerade-all",
        ipvs_sync_period => "ipvs-sync-period",
        ipvs_min_sync_period => "ipvs-min-sync-period",
        ipvs_scheduler => "ipvs-scheduler",
        ipvs_exclude_cidrs => "ipvs-exclude-cidrs",
        ipvs_strict_arp => "ipvs-strict-arp",
        ipvs_tcp_timeout => "ipvs-tcp-timeout",
        ipvs_tcpfin_timeout => "ipvs-tcpfin-timeout",
        ipvs_udp_timeout => "ipvs-udp-timeout",
        detect_local_mode => "detect-local-mode",
        pod_bridge_interface => "pod-bridge-interface",
        pod_interface_name_prefix => "pod-interface-name-prefix",
        cluster_cidr => "cluster-cidr",
        nodeport_addresses => "nodeport-addresses",
        conntrack_max_per_core => "conntrack-max-per-core",
        conntrack_min => "conntrack-min",
        conntrack_tcp_timeout_established => "conntrack-tcp-timeout-established",
        conntrack_tcp_timeout_close_wait => "conntrack-tcp-timeout-close-wait",
        conntrack_tcp_be_liberal => "conntrack-tcp-be-liberal",
        conntrack_udp_timeout => "conntrack-udp-timeout",
        conntrack_udp_timeout_stream => "conntrack-udp-timeout-stream",
        healthz_port => "healthz-port",
        metrics_port => "metrics-port",
    );
    for name in dropped {
        let field = stock_flags::lookup(name).map_or("", |f| f.field);
        let message = if field.is_empty() {
            "ignored because --config is given, as in kube-proxy".to_owned()
        } else {
            format!(
                "ignored because --config is given, as in kube-proxy (the file's {field} applies; \
                 set it there)"
            )
        };
        warnings.push(ConfigWarning::new(
            WarningKind::Notice,
            format!("--{name}"),
            message,
        ));
    }
    f
}

/// kube-ipvs runs its IPVS proxier whatever `mode` says: a stock ConfigMap or command line with
/// another Linux mode (kube-proxy's default is iptables) gets one warning saying what that mode
/// leaves behind. Only values kube-proxy itself refuses on Linux are errors.
fn decide_mode(
    mode: &str,
    field: &'static str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<String, ConfigError> {
    let note = match mode {
        "ipvs" => None,
        "" | "iptables" => Some(format!(
            "{}: kube-ipvs runs its IPVS proxier instead of kube-proxy's iptables proxier. If this \
             node ran kube-proxy in iptables mode, remove that mode's leftover chains once the node \
             is migrated (deploy/cleanup-iptables-mode.sh, see deploy/MIGRATING.md)",
            if mode.is_empty() {
                "not set (kube-proxy's default is iptables)".to_owned()
            } else {
                format!("{mode:?}")
            }
        )),
        "nftables" => Some(
            "\"nftables\": kube-ipvs runs its IPVS proxier instead; after its first sync it deletes \
             the nftables proxier's tables (ip and ip6 \"kube-proxy\"), as kube-proxy's IPVS mode \
             does at start"
                .to_owned(),
        ),
        other => {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "{other:?} is not a Linux proxy mode (iptables, ipvs, nftables); kube-ipvs \
                     runs IPVS: set it to \"ipvs\""
                ),
            ));
        }
    };
    if let Some(message) = note {
        warnings.push(ConfigWarning::new(WarningKind::Notice, field, message));
    }
    Ok(mode.to_owned())
}

/// A server address: the flag (empty disables), else the file's or the default; the deprecated
/// port flag disables with 0 and otherwise fills in a port the flag's address did not name
/// (kube-proxy's `addressFromDeprecatedFlags`).
fn server_address(
    flag: Option<BindFlag>,
    port: Option<u16>,
    otherwise: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let (addr, port_given) = match flag {
        Some(BindFlag(addr, given)) => (addr, given),
        None => (otherwise, true),
    };
    match port {
        Some(0) => None,
        Some(p) if !port_given => addr.map(|a| SocketAddr::new(a.ip(), p)),
        _ => addr,
    }
}

/// The conntrack settings: the file's (or the defaults), then the flags (only given without
/// `--config`; `applicable_flags` drops them otherwise).
fn conntrack_flags(flags: &RunArgs, mut s: ConntrackSettings) -> ConntrackSettings {
    if let Some(v) = flags.conntrack_max_per_core {
        s.max_per_core = (v != 0).then_some(v);
    }
    if let Some(v) = flags.conntrack_min {
        s.min = v;
    }
    if let Some(d) = flags.conntrack_tcp_timeout_established {
        s.tcp_established_timeout = nonzero(Some(d));
    }
    if let Some(d) = flags.conntrack_tcp_timeout_close_wait {
        s.tcp_close_wait_timeout = nonzero(Some(d));
    }
    if let Some(b) = flags.conntrack_tcp_be_liberal {
        s.tcp_be_liberal = b;
    }
    if let Some(d) = flags.conntrack_udp_timeout {
        s.udp_timeout = nonzero(Some(d));
    }
    if let Some(d) = flags.conntrack_udp_timeout_stream {
        s.udp_stream_timeout = nonzero(Some(d));
    }
    s
}

fn nonzero(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero())
}

/// The honoured fields of the file, validated; `None` where the file leaves the stock default.
#[derive(Debug, Default)]
struct FileValues {
    sync_period: Option<Sourced<Duration>>,
    min_sync_period: Option<Sourced<Duration>>,
    scheduler: Option<Scheduler>,
    exclude_cidrs: Option<Vec<IpNet>>,
    strict_arp: Option<bool>,
    ipvs_tcp_timeout: Option<Duration>,
    ipvs_tcp_fin_timeout: Option<Duration>,
    ipvs_udp_timeout: Option<Duration>,
    masquerade_bit: Option<MasqueradeBit>,
    masquerade_all: Option<bool>,
    cluster_cidrs: Option<Vec<IpNet>>,
    local_detection: Option<LocalDetection>,
    node_port_addresses: Option<NodePortAddresses>,
    healthz_bind_address: Option<SocketAddr>,
    metrics_bind_address: Option<SocketAddr>,
    /// `bindAddress` as written (`0.0.0.0` included).
    bind_address: Option<IpAddr>,
    bind_address_hard_fail: Option<bool>,
    hostname_override: Option<String>,
    kubeconfig: Option<PathBuf>,
    service_proxy_name: Option<String>,
    conntrack: ConntrackSettings,
    log_format: Option<LogFormat>,
    verbosity: Option<u32>,
}

impl FileValues {
    /// Validates the honoured fields (`mode` is decided by `decide_mode`).
    fn from_wire(
        c: &KubeProxyConfiguration,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<Self, ConfigError> {
        let mut v = FileValues::default();
        let ipvs = c.ipvs.clone().unwrap_or_default();
        let ipt = c.iptables.clone().unwrap_or_default();

        // Sync periods: the newer top-level fields win over the ipvs ones.
        v.sync_period = first_duration(&[
            ("syncPeriod", &c.sync_period),
            ("ipvs.syncPeriod", &ipvs.sync_period),
        ])?;
        v.min_sync_period = first_duration(&[
            ("minSyncPeriod", &c.min_sync_period),
            ("ipvs.minSyncPeriod", &ipvs.min_sync_period),
        ])?;
        for (top, nested, a, b) in [
            (
                "syncPeriod",
                "ipvs.syncPeriod",
                &c.sync_period,
                &ipvs.sync_period,
            ),
            (
                "minSyncPeriod",
                "ipvs.minSyncPeriod",
                &c.min_sync_period,
                &ipvs.min_sync_period,
            ),
        ] {
            if let (Some(a), Some(b)) = (non_zero(a), non_zero(b))
                && a != b
            {
                warnings.push(ConfigWarning::new(
                    WarningKind::Notice,
                    nested,
                    format!("{b} is overridden by {top} ({a})"),
                ));
            }
        }

        v.scheduler = non_empty(&ipvs.scheduler)
            .map(|s| Scheduler::from_str(s).map_err(|e| ConfigError::invalid("ipvs.scheduler", e)))
            .transpose()?;
        v.exclude_cidrs = ipvs
            .exclude_cidrs
            .as_ref()
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        parse_cidr(s)
                            .map_err(|e| ConfigError::invalid(format!("ipvs.excludeCIDRs[{i}]"), e))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        v.strict_arp = ipvs.strict_arp;
        v.ipvs_tcp_timeout = non_negative("ipvs.tcpTimeout", &ipvs.tcp_timeout)?;
        v.ipvs_tcp_fin_timeout = non_negative("ipvs.tcpFinTimeout", &ipvs.tcp_fin_timeout)?;
        v.ipvs_udp_timeout = non_negative("ipvs.udpTimeout", &ipvs.udp_timeout)?;

        v.masquerade_bit = ipt
            .masquerade_bit
            .map(|b| {
                MasqueradeBit::new(i64::from(b))
                    .map_err(|e| ConfigError::invalid("iptables.masqueradeBit", e))
            })
            .transpose()?;
        v.masquerade_all = ipt.masquerade_all;

        v.cluster_cidrs = non_empty(&c.cluster_cidr)
            .map(|s| parse_cluster_cidrs(s).map_err(|e| ConfigError::invalid("clusterCIDR", e)))
            .transpose()?;
        let dl = c.detect_local.clone().unwrap_or_default();
        v.local_detection = local_detection_from(
            non_empty(&c.detect_local_mode),
            non_empty(&dl.bridge_interface),
            non_empty(&dl.interface_name_prefix),
            [
                "detectLocalMode",
                "detectLocal.bridgeInterface",
                "detectLocal.interfaceNamePrefix",
            ],
        )?;
        v.node_port_addresses = c
            .node_port_addresses
            .as_ref()
            .map(|list| {
                let entries = list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        NodePortAddress::from_str(s)
                            .map_err(|e| ConfigError::invalid(format!("nodePortAddresses[{i}]"), e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                NodePortAddresses::from_entries(&entries)
                    .map_err(|e| ConfigError::invalid("nodePortAddresses", e))
            })
            .transpose()?;

        v.bind_address = non_empty(&c.bind_address)
            .map(|s| {
                IpAddr::from_str(s).map_err(|_| {
                    ConfigError::invalid("bindAddress", format!("invalid IP address {s:?}"))
                })
            })
            .transpose()?;
        v.healthz_bind_address = non_empty(&c.healthz_bind_address)
            .map(|s| {
                parse_bind_address(s, HEALTHZ_PORT)
                    .map_err(|e| ConfigError::invalid("healthzBindAddress", e))
            })
            .transpose()?;
        v.metrics_bind_address = non_empty(&c.metrics_bind_address)
            .map(|s| {
                parse_bind_address(s, METRICS_PORT)
                    .map_err(|e| ConfigError::invalid("metricsBindAddress", e))
            })
            .transpose()?;
        v.bind_address_hard_fail = c.bind_address_hard_fail;

        v.hostname_override = non_empty(&c.hostname_override).map(str::to_owned);
        v.kubeconfig = c
            .client_connection
            .as_ref()
            .and_then(|cc| non_empty(&cc.kubeconfig))
            .map(PathBuf::from);
        v.service_proxy_name = non_empty(&c.service_proxy_name).map(str::to_owned);
        v.conntrack = conntrack(c)?;
        v.log_format = c
            .logging
            .as_ref()
            .and_then(|l| non_empty(&l.format))
            .map(|s| LogFormat::from_str(s).map_err(|e| ConfigError::invalid("logging.format", e)))
            .transpose()?;
        v.verbosity = c.logging.as_ref().and_then(|l| l.verbosity);
        Ok(v)
    }
}

/// The first non-zero of the named durations (Go's "0s" means unset), which must be positive.
fn first_duration(
    fields: &[(&'static str, &Option<GoDuration>)],
) -> Result<Option<Sourced<Duration>>, ConfigError> {
    for (name, value) in fields {
        if let Some(d) = non_zero(value) {
            let value = d
                .non_negative()
                .ok_or_else(|| ConfigError::invalid(*name, format!("{d} must not be negative")))?;
            return Ok(Some(Sourced { value, name }));
        }
    }
    Ok(None)
}

fn non_negative(field: &str, d: &Option<GoDuration>) -> Result<Option<Duration>, ConfigError> {
    d.map(|d| {
        d.non_negative()
            .ok_or_else(|| ConfigError::invalid(field, format!("{d} must not be negative")))
    })
    .transpose()
}

/// `detectLocalMode` with its parameter; `names` are how the three inputs are called in errors
/// (file fields or flags).
fn local_detection_from(
    mode: Option<&str>,
    bridge: Option<&str>,
    prefix: Option<&str>,
    names: [&'static str; 3],
) -> Result<Option<LocalDetection>, ConfigError> {
    let [mode_name, bridge_name, prefix_name] = names;
    let Some(mode) = mode.filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    match mode {
        "ClusterCIDR" => Ok(Some(LocalDetection::ClusterCidr(Vec::new()))),
        "NodeCIDR" => Ok(Some(LocalDetection::NodeCidr)),
        "BridgeInterface" => {
            let name = bridge.filter(|b| !b.is_empty()).ok_or_else(|| {
                ConfigError::invalid(
                    bridge_name,
                    "required when detectLocalMode is BridgeInterface",
                )
            })?;
            let name =
                InterfaceName::from_str(name).map_err(|e| ConfigError::invalid(bridge_name, e))?;
            Ok(Some(LocalDetection::BridgeInterface(name)))
        }
        "InterfaceNamePrefix" => {
            let prefix = prefix.filter(|p| !p.is_empty()).ok_or_else(|| {
                ConfigError::invalid(
                    prefix_name,
                    "required when detectLocalMode is InterfaceNamePrefix",
                )
            })?;
            Ok(Some(LocalDetection::InterfaceNamePrefix(prefix.to_owned())))
        }
        other => Err(ConfigError::invalid(
            mode_name,
            format!(
                "{other:?} is not one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix"
            ),
        )),
    }
}

fn conntrack(c: &KubeProxyConfiguration) -> Result<ConntrackSettings, ConfigError> {
    let mut s = ConntrackSettings::default();
    let Some(ct) = &c.conntrack else {
        return Ok(s);
    };
    let count = |field: &str, v: i32| {
        u32::try_from(v)
            .map_err(|_| ConfigError::invalid(field, format!("{v} must not be negative")))
    };
    if let Some(v) = ct.max_per_core {
        let v = count("conntrack.maxPerCore", v)?;
        s.max_per_core = (v != 0).then_some(v);
    }
    if let Some(v) = ct.min {
        s.min = count("conntrack.min", v)?;
    }
    // Pointer fields in Go: absent keeps the default, an explicit 0 leaves the kernel's value.
    if ct.tcp_established_timeout.is_some() {
        s.tcp_established_timeout = nonzero(non_negative(
            "conntrack.tcpEstablishedTimeout",
            &ct.tcp_established_timeout,
        )?);
    }
    if ct.tcp_close_wait_timeout.is_some() {
        s.tcp_close_wait_timeout = nonzero(non_negative(
            "conntrack.tcpCloseWaitTimeout",
            &ct.tcp_close_wait_timeout,
        )?);
    }
    s.tcp_be_liberal = ct.tcp_be_liberal.unwrap_or(false);
    s.udp_timeout = nonzero(non_negative("conntrack.udpTimeout", &ct.udp_timeout)?);
    s.udp_stream_timeout = nonzero(non_negative(
        "conntrack.udpStreamTimeout",
        &ct.udp_stream_timeout,
    )?);
    Ok(s)
}

#[cfg(test)]
#[path = "effective_tests.rs"]
mod tests;
