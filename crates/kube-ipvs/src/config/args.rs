//! Command-line flags of `kube-ipvs run`: kube-proxy's own names (so an existing DaemonSet's
//! arguments keep working) plus kube-ipvs's extras. Flatten [`RunArgs`] into the subcommand.
//!
//! Every flag is an `Option`: "not given" must stay distinguishable from "given the default", since
//! a given flag overrides the `--config` file and an absent one does not. Defaults live in
//! `effective.rs` and are stated in each flag's help.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::duration::parse_non_negative;
use super::types::{
    InterfaceName, LogFormat, MasqueradeBit, NodePortAddress, NodePortAddresses, Scheduler, Source,
    parse_bind_address, parse_cidr, parse_cluster_cidrs,
};

/// Default port of the health server (kube-proxy's `ProxyHealthzPort`).
pub const HEALTHZ_PORT: u16 = 10256;
/// Default port of the metrics server (kube-proxy's `ProxyStatusPort`).
pub const METRICS_PORT: u16 = 10249;

const KUBE_PROXY: &str = "kube-proxy compatible (override the --config file)";
const OURS: &str = "kube-ipvs";

// Flags of `kube-ipvs run`. (A plain comment: a doc comment here would become the `about` text of
// whatever command flattens this struct.)
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct RunArgs {
    /// Path to the kube-proxy configuration file [default: none, built-in defaults]
    ///
    /// A KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) in YAML or JSON, or a whole
    /// ConfigMap whose `config.conf` key holds one (the kube-system/kube-proxy ConfigMap as kubeadm
    /// writes it). `mode` must be "ipvs" or empty. Fields kube-ipvs does not use are logged once as
    /// warnings; unknown fields too. Invalid values stop startup with the field's path. Flags given
    /// on the command line override the file.
    #[arg(long, value_name = "FILE", help_heading = KUBE_PROXY)]
    pub config: Option<PathBuf>,

    /// Proxy mode; only "ipvs" (or empty) is accepted [default: ipvs]
    ///
    /// Accepted so that existing kube-proxy command lines keep working; any other mode is an error.
    /// Unlike kube-proxy, --proxy-mode=ipvs also overrides the file's `mode` (with a warning), so a
    /// node can move to kube-ipvs while the shared ConfigMap still says `mode: iptables`.
    #[arg(long, value_name = "MODE", value_parser = parse_proxy_mode, help_heading = KUBE_PROXY)]
    pub proxy_mode: Option<String>,

    /// Path to a kubeconfig file [default: in-cluster service account]
    ///
    /// Overrides `clientConnection.kubeconfig`. Without either, kube-ipvs uses the pod's service
    /// account (in-cluster configuration).
    #[arg(long, value_name = "FILE", help_heading = KUBE_PROXY)]
    pub kubeconfig: Option<PathBuf>,

    /// Name of this node [default: $NODE_NAME, else the hostname]
    ///
    /// Overrides `hostnameOverride`. The Node object of this name supplies topology labels and
    /// pod CIDRs. Without either, kube-ipvs uses the NODE_NAME environment variable (set it from the
    /// downward API), then the kernel hostname. The name is lowercased, as kube-proxy does.
    #[arg(long, value_name = "NAME", help_heading = KUBE_PROXY)]
    pub hostname_override: Option<String>,

    /// Remove everything kube-ipvs (or kube-proxy IPVS mode) programmed, then exit [default: false]
    ///
    /// Deletes all IPVS virtual servers except those in the exclude CIDRs, the dummy device, the
    /// KUBE-* iptables chains, then the KUBE-* ipsets. Use it to roll back to another proxier.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", help_heading = KUBE_PROXY)]
    pub cleanup: Option<bool>,

    /// IPVS scheduler for every virtual server [default: rr]
    ///
    /// Overrides `ipvs.scheduler`. One of the kernel's schedulers: rr, wrr, lc, wlc, lblc, lblcr,
    /// dh, sh, sed, nq, fo, ovf, mh, twos (the node needs its ip_vs_<name> module).
    #[arg(long, value_name = "NAME", help_heading = KUBE_PROXY)]
    pub ipvs_scheduler: Option<Scheduler>,

    /// Interval of full repair syncs, e.g. 30s, 1m0s [default: 30s]
    ///
    /// Overrides `ipvs.syncPeriod` and `syncPeriod`. A full sync re-reads the kernel state and
    /// repairs any drift; between them, only changed Services are synced. Must be greater than 0.
    /// The health endpoint reports unhealthy when an update has waited longer than twice this.
    #[arg(long, visible_alias = "sync-period", value_name = "DURATION",
          value_parser = parse_positive_duration, help_heading = KUBE_PROXY)]
    pub ipvs_sync_period: Option<Duration>,

    /// Minimum interval between syncs, e.g. 0s, 1s [default: 0s]
    ///
    /// Overrides `ipvs.minSyncPeriod` and `minSyncPeriod`. Changes arriving faster are coalesced
    /// into one sync. 0 applies every change at once (kube-ipvs syncs only what changed, so this
    /// is cheap). Must not exceed the sync period.
    #[arg(long, visible_alias = "min-sync-period", value_name = "DURATION",
          value_parser = parse_duration_flag, help_heading = KUBE_PROXY)]
    pub ipvs_min_sync_period: Option<Duration>,

    /// Comma-separated CIDRs of IPVS virtual servers kube-ipvs must never touch [default: none]
    ///
    /// Overrides `ipvs.excludeCIDRs`. kube-ipvs only removes virtual servers it recognises as its
    /// own; this additionally protects addresses managed by keepalived, kube-vip and the like.
    #[arg(long, value_name = "CIDRS", value_parser = parse_cidr_list, help_heading = KUBE_PROXY)]
    pub ipvs_exclude_cidrs: Option<CidrList>,

    /// Set arp_ignore=1 and arp_announce=2 so the node does not answer ARP for Service IPs [default: false]
    ///
    /// Overrides `ipvs.strictARP`. Needed with MetalLB in L2 mode and similar, where only one node
    /// may answer ARP for a LoadBalancer IP.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", help_heading = KUBE_PROXY)]
    pub ipvs_strict_arp: Option<bool>,

    /// Idle timeout of IPVS TCP connections; 0 leaves the kernel's value [default: 0s]
    ///
    /// Overrides `ipvs.tcpTimeout`. Applied once at startup (`ipvsadm --set`); the kernel's own
    /// default is 15m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY)]
    pub ipvs_tcp_timeout: Option<Duration>,

    /// Timeout of IPVS TCP connections after a FIN; 0 leaves the kernel's value [default: 0s]
    ///
    /// Overrides `ipvs.tcpFinTimeout`. The kernel's own default is 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY)]
    pub ipvs_tcpfin_timeout: Option<Duration>,

    /// Timeout of IPVS UDP flows; 0 leaves the kernel's value [default: 0s]
    ///
    /// Overrides `ipvs.udpTimeout`. The kernel's own default is 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = KUBE_PROXY)]
    pub ipvs_udp_timeout: Option<Duration>,

    /// SNAT all traffic sent to Service cluster IPs [default: false]
    ///
    /// Overrides `iptables.masqueradeAll`. Some CNI plugins need it; it hides client addresses from
    /// the pods.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", help_heading = KUBE_PROXY)]
    pub masquerade_all: Option<bool>,

    /// Fwmark bit (0..=31) that marks packets to masquerade [default: 14, mark 0x4000]
    ///
    /// Overrides `iptables.masqueradeBit`. Must match what other components on the node expect.
    #[arg(long, value_name = "BIT", help_heading = KUBE_PROXY)]
    pub iptables_masquerade_bit: Option<MasqueradeBit>,

    /// Pod CIDR of the cluster, or a comma-separated dual-stack pair [default: none]
    ///
    /// Overrides `clusterCIDR`. With the default detect-local mode (ClusterCIDR), traffic from
    /// this range counts as pod traffic and is not masqueraded; traffic from elsewhere to a
    /// ClusterIP is. Without it, kube-ipvs cannot tell pod traffic from external traffic.
    #[arg(long, value_name = "CIDRS", value_parser = parse_cluster_cidr_flag, help_heading = KUBE_PROXY)]
    pub cluster_cidr: Option<CidrList>,

    /// Node addresses that serve NodePorts: comma-separated CIDRs, or "primary" [default: all]
    ///
    /// Overrides `nodePortAddresses`. By default every local address serves NodePorts (except
    /// the dummy device, loopback and IPv6 link-local); with CIDRs, only local addresses inside
    /// them; with "primary", only the Node object's primary IPv4/IPv6 addresses.
    #[arg(long, value_name = "CIDRS", value_parser = parse_node_port_addresses, help_heading = KUBE_PROXY)]
    pub nodeport_addresses: Option<NodePortAddresses>,

    /// Address of the /healthz and /livez server, IP:port or IP; empty disables it [default: 0.0.0.0:10256]
    ///
    /// Overrides `healthzBindAddress`. /healthz returns 503 when an update has waited longer than
    /// twice the sync period, or the node is being deleted; /livez ignores the node's state. The
    /// per-Service health-check NodePorts are served regardless.
    #[arg(long, value_name = "ADDR", value_parser = parse_healthz_flag, help_heading = KUBE_PROXY)]
    pub healthz_bind_address: Option<BindFlag>,

    /// Address of the /metrics server, IP:port or IP; empty disables it [default: 127.0.0.1:10249]
    ///
    /// Overrides `metricsBindAddress`. Serves the stock kubeproxy_* metrics plus kube-ipvs's own.
    /// Use 0.0.0.0:10249 to let Prometheus scrape it from outside the node.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_flag, help_heading = KUBE_PROXY)]
    pub metrics_bind_address: Option<BindFlag>,

    /// Longest time a removed TCP real server is drained at weight 0; 0 means no limit [default: 15m0s]
    ///
    /// A real server whose endpoint went away first gets weight 0 so established connections
    /// finish; it is deleted once it has no connections, or when this limit expires, whichever
    /// comes first. Stock kube-proxy has no limit, which leaves weight-0 servers behind for as
    /// long as one idle connection lives. UDP and SCTP real servers are deleted at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = OURS)]
    pub drain_limit: Option<Duration>,

    /// With Local traffic policies, drop traffic when the node has no local endpoint [default: false]
    ///
    /// Stock IPVS mode falls back to all cluster endpoints when a Service with
    /// externalTrafficPolicy/internalTrafficPolicy Local has no endpoint on this node, which
    /// breaks the client-source-IP guarantee. With this flag the virtual server gets no real
    /// servers instead (the iptables proxier's behaviour), so load balancers fail over to nodes
    /// that have endpoints.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", help_heading = OURS)]
    pub strict_local: Option<bool>,

    /// Name of the dummy device that holds Service addresses [default: kube-ipvs0]
    ///
    /// The device is created if missing and never set up. Change it only to run two proxiers side
    /// by side; `kube-ipvs cleanup` removes the device of this name.
    #[arg(long, value_name = "NAME", help_heading = OURS)]
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
          default_missing_value = "true", help_heading = OURS)]
    pub bind_cluster_ips: Option<bool>,

    /// Service ClusterIP range(s), comma-separated, one per family [default: from the API server's ServiceCIDRs]
    ///
    /// The API server's --service-cluster-ip-range. Added to the ranges read from ServiceCIDR
    /// objects (networking.k8s.io/v1), which older API servers do not serve.
    #[arg(long, value_name = "CIDRS", value_parser = parse_cluster_cidr_flag, help_heading = OURS)]
    pub service_cluster_ip_range: Option<CidrList>,

    /// Log format [default: text, or logging.format from the config file]
    ///
    /// json writes one JSON object per line for log pipelines. Verbosity comes from RUST_LOG
    /// (default info).
    #[arg(long, value_name = "FORMAT", value_enum, help_heading = OURS)]
    pub log_format: Option<LogFormat>,

    /// Where Services and EndpointSlices come from: kubernetes, or file:PATH [default: kubernetes]
    ///
    /// kubernetes watches the API server. file:PATH reads Services, EndpointSlices and the Node
    /// from a YAML file (several documents, or a List) and reloads it when it changes: for
    /// standalone IPVS load balancers, demos and tests.
    #[arg(long, value_name = "SOURCE", help_heading = OURS)]
    pub source: Option<Source>,
}

