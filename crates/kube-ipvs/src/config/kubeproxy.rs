//! The wire model of stock `KubeProxyConfiguration` (`kubeproxy.config.k8s.io/v1alpha1`), from
//! kubernetes `staging/src/k8s.io/kube-proxy/config/v1alpha1/types.go` (1.29 to 1.35, every field of
//! every release in that span), so any valid stock file is recognised field by field.
//!
//! Every field is an `Option`: a field that is absent, `null`, or (for pointers in Go) unset is
//! `None`. Go itself cannot tell "0s" or `""` from "unset" for non-pointer fields; the effective
//! configuration (`effective.rs`) applies that rule where kube-proxy does. Values stay as written
//! here (strings, not CIDRs): validation happens later so every error can name its field path.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::duration::GoDuration;

/// `apiVersion` of the only configuration version kube-ipvs reads.
pub const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";
/// `kind` of the configuration object.
pub const KIND: &str = "KubeProxyConfiguration";

/// `KubeProxyConfiguration`, top level.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub feature_gates: Option<BTreeMap<String, bool>>,
    pub client_connection: Option<ClientConnection>,
    pub logging: Option<Logging>,
    pub hostname_override: Option<String>,
    pub bind_address: Option<String>,
    pub healthz_bind_address: Option<String>,
    pub metrics_bind_address: Option<String>,
    pub bind_address_hard_fail: Option<bool>,
    pub enable_profiling: Option<bool>,
    pub show_hidden_metrics_for_version: Option<String>,
    pub service_proxy_name: Option<String>,
    pub mode: Option<String>,
    pub iptables: Option<IpTables>,
    pub ipvs: Option<Ipvs>,
    pub nftables: Option<NfTables>,
    pub winkernel: Option<Winkernel>,
    pub detect_local_mode: Option<String>,
    pub detect_local: Option<DetectLocal>,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    pub node_port_addresses: Option<Vec<String>>,
    pub oom_score_adj: Option<i32>,
    pub conntrack: Option<Conntrack>,
    pub config_sync_period: Option<GoDuration>,
    pub port_range: Option<String>,
    pub windows_run_as_service: Option<bool>,
    /// Top-level sync period of kube-proxy's newer configuration (internal type and v1alpha2);
    /// accepted here so a file written for a newer kube-proxy keeps its intent.
    pub sync_period: Option<GoDuration>,
    /// Top-level minimum sync period (see `sync_period`).
    pub min_sync_period: Option<GoDuration>,
    /// Userspace-mode idle timeout, removed from kube-proxy but still present in old ConfigMaps.
    pub udp_idle_timeout: Option<GoDuration>,
}

/// `clientConnection` (component-base `ClientConnectionConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    pub kubeconfig: Option<String>,
    pub accept_content_types: Option<String>,
    pub content_type: Option<String>,
    pub qps: Option<f64>,
    pub burst: Option<i64>,
}

/// `logging` (component-base `LoggingConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    pub format: Option<String>,
    /// A duration string or an integer of nanoseconds: Go accepts both here.
    pub flush_frequency: Option<serde_json::Value>,
    pub verbosity: Option<u32>,
    pub vmodule: Option<Vec<VModuleItem>>,
    pub options: Option<LoggingOptions>,
}

/// One `logging.vmodule` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VModuleItem {
    pub file_pattern: Option<String>,
    pub verbosity: Option<u32>,
}

/// `logging.options`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LoggingOptions {
    pub json: Option<LogFormatOptions>,
    pub text: Option<LogFormatOptions>,
}

/// `logging.options.json` / `logging.options.text`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFormatOptions {
    pub split_stream: Option<bool>,
    /// A Kubernetes quantity, written as a string ("0") or a number.
    pub info_buffer_size: Option<serde_json::Value>,
}

/// `iptables`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpTables {
    pub masquerade_bit: Option<i32>,
    pub masquerade_all: Option<bool>,
    pub localhost_node_ports: Option<bool>,
    #[serde(rename = "snatNodeInternalIP")]
    pub snat_node_internal_ip: Option<bool>,
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
}

/// `ipvs`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipvs {
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
    pub scheduler: Option<String>,
    #[serde(rename = "excludeCIDRs")]
    pub exclude_cidrs: Option<Vec<String>>,
    #[serde(rename = "strictARP")]
    pub strict_arp: Option<bool>,
    pub tcp_timeout: Option<GoDuration>,
    pub tcp_fin_timeout: Option<GoDuration>,
    pub udp_timeout: Option<GoDuration>,
}

/// `nftables`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NfTables {
    pub masquerade_bit: Option<i32>,
    pub masquerade_all: Option<bool>,
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
    pub table_name: Option<String>,
}

/// `winkernel`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Winkernel {
    pub network_name: Option<String>,
    pub source_vip: Option<String>,
    #[serde(rename = "enableDSR")]
    pub enable_dsr: Option<bool>,
    pub root_hns_endpoint_name: Option<String>,
    pub forward_health_check_vip: Option<bool>,
}

/// `detectLocal`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectLocal {
    pub bridge_interface: Option<String>,
    pub interface_name_prefix: Option<String>,
}

/// `conntrack`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conntrack {
    pub max_per_core: Option<i32>,
    pub min: Option<i32>,
    pub tcp_established_timeout: Option<GoDuration>,
    pub tcp_close_wait_timeout: Option<GoDuration>,
    pub tcp_be_liberal: Option<bool>,
    pub udp_timeout: Option<GoDuration>,
    pub udp_stream_timeout: Option<GoDuration>,
}

/// A non-empty string: Go's `""` means unset for plain string fields.
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// A non-zero duration: Go's "0s" means unset for non-pointer `metav1.Duration` fields.
pub(crate) fn non_zero(d: &Option<GoDuration>) -> Option<GoDuration> {
    d.filter(|d| !d.is_zero())
}
