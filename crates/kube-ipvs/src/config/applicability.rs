//! Stock fields that kube-ipvs recognises but does not use: one warning per field that is set.
//!
//! "Set" means it would change what stock kube-proxy does: not absent, not Go's zero value, and not
//! the stock default. So a ConfigMap written by kubeadm (zero values everywhere) or by
//! `kube-proxy --write-config-to` (defaults everywhere) produces no warnings, while a setting an
//! operator made on purpose (an nftables table name, a feature gate) is named once in the log.

use std::time::Duration;

use super::duration::GoDuration;
use super::error::{ConfigWarning, WarningKind};
use super::kubeproxy::KubeProxyConfiguration;

/// The warnings for every non-applicable field that is set.
pub fn not_applicable(c: &KubeProxyConfiguration) -> Vec<ConfigWarning> {
    let mut w = Warnings(Vec::new());
    const IPTABLES_ONLY: &str = "applies to the iptables proxier only; ignored";
    const NFTABLES_ONLY: &str = "applies to the nftables proxier only; ignored";
    const WINDOWS_ONLY: &str = "applies to Windows nodes only; ignored";

    if let Some(gates) = &c.feature_gates {
        for (gate, value) in gates {
            w.push(
                format!("featureGates.{gate}"),
                format!(
                    "kube-proxy feature gates do not apply to kube-ipvs; {gate}={value} ignored"
                ),
            );
        }
    }
    if let Some(cc) = &c.client_connection {
        w.string_unless(
            "clientConnection.acceptContentTypes",
            &cc.accept_content_types,
            "",
            "not used by kube-ipvs's API client; ignored",
        );
        w.string_unless(
            "clientConnection.contentType",
            &cc.content_type,
            "application/vnd.kubernetes.protobuf",
            "kube-ipvs's API client always uses JSON; ignored",
        );
        if cc.qps.is_some_and(|q| q != 0.0 && q != 5.0) {
            w.push(
                "clientConnection.qps",
                "client-side rate limits are not used (kube-ipvs only lists and watches); ignored",
            );
        }
        if cc.burst.is_some_and(|b| b != 0 && b != 10) {
            w.push(
                "clientConnection.burst",
                "client-side rate limits are not used (kube-ipvs only lists and watches); ignored",
            );
        }
    }
    if let Some(l) = &c.logging {
        let flush = l.flush_frequency.as_ref().is_some_and(|f| match f {
            serde_json::Value::Null => false,
            serde_json::Value::Number(n) => {
                n.as_u64() != Some(0) && n.as_u64() != Some(5_000_000_000)
            }
            serde_json::Value::String(s) => GoDuration::parse(s)
                .map(|d| !d.is_zero() && d.non_negative() != Some(Duration::from_secs(5)))
                .unwrap_or(true),
            _ => true,
        });
        if flush {
            w.push(
                "logging.flushFrequency",
                "logs are written unbuffered; ignored",
            );
        }
        if l.vmodule.as_ref().is_some_and(|v| !v.is_empty()) {
            w.push(
                "logging.vmodule",
                "klog vmodule does not apply; set RUST_LOG per module instead",
            );
        }
        if let Some(opts) = &l.options {
            for (name, o) in [("json", &opts.json), ("text", &opts.text)] {
                let Some(o) = o else { continue };
                if o.split_stream == Some(true) {
                    w.push(
                        format!("logging.options.{name}.splitStream"),
                        "all logs go to stderr; ignored",
                    );
                }
                let buffered = o.info_buffer_size.as_ref().is_some_and(|v| match v {
                    serde_json::Value::Null => false,
                    serde_json::Value::String(s) => s != "0" && !s.is_empty(),
                    serde_json::Value::Number(n) => n.as_u64() != Some(0),
                    _ => true,
                });
                if buffered {
                    w.push(
                        format!("logging.options.{name}.infoBufferSize"),
                        "logs are written unbuffered; ignored",
                    );
                }
            }
        }
    }
    w.bool_true(
        "enableProfiling",
        c.enable_profiling,
        "no /debug/pprof handler in kube-ipvs; ignored",
    );
    w.string_unless(
        "showHiddenMetricsForVersion",
        &c.show_hidden_metrics_for_version,
        "",
        "kube-ipvs has no hidden metrics; ignored",
    );
    if let Some(ipt) = &c.iptables {
        w.duration_unless(
            "iptables.syncPeriod",
            &ipt.sync_period,
            Duration::from_secs(30),
            "applies to the iptables proxier; use ipvs.syncPeriod",
        );
        w.duration_unless(
            "iptables.minSyncPeriod",
            &ipt.min_sync_period,
            Duration::from_secs(1),
            "applies to the iptables proxier; use ipvs.minSyncPeriod",
        );
        // localhostNodePorts needs no warning: IPVS mode never serves NodePorts on localhost,
        // which is what `false` asks for, and `true` is the default that IPVS mode ignores too.
        if ipt.snat_node_internal_ip == Some(true) {
            w.push("iptables.snatNodeInternalIP", IPTABLES_ONLY);
        }
    }
    if let Some(nft) = &c.nftables {
        if nft.masquerade_bit.is_some_and(|b| b != 14) {
            w.push(
                "nftables.masqueradeBit",
                "applies to the nftables proxier; use iptables.masqueradeBit",
            );
        }
        w.bool_true(
            "nftables.masqueradeAll",
            nft.masquerade_all,
            "applies to the nftables proxier; use iptables.masqueradeAll",
        );
        w.duration_unless(
            "nftables.syncPeriod",
            &nft.sync_period,
            Duration::from_secs(30),
            NFTABLES_ONLY,
        );
        w.duration_unless(
            "nftables.minSyncPeriod",
            &nft.min_sync_period,
            Duration::from_secs(1),
            NFTABLES_ONLY,
        );
        w.string_unless("nftables.tableName", &nft.table_name, "", NFTABLES_ONLY);
    }
    if let Some(win) = &c.winkernel {
        w.string_unless("winkernel.networkName", &win.network_name, "", WINDOWS_ONLY);
        w.string_unless("winkernel.sourceVip", &win.source_vip, "", WINDOWS_ONLY);
        w.bool_true("winkernel.enableDSR", win.enable_dsr, WINDOWS_ONLY);
        w.string_unless(
            "winkernel.rootHnsEndpointName",
            &win.root_hns_endpoint_name,
            "",
            WINDOWS_ONLY,
        );
        w.bool_true(
            "winkernel.forwardHealthCheckVip",
            win.forward_health_check_vip,
            WINDOWS_ONLY,
        );
    }
    w.bool_true(
        "windowsRunAsService",
        c.windows_run_as_service,
        WINDOWS_ONLY,
    );
    if c.oom_score_adj.is_some_and(|v| v != -999) {
        w.push("oomScoreAdj", "kube-ipvs does not change its OOM score; set it in the pod spec (priorityClassName: system-node-critical) instead");
    }
    w.duration_unless(
        "configSyncPeriod",
        &c.config_sync_period,
        Duration::from_secs(15 * 60),
        "kube-ipvs's watches need no periodic re-list; ignored",
    );
    w.string_unless(
        "portRange",
        &c.port_range,
        "",
        "was used by the removed userspace proxier; ignored",
    );
    w.duration_unless(
        "udpIdleTimeout",
        &c.udp_idle_timeout,
        Duration::from_millis(250),
        "was used by the removed userspace proxier; ignored",
    );
    w.0
}