/// A list of CIDRs given as one comma-separated flag value; an empty value is an empty list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CidrList(pub Vec<IpNet>);

/// A server address flag: `None` when given empty, which disables the server (as in kube-proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindFlag(pub Option<SocketAddr>);

fn parse_proxy_mode(s: &str) -> Result<String, String> {
    match s {
        "" | "ipvs" => Ok(s.to_owned()),
        other => Err(format!(
            "kube-ipvs implements only the \"ipvs\" proxy mode, not {other:?}"
        )),
    }
}

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

fn parse_node_port_addresses(s: &str) -> Result<NodePortAddresses, String> {
    if s.trim().is_empty() {
        return Ok(NodePortAddresses::All);
    }
    let entries = s
        .split(',')
        .map(|e| e.trim().parse::<NodePortAddress>())
        .collect::<Result<Vec<_>, _>>()?;
    NodePortAddresses::from_entries(&entries)
}

fn parse_bind_flag(s: &str, port: u16) -> Result<BindFlag, String> {
    if s.is_empty() {
        return Ok(BindFlag(None));
    }
    parse_bind_address(s, port).map(|a| BindFlag(Some(a)))
}

fn parse_healthz_flag(s: &str) -> Result<BindFlag, String> {
    parse_bind_flag(s, HEALTHZ_PORT)
}

