//! Command-line flags of `kube-ipvs run` and of the binary invoked as `kube-proxy`: every flag stock
//! kube-proxy registers (see [`super::stock_flags`]: applied here, or accepted by [`InertFlags`]
//! with one warning), plus kube-ipvs's extras. Flatten [`RunArgs`] into a subcommand.
//!
//! Every flag is an `Option`: "not given" must stay distinguishable from "given the default", since
//! whether a given flag overrides the `--config` file depends on the flag (stock precedence,
//! `effective.rs`). Defaults live in `effective.rs` and are stated in each flag's help. Values use
//! pflag's syntax: `--flag=value` or `--flag value`, booleans as `--flag` or `--flag=BOOL`, Go
//! durations, comma-separated lists that repeating the flag extends.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::duration::parse_non_negative;
use super::stock_flags::{InertFlags, parse_go_bool, parse_go_int};
use super::types::{
    InterfaceName, LogFormat, MasqueradeBit, NodePortAddress, NodePortAddresses, Source,
    parse_bind_address, parse_cidr, parse_cluster_cidrs,
};
use crate::types::Scheduler;

/// Default port of the health server (kube-proxy's `ProxyHealthzPort`).
pub const HEALTHZ_PORT: u16 = 10256;
/// Default port of the metrics server (kube-proxy's `ProxyStatusPort`).
pub const METRICS_PORT: u16 = 10249;

const KUBE_PROXY: &str = "kube-proxy flags";
const OURS: &str = "kube-ipvs";