struct Warnings(Vec<ConfigWarning>);

impl Warnings {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigWarning::new(
            WarningKind::NotApplicable,
            field,
            message,
        ));
    }

    fn bool_true(&mut self, field: &str, value: Option<bool>, message: &str) {
        if value == Some(true) {
            self.push(field, message);
        }
    }

    fn string_unless(&mut self, field: &str, value: &Option<String>, default: &str, message: &str) {
        if value
            .as_deref()
            .is_some_and(|v| !v.is_empty() && v != default)
        {
            self.push(field, message);
        }
    }

    fn duration_unless(
        &mut self,
        field: &str,
        value: &Option<GoDuration>,
        default: Duration,
        message: &str,
    ) {
        if value.is_some_and(|d| !d.is_zero() && d.non_negative() != Some(default)) {
            self.push(field, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::parse_str;

    fn fields(yaml: &str) -> Vec<String> {
        let parsed = parse_str(yaml).unwrap();
        not_applicable(&parsed.config)
            .into_iter()
            .map(|w| w.field)
            .collect()
    }

    #[test]
    fn zero_values_and_stock_defaults_are_silent() {
        let zero = "iptables: {syncPeriod: 0s, minSyncPeriod: 0s, masqueradeBit: null, localhostNodePorts: null}\n\
                    nftables: {masqueradeBit: null, masqueradeAll: false, syncPeriod: 0s, minSyncPeriod: 0s}\n\
                    winkernel: {enableDSR: false, networkName: '', sourceVip: ''}\n\
                    clientConnection: {qps: 0, burst: 0, contentType: '', acceptContentTypes: ''}\n\
                    logging: {flushFrequency: 0, verbosity: 0, options: {json: {infoBufferSize: '0'}}}\n\
                    oomScoreAdj: null\nconfigSyncPeriod: 0s\nportRange: ''\nenableProfiling: false\n";
        assert_eq!(fields(zero), Vec::<String>::new());
        let defaults = "iptables: {syncPeriod: 30s, minSyncPeriod: 1s, localhostNodePorts: true}\n\
                        clientConnection: {qps: 5, burst: 10, contentType: application/vnd.kubernetes.protobuf}\n\
                        logging: {flushFrequency: 5s}\noomScoreAdj: -999\nconfigSyncPeriod: 15m0s\n\
                        udpIdleTimeout: 250ms\nfeatureGates: {}\n";
        assert_eq!(fields(defaults), Vec::<String>::new());
    }

    #[test]
    fn one_warning_per_field_set() {
        let set = "iptables: {syncPeriod: 10s, minSyncPeriod: 2s}\n\
                   nftables: {tableName: kube-proxy, masqueradeBit: 15}\n\
                   winkernel: {enableDSR: true}\nfeatureGates: {A: true, B: false}\n\
                   oomScoreAdj: -500\nenableProfiling: true\nlogging: {verbosity: 4}\n\
                   clientConnection: {qps: 50}\n";
        assert_eq!(
            fields(set),
            [
                "featureGates.A",
                "featureGates.B",
                "clientConnection.qps",
                "enableProfiling",
                "iptables.syncPeriod",
                "iptables.minSyncPeriod",
                "nftables.masqueradeBit",
                "nftables.tableName",
                "winkernel.enableDSR",
                "oomScoreAdj",
            ]
        );
    }
}
