//! Every flag stock kube-proxy registers, and what kube-ipvs does with each: applies it (a field of
//! [`super::RunArgs`]) or accepts it and logs once why it has no effect ([`InertFlags`]). Nothing
//! stock accepts is refused for being unknown here: a DaemonSet's command line works unchanged.
//!
//! The list is pinned by `tests/fixtures/stock-flags/kube-proxy.txt` (see [`STOCK_SOURCE`]), so a
//! flag a newer kube-proxy adds is a visible decision, not a crash-looping rollout.

use std::collections::BTreeMap;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::duration::GoDuration;

/// Where the stock flag set was read.
pub const STOCK_SOURCE: &str = "kubernetes/kubernetes @ 008b3652959ca58af8be3fb5b6ecfe9ae7638282 \
    (1.35 development line): cmd/kube-proxy/app/options.go `AddFlags` (Linux: `addOSFlags` adds \
    none), staging/src/k8s.io/component-base/logs/api/v1/options.go `addFlags` (the logging flags \
    kube-proxy registers through `logsapi.AddFlags`; klog's own flags other than -v and -vmodule \
    are no longer registered since 1.26, KEP-2845), cmd/kube-proxy/app/server.go \
    (`fs.AddGoFlagSet(goflag.CommandLine)` \"for --boot-id-file and --machine-id-file\")";

/// How a flag relates to the `--config` file, as stock `Options.Complete` decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// Bound to a configuration field: ignored when `--config` is given (stock replaces the whole
    /// configuration with the file's; "This parameter is ignored if a config file is specified").
    ConfigField,
    /// A logging flag, or `--hostname-override`: applied over the file (`copyLogsFromFlags`,
    /// `processHostnameOverrideFlag`).
    OverFile,
    /// Not part of the configuration (`--config`, `--cleanup`, `--master`, ...): always applies.
    Always,
    /// `--healthz-port` / `--metrics-port`: only without `--config` (`addressFromDeprecatedFlags`).
    WithoutConfig,
}

/// What kube-ipvs does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Applied with the meaning of its configuration field (a field of `RunArgs`).
    Applied,
    /// Accepted; one warning says why it does not apply.
    Inert(&'static str),
}

/// Whether stock still registers the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In the stock flag set of [`STOCK_SOURCE`].
    Stock,
    /// Removed from kube-proxy, but still in command lines written for older ones: accepted with a
    /// warning rather than crash-looping the pod.
    Removed,
}

/// The syntax of a flag's value (pflag's types), so a value stock would refuse is refused too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag`, `--flag=true|false|1|0|t|f|...` (Go `strconv.ParseBool`).
    Bool,
    /// A 32-bit integer.
    Int,
    /// A number (`float32`).
    Float,
    /// A Go duration (`30s`, `1m0s`).
    Duration,
    /// Any text.
    Text,
    /// A comma-separated list; repeating the flag appends.
    List,
    /// `key=bool` pairs, comma-separated; repeating the flag merges.
    MapStringBool,
    /// A Kubernetes quantity (`0`, `512`, `1Ki`, `2M`).
    Quantity,
}

/// One flag of stock kube-proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockFlag {
    pub name: &'static str,
    pub kind: Kind,
    pub precedence: Precedence,
    pub handling: Handling,
    pub origin: Origin,
    /// The configuration field it sets, for messages (`ipvs.scheduler`); empty if none.
    pub field: &'static str,
}

const fn applied(
    name: &'static str,
    kind: Kind,
    precedence: Precedence,
    field: &'static str,
) -> StockFlag {
    StockFlag {
        name,
        kind,
        precedence,
        handling: Handling::Applied,
        origin: Origin::Stock,
        field,
    }
}

const fn inert(
    name: &'static str,
    kind: Kind,
    precedence: Precedence,
    field: &'static str,
    why: &'static str,
) -> StockFlag {
    StockFlag {
        name,
        kind,
        precedence,
        handling: Handling::Inert(why),
        origin: Origin::Stock,
        field,
    }
}