// Flags of `kube-ipvs run` and `kube-proxy`. (A plain comment: a doc comment here would become the
// `about` text of whatever command flattens this struct.)
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct RunArgs {
    /// Path to the kube-proxy configuration file [default: none, built-in defaults]
    ///
    /// A KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) in YAML or JSON, or a whole
    /// ConfigMap whose `config.conf` key holds one (the kube-system/kube-proxy ConfigMap as kubeadm
    /// writes it). Fields kube-ipvs does not use are logged once as warnings; unknown fields too.
    /// Invalid values stop startup with the field's path. As in kube-proxy, the file replaces the
    /// flags bound to its fields (those flags are then ignored, with a warning); --hostname-override
    /// and the logging flags still apply over it.
    #[arg(long, value_name = "FILE", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub config: Option<PathBuf>,

    /// Write the effective configuration to this file as a KubeProxyConfiguration, then exit [default: none]
    ///
    /// The configuration `run` would use (defaults, --config file and flags, validated), with
    /// every warning as a comment. `kube-ipvs check-config` prints the same to stdout.
    #[arg(long, value_name = "FILE", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub write_config_to: Option<PathBuf>,

    /// Proxy mode: "ipvs"; "", "iptables" and "nftables" run IPVS too, with a warning [default: ipvs]
    ///
    /// kube-ipvs is an IPVS proxier: a stock command line or ConfigMap naming another Linux mode
    /// runs the IPVS proxier, with one warning that says what the previous mode leaves behind
    /// (deploy/MIGRATING.md). Ignored when --config is given (the file's `mode` applies).
    #[arg(long, value_name = "MODE", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub proxy_mode: Option<String>,

    /// Path to a kubeconfig file [default: in-cluster service account]
    ///
    /// Sets `clientConnection.kubeconfig`. Without either (and without --master), kube-ipvs uses
    /// the pod's service account (in-cluster configuration).
    #[arg(long, value_name = "FILE", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub kubeconfig: Option<PathBuf>,

    /// Address of the API server; overrides the kubeconfig's [default: from the kubeconfig]
    ///
    /// As kube-proxy's --master: applies with or without --config. Without a kubeconfig the
    /// connection is unauthenticated.
    #[arg(long, value_name = "URL", value_parser = parse_master, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub master: Option<String>,

    /// Name of this node [default: $NODE_NAME, else the hostname]
    ///
    /// Overrides `hostnameOverride`, also when --config is given. The Node object of this name
    /// supplies topology labels and pod CIDRs. Without either, kube-ipvs uses the NODE_NAME
    /// environment variable (set it from the downward API), then the kernel hostname. The name is
    /// trimmed and lowercased, as kube-proxy does.
    #[arg(long, value_name = "NAME", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub hostname_override: Option<String>,

    /// Remove everything kube-ipvs (or kube-proxy IPVS mode) programmed, then exit [default: false]
    ///
    /// The same as `kube-ipvs cleanup` with this configuration (dummy device, excludeCIDRs,
    /// NodePort range): deletes the IPVS virtual servers kube-ipvs owns (on the dummy device's
    /// addresses, in the service CIDRs it routes, NodePorts on node addresses, and those in its
    /// owners file; never those in the exclude CIDRs), then the KUBE-* iptables chains, the KUBE-*
    /// ipsets, the local routes and the dummy device. Other tools' virtual servers (keepalived,
    /// kube-vip, fwmark) are kept, unlike stock, which flushes the whole IPVS table (`kube-ipvs
    /// cleanup --all` does). Use it to roll back to another proxier.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = KUBE_PROXY)]
    pub cleanup: Option<bool>,

    /// Do the privileged one-shot setup (sysctls, IPVS timeouts, dummy device, ipsets), then exit [default: false]
    ///
    /// What kube-proxy's --init-only does in IPVS mode, for init containers: the run that follows
    /// needs only CAP_NET_ADMIN.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = KUBE_PROXY)]
    pub init_only: Option<bool>,

    /// IPVS scheduler for every virtual server [default: rr]
    ///
    /// Sets `ipvs.scheduler`. One of the kernel's schedulers: rr, wrr, lc, wlc, lblc, lblcr,
    /// dh, sh, sed, nq, fo, ovf, mh, twos (the node needs its ip_vs_<name> module).
    #[arg(long, value_name = "NAME", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub ipvs_scheduler: Option<Scheduler>,

    /// Interval of full repair syncs, e.g. 30s, 1m0s [default: 30s]
    ///
    /// Sets `ipvs.syncPeriod`. A full sync re-reads the kernel state and repairs any drift;
    /// between them, only changed Services are synced. Must be greater than 0. The health endpoint
    /// reports unhealthy when an update has waited longer than twice this.
    #[arg(long, visible_alias = "sync-period", value_name = "DURATION",
          value_parser = parse_positive_duration, help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub ipvs_sync_period: Option<Duration>,

    /// Minimum interval between syncs, e.g. 0s, 1s [default: 0s]
    ///
    /// Sets `ipvs.minSyncPeriod`. Changes arriving faster are coalesced into one sync. 0 applies
    /// every change at once (kube-ipvs syncs only what changed, so this is cheap). Must not exceed
    /// the sync period.
    #[arg(long, visible_alias = "min-sync-period", value_name = "DURATION",
          value_parser = parse_duration_flag, help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub ipvs_min_sync_period: Option<Duration>,

    /// Comma-separated CIDRs of IPVS virtual servers kube-ipvs must never touch [default: none]
    ///
    /// Sets `ipvs.excludeCIDRs`; repeating the flag adds more. kube-ipvs only removes virtual
    /// servers it recognises as its own; this additionally protects addresses managed by
    /// keepalived, kube-vip and the like, also from `kube-ipvs cleanup`.
    #[arg(long, value_name = "CIDRS", value_parser = parse_cidr_list, help_heading = KUBE_PROXY,
          action = clap::ArgAction::Append, allow_hyphen_values = true)]
    pub ipvs_exclude_cidrs: Option<Vec<CidrList>>,

    /// Set arp_ignore=1 and arp_announce=2 so the node does not answer ARP for Service IPs [default: false]
    ///
    /// Sets `ipvs.strictARP`. Needed with MetalLB in L2 mode and similar, where only one node
    /// may answer ARP for a LoadBalancer IP.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = KUBE_PROXY)]
    pub ipvs_strict_arp: Option<bool>,

    /// Idle timeout of IPVS TCP connections; 0 leaves the kernel's value [default: 0s]
    ///
    /// Sets `ipvs.tcpTimeout`. Applied once at startup (`ipvsadm --set`); the kernel's own
    /// default is 15m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub ipvs_tcp_timeout: Option<Duration>,

    /// Timeout of IPVS TCP connections after a FIN; 0 leaves the kernel's value [default: 0s]
    ///
    /// Sets `ipvs.tcpFinTimeout`. The kernel's own default is 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub ipvs_tcpfin_timeout: Option<Duration>,

    /// Timeout of IPVS UDP flows; 0 leaves the kernel's value [default: 0s]
    ///
    /// Sets `ipvs.udpTimeout`. The kernel's own default is 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub ipvs_udp_timeout: Option<Duration>,

    /// SNAT all traffic sent to Service cluster IPs [default: false]
    ///
    /// Sets `iptables.masqueradeAll`. Some CNI plugins need it; it hides client addresses from
    /// the pods.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = KUBE_PROXY)]
    pub masquerade_all: Option<bool>,

    /// Fwmark bit (0..=31) that marks packets to masquerade [default: 14, mark 0x4000]
    ///
    /// Sets `iptables.masqueradeBit`. Must match what other components on the node expect.
    #[arg(long, value_name = "BIT", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub iptables_masquerade_bit: Option<MasqueradeBit>,

    /// How traffic from local pods is recognised: ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix [default: ClusterCIDR]
    ///
    /// Sets `detectLocalMode`. ClusterCIDR uses --cluster-cidr, NodeCIDR the Node's podCIDRs,
    /// BridgeInterface --pod-bridge-interface, InterfaceNamePrefix --pod-interface-name-prefix.
    #[arg(long, value_name = "MODE", value_parser = parse_detect_local_mode, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub detect_local_mode: Option<String>,

    /// Bridge whose traffic is local with --detect-local-mode=BridgeInterface [default: none]
    ///
    /// Sets `detectLocal.bridgeInterface`.
    #[arg(long, value_name = "NAME", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub pod_bridge_interface: Option<InterfaceName>,

    /// Interface name prefix whose traffic is local with --detect-local-mode=InterfaceNamePrefix [default: none]
    ///
    /// Sets `detectLocal.interfaceNamePrefix`.
    #[arg(long, value_name = "PREFIX", help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub pod_interface_name_prefix: Option<String>,

    /// Pod CIDR of the cluster, or a comma-separated dual-stack pair [default: none]
    ///
    /// Sets `clusterCIDR`. With the default detect-local mode (ClusterCIDR), traffic from
    /// this range counts as pod traffic and is not masqueraded; traffic from elsewhere to a
    /// ClusterIP is. Without it, kube-ipvs cannot tell pod traffic from external traffic.
    #[arg(long, value_name = "CIDRS", value_parser = parse_cluster_cidr_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub cluster_cidr: Option<CidrList>,

    /// Node addresses that serve NodePorts: comma-separated CIDRs, or "primary" [default: all]
    ///
    /// Sets `nodePortAddresses`; repeating the flag adds more. By default every local address
    /// serves NodePorts (except the dummy device, loopback and IPv6 link-local); with CIDRs, only
    /// local addresses inside them; with "primary", only the Node object's primary IPv4/IPv6
    /// addresses.
    #[arg(long, value_name = "CIDRS", value_parser = parse_node_port_entries, help_heading = KUBE_PROXY,
          action = clap::ArgAction::Append, allow_hyphen_values = true)]
    pub nodeport_addresses: Option<Vec<NodePortEntries>>,

    /// Address kube-proxy treats as this node's primary IP; 0.0.0.0 means the Node object's [default: 0.0.0.0]
    ///
    /// Sets `bindAddress` (a historical name: nothing binds to it). An IPv6 address also moves
    /// the default health and metrics addresses to [::] and [::1].
    #[arg(long, value_name = "IP", value_parser = parse_ip, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub bind_address: Option<IpAddr>,

    /// Exit when the health or metrics server cannot bind its port [default: false]
    ///
    /// Sets `bindAddressHardFail`. Without it the failure is logged and the agent runs on.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = KUBE_PROXY)]
    pub bind_address_hard_fail: Option<bool>,

    /// Address of the /healthz and /livez server, IP:port or IP; empty disables it [default: 0.0.0.0:10256]
    ///
    /// Sets `healthzBindAddress`. /healthz returns 503 when an update has waited longer than
    /// twice the sync period, or the node is being deleted; /livez ignores the node's state. The
    /// per-Service health-check NodePorts are served regardless.
    #[arg(long, value_name = "ADDR", value_parser = parse_healthz_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub healthz_bind_address: Option<BindFlag>,

    /// Address of the /metrics server, IP:port or IP; empty disables it [default: 127.0.0.1:10249]
    ///
    /// Sets `metricsBindAddress`. Serves the stock kubeproxy_* metrics plus kube-ipvs's own.
    /// Use 0.0.0.0:10249 to let Prometheus scrape it from outside the node.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub metrics_bind_address: Option<BindFlag>,

    /// Deprecated in kube-proxy: port of the health server, 0 disables it [default: 10256]
    #[arg(long, value_name = "PORT", value_parser = parse_port_flag, hide = true,
          help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub healthz_port: Option<u16>,

    /// Deprecated in kube-proxy: port of the metrics server, 0 disables it [default: 10249]
    #[arg(long, value_name = "PORT", value_parser = parse_port_flag, hide = true,
          help_heading = KUBE_PROXY, allow_hyphen_values = true)]
    pub metrics_port: Option<u16>,

    /// Maximum conntrack entries per CPU; 0 leaves nf_conntrack_max as it is [default: 32768]
    ///
    /// Sets `conntrack.maxPerCore`: nf_conntrack_max = max(this x CPUs, --conntrack-min).
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub conntrack_max_per_core: Option<u32>,

    /// Minimum nf_conntrack_max, whatever --conntrack-max-per-core gives [default: 131072]
    ///
    /// Sets `conntrack.min`.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub conntrack_min: Option<u32>,

    /// Idle timeout of established TCP conntrack entries; 0 leaves the kernel's value [default: 24h0m0s]
    ///
    /// Sets `conntrack.tcpEstablishedTimeout` (nf_conntrack_tcp_timeout_established).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub conntrack_tcp_timeout_established: Option<Duration>,

    /// Timeout of TCP conntrack entries in CLOSE_WAIT; 0 leaves the kernel's value [default: 1h0m0s]
    ///
    /// Sets `conntrack.tcpCloseWaitTimeout` (nf_conntrack_tcp_timeout_close_wait).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub conntrack_tcp_timeout_close_wait: Option<Duration>,

    /// Track TCP liberally: nf_conntrack_tcp_be_liberal=1 [default: false]
    ///
    /// Sets `conntrack.tcpBeLiberal`.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = KUBE_PROXY)]
    pub conntrack_tcp_be_liberal: Option<bool>,

    /// Idle timeout of unreplied UDP conntrack entries; 0 leaves the kernel's value [default: 0s]
    ///
    /// Sets `conntrack.udpTimeout` (nf_conntrack_udp_timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub conntrack_udp_timeout: Option<Duration>,

    /// Idle timeout of assured UDP conntrack entries; 0 leaves the kernel's value [default: 0s]
    ///
    /// Sets `conntrack.udpStreamTimeout` (nf_conntrack_udp_timeout_stream).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY,
          allow_hyphen_values = true)]
    pub conntrack_udp_timeout_stream: Option<Duration>,

    /// Log format: text or json [default: text, or logging.format from the config file]
    ///
    /// Overrides `logging.format`, also when --config is given. json writes one JSON object per
    /// line for log pipelines.
    #[arg(long, visible_alias = "log-format", value_name = "FORMAT", value_enum,
          help_heading = KUBE_PROXY)]
    pub logging_format: Option<LogFormat>,

    /// Log verbosity as kube-proxy's klog levels: 0-2 info, 3-4 kube-ipvs debug, 5 debug, 6+ trace [default: 0]
    ///
    /// Overrides `logging.verbosity`, also when --config is given. RUST_LOG, when set, takes
    /// precedence (e.g. RUST_LOG=kube_ipvs=debug).
    #[arg(short = 'v', long = "v", value_name = "LEVEL", value_parser = parse_verbosity,
          help_heading = KUBE_PROXY)]
    pub verbosity: Option<u32>,

    /// Longest time a removed TCP real server is drained at weight 0; 0 means no limit [default: 15m0s]
    ///
    /// A real server whose endpoint went away first gets weight 0 so established connections
    /// finish; it is deleted once it has no connections, or when this limit expires, whichever
    /// comes first. Stock kube-proxy has no limit, which leaves weight-0 servers behind for as
    /// long as one idle connection lives. UDP and SCTP real servers are deleted at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = OURS,
          allow_hyphen_values = true)]
    pub drain_limit: Option<Duration>,

    /// With Local traffic policies, drop traffic when the node has no local endpoint [default: false]
    ///
    /// Stock IPVS mode falls back to all cluster endpoints when a Service with
    /// externalTrafficPolicy/internalTrafficPolicy Local has no endpoint on this node, which
    /// breaks the client-source-IP guarantee. With this flag the virtual server gets no real
    /// servers instead (the iptables proxier's behaviour), so load balancers fail over to nodes
    /// that have endpoints.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = OURS)]
    pub strict_local: Option<bool>,

    /// Run the kernel's IPVS rate estimator (net.ipv4.vs.run_estimation) [default: the kernel's setting]
    ///
    /// Linux estimates packet and byte rates of every virtual and real server (`ipvsadm -Ln
    /// --rate`); nothing in kube-proxy reads them. Before Linux 6.2 a timer walks every
    /// estimator each 2 s under a lock that adding or removing a real server also takes (the
    /// kernel patch that added this switch measured the walk at over 200 ms with 50,000
    /// services). false sets run_estimation=0 (Linux 5.16+): the active and inactive connection
    /// counts (what draining reads) stay live, but the totals and rates of `ipvsadm -Ln
    /// --stats/--rate` stop moving (the same walk folds the per-CPU totals); true sets it back.
    /// Unset, the kernel's value is left alone, as stock kube-proxy does. The sysctl is per
    /// network namespace.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = OURS)]
    pub ipvs_rate_estimation: Option<bool>,

    /// Name of the dummy device that holds Service addresses [default: kube-ipvs0]
    ///
    /// The device is created if missing and never set up. Change it only to run two proxiers side
    /// by side; `kube-ipvs cleanup` removes the device of this name.
    #[arg(long, value_name = "NAME", help_heading = OURS, allow_hyphen_values = true)]
    pub dummy_device: Option<InterfaceName>,

    /// Bind each ClusterIP to the dummy device, as stock kube-proxy does [default: false]
    ///
    /// IPVS only sees traffic to local addresses. By default kube-ipvs makes each Service CIDR
    /// local with one route per range (from ServiceCIDR objects and --service-cluster-ip-range),
    /// which costs nothing per Service at tens of thousands of Services; a range one route would
    /// make dangerous (wider than /8 or /64, holding node addresses, routes or the pod CIDR) is
    /// bound address by address instead, with a Warning Event. With true, it binds every
    /// ClusterIP to the dummy device (one address per Service, stock behaviour), for tools that
    /// expect to see them there. Switching either way on a running node changes the addresses in
    /// batches of 64 between change syncs, the route in place until they are done. ExternalIPs
    /// and LoadBalancer IPs are always bound.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, help_heading = OURS)]
    pub bind_cluster_ips: Option<bool>,

    /// Service ClusterIP range(s), comma-separated, one per family [default: from the API server's ServiceCIDRs]
    ///
    /// The API server's --service-cluster-ip-range. Added to the ranges read from ServiceCIDR
    /// objects (networking.k8s.io/v1), which older API servers do not serve.
    #[arg(long, value_name = "CIDRS", value_parser = parse_cluster_cidr_flag, help_heading = OURS,
          allow_hyphen_values = true)]
    pub service_cluster_ip_range: Option<CidrList>,

    /// The API server's NodePort range, FROM-TO [default: 30000-32767]
    ///
    /// The API server's --service-node-port-range. Virtual servers on node addresses with a port
    /// in this range are kube-ipvs's (NodePorts) even after their Service is gone; `cleanup`
    /// removes them.
    #[arg(long, alias = "nodeport-range", value_name = "FROM-TO", value_parser = parse_port_range,
          help_heading = OURS)]
    pub service_node_port_range: Option<RangeInclusive<u16>>,

    /// Where Services and EndpointSlices come from: kubernetes, or file:PATH [default: kubernetes]
    ///
    /// kubernetes watches the API server. file:PATH reads Services, EndpointSlices and the Node
    /// from a YAML file (several documents, or a List) and reloads it when it changes: for
    /// standalone IPVS load balancers, demos and tests.
    #[arg(long, value_name = "SOURCE", help_heading = OURS)]
    pub source: Option<Source>,

    #[command(flatten)]
    pub inert: InertFlags,
}