fn parse_metrics_flag(s: &str) -> Result<BindFlag, String> {
    parse_bind_flag(s, METRICS_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
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
    fn booleans_take_an_optional_value() {
        assert_eq!(
            parse(&["--ipvs-strict-arp"]).unwrap().ipvs_strict_arp,
            Some(true)
        );
        assert_eq!(
            parse(&["--ipvs-strict-arp=false"]).unwrap().ipvs_strict_arp,
            Some(false)
        );
        assert_eq!(
            parse(&["--masquerade-all=true"]).unwrap().masquerade_all,
            Some(true)
        );
        assert_eq!(parse(&["--cleanup"]).unwrap().cleanup, Some(true));
        assert_eq!(
            parse(&["--bind-cluster-ips=false"])
                .unwrap()
                .bind_cluster_ips,
            Some(false)
        );
        assert!(parse(&["--strict-local=maybe"]).is_err());
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
            "--log-format=json",
            "--source=file:examples/cluster.yaml",
            "--proxy-mode=ipvs",
        ])
        .unwrap();
        assert_eq!(a.ipvs_scheduler.unwrap().as_str(), "wlc");
        assert_eq!(a.ipvs_sync_period, Some(Duration::from_secs(60)));
        assert_eq!(a.ipvs_min_sync_period, Some(Duration::from_millis(500)));
        assert_eq!(a.ipvs_exclude_cidrs.unwrap().0.len(), 2);
        assert_eq!(a.ipvs_tcpfin_timeout, Some(Duration::from_secs(120)));
        assert_eq!(a.iptables_masquerade_bit.unwrap().mark(), 0x8000);
        assert_eq!(a.cluster_cidr.unwrap().0.len(), 2);
        assert_eq!(a.nodeport_addresses, Some(NodePortAddresses::Primary));
        assert_eq!(
            a.healthz_bind_address.unwrap().0.unwrap().to_string(),
            "0.0.0.0:10256"
        );
        assert_eq!(a.metrics_bind_address, Some(BindFlag(None)));
        assert_eq!(a.dummy_device.unwrap().as_str(), "kipvs0");
        assert_eq!(a.log_format, Some(LogFormat::Json));
        assert_eq!(a.source, Some(Source::File("examples/cluster.yaml".into())));
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
                &["--nodeport-addresses=primary,10.0.0.0/8"],
                "--nodeport-addresses",
            ),
            (
                &["--healthz-bind-address=0.0.0.0:0"],
                "--healthz-bind-address",
            ),
            (
                &["--metrics-bind-address=localhost:10249"],
                "--metrics-bind-address",
            ),
            (&["--dummy-device=a/b"], "--dummy-device"),
            (&["--log-format=yaml"], "--log-format"),
            (&["--source=http://x"], "--source"),
            (&["--proxy-mode=iptables"], "--proxy-mode"),
            (&["--drain-limit=forever"], "--drain-limit"),
        ];
        for (args, flag) in cases {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn help_states_every_default() {
        let help = Cli::command().render_long_help().to_string();
        for arg in Cli::command().get_arguments() {
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
        assert!(help.contains("kube-proxy compatible"));
    }
}