const fn removed(name: &'static str, kind: Kind, why: &'static str) -> StockFlag {
    StockFlag {
        name,
        kind,
        precedence: Precedence::Always,
        handling: Handling::Inert(why),
        origin: Origin::Removed,
        field: "",
    }
}

use Kind::{Bool, Duration, Float, Int, List, MapStringBool, Quantity, Text};
use Precedence::{Always, ConfigField, OverFile, WithoutConfig};

const IPTABLES_ONLY: &str = "applies to kube-proxy's iptables proxier; kube-ipvs uses --ipvs-sync-period / --ipvs-min-sync-period";
const NO_CLIENT_LIMITS: &str =
    "kube-ipvs's API client only lists and watches and always uses JSON; ignored";
const UNBUFFERED: &str = "kube-ipvs writes its logs unbuffered to stderr; ignored";
const KLOG_REMOVED: &str = "a klog flag kube-proxy no longer registers (removed in 1.26, KEP-2845); kube-ipvs logs to stderr, ignored";

/// Every flag stock kube-proxy registers on Linux, in `AddFlags` order, then the logging flags,
/// then the Go flag set; then the removed ones kube-ipvs still accepts.
pub const STOCK_FLAGS: &[StockFlag] = &[
    applied("config", Text, Always, ""),
    applied("write-config-to", Text, Always, ""),
    applied("cleanup", Bool, Always, ""),
    inert(
        "feature-gates",
        MapStringBool,
        ConfigField,
        "featureGates",
        "kube-proxy feature gates do not apply to kube-ipvs; ignored",
    ),
    applied(
        "kubeconfig",
        Text,
        ConfigField,
        "clientConnection.kubeconfig",
    ),
    applied("master", Text, Always, ""),
    inert(
        "kube-api-content-type",
        Text,
        ConfigField,
        "clientConnection.contentType",
        NO_CLIENT_LIMITS,
    ),
    inert(
        "kube-api-burst",
        Int,
        ConfigField,
        "clientConnection.burst",
        NO_CLIENT_LIMITS,
    ),
    inert(
        "kube-api-qps",
        Float,
        ConfigField,
        "clientConnection.qps",
        NO_CLIENT_LIMITS,
    ),
    applied("hostname-override", Text, OverFile, "hostnameOverride"),
    applied("bind-address", Text, ConfigField, "bindAddress"),
    applied(
        "healthz-bind-address",
        Text,
        ConfigField,
        "healthzBindAddress",
    ),
    applied(
        "metrics-bind-address",
        Text,
        ConfigField,
        "metricsBindAddress",
    ),
    applied(
        "bind-address-hard-fail",
        Bool,
        ConfigField,
        "bindAddressHardFail",
    ),
    inert(
        "profiling",
        Bool,
        ConfigField,
        "enableProfiling",
        "kube-ipvs has no /debug/pprof handler; ignored",
    ),
    inert(
        "show-hidden-metrics-for-version",
        Text,
        ConfigField,
        "showHiddenMetricsForVersion",
        "kube-ipvs has no hidden metrics; ignored",
    ),
    applied("init-only", Bool, Always, ""),
    applied("proxy-mode", Text, ConfigField, "mode"),
    applied(
        "iptables-masquerade-bit",
        Int,
        ConfigField,
        "iptables.masqueradeBit",
    ),
    applied(
        "masquerade-all",
        Bool,
        ConfigField,
        "iptables.masqueradeAll",
    ),
    inert(
        "iptables-localhost-nodeports",
        Bool,
        ConfigField,
        "iptables.localhostNodePorts",
        "applies to kube-proxy's iptables proxier; IPVS mode never serves NodePorts on localhost",
    ),
    inert(
        "iptables-sync-period",
        Duration,
        ConfigField,
        "iptables.syncPeriod",
        IPTABLES_ONLY,
    ),
    inert(
        "iptables-min-sync-period",
        Duration,
        ConfigField,
        "iptables.minSyncPeriod",
        IPTABLES_ONLY,
    ),
    applied("ipvs-sync-period", Duration, ConfigField, "ipvs.syncPeriod"),
    applied(
        "ipvs-min-sync-period",
        Duration,
        ConfigField,
        "ipvs.minSyncPeriod",
    ),
    applied("ipvs-scheduler", Text, ConfigField, "ipvs.scheduler"),
    applied("ipvs-exclude-cidrs", List, ConfigField, "ipvs.excludeCIDRs"),
    applied("ipvs-strict-arp", Bool, ConfigField, "ipvs.strictARP"),
    applied("ipvs-tcp-timeout", Duration, ConfigField, "ipvs.tcpTimeout"),
    applied(
        "ipvs-tcpfin-timeout",
        Duration,
        ConfigField,
        "ipvs.tcpFinTimeout",
    ),
    applied("ipvs-udp-timeout", Duration, ConfigField, "ipvs.udpTimeout"),
    applied("detect-local-mode", Text, ConfigField, "detectLocalMode"),
    applied(
        "pod-bridge-interface",
        Text,
        ConfigField,
        "detectLocal.bridgeInterface",
    ),
    applied(
        "pod-interface-name-prefix",
        Text,
        ConfigField,
        "detectLocal.interfaceNamePrefix",
    ),
    applied("cluster-cidr", Text, ConfigField, "clusterCIDR"),
    applied("nodeport-addresses", List, ConfigField, "nodePortAddresses"),
    inert(
        "oom-score-adj",
        Int,
        ConfigField,
        "oomScoreAdj",
        "kube-ipvs does not change its OOM score; set priorityClassName: system-node-critical on the pod",
    ),
    applied(
        "conntrack-max-per-core",
        Int,
        ConfigField,
        "conntrack.maxPerCore",
    ),
    applied("conntrack-min", Int, ConfigField, "conntrack.min"),
    applied(
        "conntrack-tcp-timeout-established",
        Duration,
        ConfigField,
        "conntrack.tcpEstablishedTimeout",
    ),
    applied(
        "conntrack-tcp-timeout-close-wait",
        Duration,
        ConfigField,
        "conntrack.tcpCloseWaitTimeout",
    ),
    applied(
        "conntrack-tcp-be-liberal",
        Bool,
        ConfigField,
        "conntrack.tcpBeLiberal",
    ),
    applied(
        "conntrack-udp-timeout",
        Duration,
        ConfigField,
        "conntrack.udpTimeout",
    ),
    applied(
        "conntrack-udp-timeout-stream",
        Duration,
        ConfigField,
        "conntrack.udpStreamTimeout",
    ),
    inert(
        "config-sync-period",
        Duration,
        ConfigField,
        "configSyncPeriod",
        "kube-ipvs's watches need no periodic re-list; ignored",
    ),
    applied("healthz-port", Int, WithoutConfig, ""),
    applied("metrics-port", Int, WithoutConfig, ""),
    // logsapi.AddFlags
    applied("logging-format", Text, OverFile, "logging.format"),
    inert(
        "log-flush-frequency",
        Duration,
        OverFile,
        "logging.flushFrequency",
        UNBUFFERED,
    ),
    applied("v", Int, OverFile, "logging.verbosity"),
    inert(
        "vmodule",
        Text,
        OverFile,
        "logging.vmodule",
        "klog per-file verbosity does not apply; filter with RUST_LOG per module instead",
    ),
    inert(
        "log-text-split-stream",
        Bool,
        OverFile,
        "logging.options.text.splitStream",
        UNBUFFERED,
    ),
    inert(
        "log-text-info-buffer-size",
        Quantity,
        OverFile,
        "logging.options.text.infoBufferSize",
        UNBUFFERED,
    ),
    inert(
        "log-json-split-stream",
        Bool,
        OverFile,
        "logging.options.json.splitStream",
        UNBUFFERED,
    ),
    inert(
        "log-json-info-buffer-size",
        Quantity,
        OverFile,
        "logging.options.json.infoBufferSize",
        UNBUFFERED,
    ),
    // goflag.CommandLine
    inert(
        "boot-id-file",
        Text,
        Always,
        "",
        "cadvisor's flag, registered by kube-proxy's Go flag set; unused",
    ),
    inert(
        "machine-id-file",
        Text,
        Always,
        "",
        "cadvisor's flag, registered by kube-proxy's Go flag set; unused",
    ),
    // Removed from kube-proxy; found in command lines written for older releases.
    removed("add-dir-header", Bool, KLOG_REMOVED),
    removed("alsologtostderr", Bool, KLOG_REMOVED),
    removed("log-backtrace-at", Text, KLOG_REMOVED),
    removed("log-dir", Text, KLOG_REMOVED),
    removed("log-file", Text, KLOG_REMOVED),
    removed("log-file-max-size", Int, KLOG_REMOVED),
    removed("logtostderr", Bool, KLOG_REMOVED),
    removed("one-output", Bool, KLOG_REMOVED),
    removed("skip-headers", Bool, KLOG_REMOVED),
    removed("skip-log-headers", Bool, KLOG_REMOVED),
    removed("stderrthreshold", Text, KLOG_REMOVED),
    removed(
        "resource-container",
        Text,
        "removed from kube-proxy (it ran itself in a cgroup of this name); ignored",
    ),
    removed(
        "cleanup-ipvs",
        Bool,
        "removed from kube-proxy; kube-ipvs adopts existing IPVS state instead of flushing it",
    ),
    removed(
        "cleanup-iptables",
        Bool,
        "removed from kube-proxy; use --cleanup to remove kube-ipvs's state",
    ),
    removed(
        "proxy-port-range",
        Text,
        "applied to the removed userspace proxier; ignored",
    ),
    removed(
        "udp-timeout",
        Duration,
        "applied to the removed userspace proxier; ignored",
    ),
];