impl RunArgs {
    /// `--ipvs-exclude-cidrs`, all occurrences joined.
    pub fn exclude_cidrs(&self) -> Option<Vec<IpNet>> {
        self.ipvs_exclude_cidrs
            .as_ref()
            .map(|v| v.iter().flat_map(|l| l.0.iter().copied()).collect())
    }

    /// `--nodeport-addresses`, all occurrences joined and validated as one list.
    pub fn node_port_addresses(&self) -> Option<Result<NodePortAddresses, String>> {
        self.nodeport_addresses.as_ref().map(|v| {
            let entries: Vec<NodePortAddress> =
                v.iter().flat_map(|e| e.0.iter().cloned()).collect();
            NodePortAddresses::from_entries(&entries)
        })
    }
}

/// A list of CIDRs given as one comma-separated flag value; an empty value is an empty list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CidrList(pub Vec<IpNet>);

/// The entries of one `--nodeport-addresses` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePortEntries(pub Vec<NodePortAddress>);

/// A server address flag: `None` when given empty, which disables the server (as in kube-proxy).
/// `port_given` tells whether the text named a port (the deprecated --healthz-port and
/// --metrics-port only fill in a missing one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindFlag(pub Option<SocketAddr>, pub bool);

fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_non_negative(s).map_err(|e| e.to_string())
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_flag(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be greater than 0")),
        d => Ok(d),
    }
}