/// The catalogue entry of a flag (by its long name, without dashes).
pub fn lookup(name: &str) -> Option<&'static StockFlag> {
    STOCK_FLAGS.iter().find(|f| f.name == name)
}

/// Heading of the inert flags in `--help`.
pub const INERT_HEADING: &str =
    "kube-proxy flags without effect in kube-ipvs (accepted, logged once)";

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}: expected true or false")),
    }
}

/// Go's `strconv.ParseInt(s, 0, 32)`: decimal, or `0x`/`0o`/`0b` prefixed, with an optional sign.
pub fn parse_go_int(s: &str) -> Result<i32, String> {
    let bad = || format!("invalid integer {s:?}");
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, digits.get(2..).unwrap_or_default()),
        Some("0o" | "0O") => (8, digits.get(2..).unwrap_or_default()),
        Some("0b" | "0B") => (2, digits.get(2..).unwrap_or_default()),
        _ => (10, digits),
    };
    let digits = digits.replace('_', "");
    let n = i64::from_str_radix(&digits, radix).map_err(|_| bad())?;
    let n = if neg { -n } else { n };
    i32::try_from(n).map_err(|_| format!("integer {s:?} is out of the 32-bit range"))
}

/// Checks a value has the syntax of its kind; returns it unchanged.
fn check(kind: Kind, s: &str) -> Result<String, String> {
    match kind {
        Bool => parse_go_bool(s).map(|_| ()),
        Int => parse_go_int(s).map(|_| ()),
        Float => s
            .parse::<f32>()
            .map(|_| ())
            .map_err(|_| format!("invalid number {s:?}")),
        Duration => GoDuration::parse(s).map(|_| ()).map_err(|e| e.to_string()),
        Text | List => Ok(()),
        MapStringBool => parse_map_string_bool(s).map(|_| ()),
        Quantity => {
            let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let suffix = &s[digits.len()..];
            let known = [
                "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "K", "M", "G", "T", "P", "E",
            ];
            if digits.parse::<f64>().is_ok() && known.contains(&suffix) {
                Ok(())
            } else {
                Err(format!("invalid quantity {s:?}"))
            }
        }
    }
    .map(|()| s.to_owned())
}