fn parse_cidr_list(s: &str) -> Result<CidrList, String> {
    if s.trim().is_empty() {
        return Ok(CidrList::default());
    }
    s.split(',')
        .map(parse_cidr)
        .collect::<Result<_, _>>()
        .map(CidrList)
}

fn parse_cluster_cidr_flag(s: &str) -> Result<CidrList, String> {
    if s.trim().is_empty() {
        return Ok(CidrList::default());
    }
    parse_cluster_cidrs(s).map(CidrList)
}

fn parse_node_port_entries(s: &str) -> Result<NodePortEntries, String> {
    if s.trim().is_empty() {
        return Ok(NodePortEntries::default());
    }
    s.split(',')
        .map(|e| e.trim().parse::<NodePortAddress>())
        .collect::<Result<Vec<_>, _>>()
        .map(NodePortEntries)
}

fn parse_bind_flag(s: &str, port: u16) -> Result<BindFlag, String> {
    if s.is_empty() {
        return Ok(BindFlag(None, false));
    }
    let bare = s.parse::<IpAddr>().is_ok()
        || s.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|r| r.parse::<IpAddr>().is_ok());
    parse_bind_address(s, port).map(|a| BindFlag(Some(a), !bare))
}

fn parse_healthz_flag(s: &str) -> Result<BindFlag, String> {
    parse_bind_flag(s, HEALTHZ_PORT)
}

fn parse_metrics_flag(s: &str) -> Result<BindFlag, String> {
    parse_bind_flag(s, METRICS_PORT)
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("invalid IP address {s:?}"))
}

fn parse_master(s: &str) -> Result<String, String> {
    s.parse::<http::Uri>()
        .ok()
        .filter(|u| u.scheme().is_some() && u.host().is_some())
        .map(|_| s.to_owned())
        .ok_or_else(|| {
            format!("invalid API server address {s:?}: expected a URL like https://HOST:6443")
        })
}

fn parse_detect_local_mode(s: &str) -> Result<String, String> {
    match s {
        "" | "ClusterCIDR" | "NodeCIDR" | "BridgeInterface" | "InterfaceNamePrefix" => {
            Ok(s.to_owned())
        }
        other => Err(format!(
            "{other:?} is not one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix"
        )),
    }
}

fn parse_count(s: &str) -> Result<u32, String> {
    let n = parse_go_int(s)?;
    u32::try_from(n).map_err(|_| format!("{n} must not be negative"))
}

fn parse_port_flag(s: &str) -> Result<u16, String> {
    let n = parse_go_int(s)?;
    u16::try_from(n).map_err(|_| format!("{n} is not a port (0..=65535)"))
}

fn parse_verbosity(s: &str) -> Result<u32, String> {
    parse_count(s)
}