/// `--feature-gates` syntax: `Name=bool` pairs separated by commas (pflag's `MapStringBool`).
pub fn parse_map_string_bool(s: &str) -> Result<BTreeMap<String, bool>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("invalid feature gate {pair:?}: expected Name=true|false"))?;
        out.insert(k.trim().to_owned(), parse_go_bool(v.trim())?);
    }
    Ok(out)
}

/// The inert flags given on the command line, in catalogue order, each with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InertFlags {
    pub given: Vec<(&'static str, Vec<String>)>,
}

impl InertFlags {
    fn inert() -> impl Iterator<Item = &'static StockFlag> {
        STOCK_FLAGS
            .iter()
            .filter(|f| matches!(f.handling, Handling::Inert(_)))
    }
}

impl FromArgMatches for InertFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut s = InertFlags::default();
        s.update_from_arg_matches(m)?;
        Ok(s)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for f in Self::inert() {
            if let Ok(Some(values)) = m.try_get_many::<String>(f.name) {
                self.given.push((f.name, values.cloned().collect()));
            }
        }
        Ok(())
    }
}

impl Args for InertFlags {
    fn augment_args(cmd: Command) -> Command {
        Self::inert().fold(cmd, |cmd, f| {
            let Handling::Inert(why) = f.handling else {
                return cmd;
            };
            let kind = f.kind;
            let mut arg = Arg::new(f.name)
                .long(f.name)
                .action(ArgAction::Append)
                .value_parser(move |s: &str| check(kind, s))
                .help_heading(INERT_HEADING)
                .help(format!("[kube-proxy] {why}"))
                .hide(f.origin == Origin::Removed);
            arg = if kind == Bool {
                arg.num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true")
                    .value_name("BOOL")
            } else {
                arg.num_args(1)
                    .allow_hyphen_values(true)
                    .value_name("VALUE")
            };
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_value_syntax() {
        for (s, want) in [
            ("1", true),
            ("t", true),
            ("TRUE", true),
            ("False", false),
            ("0", false),
        ] {
            assert_eq!(parse_go_bool(s), Ok(want), "{s}");
        }
        assert!(parse_go_bool("yes").is_err());
        assert_eq!(parse_go_int("-999"), Ok(-999));
        assert_eq!(parse_go_int("0x10"), Ok(16));
        assert_eq!(parse_go_int("1_000"), Ok(1000));
        assert!(parse_go_int("2147483648").is_err());
        assert!(parse_go_int("ten").is_err());
        assert_eq!(
            parse_map_string_bool("A=true, B=false"),
            Ok(BTreeMap::from([("A".into(), true), ("B".into(), false)]))
        );
        assert!(parse_map_string_bool("A").is_err());
        assert!(check(Kind::Quantity, "2Mi").is_ok() && check(Kind::Quantity, "2MB").is_err());
        assert!(check(Kind::Duration, "1m").is_ok() && check(Kind::Duration, "1").is_err());
    }

    #[test]
    fn the_catalogue_is_exactly_the_pinned_stock_flag_list() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stock-flags/kube-proxy.txt"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let pinned: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let ours: Vec<&str> = STOCK_FLAGS
            .iter()
            .filter(|f| f.origin == Origin::Stock)
            .map(|f| f.name)
            .collect();
        assert_eq!(ours, pinned, "src/config/stock_flags.rs vs {path}");
        assert!(text.contains("008b3652959ca58af8be3fb5b6ecfe9ae7638282"));
        assert!(STOCK_SOURCE.contains("008b3652959ca58af8be3fb5b6ecfe9ae7638282"));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = STOCK_FLAGS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