/// `FROM-TO` (the API server's `--service-node-port-range`); a single port is a range of one.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("{s:?}: expected FROM-TO, e.g. 30000-32767");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(args_override_self = true)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("kube-ipvs").chain(args.iter().copied())).map(|c| c.run)
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn nothing_given_is_all_none() {
        assert_eq!(parse(&[]).unwrap(), RunArgs::default());
    }

    #[test]
    fn kubeadm_daemonset_arguments_parse() {
        let a = parse(&[
            "--config=/var/lib/kube-proxy/config.conf",
            "--hostname-override=node-1",
        ])
        .unwrap();
        assert_eq!(
            a.config,
            Some(PathBuf::from("/var/lib/kube-proxy/config.conf"))
        );
        assert_eq!(a.hostname_override.as_deref(), Some("node-1"));
    }

    #[test]
    fn booleans_take_an_optional_go_value() {
        assert_eq!(
            parse(&["--ipvs-strict-arp"]).unwrap().ipvs_strict_arp,
            Some(true)
        );
        assert_eq!(
            parse(&["--ipvs-strict-arp=false"]).unwrap().ipvs_strict_arp,
            Some(false)
        );
        assert_eq!(
            parse(&["--masquerade-all=1"]).unwrap().masquerade_all,
            Some(true)
        );
        assert_eq!(parse(&["--cleanup"]).unwrap().cleanup, Some(true));
        assert_eq!(parse(&["--init-only=T"]).unwrap().init_only, Some(true));
        assert_eq!(
            parse(&["--bind-cluster-ips=False"])
                .unwrap()
                .bind_cluster_ips,
            Some(false)
        );
        assert!(parse(&["--strict-local=maybe"]).is_err());
        // pflag never takes a boolean's value from the next argument: it is a stray argument.
        assert!(parse(&["--cleanup", "false"]).is_err());
    }

    #[test]
    fn repeated_flags_follow_pflag() {
        // Scalars: the last one wins. Lists: every occurrence adds.
        let a = parse(&[
            "--v=2",
            "--v=4",
            "--ipvs-exclude-cidrs=10.0.0.0/8",
            "--ipvs-exclude-cidrs",
            "192.168.0.0/16,fd00::/8",
            "--nodeport-addresses=10.0.0.0/8",
            "--nodeport-addresses=192.168.0.0/16",
        ])
        .unwrap();
        assert_eq!(a.verbosity, Some(4));
        assert_eq!(a.exclude_cidrs().unwrap().len(), 3);
        assert!(matches!(
            a.node_port_addresses(),
            Some(Ok(NodePortAddresses::Cidrs(c))) if c.len() == 2
        ));
        assert_eq!(parse(&["-v", "3"]).unwrap().verbosity, Some(3));
        assert_eq!(parse(&["-v=5"]).unwrap().verbosity, Some(5));
        assert_eq!(parse(&["-v6"]).unwrap().verbosity, Some(6));
        // A value may start with a dash, as pflag takes the next argument whatever it is.
        assert!(parse(&["--oom-score-adj", "-999"]).is_ok());
    }

    #[test]
    fn values() {
        let a = parse(&[
            "--ipvs-scheduler",
            "wlc",
            "--ipvs-sync-period=1m0s",
            "--min-sync-period=500ms",
            "--ipvs-exclude-cidrs=10.0.0.0/8,fd00::/8",
            "--ipvs-tcp-timeout=900s",
            "--ipvs-tcpfin-timeout=2m",
            "--ipvs-udp-timeout=5m",
            "--iptables-masquerade-bit=15",
            "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
            "--nodeport-addresses=primary",
            "--healthz-bind-address=0.0.0.0",
            "--metrics-bind-address=",
            "--drain-limit=1h",
            "--dummy-device=kipvs0",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--service-node-port-range=20000-22767",
            "--log-format=json",
            "--source=file:examples/cluster.yaml",
            "--proxy-mode=iptables",
            "--bind-address=192.168.1.10",
            "--detect-local-mode=NodeCIDR",
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0s",
            "--master=https://10.0.0.1:6443",
            "--healthz-port=0",
        ])
        .unwrap();
        assert_eq!(a.ipvs_scheduler, Some(Scheduler::Wlc));
        assert_eq!(a.ipvs_sync_period, Some(Duration::from_secs(60)));
        assert_eq!(a.ipvs_min_sync_period, Some(Duration::from_millis(500)));
        assert_eq!(a.exclude_cidrs().unwrap().len(), 2);
        assert_eq!(a.ipvs_tcpfin_timeout, Some(Duration::from_secs(120)));
        assert_eq!(a.iptables_masquerade_bit.unwrap().mark(), 0x8000);
        assert_eq!(a.cluster_cidr.as_ref().unwrap().0.len(), 2);
        assert_eq!(
            a.node_port_addresses(),
            Some(Ok(NodePortAddresses::Primary))
        );
        let healthz = a.healthz_bind_address.unwrap();
        assert_eq!(healthz.0.unwrap().to_string(), "0.0.0.0:10256");
        assert!(!healthz.1, "no port was given");
        assert_eq!(a.metrics_bind_address, Some(BindFlag(None, false)));
        assert_eq!(a.dummy_device.as_ref().unwrap().as_str(), "kipvs0");
        assert_eq!(a.service_node_port_range, Some(20000..=22767));
        assert_eq!(a.logging_format, Some(LogFormat::Json));
        assert_eq!(a.source, Some(Source::File("examples/cluster.yaml".into())));
        assert_eq!(a.proxy_mode.as_deref(), Some("iptables"));
        assert_eq!(a.conntrack_max_per_core, Some(0));
        assert_eq!(a.healthz_port, Some(0));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--ipvs-exclude-cidrs=10.0.0.0/8,10.0.0/8"],
                "--ipvs-exclude-cidrs",
            ),
            (&["--ipvs-sync-period=0s"], "--ipvs-sync-period"),
            (&["--ipvs-sync-period=-5s"], "--ipvs-sync-period"),
            (&["--ipvs-min-sync-period=5"], "--ipvs-min-sync-period"),
            (&["--ipvs-scheduler=Round Robin"], "--ipvs-scheduler"),
            (
                &["--iptables-masquerade-bit=32"],
                "--iptables-masquerade-bit",
            ),
            (&["--cluster-cidr=10.0.0.0/8,11.0.0.0/8"], "--cluster-cidr"),
            (
                &["--healthz-bind-address=0.0.0.0:0"],
                "--healthz-bind-address",
            ),
            (
                &["--metrics-bind-address=localhost:10249"],
                "--metrics-bind-address",
            ),
            (&["--dummy-device=a/b"], "--dummy-device"),
            (&["--log-format=yaml"], "--logging-format"),
            (&["--source=http://x"], "--source"),
            (&["--drain-limit=forever"], "--drain-limit"),
            (&["--bind-address=node-1"], "--bind-address"),
            (&["--detect-local-mode=PodCIDR"], "--detect-local-mode"),
            (&["--conntrack-min=-1"], "--conntrack-min"),
            (&["--master=not a url"], "--master"),
            (&["--v=loud"], "--v"),
            (&["--kube-api-qps=fast"], "--kube-api-qps"),
            (&["--feature-gates=Foo"], "--feature-gates"),
            (&["--iptables-sync-period=1"], "--iptables-sync-period"),
            (
                &["--service-node-port-range=9-1"],
                "--service-node-port-range",
            ),
        ];
        for (args, flag) in cases {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn inert_flags_are_accepted_and_recorded() {
        let a = parse(&[
            "--oom-score-adj=-998",
            "--feature-gates=A=true",
            "--feature-gates=B=false",
            "--profiling",
            "--logtostderr=false",
            "--alsologtostderr",
            "--resource-container=",
        ])
        .unwrap();
        let names: Vec<&str> = a.inert.given.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "feature-gates",
                "profiling",
                "oom-score-adj",
                "alsologtostderr",
                "logtostderr",
                "resource-container"
            ]
        );
        assert_eq!(a.inert.given[0].1, ["A=true", "B=false"]);
    }

    #[test]
    fn help_states_every_default() {
        let help = Cli::command().render_long_help().to_string();
        for arg in Cli::command()
            .get_arguments()
            .filter(|a| a.get_help_heading() != Some(super::super::stock_flags::INERT_HEADING))
        {
            let long = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                long.contains("[default:"),
                "--{} help names no default: {long}",
                arg.get_id()
            );
        }
        assert!(help.contains("kube-proxy flags"));
        assert!(help.contains("without effect in kube-ipvs"));
        // Deprecated and removed flags are accepted but not advertised, as pflag hides them.
        assert!(!help.contains("--healthz-port") && !help.contains("--logtostderr"));
    }

    /// `--cleanup` keeps other tools' virtual servers (as `kube-ipvs cleanup` does), and says so.
    #[test]
    fn cleanup_help_says_what_is_kept() {
        let cmd = Cli::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "cleanup")
            .unwrap();
        let help = arg.get_long_help().unwrap().to_string();
        assert!(!help.contains("all IPVS virtual servers except"), "{help}");
        for kept in ["exclude CIDRs", "keepalived", "are kept", "cleanup --all"] {
            assert!(help.contains(kept), "{kept:?} not in: {help}");
        }
    }
}
